"""named leases: long work (the syncs from WeCom) in one process at a time

The directory sync (scrm.sync.directory) runs on first start, nightly, and by hand; a row here per
kind of long work keeps two processes from running it at once (crm_core.leases). How far the work
got is its sync state (0016, crm_core.sync_states).

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

When = crm_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
