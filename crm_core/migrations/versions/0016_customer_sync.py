"""customer sync: the corp tag catalogue and the resumable state of syncs from WeCom

`corp_tag_groups` / `corp_tags` name the tag ids WeCom puts on contacts (crm_core.corp_tags);
`sync_states` keeps a sync's cursor, counts and last complete run (crm_core.sync_states), so a sync
killed halfway resumes where it stopped; its lease (0015, crm_core.leases) keeps two schedulers from
running it twice at once.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

import crm_core.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

When = crm_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "corp_tag_groups",
        sa.Column("group_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, server_default=""),
        sa.Column("order", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", When, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("synced_at", When, nullable=False),
    )
    op.create_table(
        "corp_tags",
        sa.Column("tag_id", sa.String(64), primary_key=True),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", When, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("synced_at", When, nullable=False),
    )
    op.create_index("ix_corp_tags_group_id", "corp_tags", ["group_id"])
    op.create_index("ix_corp_tags_name", "corp_tags", ["name"])
    op.create_table(
        "sync_states",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False, server_default="done"),
        sa.Column("run_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("userids", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("batch", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cursor", sa.String(512), nullable=False, server_default=""),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("contacts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
        sa.Column("summary", sa.Text(), nullable=False, server_default=""),
        sa.Column("started_at", When, nullable=True),
        sa.Column("finished_at", When, nullable=True),
        sa.Column("completed_at", When, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sync_states")
    op.drop_index("ix_corp_tags_name", table_name="corp_tags")
    op.drop_index("ix_corp_tags_group_id", table_name="corp_tags")
    op.drop_table("corp_tags")
    op.drop_table("corp_tag_groups")
