"""A reaction to customer messages: a buying signal reaches the owner rep at once.

Runs after the analysis (it reads `message.analysis["buying"]`, the NLP model's calibrated
purchase-intent-or-price-inquiry confidence), in the message's transaction. The rep is told at
most once per customer per `buying_alert_hours` (config/lifecycle.toml): the window is part of
the outbox row's idempotency key, so a chatty customer's second and third price questions in the
same window add nothing, and a retried message never alerts twice. Stage (潜在 → 意向) and 热度
follow in the analysis reaction itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.lifecycle import LifecyclePolicy
from crm_core.lifecycle import default_policy as default_lifecycle_policy
from crm_core.models import Customer, Message
from crm_core.outbox import OutboxService
from nlp import BUYING_THRESHOLD

log = logging.getLogger(__name__)

EXCERPT_CHARS = 60


@dataclass
class BuyingSignal:
    policy: LifecyclePolicy = field(default_factory=default_lifecycle_policy)

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        if message.direction != "in" or message.msg_type != "text" or customer.owner is None:
            return
        if float((message.analysis or {}).get("buying", 0.0)) < BUYING_THRESHOLD:
            return
        window = int(message.sent_at.timestamp() // (self.policy.buying_alert_hours * 3600))
        name = customer.name or customer.remark or f"客户#{customer.id}"
        new = await OutboxService(session).enqueue(
            idempotency_key=f"buying:{customer.id}:{window}", kind="app_message",
            payload={"touser": customer.owner.userid, "msgtype": "text", "text": {"content": render(
                "lifecycle.buying_alert.text", customer=name, excerpt=message.text[:EXCERPT_CHARS])}},
            customer_id=customer.id, staff_id=customer.owner.id)
        if new:
            log.info("buying signal of customer %s (message %s) told to %s", customer.id, message.id,
                     customer.owner.userid)
