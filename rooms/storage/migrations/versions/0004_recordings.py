"""recordings: video messages in the message stream, recorded files with a kind and length

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("file_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("duration_s", sa.Float(), nullable=True))
    with op.batch_alter_table("space_files") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("duration_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("space_files") as batch:
        batch.drop_column("duration_s")
        batch.drop_column("kind")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("duration_s")
        batch.drop_column("file_id")
        batch.drop_column("kind")
