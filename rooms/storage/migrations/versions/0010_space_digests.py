"""activity digests: members' presence and digest choice per case, digest markers per space

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_members") as batch:
        batch.add_column(sa.Column("seen_at", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("digests", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("space_members") as batch:
        batch.add_column(
            sa.Column("digest_seq", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("digest_sent_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("space_members") as batch:
        batch.drop_column("digest_sent_at")
        batch.drop_column("digest_seq")
    with op.batch_alter_table("case_members") as batch:
        batch.drop_column("digests")
        batch.drop_column("seen_at")
