"""Typed SQLAlchemy models: the records the whole product reads and writes.

Uniqueness that the invariants depend on is declared here, not hoped for in code:
`messages(channel, external_msg_id)` archives each WeCom message once, `inbox_items.dedup_key`
absorbs WeCom's retries, `outbox_items.idempotency_key` sends each reply once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from crm_core.birthdays import LUNAR, Birthday
from crm_core.db import Base, UTCDateTime, utcnow
from crm_core.search_keys import name_keys, phone_tail

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16), default="sales")
    department_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)  # WeCom member tags (通讯录标签), from the directory
    position: Mapped[str] = mapped_column(String(64), default="")
    mobile: Mapped[str] = mapped_column(String(32), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Department(Base):
    """A WeCom department as the directory sync last saw it (ticket routing names them)."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # WeCom's department id
    name: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_name", "name"), Index("ix_customers_phone", "phone"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    company: Mapped[str] = mapped_column(String(128), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    gender: Mapped[int] = mapped_column(Integer, default=0)  # WeCom: 0 unknown, 1 male, 2 female
    unionid: Mapped[str] = mapped_column(String(64), default="")
    remark: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    wecom_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True, index=True)
    lifecycle: Mapped[str] = mapped_column(String(16), default="prospect")  # crm_core.lifecycle.STAGES
    churned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_contact_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Message analysis aggregates (crm_core.insights): recent mood, tags seen, last complaint-ish line.
    sentiment_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    analysed_messages: Mapped[int] = mapped_column(Integer, default=0)
    tag_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_negative_message_id: Mapped[int | None] = mapped_column(BigId, nullable=True)

    owner: Mapped[Staff | None] = relationship(foreign_keys=[owner_id], lazy="joined")
    identities: Mapped[list["CustomerIdentity"]] = relationship(back_populates="customer", lazy="selectin")

    # -- bot lookup: search keys kept in step with name/phone by the validators below (indexes at the end of the file)
    name_pinyin: Mapped[str] = mapped_column(String(256), default="")
    name_initials: Mapped[str] = mapped_column(String(64), default="")
    phone_tail: Mapped[str] = mapped_column(String(4), default="")

    # -- care (scheduler): birthday as given (solar or lunar, see crm_core.birthdays), consent, contract end
    birthday_calendar: Mapped[str] = mapped_column(String(5), default="")  # "" none | solar | lunar
    birthday_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    birthday_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    birthday_leap: Mapped[bool] = mapped_column(Boolean, default=False)
    birthday_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Care messages (greetings) go only to customers who agreed and have not opted out since.
    care_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    care_opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    contract_ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)

    # -- acquisition: where the customer came from, how warm the lead is, when the stage last moved
    source_channel_id: Mapped[int | None] = mapped_column(ForeignKey("contact_channels.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(64), default="")  # free text: 展会, 官网, an import's 来源
    lead_score: Mapped[int] = mapped_column(Integer, default=0)  # 热度, 0-100 (crm_core.lead_score)
    lead_score_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifecycle_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def birthday(self) -> Birthday | None:
        if not self.birthday_calendar or self.birthday_month is None or self.birthday_day is None:
            return None
        return Birthday(self.birthday_month, self.birthday_day, lunar=self.birthday_calendar == LUNAR,
                        leap=self.birthday_leap, year=self.birthday_year)

    @birthday.setter
    def birthday(self, value: Birthday | None) -> None:
        self.birthday_calendar = value.calendar if value else ""
        self.birthday_month = value.month if value else None
        self.birthday_day = value.day if value else None
        self.birthday_leap = value.leap if value else False
        self.birthday_year = value.year if value else None

    @property
    def owner_name(self) -> str | None:
        """The owner as a list line names them; a search's lighter crm_core.search.Match has the same field."""
        return self.owner.name if self.owner else None

    @property
    def may_receive_care(self) -> bool:
        """Consent given and not withdrawn: the only customers a greeting may go to."""
        return self.care_consent and self.care_opted_out_at is None

    @validates("name")
    def _keep_name_keys(self, _key: str, name: str) -> str:
        self.name_pinyin, self.name_initials = name_keys(name)
        return name

    @validates("phone")
    def _keep_phone_tail(self, _key: str, phone: str) -> str:
        self.phone_tail = phone_tail(phone)
        return phone


class CustomerIdentity(Base):
    """How one customer is known on one channel (WeCom external_userid, a kf user, a webhook id)."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_identity_channel_external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "external_msg_id", name="uq_message_channel_external_msg_id"),
        Index("ix_messages_customer_sent", "customer_id", "sent_at"),
        Index("ix_messages_sent_at", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    external_msg_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    msg_type: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(128), default="")
    recipient: Mapped[str] = mapped_column(String(256), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), nullable=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True, index=True)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The statuses a queue row is still owed work in, and the same as SQL: the claim query uses this
# very clause, which is how both databases see that the partial index `ix_*_due` covers it.
QUEUE_ACTIVE_STATUSES = ("pending", "processing")
QUEUE_ACTIVE = text(f"status IN ({', '.join(repr(status) for status in QUEUE_ACTIVE_STATUSES)})")


def queue_indexes(queue: str) -> tuple[Index, Index]:
    """The two indexes of a queue table: by status (depth per status, parked lists), and what a
    claim reads, only the rows still owed work, in claim order (crm_core.work_queue.claim)."""
    return (Index(f"ix_{queue}_status_available", "status", "available_at"),
            Index(f"ix_{queue}_due", "available_at", "id", sqlite_where=QUEUE_ACTIVE, postgresql_where=QUEUE_ACTIVE))


class InboxItem(Base):
    """A callback or pulled message, stored before WeCom gets its ack; processed later by workers."""

    __tablename__ = "inbox_items"
    __table_args__ = queue_indexes("inbox")

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|processing|done|parked
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OutboxItem(Base):
    """A message we owe WeCom. The idempotency key makes enqueueing it twice a no-op."""

    __tablename__ = "outbox_items"
    __table_args__ = queue_indexes("outbox")

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # app_message | kf_message | msg_template
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sending|sent|parked
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), nullable=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KfCursor(Base):
    """Where the 微信客服 sync stopped, per kf account; advanced in the same commit as the rows it covers."""

    __tablename__ = "kf_cursors"

    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Who looked at or changed which customer's personal data, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_customer", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- bot: notes, follow-ups, deals, tags, and the lookup indexes -------------------------------------

# Prefix searches (`LIKE 'q%'`) use these on PostgreSQL whatever the database collation.
_PREFIX = "text_pattern_ops"
Index("ix_customers_name_prefix", Customer.name, postgresql_ops={"name": _PREFIX})
Index("ix_customers_name_pinyin", Customer.name_pinyin, postgresql_ops={"name_pinyin": _PREFIX})
# Equality searches list the most recently contacted first straight off these (crm_core.search).
# PostgreSQL needs NULLS LAST spelled out; SQLite cannot declare it in an index, but its DESC puts
# NULLs last already and its planner serves `DESC NULLS LAST` from such an index (migration 0020).
for _name, _key in (("ix_customers_pinyin_recent", Customer.name_pinyin),
                    ("ix_customers_initials_recent", Customer.name_initials),
                    ("ix_customers_phone_tail_recent", Customer.phone_tail)):
    Index(_name, _key, Customer.last_contact_at.desc().nulls_last(), Customer.id).ddl_if(dialect="postgresql")
    Index(_name, _key, Customer.last_contact_at.desc(), Customer.id).ddl_if(dialect="sqlite")
# A prefix that matches a large share of the customers (`查 zh`, `查 王`): PostgreSQL walks them newest
# first until enough match instead of sorting all the matches (306 ms → 3 ms at a million, 0020).
Index("ix_customers_newest_first", Customer.last_contact_at.desc().nulls_last(), Customer.id).ddl_if(dialect="postgresql")
Index("ix_customers_company_prefix", Customer.company, postgresql_ops={"company": _PREFIX})
Index("ix_customers_remark_prefix", Customer.remark, postgresql_ops={"remark": _PREFIX})
Index("ix_customers_owner_contact", Customer.owner_id, Customer.last_contact_at)
# The care jobs' scans: whose birthday is today, who went quiet, whose contract ends soon.
Index("ix_customers_birthday", Customer.birthday_calendar, Customer.birthday_month, Customer.birthday_day)
Index("ix_customers_lifecycle_contact", Customer.lifecycle, Customer.last_contact_at)
Index("ix_customers_contract_ends", Customer.contract_ends_on)
# 我的客户 by heat, and the funnel by source channel.
Index("ix_customers_owner_score", Customer.owner_id, Customer.lead_score)
Index("ix_customers_source_channel", Customer.source_channel_id)


class Note(Base):
    """A rep's note on a customer; it stays with the customer when the customer changes hands."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_customer_created", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[Staff | None] = relationship(lazy="joined")


class FollowUp(Base):
    """A reminder to contact a customer at `due_at`; the scheduler sends it and sets `reminded_at`."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        Index("ix_follow_ups_owner_status_due", "owner_id", "status", "due_at"),
        Index("ix_follow_ups_status_due", "status", "due_at"),
        Index("ix_follow_ups_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | done | cancelled
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(lazy="joined")


class Deal(Base):
    """A sales opportunity moving along the configured pipeline (config/deal_pipeline.toml).

    A customer has at most one open deal at a time; won/lost deals stay as history."""

    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_customer_status", "customer_id", "status"),
        Index("ix_deals_owner_status", "owner_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | won | lost
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. {"budget": 500000}
    lost_reason: Mapped[str] = mapped_column(Text, default="")
    stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerFollower(Base):
    """One rep's relation to one external contact, as WeCom keeps it (follow_user / follow_info).

    A contact two reps both added is one customer with two followers, each with their own remark,
    remark mobiles, corp tags and the way and time they added the contact. `removed_at` is set when
    either side deleted the other; the row stays for history (and for a transfer's handover).
    """

    __tablename__ = "customer_followers"
    __table_args__ = (
        UniqueConstraint("customer_id", "staff_id", name="uq_customer_follower"),
        Index("ix_customer_followers_staff_id", "staff_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    remark: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    remark_corp_name: Mapped[str] = mapped_column(String(128), default="")
    remark_mobiles: Mapped[list[str]] = mapped_column(JSON, default=list)
    tag_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # WeCom corp tag ids on this rep's contact
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # WeCom createtime
    add_way: Mapped[int] = mapped_column(Integer, default=0)  # WeCom add_way: 1 QR code, 2 phone search, …
    state: Mapped[str] = mapped_column(String(64), default="")  # the 联系我 code's state (渠道活码)
    oper_userid: Mapped[str] = mapped_column(String(64), default="")  # who initiated the add
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped["Customer"] = relationship()
    staff: Mapped["Staff"] = relationship()


class CustomerTag(Base):
    """A CRM tag set by staff (WeCom's own corp tags stay in Customer.wecom_tags)."""

    __tablename__ = "customer_tags"
    __table_args__ = (
        UniqueConstraint("customer_id", "name", name="uq_customer_tag"),
        Index("ix_customer_tags_name", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CareDelivery(Base):
    """One care occasion for one customer (a birthday, a festival): how it was, or could not be, delivered.

    The unique (customer, occasion, occasion_date) row is written with the outbox row in one
    transaction, so a second scheduler, a retry or a re-run after a crash finds it and sends nothing.
    `channel` is kf (a 微信客服 message), template (a group-send task the owner rep confirms) or
    none (no channel WeCom allows; the rep is told); `status` follows the send and, for templates,
    whether the rep actually sent it."""

    __tablename__ = "care_deliveries"
    __table_args__ = (
        UniqueConstraint("customer_id", "occasion", "occasion_date", name="uq_care_delivery_occasion"),
        Index("ix_care_deliveries_status", "status", "created_at"),
        Index("ix_care_deliveries_outbox_key", "outbox_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    occasion: Mapped[str] = mapped_column(String(32))  # birthday | festival:<name>
    occasion_date: Mapped[date] = mapped_column(Date)  # local business date
    channel: Mapped[str] = mapped_column(String(12))  # kf | template | none
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sent | confirmed | unsent | no_channel
    outbox_key: Mapped[str] = mapped_column(String(255), default="")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    wecom_msgid: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChatArchiveCursor(Base):
    """The last 会话存档 (chat archive) seq staged into the inbox, per corp; advanced in the same
    commit as the inbox rows of its page, so a restart pulls on from exactly there."""

    __tablename__ = "chat_archive_cursors"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# -- acquisition and the funnel ---------------------------------------------------------------------


class ContactChannel(Base):
    """A 渠道活码: a WeCom contact QR code (externalcontact/add_contact_way) whose `state` names the
    channel, so a customer who adds a rep through it arrives with that state and is attributed."""

    __tablename__ = "contact_channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # 展会2026
    state: Mapped[str] = mapped_column(String(30), unique=True)  # WeCom allows 30 characters
    group: Mapped[str] = mapped_column(String(64), default="")  # the sales group new customers go to
    user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # reps the code may connect to
    config_id: Mapped[str] = mapped_column(String(64), default="")  # WeCom's id for the contact way
    qr_code: Mapped[str] = mapped_column(Text, default="")  # the QR image URL WeCom returned
    welcome_text: Mapped[str] = mapped_column(Text, default="")  # 欢迎语; empty: the default one
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LifecycleChange(Base):
    """Every move of a customer's lifecycle stage (潜在 → 意向 → 成交 → 忠诚, 沉睡, 流失), and why."""

    __tablename__ = "lifecycle_changes"
    __table_args__ = (
        Index("ix_lifecycle_changes_customer", "customer_id", "changed_at"),
        Index("ix_lifecycle_changes_to", "to_stage", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    from_stage: Mapped[str] = mapped_column(String(16), default="")
    to_stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64), default="")  # e.g. purchase_intent, deal.won, manual
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DealStageChange(Base):
    """Every stage a deal entered, with when: the funnel's conversion and days-per-stage come from here."""

    __tablename__ = "deal_stage_changes"
    __table_args__ = (
        Index("ix_deal_stage_changes_deal", "deal_id", "changed_at"),
        Index("ix_deal_stage_changes_at", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId)
    owner_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    from_stage: Mapped[str] = mapped_column(String(32), default="")  # "" when the deal was opened
    to_stage: Mapped[str] = mapped_column(String(32))  # a pipeline stage, or 赢单 / 输单
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Campaign(Base):
    """A manager's tag campaign (群发 标签:VIP …): one group-send task per owning rep; each customer's
    outcome is a CareDelivery with occasion "campaign:<id>", synced like care tasks."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tag: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | sent
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # counts per rep, skipped and why
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ForecastSnapshot(Base):
    """The month's forecast as it stood when first made, so next month can show it against what closed."""

    __tablename__ = "forecast_snapshots"
    __table_args__ = (UniqueConstraint("month", "scope", name="uq_forecast_month_scope"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # 2026-12
    scope: Mapped[str] = mapped_column(String(32))  # company | dept:<id>
    amount: Mapped[float] = mapped_column(Float, default=0.0)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per stage: deals, amount, probability
    made_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token that acts for one staff member in the JSON API, seeing what they see in chat.

    Only a SHA-256 of the token is stored: the token itself is shown once, when issued."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Handover(Base):
    """One 转交: a rep's customers (or one customer) handed to another rep through WeCom.

    `kind` says which WeCom transfer carries it: "resigned" (离职继承, the rep left) or "onjob"
    (在职继承). `settled_at` is set once every customer's outcome is known; the summary to whoever
    asked follows then, once (outbox key handover:{id}:summary)."""

    __tablename__ = "handovers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    from_staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    to_staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    by_staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    message: Mapped[str] = mapped_column(String(400), default="")  # transfer_success_msg (on the job)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    from_staff: Mapped[Staff] = relationship(foreign_keys=[from_staff_id], lazy="joined")
    to_staff: Mapped[Staff] = relationship(foreign_keys=[to_staff_id], lazy="joined")
    by_staff: Mapped[Staff] = relationship(foreign_keys=[by_staff_id], lazy="joined")


class HandoverCustomer(Base):
    """One customer's way through a handover: queued → waiting (WeCom started it) → taken, refused
    or failed. The unique pair is what keeps a customer from being sent twice in one handover."""

    __tablename__ = "handover_customers"
    __table_args__ = (
        UniqueConstraint("handover_id", "customer_id", name="uq_handover_customer"),
        Index("ix_handover_customers_state", "state", "handover_id"),
        Index("ix_handover_customers_external", "external_userid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    handover_id: Mapped[int] = mapped_column(ForeignKey("handovers.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    batch: Mapped[int] = mapped_column(Integer, default=0)  # which ≤ 100 call carries it
    state: Mapped[str] = mapped_column(String(12), default="queued")  # queued|waiting|taken|refused|failed
    errcode: Mapped[int] = mapped_column(Integer, default=0)  # WeCom's per-customer errcode when it failed
    reason: Mapped[str] = mapped_column(String(32), default="")  # refused/limit/... what the reply says
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
