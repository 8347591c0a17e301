"""agreements: settlement agreements drafted in a space, their versions, comments,
signatures and events; the seal log that outlives a case; a fresh proof of identity on
sessions

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _of_agreement(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agreement_id"],
        ["agreements.id"],
        name=f"fk_{table}_agreement_id_agreements",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("reauth_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("reauth_method", sa.String(32), nullable=True))
    op.create_table(
        "agreements",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("space_id", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("final_version", sa.Integer(), nullable=True),
        sa.Column("finalized_at", sa.Float(), nullable=True),
        sa.Column("document_sha256", sa.String(64), nullable=True),
        sa.Column("sealed_at", sa.Float(), nullable=True),
        sa.Column("pdf_sha256", sa.String(64), nullable=True),
        sa.Column("seal_signature", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_agreements_case_id_cases", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["space_id"], ["spaces.id"], name="fk_agreements_space_id_spaces", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_agreements"),
    )
    op.create_index("ix_agreements_case_id", "agreements", ["case_id"])
    op.create_index("ix_agreements_space_id", "agreements", ["space_id"])
    op.create_table(
        "agreement_versions",
        sa.Column("agreement_id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("adopted_from", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        _of_agreement("agreement_versions"),
        sa.PrimaryKeyConstraint("agreement_id", "number", name="pk_agreement_versions"),
    )
    op.create_table(
        "agreement_comments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("agreement_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("clause", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        _of_agreement("agreement_comments"),
        sa.PrimaryKeyConstraint("id", name="pk_agreement_comments"),
    )
    op.create_index(
        "ix_agreement_comments_agreement_id", "agreement_comments", ["agreement_id"]
    )
    op.create_table(
        "agreement_signatures",
        sa.Column("agreement_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("named_at", sa.Float(), nullable=False),
        sa.Column("signed_at", sa.Float(), nullable=True),
        sa.Column("auth_method", sa.String(32), nullable=True),
        sa.Column("document_sha256", sa.String(64), nullable=True),
        sa.Column("record", sa.LargeBinary(), nullable=True),
        sa.Column("voided_at", sa.Float(), nullable=True),
        sa.Column("voided_by_version", sa.Integer(), nullable=True),
        sa.Column("downloaded_at", sa.Float(), nullable=True),
        _of_agreement("agreement_signatures"),
        sa.PrimaryKeyConstraint(
            "agreement_id", "version", "user_id", name="pk_agreement_signatures"
        ),
    )
    op.create_table(
        "agreement_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agreement_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        _of_agreement("agreement_events"),
        sa.PrimaryKeyConstraint("id", name="pk_agreement_events"),
    )
    op.create_index("ix_agreement_events_agreement_id", "agreement_events", ["agreement_id"])
    op.create_table(
        "agreement_seal_log",
        sa.Column("agreement_id", sa.String(32), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("pdf_sha256", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("sealed_at", sa.Float(), nullable=False),
        sa.Column("signed_at", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("agreement_id", name="pk_agreement_seal_log"),
    )
    op.create_index("ix_agreement_seal_log_pdf_sha256", "agreement_seal_log", ["pdf_sha256"])


def downgrade() -> None:
    for table in (
        "agreement_seal_log",
        "agreement_events",
        "agreement_signatures",
        "agreement_comments",
        "agreement_versions",
        "agreements",
    ):
        op.drop_table(table)
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("reauth_method")
        batch.drop_column("reauth_at")
