"""WeCom's 微信客服 reply window, shared by everything that writes to a customer through kf.

WeCom accepts a kf message to a customer only within 48 h of that customer's last kf message
and for at most 5 messages since it; beyond that kf/send_msg fails (95001/95002). Checking first
lets a caller pick another channel instead of queueing a message that cannot be delivered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Message, OutboxItem

KF_CHANNEL = "wecom_kf"
KF_WINDOW = timedelta(hours=48)
KF_WINDOW_REPLIES = 5


@dataclass(frozen=True)
class KfAddress:
    """Where a kf message to the customer goes: the kf account and user of their latest kf message."""

    open_kfid: str
    external_userid: str


async def kf_reply_address(session: AsyncSession, customer_id: int, at: datetime) -> KfAddress | None:
    """The address a kf message may be sent to at `at`, or None when the window is closed.

    Replies count ours in the outbox plus any an agent sent from WeCom's own kf console; `at`
    may lie ahead (a message held for quiet hours), and the window must still be open then."""
    last = (await session.execute(
        select(Message.sent_at, Message.recipient, Message.sender)
        .where(Message.customer_id == customer_id, Message.channel == KF_CHANNEL, Message.direction == "in")
        .order_by(Message.sent_at.desc(), Message.id.desc()).limit(1)
    )).first()
    if last is None or not last.recipient or at - last.sent_at > KF_WINDOW:
        return None
    ours = await session.scalar(select(func.count()).where(
        OutboxItem.customer_id == customer_id, OutboxItem.kind == "kf_message",
        OutboxItem.status != "parked", OutboxItem.created_at >= last.sent_at)) or 0
    console = await session.scalar(select(func.count()).where(
        Message.customer_id == customer_id, Message.channel == KF_CHANNEL, Message.direction == "out",
        Message.sent_at >= last.sent_at, ~Message.external_msg_id.startswith("outbox:"))) or 0
    if ours + console >= KF_WINDOW_REPLIES:
        return None
    return KfAddress(last.recipient, last.sender)


async def kf_reply_addresses(session: AsyncSession, customer_ids: Iterable[int], at: datetime) -> dict[int, KfAddress]:
    """`kf_reply_address` for a batch: one query keeps only customers who wrote to kf within the
    window, so a batch of customers who never use kf costs one query, not three per customer."""
    ids = list(customer_ids)
    if not ids:
        return {}
    recent = (await session.scalars(
        select(Message.customer_id).where(Message.customer_id.in_(ids), Message.channel == KF_CHANNEL,
                                          Message.direction == "in", Message.sent_at >= at - KF_WINDOW)
        .distinct()
    )).all()
    addresses = {}
    for customer_id in sorted(recent):
        address = await kf_reply_address(session, customer_id, at)
        if address is not None:
            addresses[customer_id] = address
    return addresses
