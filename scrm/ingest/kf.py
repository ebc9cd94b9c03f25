"""微信客服: a wake-up callback says messages are waiting; they are pulled page by page into the
inbox (source "wecom_kf"), and each is then archived under its customer and reacted to."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.inbound import EXTERNAL_CHANNEL, KfWakeup, kf_message_json, normalize_kf_message
from crm_core.customers import CustomerService
from crm_core.inbox import InboxService
from crm_core.kf_cursors import KfCursorService
from crm_core.kf_window import KF_CHANNEL
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem
from crm_core.staff import StaffService
from scrm.ingest.context import IngestContext

KF_SOURCE = "wecom_kf"


@dataclass
class KfWakeups:
    """The kf_msg_or_event callback's handler."""

    context: IngestContext
    batchable = False  # pages through kf/sync_msg, committing its cursor after each page

    async def handle(self, session: AsyncSession, item: InboxItem, wakeup: KfWakeup) -> None:
        """Pull every waiting kf message, page by page. Each page's messages and the cursor after
        it commit together, so a crash resumes exactly where the last page ended."""
        cursors, inbox = KfCursorService(session), InboxService(session)
        cursor = await cursors.get(wakeup.open_kfid)
        await session.commit()
        while True:
            page = await self.context.wecom.kf_sync_msg(token=wakeup.token, cursor=cursor or None,
                                                        open_kfid=wakeup.open_kfid)
            for msg in page.get("msg_list", []) or []:
                await inbox.stage(dedup_key=f"wecom:kfmsg:{msg.get('msgid')}", source=KF_SOURCE,
                                  payload=kf_message_json(msg))
            cursor = page.get("next_cursor") or cursor
            await cursors.set(wakeup.open_kfid, cursor)
            await session.commit()
            self.context.on_new_inbox_rows()
            if not page.get("has_more"):
                return


@dataclass
class KfMessages:
    """The inbox source of pulled kf messages."""

    context: IngestContext
    name: str = KF_SOURCE

    def batchable(self, item: InboxItem) -> bool:
        return True

    async def process(self, session: AsyncSession, item: InboxItem) -> None:
        msg = normalize_kf_message(json.loads(item.payload))
        customers = CustomerService(session)
        customer = await customers.ensure(EXTERNAL_CHANNEL, msg.external_userid) if msg.external_userid else None
        staff = await StaffService(session).get_by_userid(msg.servicer_userid) if msg.servicer_userid else None
        direction = "out" if msg.origin == 5 else "in"
        archived = await MessageService(session).archive(
            NewMessage(channel=KF_CHANNEL, direction=direction, external_msg_id=msg.msg_id, msg_type=msg.msg_type,
                       text=msg.text, sender=msg.external_userid if direction == "in" else msg.servicer_userid,
                       recipient=msg.open_kfid, payload=item.payload, meta={"origin": msg.origin, **msg.meta},
                       customer_id=customer.id if customer else None, staff_id=staff.id if staff else None,
                       sent_at=msg.sent_at)
        )
        if archived is None or customer is None:
            return
        await customers.touch_contact(customer, at=msg.sent_at, staff_id=staff.id if staff else None)
        if msg.from_customer:
            await self.context.customer_wrote(session, customer, archived)
