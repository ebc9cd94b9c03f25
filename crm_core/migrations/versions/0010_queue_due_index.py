"""queues: a partial index of the rows still owed work, in claim order

Claims used to walk the primary key past every finished row to find the first due one: 139 ms
per claim beside 216,000 done inbox rows on PostgreSQL, growing with the archive. The partial
index holds only pending and processing rows, ordered as they are claimed.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'processing')")  # as crm_core.models.QUEUE_ACTIVE, word for word
QUEUES = (("ix_inbox_due", "inbox_items"), ("ix_outbox_due", "outbox_items"))


def upgrade() -> None:
    for index, table in QUEUES:
        op.create_index(index, table, ["available_at", "id"], sqlite_where=ACTIVE, postgresql_where=ACTIVE)


def downgrade() -> None:
    for index, table in QUEUES:
        op.drop_index(index, table_name=table)
