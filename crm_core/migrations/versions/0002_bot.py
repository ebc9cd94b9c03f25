"""bot: notes, follow-ups, deals, CRM tags; customer search keys (pinyin, initials, phone tail) and indexes

Existing customers get their search keys filled in here, in batches, so lookups by pinyin
work on data that predates this revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:28:26.986384
"""
from alembic import op
import sqlalchemy as sa
import crm_core.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_tags',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'name', name='uq_customer_tag')
    )
    with op.batch_alter_table('customer_tags', schema=None) as batch_op:
        batch_op.create_index('ix_customer_tags_name', ['name'], unique=False)

    op.create_table('deals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('lost_reason', sa.Text(), nullable=False),
    sa.Column('stage_changed_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['staff.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index('ix_deals_customer_status', ['customer_id', 'status'], unique=False)
        batch_op.create_index('ix_deals_owner_status', ['owner_id', 'status'], unique=False)

    op.create_table('follow_ups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('due_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reminded_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['staff.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.create_index('ix_follow_ups_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_follow_ups_owner_status_due', ['owner_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_follow_ups_status_due', ['status', 'due_at'], unique=False)

    op.create_table('notes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('author_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['staff.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.create_index('ix_notes_customer_created', ['customer_id', 'created_at'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_pinyin', sa.String(length=256), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('name_initials', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('phone_tail', sa.String(length=4), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('birthday', sa.Date(), nullable=True))
        batch_op.create_index('ix_customers_company_prefix', ['company'], unique=False, postgresql_ops={'company': 'text_pattern_ops'})
        batch_op.create_index('ix_customers_name_pinyin', ['name_pinyin'], unique=False, postgresql_ops={'name_pinyin': 'text_pattern_ops'})
        batch_op.create_index('ix_customers_name_prefix', ['name'], unique=False, postgresql_ops={'name': 'text_pattern_ops'})
        batch_op.create_index('ix_customers_owner_contact', ['owner_id', 'last_contact_at'], unique=False)
        batch_op.create_index('ix_customers_remark_prefix', ['remark'], unique=False, postgresql_ops={'remark': 'text_pattern_ops'})
    _key_indexes(create=True)
    _fill_search_keys()


def _key_indexes(*, create: bool) -> None:
    """PostgreSQL: (key, last_contact_at DESC NULLS LAST, id), so lookups list recent contacts off the
    index; SQLite cannot declare NULLS LAST, so it gets plain key indexes (crm_core/models.py)."""
    if op.get_bind().dialect.name == 'postgresql':
        names = {'name_pinyin': 'ix_customers_pinyin_recent', 'name_initials': 'ix_customers_initials_recent',
                 'phone_tail': 'ix_customers_phone_tail_recent'}
        for key, name in names.items():
            if create:
                op.create_index(name, 'customers', [sa.text(key), sa.text('last_contact_at DESC NULLS LAST'), sa.text('id')])
            else:
                op.drop_index(name, table_name='customers')
        return
    for key in ('name_initials', 'phone_tail'):
        with op.batch_alter_table('customers', schema=None) as batch_op:
            if create:
                batch_op.create_index(f'ix_customers_{key}', [key], unique=False)
            else:
                batch_op.drop_index(f'ix_customers_{key}')


def _fill_search_keys(batch: int = 5000) -> None:
    from crm_core.search_keys import name_keys, phone_tail

    conn = op.get_bind()
    customers = sa.table('customers', sa.column('id', sa.Integer), sa.column('name', sa.String), sa.column('phone', sa.String),
                         sa.column('name_pinyin', sa.String), sa.column('name_initials', sa.String), sa.column('phone_tail', sa.String))
    last_id = 0
    while True:
        rows = conn.execute(sa.select(customers.c.id, customers.c.name, customers.c.phone)
                            .where(customers.c.id > last_id).order_by(customers.c.id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            pinyin, initials = name_keys(row.name)
            conn.execute(customers.update().where(customers.c.id == row.id)
                         .values(name_pinyin=pinyin, name_initials=initials, phone_tail=phone_tail(row.phone)))
        last_id = rows[-1].id


def downgrade() -> None:
    _key_indexes(create=False)
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_remark_prefix', postgresql_ops={'remark': 'text_pattern_ops'})
        batch_op.drop_index('ix_customers_owner_contact')
        batch_op.drop_index('ix_customers_name_prefix', postgresql_ops={'name': 'text_pattern_ops'})
        batch_op.drop_index('ix_customers_name_pinyin', postgresql_ops={'name_pinyin': 'text_pattern_ops'})
        batch_op.drop_index('ix_customers_company_prefix', postgresql_ops={'company': 'text_pattern_ops'})
        batch_op.drop_column('birthday')
        batch_op.drop_column('phone_tail')
        batch_op.drop_column('name_initials')
        batch_op.drop_column('name_pinyin')

    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index('ix_notes_customer_created')

    op.drop_table('notes')
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_ups_status_due')
        batch_op.drop_index('ix_follow_ups_owner_status_due')
        batch_op.drop_index('ix_follow_ups_customer')

    op.drop_table('follow_ups')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_owner_status')
        batch_op.drop_index('ix_deals_customer_status')

    op.drop_table('deals')
    with op.batch_alter_table('customer_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_tags_name')

    op.drop_table('customer_tags')
