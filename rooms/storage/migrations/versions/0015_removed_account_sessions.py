"""removed account sessions: the cookie hashes of sessions whose account was deleted with
a closed case, so the browser is told why it was signed out

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "removed_account_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_removed_account_sessions"),
    )


def downgrade() -> None:
    op.drop_table("removed_account_sessions")
