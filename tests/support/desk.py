"""Chat plus the customer's side (微信客服) and a movable clock shared by the service and the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from crm_core.ticket_models import Ticket
from scrm import keys
from scrm.delivery.sender import message_text
from scrm.ingest.ticket_intake import TicketIntake
from tests.support.chat import Chat
from tests.support.service import external_id


@dataclass
class Desk(Chat):
    """Chat plus the customer's side and the tickets' clock (which is also the simulator's)."""

    def replies(self, userid: str) -> list[str]:
        return [message_text(m) for m in self.app_sent(userid)]

    def set_clock(self, now: datetime) -> None:
        super().set_clock(now)
        self.service.sim.now = lambda: self.now.timestamp()
        for handler in self.pipeline.context.reactions:
            if isinstance(handler, TicketIntake):
                handler.clock = lambda: self.now

    def advance(self, **delta: float) -> None:
        self.set_clock(self.now + timedelta(**delta))

    @property
    def policy(self):
        """The running service's ticket policy, its routing file included."""
        return self.service.app[keys.TICKETS]

    @property
    def pipeline(self):
        return self.service.app[keys.INBOX_WORKERS][0].process

    async def customer_writes(self, name: str, *texts: str) -> None:
        sim = self.service.sim
        kfid = next(iter(sim.kf_accounts))
        token = ""
        for text in texts:
            token = sim.kf_customer_writes(kfid, external_id(sim, name), text)
        await self.service.wecom.kf_msg_or_event(token, kfid)
        await self.service.settle()

    def kf_sent(self, name: str) -> list[str]:
        userid = external_id(self.service.sim, name)
        return [m["text"]["content"] for m in self.service.sim.sent_kf_messages if m["touser"] == userid]

    def app_sent(self, userid: str) -> list[dict]:
        return [m for m in self.service.sim.sent_app_messages if m["touser"] == userid]

    async def tickets(self) -> list[Ticket]:
        async with self.service.sessions() as session:
            return list((await session.scalars(select(Ticket).order_by(Ticket.id))).all())
