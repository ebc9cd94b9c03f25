"""Employees writing to our app: archived once, then answered by the bot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.inbound import AppMessage
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem, Message, Staff
from scrm.ingest.context import IngestContext

APP_CHANNEL = "wecom_app"

# Called with (session, staff, archived message) for each new employee message; the bot plugs in here.
# An optional `prepare_batch(session, userids)` on it runs before a batch of those senders' messages.
StaffMessageHandler = Callable[[AsyncSession, Staff, Message], Awaitable[None]]


@dataclass
class StaffMessages:
    context: IngestContext
    on_staff_message: StaffMessageHandler | None = None
    batchable = True

    async def prepare_batch(self, session: AsyncSession, events: list[AppMessage]) -> None:
        """Load the batch's senders with one query, and let the bot do the same for what it reads per sender."""
        userids = {event.userid for event in events}
        await self.context.preload_staff(session, userids)
        prepare_handler = getattr(self.on_staff_message, "prepare_batch", None)
        if prepare_handler is not None:
            await prepare_handler(session, userids)

    async def handle(self, session: AsyncSession, item: InboxItem, msg: AppMessage) -> None:
        staff = await self.context.staff(session, msg.userid)
        archived = await MessageService(session).archive(
            NewMessage(channel=APP_CHANNEL, direction="in", external_msg_id=msg.msg_id, msg_type=msg.msg_type,
                       text=msg.text, sender=msg.userid, payload=item.payload, meta=msg.meta, staff_id=staff.id,
                       sent_at=msg.sent_at)
        )
        if archived is not None and self.on_staff_message is not None:
            await self.on_staff_message(session, staff, archived)
            self.context.outbox_changed(session)
