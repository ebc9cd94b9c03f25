"""followers: each rep's own relation to an external contact (WeCom follow_user)

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customer_followers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("customer_id", BigId, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("staff_id", BigId, sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("remark", sa.String(128), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("remark_corp_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("remark_mobiles", sa.JSON(), nullable=False),
        sa.Column("tag_ids", sa.JSON(), nullable=False),
        sa.Column("added_at", UTC, nullable=True),
        sa.Column("add_way", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(64), nullable=False, server_default=""),
        sa.Column("oper_userid", sa.String(64), nullable=False, server_default=""),
        sa.Column("removed_at", UTC, nullable=True),
        sa.Column("synced_at", UTC, nullable=False),
        sa.UniqueConstraint("customer_id", "staff_id", name="uq_customer_follower"),
    )
    op.create_index("ix_customer_followers_staff_id", "customer_followers", ["staff_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_followers_staff_id", table_name="customer_followers")
    op.drop_table("customer_followers")
