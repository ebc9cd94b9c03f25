"""handovers: a 转交 carried out in WeCom, with each customer's own outcome

`转交` now moves customers with WeCom's 离职继承 / 在职继承 transfers, which take up to 24 hours and
which a customer may refuse. A handover and each of its customers are kept, so the CRM owner
changes only for what WeCom accepted, no customer is sent twice, and the summary goes out once.

Revision ID: 0018
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("from_staff_id", BigId, sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("to_staff_id", BigId, sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("by_staff_id", BigId, sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("message", sa.String(400), nullable=False, server_default=""),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("settled_at", UTC, nullable=True),
    )
    op.create_table(
        "handover_customers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("handover_id", BigId, sa.ForeignKey("handovers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("customer_id", BigId, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("external_userid", sa.String(64), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(12), nullable=False, server_default="queued"),
        sa.Column("errcode", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.String(32), nullable=False, server_default=""),
        sa.Column("updated_at", UTC, nullable=False),
        sa.UniqueConstraint("handover_id", "customer_id", name="uq_handover_customer"),
    )
    op.create_index("ix_handover_customers_state", "handover_customers", ["state", "handover_id"])
    op.create_index("ix_handover_customers_external", "handover_customers", ["external_userid"])


def downgrade() -> None:
    op.drop_index("ix_handover_customers_external", table_name="handover_customers")
    op.drop_index("ix_handover_customers_state", table_name="handover_customers")
    op.drop_table("handover_customers")
    op.drop_table("handovers")
