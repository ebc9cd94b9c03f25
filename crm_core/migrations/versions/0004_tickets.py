"""support tickets: tickets, their history, per-day number counters

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

import crm_core.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, crm_core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("open_key", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=12), nullable=False),
        sa.Column("group", sa.String(length=32), nullable=False),
        sa.Column("assignee_id", BIG_ID, nullable=True),
        _when("assigned_at"),
        _when("accepted_at"),
        sa.Column("trigger_message_id", BIG_ID, nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("complaint_messages", sa.Integer(), nullable=False),
        sa.Column("reply_open_kfid", sa.String(length=64), nullable=False),
        sa.Column("reply_external_userid", sa.String(length=128), nullable=False),
        sa.Column("ack_status", sa.String(length=16), nullable=False),
        _when("first_response_due_at", nullable=False),
        _when("resolution_due_at", nullable=False),
        _when("first_response_at"),
        _when("resolved_at"),
        sa.Column("resolution", sa.Text(), nullable=False),
        _when("closed_at"),
        sa.Column("reopened", sa.Integer(), nullable=False),
        _when("csat_requested_at"),
        sa.Column("csat", sa.Integer(), nullable=True),
        _when("csat_at"),
        _when("created_at", nullable=False),
        _when("updated_at", nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["assignee_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["trigger_message_id"], ["messages.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index("ix_tickets_assignee_status", "tickets", ["assignee_id", "status"])
    op.create_index("ix_tickets_customer_created", "tickets", ["customer_id", "created_at"])
    op.create_index("ix_tickets_status_created", "tickets", ["status", "created_at"])

    op.create_table(
        "ticket_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("ticket_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", BIG_ID, nullable=True),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        _when("created_at", nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["actor_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ticket_events_ticket", "ticket_events", ["ticket_id", "id"])

    op.create_table(
        "ticket_counters",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("ticket_counters")
    op.drop_index("ix_ticket_events_ticket", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("ix_tickets_status_created", table_name="tickets")
    op.drop_index("ix_tickets_customer_created", table_name="tickets")
    op.drop_index("ix_tickets_assignee_status", table_name="tickets")
    op.drop_table("tickets")
