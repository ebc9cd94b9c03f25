"""chat archive (会话存档): the pull cursor per corp

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_archive_cursors",
        sa.Column("corp_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("corp_id"),
    )


def downgrade() -> None:
    op.drop_table("chat_archive_cursors")
