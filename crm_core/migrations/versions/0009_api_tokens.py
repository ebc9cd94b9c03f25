"""staff API tokens: the JSON API on behalf of one staff member, within their data scope

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = crm_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", BigId, nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("last_used_at", When, nullable=True),
        sa.Column("revoked_at", When, nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_api_tokens_staff_id", "api_tokens", ["staff_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_staff_id", table_name="api_tokens")
    op.drop_table("api_tokens")
