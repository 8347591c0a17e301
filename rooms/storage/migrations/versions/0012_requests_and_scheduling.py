"""requests and scheduling: neutrals' request links and availability, case requests with
their people and slots, conflict decisions, sessions of a case, bookings, calendar feeds

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "neutral_profiles",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("handle", sa.String(40), nullable=False),
        sa.Column("availability", sa.JSON(), nullable=False),
        sa.Column("accepting", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_neutral_profiles_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_neutral_profiles"),
        sa.UniqueConstraint("handle", name="uq_neutral_profiles_handle"),
    )
    op.create_table(
        "case_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("neutral_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("intake", sa.JSON(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("confirm_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("confirmed_at", sa.Float(), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("disclosure", sa.Text(), nullable=True),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["neutral_id"],
            ["users.id"],
            name="fk_case_requests_neutral_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_case_requests"),
        sa.UniqueConstraint("reference", name="uq_case_requests_reference"),
        sa.UniqueConstraint("confirm_hash", name="uq_case_requests_confirm_hash"),
    )
    op.create_index("ix_case_requests_neutral_id", "case_requests", ["neutral_id"])
    op.create_table(
        "request_people",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("represents", sa.String(32), nullable=True),
        sa.Column("is_requester", sa.Boolean(), nullable=False),
        sa.Column("link_hash", sa.String(64), nullable=True),
        sa.Column("link_expires_at", sa.Float(), nullable=True),
        sa.Column("consent", sa.String(16), nullable=True),
        sa.Column("answer", sa.String(16), nullable=True),
        sa.Column("answer_slot", sa.String(32), nullable=True),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["case_requests.id"],
            name="fk_request_people_request_id_case_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_request_people"),
        sa.UniqueConstraint("link_hash", name="uq_request_people_link_hash"),
    )
    op.create_index("ix_request_people_request_id", "request_people", ["request_id"])
    op.create_table(
        "request_slots",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("proposed_by", sa.String(32), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["case_requests.id"],
            name="fk_request_slots_request_id_case_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_request_slots"),
    )
    op.create_index("ix_request_slots_request_id", "request_slots", ["request_id"])
    op.create_table(
        "case_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("reminded_day_at", sa.Float(), nullable=True),
        sa.Column("reminded_hour_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_case_sessions_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_case_sessions"),
    )
    op.create_index("ix_case_sessions_case_id", "case_sessions", ["case_id"])
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("neutral_id", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
        sa.Column("slot_id", sa.String(32), nullable=True),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["neutral_id"], ["users.id"], name="fk_bookings_neutral_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["case_requests.id"],
            name="fk_bookings_request_id_case_requests",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["request_slots.id"],
            name="fk_bookings_slot_id_request_slots",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["case_sessions.id"],
            name="fk_bookings_session_id_case_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bookings"),
        sa.UniqueConstraint("neutral_id", "starts_at", name="uq_bookings_neutral_id_starts_at"),
    )
    op.create_table(
        "conflict_decisions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("neutral_id", sa.String(32), nullable=False),
        sa.Column("request_reference", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("people", sa.JSON(), nullable=False),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conflict_decisions"),
    )
    op.create_index("ix_conflict_decisions_neutral_id", "conflict_decisions", ["neutral_id"])
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_calendar_feeds_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_calendar_feeds"),
        sa.UniqueConstraint("token_hash", name="uq_calendar_feeds_token_hash"),
    )


def downgrade() -> None:
    for table in (
        "calendar_feeds",
        "conflict_decisions",
        "bookings",
        "case_sessions",
        "request_slots",
        "request_people",
        "case_requests",
        "neutral_profiles",
    ):
        op.drop_table(table)
