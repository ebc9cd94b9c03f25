"""Support tickets: a customer's complaint, who works on it, and everything that happened to it.

One open ticket per customer is a database rule, not a hope: `open_key` holds the customer id
while the ticket is open and NULL once it is resolved or closed, and it is unique (NULLs never
collide), so two workers handling the same customer's messages at once end up on one ticket.
Numbers (`T20261122-0042`) count per business day in `ticket_counters`.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, UTCDateTime, utcnow
from crm_core.models import BigId, Customer, Staff

OPEN = "open"
RESOLVED = "resolved"
CLOSED = "closed"


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_customer_created", "customer_id", "created_at"),
        Index("ix_tickets_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    open_key: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(12), default=OPEN)  # open | resolved | closed
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(12))  # urgent | high | normal
    group: Mapped[str] = mapped_column(String(32))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    trigger_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")  # excerpt of the triggering message
    # Why it was opened: the complaint score and the words behind it (nlp signals), the threats.
    open_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    open_signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    # An agent's `工单 误判`: the complaint detection was wrong; counted for the next retraining.
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    complaint_messages: Mapped[int] = mapped_column(Integer, default=1)
    # Where replies to the customer go: the 微信客服 account and user of their latest message, if any.
    reply_open_kfid: Mapped[str] = mapped_column(String(64), default="")
    reply_external_userid: Mapped[str] = mapped_column(String(128), default="")
    # "sent": acknowledged through kf; "no_channel": no channel allowed, the rep was asked to reach out.
    ack_status: Mapped[str] = mapped_column(String(16), default="")
    first_response_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reopened: Mapped[int] = mapped_column(Integer, default=0)  # also the SLA cycle in escalation keys
    csat_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    csat: Mapped[int | None] = mapped_column(Integer, nullable=True)
    csat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(lazy="joined")
    assignee: Mapped[Staff | None] = relationship(lazy="joined")


class TicketEvent(Base):
    """One step in a ticket's history: who did what, when (UTC), with which message."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # created | message | assigned | unassigned | accepted | transferred | replied | resolved | closed
    # | reopened | acknowledged | no_channel | escalated | csat | dismissed
    kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)  # NULL: customer or system
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[Staff | None] = relationship(lazy="joined")


class TicketCounter(Base):
    """The last ticket number handed out on a business day; incremented under the row's lock."""

    __tablename__ = "ticket_counters"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
