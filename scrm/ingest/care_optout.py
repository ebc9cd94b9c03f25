"""The customer's "stop sending me greetings" (`退订`, `TD`, `别再发了` …), heard in the ingest pipeline.

One of the reactions to a customer's message (scrm.ingest.context), so the opt-out commits with the archived
message: once the message is stored, no later care job can greet that customer. The customer
hears back once, through 微信客服, when WeCom's reply window allows.
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

log = logging.getLogger(__name__)


@dataclass
class CareOptOut:
    policy: CarePolicy = field(default_factory=default_care_policy)
    clock: Callable[[], datetime] = utcnow

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        if message.direction != "in" or message.msg_type != "text" or not self.policy.is_opt_out(message.text):
            return
        care, now = CareService(session, self.policy), self.clock()
        if not await care.withdraw_consent(customer, now):
            return
        confirmed = await care.confirm_opt_out(customer, message.id, now)
        log.info("customer %s opted out of care messages by message %s%s", customer.id, message.id,
                 "" if confirmed else " (no kf window to confirm)")
