"""verified email addresses: when an account's address proved it receives mail, and
which address links verify an address rather than change it

Addresses that were proved before this revision count as verified: an emailed
invitation the account accepted with that address, or a confirmed address change.
Addresses set by an admin or ``caucus user add`` were never proved and stay unverified
(an admin can send them a verification link).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_verified_at", sa.Float(), nullable=True))
    with op.batch_alter_table("email_changes") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="change")
        )
    op.execute(
        "UPDATE users SET email_verified_at = ("
        " SELECT MAX(invitations.used_at) FROM invitations"
        " WHERE invitations.used_by = users.id AND invitations.email IS NOT NULL"
        " AND LOWER(invitations.email) = LOWER(users.email))"
        " WHERE users.email IS NOT NULL"
    )
    op.execute(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ("
        " SELECT MAX(email_changes.used_at) FROM email_changes"
        " WHERE email_changes.user_id = users.id AND email_changes.used_at IS NOT NULL"
        " AND email_changes.new_email = users.email))"
        " WHERE users.email IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("email_changes") as batch:
        batch.drop_column("purpose")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified_at")
