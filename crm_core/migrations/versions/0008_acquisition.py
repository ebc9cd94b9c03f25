"""acquisition: contact channels (活码), lead score, lifecycle and deal-stage history, campaigns, forecasts

Existing customers' lifecycle "active" becomes the funnel's stages: 成交 (customer) with a won
deal, 意向 (interested) with an open deal, 潜在 (prospect) otherwise.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = crm_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contact_channels",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("user_ids", sa.JSON(), nullable=False),
        sa.Column("config_id", sa.String(length=64), nullable=False),
        sa.Column("qr_code", sa.Text(), nullable=False),
        sa.Column("welcome_text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("state"),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_channel_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=64), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("lead_score", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lead_score_at", When, nullable=True))
        batch_op.add_column(sa.Column("lifecycle_changed_at", When, nullable=True))
        batch_op.create_foreign_key("fk_customers_source_channel", "contact_channels", ["source_channel_id"], ["id"])
        batch_op.create_index("ix_customers_owner_score", ["owner_id", "lead_score"])
        batch_op.create_index("ix_customers_source_channel", ["source_channel_id"])
    op.execute("UPDATE customers SET lifecycle = 'customer' WHERE lifecycle = 'active' AND EXISTS "
               "(SELECT 1 FROM deals WHERE deals.customer_id = customers.id AND deals.status = 'won')")
    op.execute("UPDATE customers SET lifecycle = 'interested' WHERE lifecycle = 'active' AND EXISTS "
               "(SELECT 1 FROM deals WHERE deals.customer_id = customers.id AND deals.status = 'open')")
    op.execute("UPDATE customers SET lifecycle = 'prospect' WHERE lifecycle = 'active'")
    op.create_table(
        "lifecycle_changes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=False),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("actor_id", BigId, nullable=True),
        sa.Column("changed_at", When, nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["actor_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lifecycle_changes_customer", "lifecycle_changes", ["customer_id", "changed_at"])
    op.create_index("ix_lifecycle_changes_to", "lifecycle_changes", ["to_stage", "changed_at"])
    op.create_table(
        "deal_stage_changes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("deal_id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("owner_id", BigId, nullable=True),
        sa.Column("from_stage", sa.String(length=32), nullable=False),
        sa.Column("to_stage", sa.String(length=32), nullable=False),
        sa.Column("changed_at", When, nullable=False),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deal_stage_changes_deal", "deal_stage_changes", ["deal_id", "changed_at"])
    op.create_index("ix_deal_stage_changes_at", "deal_stage_changes", ["changed_at"])
    # What is known of the deals so far: the stage each is in now, entered when it was.
    op.execute("INSERT INTO deal_stage_changes (deal_id, customer_id, owner_id, from_stage, to_stage, changed_at) "
               "SELECT id, customer_id, owner_id, '', stage, stage_changed_at FROM deals")
    op.create_table(
        "campaigns",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "forecast_snapshots",
        sa.Column("id", BigId, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("deals", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("made_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("month", "scope", name="uq_forecast_month_scope"),
    )


def downgrade() -> None:
    op.drop_table("forecast_snapshots")
    op.drop_table("campaigns")
    op.drop_index("ix_deal_stage_changes_at", table_name="deal_stage_changes")
    op.drop_index("ix_deal_stage_changes_deal", table_name="deal_stage_changes")
    op.drop_table("deal_stage_changes")
    op.drop_index("ix_lifecycle_changes_to", table_name="lifecycle_changes")
    op.drop_index("ix_lifecycle_changes_customer", table_name="lifecycle_changes")
    op.drop_table("lifecycle_changes")
    op.execute("UPDATE customers SET lifecycle = 'active' WHERE lifecycle IN ('prospect', 'interested', 'customer', 'loyal')")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_source_channel")
        batch_op.drop_index("ix_customers_owner_score")
        batch_op.drop_constraint("fk_customers_source_channel", type_="foreignkey")
        for name in ("lifecycle_changed_at", "lead_score_at", "lead_score", "source", "source_channel_id"):
            batch_op.drop_column(name)
    op.drop_table("contact_channels")
