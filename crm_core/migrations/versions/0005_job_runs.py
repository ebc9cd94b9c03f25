"""scheduler job runs (one row per job per scheduled time)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("started_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", crm_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_job_run_job_scheduled_for"),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
