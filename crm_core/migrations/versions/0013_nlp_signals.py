"""tickets: why a ticket was opened (score, signals) and an agent's dismissal of a false one

A complaint ticket keeps the complaint score and the words that made the message read as a
complaint, so the agent sees why it was opened; `工单 误判` marks a false one (dismissed_at),
and `scrm nlp eval --from-tickets` counts those for the next retraining.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("open_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("open_signals", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("dismissed_at")
        batch.drop_column("open_signals")
        batch.drop_column("open_score")
