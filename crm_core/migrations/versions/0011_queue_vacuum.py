"""queues: autovacuum the inbox and outbox early (PostgreSQL)

Every queue row is written two or three times on its way through (claimed, finished, perhaps
deferred), and claims read the due rows of the busiest indexes. With the default settings a table
is vacuumed once a fifth of it is dead: 2,000,000 dead versions for a 10,000,000-row inbox, which
every claim would wade through. These tables are vacuumed and analysed after 1 % instead.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

QUEUES = ("inbox_items", "outbox_items")
EARLY = ("autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
         "autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000")


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table in QUEUES:
        op.execute(f"ALTER TABLE {table} SET ({EARLY})")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    names = ", ".join(setting.split(" = ")[0] for setting in EARLY.split(", "))
    for table in QUEUES:
        op.execute(f"ALTER TABLE {table} RESET ({names})")
