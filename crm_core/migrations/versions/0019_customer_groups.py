"""customer groups (客户群): groups and their members (the group sync keeps its place in sync_states, 0016)

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customer_groups",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("chat_id", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False, server_default=""),
        sa.Column("owner_userid", sa.String(64), nullable=False, server_default=""),
        sa.Column("owner_id", BigId, sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("notice", sa.Text(), nullable=False, server_default=""),
        sa.Column("status", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("member_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", UTC, nullable=True),
        sa.Column("dismissed_at", UTC, nullable=True),
        sa.Column("synced_at", UTC, nullable=False),
    )
    op.create_index("ix_customer_groups_name", "customer_groups", ["name"])
    op.create_index("ix_customer_groups_owner_id", "customer_groups", ["owner_id"])
    op.create_table(
        "customer_group_members",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("group_id", BigId, sa.ForeignKey("customer_groups.id", ondelete="CASCADE"), nullable=False),
        sa.Column("member_id", sa.String(128), nullable=False),
        sa.Column("member_type", sa.Integer(), nullable=False),
        sa.Column("unionid", sa.String(64), nullable=False, server_default=""),
        sa.Column("name", sa.String(128), nullable=False, server_default=""),
        sa.Column("group_nickname", sa.String(128), nullable=False, server_default=""),
        sa.Column("join_scene", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("invitor", sa.String(64), nullable=False, server_default=""),
        sa.Column("joined_at", UTC, nullable=True),
        sa.Column("left_at", UTC, nullable=True),
        sa.UniqueConstraint("group_id", "member_id", name="uq_customer_group_member"),
    )
    op.create_index("ix_customer_group_members_member_id", "customer_group_members", ["member_id"])
    op.create_index("ix_customer_group_members_unionid", "customer_group_members", ["unionid"])


def downgrade() -> None:
    op.drop_index("ix_customer_group_members_unionid", table_name="customer_group_members")
    op.drop_index("ix_customer_group_members_member_id", table_name="customer_group_members")
    op.drop_table("customer_group_members")
    op.drop_index("ix_customer_groups_owner_id", table_name="customer_groups")
    op.drop_index("ix_customer_groups_name", table_name="customer_groups")
    op.drop_table("customer_groups")
