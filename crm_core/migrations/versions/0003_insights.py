"""customer message-analysis aggregates

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sentiment_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("analysed_messages", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("tag_counts", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("last_negative_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("last_negative_message_id")
        batch_op.drop_column("tag_counts")
        batch_op.drop_column("analysed_messages")
        batch_op.drop_column("sentiment_score")
