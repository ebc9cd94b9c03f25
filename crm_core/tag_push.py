"""CRM tags on WeCom's side: a tag set or removed in the CRM reaches every rep who follows the
customer, as a `mark_tag` outbox row per rep (scrm.delivery.corp_tags sends it, creating a corp tag
WeCom lacks first). Rows go out through the outbox, so each change is sent once however often the
sender retries, and is queued in the transaction that changed the tag, so a rolled-back change
sends nothing.

What came from WeCom (an edit_external_contact callback, a sync) is written with `from_wecom`
and never queued: a change is not sent back to where it came from. Tags listed as CRM-only in
config/corp_tags.toml stay in the CRM.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import shipped_policy
from crm_core.care import CONTACT_CHANNEL
from crm_core.models import Customer, CustomerFollower, CustomerIdentity, Staff
from crm_core.outbox import OutboxService

MARK_TAG = "mark_tag"


@dataclass(frozen=True)
class TagPushPolicy:
    group: str  # the corp tag group new tags are created in
    crm_only: frozenset[str]

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> TagPushPolicy:
        push = raw["push"]
        group = str(push["group"]).strip()
        if not group or len(group) > 30:
            raise ValueError("push.group needs a tag group name of 1 to 30 characters")
        return cls(group, frozenset(str(t) for t in push.get("crm_only", [])))


default_policy = shipped_policy("corp_tags.toml", TagPushPolicy.from_toml)


async def queue_tag_push(session: AsyncSession, customer: Customer, *, add: Iterable[str], remove: Iterable[str],
                         policy: TagPushPolicy | None = None) -> int:
    """One mark_tag row per rep following the customer in WeCom; returns how many were queued."""
    policy = policy or default_policy()
    add = [t for t in dict.fromkeys(add) if t not in policy.crm_only]
    remove = [t for t in dict.fromkeys(remove) if t not in policy.crm_only and t not in add]
    if not (add or remove):
        return 0
    external_userid = await session.scalar(
        select(CustomerIdentity.external_id).where(CustomerIdentity.customer_id == customer.id,
                                                   CustomerIdentity.channel == CONTACT_CHANNEL)
        .order_by(CustomerIdentity.id).limit(1))
    if external_userid is None:
        return 0
    reps = (await session.execute(
        select(Staff.id, Staff.userid).join(CustomerFollower, CustomerFollower.staff_id == Staff.id)
        .where(CustomerFollower.customer_id == customer.id, CustomerFollower.removed_at.is_(None), Staff.active)
        .order_by(Staff.id))).all()
    change = uuid.uuid4().hex  # this change: its rows are sent once each, a later change gets its own
    outbox = OutboxService(session)
    for staff_id, userid in reps:
        await outbox.enqueue(
            idempotency_key=f"{MARK_TAG}:{customer.id}:{staff_id}:{change}", kind=MARK_TAG,
            payload={"userid": userid, "external_userid": external_userid, "add": add, "remove": remove,
                     "group": policy.group},
            customer_id=customer.id, staff_id=staff_id)
    return len(reps)
