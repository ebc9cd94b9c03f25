"""PostgreSQL keeps ten times the statistics on the columns customer lookups match by prefix

With the default 100 histogram buckets, each holds 1 % of the customers, so the planner read any
prefix inside one bucket as ~1 % of the table: at a million customers `查 郭春` (152 matches) was
estimated at 9,748 and walked ix_customers_newest_first (0020) through a third of the table, 855 ms.
With 1,000 buckets it is estimated at 57 and read off the prefix index, 1.5 ms; a common prefix
(`查 王`, 122,730) still takes the newest-first walk, 2.4 ms.

Revision ID: 0022
Revises: 0021
"""
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

PREFIX_COLUMNS = ("name", "company", "remark", "name_pinyin")


def _set_statistics(target: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE customers " + ", ".join(f"ALTER COLUMN {column} SET STATISTICS {target}"
                                                     for column in PREFIX_COLUMNS))
    op.execute("ANALYZE customers")


def upgrade() -> None:
    _set_statistics(1000)


def downgrade() -> None:
    _set_statistics(-1)  # back to default_statistics_target
