"""the directory's departments and member tags, so ticket routing can name them

Ticket routing (config/tickets.toml [routing], crm_core.ticket_routing) names the support agents
by WeCom department (id or name) and member tag (通讯录标签) instead of by userid; both are
resolved against what the directory sync stores here. Until it has run, departments named by id
still resolve through staff.department_ids.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

When = crm_core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("synced_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_departments_name", "departments", ["name"])
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("tags")
    op.drop_index("ix_departments_name", table_name="departments")
    op.drop_table("departments")
