"""Storage: the SQL schema, its Alembic migrations and the ``Store`` that opens the database."""
