"""A reaction to customer messages: complaints become support tickets (crm_core.tickets).

Runs after the analysis (it reads `message.analysis`), in the message's transaction: the ticket,
its history and every notice it sends commit with the archived message or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import Customer, Message
from crm_core.tickets import TicketPolicy, TicketService, default_policy

log = logging.getLogger(__name__)


@dataclass
class TicketIntake:
    """Opens, joins or reopens a ticket when a customer complains."""

    timezone: ZoneInfo
    policy: TicketPolicy = field(default_factory=default_policy)
    clock: Callable[[], datetime] = utcnow

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        if message.direction != "in" or message.msg_type != "text":
            return
        intake = await TicketService(session, self.policy, self.timezone).take_message(customer, message, self.clock())
        if intake is not None:
            log.info("ticket %s %s by message %s", intake.ticket.number, intake.action, message.id)
