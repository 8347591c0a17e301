"""sealed TOTP seeds: room for a seed sealed by the master key

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Seeds stored in clear are sealed when the server starts (Accounts.seal_plain_secrets):
    # the master key is not the database's to know.
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite does not enforce VARCHAR lengths; rebuilding "users" is not needed
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "totp_secret", existing_type=sa.String(length=64), type_=sa.String(length=255)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "totp_secret", existing_type=sa.String(length=255), type_=sa.String(length=64)
        )
