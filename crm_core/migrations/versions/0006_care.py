"""care: solar/lunar birthdays, consent and opt-out, contract end, care deliveries

Revision ID: 0006
Revises: 0005
"""
from datetime import date

from alembic import op
import sqlalchemy as sa
import crm_core.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("birthday_calendar", sa.String(length=5), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("birthday_month", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("birthday_day", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("birthday_leap", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("birthday_year", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("care_consent", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("care_opted_out_at", crm_core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("contract_ends_on", sa.Date(), nullable=True))
    # Birthdays so far were solar dates with a year; keep them in the new shape.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, birthday FROM customers WHERE birthday IS NOT NULL")).all()
    for row_id, born in rows:
        if isinstance(born, str):  # SQLite hands dates back as text to a raw query
            born = date.fromisoformat(born)
        bind.execute(sa.text("UPDATE customers SET birthday_calendar = 'solar', birthday_month = :m, birthday_day = :d, "
                             "birthday_year = :y WHERE id = :id"),
                     {"m": born.month, "d": born.day, "y": born.year, "id": row_id})
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("birthday")
        batch_op.create_index("ix_customers_birthday", ["birthday_calendar", "birthday_month", "birthday_day"])
        batch_op.create_index("ix_customers_lifecycle_contact", ["lifecycle", "last_contact_at"])
        batch_op.create_index("ix_customers_contract_ends", ["contract_ends_on"])
    op.create_table(
        "care_deliveries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("occasion", sa.String(length=32), nullable=False),
        sa.Column("occasion_date", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outbox_key", sa.String(length=255), nullable=False),
        sa.Column("staff_id", BigId, nullable=True),
        sa.Column("wecom_msgid", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "occasion", "occasion_date", name="uq_care_delivery_occasion"),
    )
    op.create_index("ix_care_deliveries_status", "care_deliveries", ["status", "created_at"])
    op.create_index("ix_care_deliveries_outbox_key", "care_deliveries", ["outbox_key"])


def downgrade() -> None:
    op.drop_index("ix_care_deliveries_outbox_key", table_name="care_deliveries")
    op.drop_index("ix_care_deliveries_status", table_name="care_deliveries")
    op.drop_table("care_deliveries")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_contract_ends")
        batch_op.drop_index("ix_customers_lifecycle_contact")
        batch_op.drop_index("ix_customers_birthday")
        batch_op.add_column(sa.Column("birthday", sa.Date(), nullable=True))
    op.execute("UPDATE customers SET birthday = NULL")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for name in ("contract_ends_on", "care_opted_out_at", "care_consent", "birthday_year", "birthday_leap",
                     "birthday_day", "birthday_month", "birthday_calendar"):
            batch_op.drop_column(name)
