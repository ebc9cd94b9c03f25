"""sales targets: one monthly amount per rep or per department (业绩目标), set in chat, by import or the API

Revision ID: 0021
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sales_targets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.UniqueConstraint("month", "kind", "subject_id", name="uq_sales_target"),
        sa.CheckConstraint("kind IN ('staff', 'department')", name="ck_sales_target_kind"),
        sa.CheckConstraint("amount > 0", name="ck_sales_target_amount"),
    )


def downgrade() -> None:
    op.drop_table("sales_targets")
