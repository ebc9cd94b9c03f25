"""A reaction to customer messages: complaints become support tickets (crm_core.tickets).

Runs after the analysis (it reads `message.analysis`), in the message's transaction: the ticket,
its history and every notice it sends commit with the archived message or not at all.

The intake starts only once tickets can reach someone: while the routing names no support agents,
or names some the staff table does not hold yet (before the directory sync has run), complaints
do not become tickets, and the log says what to configure (at start, then every few minutes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.db import utcnow
from crm_core.models import Customer, Message
from crm_core.ticket_policy import TicketPolicy, default_policy
from crm_core.tickets import TicketService

log = logging.getLogger(__name__)

NOT_CONFIGURED = ("ticket intake is off: no support agents are configured, so complaints do not become tickets. "
                  "Name your support department or member tag in the file SCRM_TICKET_ROUTING_FILE points at, "
                  "e.g. [routing] agent_departments = [\"客户服务部\"] (see [routing] in config/tickets.toml), "
                  "and give those members the support role in SCRM_ROLES_FILE")
NO_MEMBERS = ("ticket intake is waiting: the routing names %s, but no active staff member with the support role "
              "matches yet, so complaints do not become tickets. Run the directory sync, check the names, and "
              "give those members the support role in SCRM_ROLES_FILE")
REPEAT_WARNING_SECONDS = 600


@dataclass
class TicketIntake:
    """Opens, joins or reopens a ticket when a customer complains, once an agent can take it."""

    timezone: ZoneInfo
    policy: TicketPolicy = field(default_factory=default_policy)
    clock: Callable[[], datetime] = utcnow
    started: bool = field(default=False, init=False)
    _warned_at: float | None = field(default=None, init=False)

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        if message.direction != "in" or message.msg_type != "text":
            return
        if not self.started and not await self.check(session):
            return
        intake = await TicketService(session, self.policy, self.timezone).take_message(customer, message, self.clock())
        if intake is not None:
            log.info("ticket %s %s by message %s", intake.ticket.number, intake.action, message.id)

    async def check(self, session: AsyncSession) -> bool:
        """Start once some group has an agent; until then say why, at most every few minutes."""
        if self.policy.routing_configured and await self.policy.team(session).anyone():
            self.started = True
            log.info("ticket intake started")
            return True
        if self._warned_at is None or time.monotonic() - self._warned_at >= REPEAT_WARNING_SECONDS:
            self._warned_at = time.monotonic()
            if not self.policy.routing_configured:
                log.error(NOT_CONFIGURED)
            else:
                log.error(NO_MEMBERS, "; ".join(sorted({g.agents.describe() for g in self.policy.groups.values()})))
        return False

    async def check_at_start(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Say at start-up whether complaints will become tickets (the worker role calls this)."""
        async with sessions() as session:
            await self.check(session)
