"""The customer's "stop sending me messages", in any words (`退订`, `TD`, `别再给我推送了`, `拉黑你们` …).

One of the reactions to a customer's message (scrm.ingest.context), after the analysis: the NLP
analysis recognises the request (`opt_out`, config/nlp/intents.toml), and the opt-out commits with
the archived message, so no later care job or campaign reaches that customer. The customer hears
back once, through 微信客服 when WeCom's reply window allows, what stops and what does not; the
owner rep is told once (and, when no window allowed it, asked to pass that confirmation on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.care import CarePolicy, CareService, default_care_policy
from crm_core.db import utcnow
from crm_core.models import Customer, Message
from nlp import OPT_OUT_THRESHOLD

log = logging.getLogger(__name__)


@dataclass
class CareOptOut:
    policy: CarePolicy = field(default_factory=default_care_policy)
    clock: Callable[[], datetime] = utcnow

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        if message.direction != "in" or message.msg_type != "text":
            return
        if float((message.analysis or {}).get("opt_out", 0.0)) < OPT_OUT_THRESHOLD:
            return
        care, now = CareService(session, self.policy), self.clock()
        if not await care.withdraw_consent(customer, now):
            return
        confirmed = await care.confirm_opt_out(customer, message.id, now)
        await care.tell_owner_opted_out(customer, message, confirmed=confirmed)
        log.info("customer %s opted out of care messages by message %s%s", customer.id, message.id,
                 "" if confirmed else " (no kf window to confirm)")
