"""transfer_fail callbacks: a customer being handed to a rep refused, or the rep's contacts are full.

The handover waiting for that customer is decided at once (crm_core.handover), instead of at the next
transfer_result poll: the CRM owner stays, and the summary goes out if it was the last one waiting.
The event is archived under the customer like the other change_external_contact events.
https://developer.work.weixin.qq.com/document/path/92130 (客户接替失败事件)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.inbound import EXTERNAL_CHANNEL, TransferFail
from crm_core.customers import CustomerService
from crm_core.handover import HandoverService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem
from scrm.ingest.context import IngestContext
from scrm.ingest.wecom_callbacks import EVENT_CHANNEL

log = logging.getLogger(__name__)


@dataclass
class TransferFailures:
    context: IngestContext
    batchable = False  # an unknown takeover rep is looked up with user/get

    async def handle(self, session: AsyncSession, item: InboxItem, event: TransferFail) -> None:
        takeover = await self.context.staff(session, event.userid) if event.userid else None
        customer = await CustomerService(session).ensure(EXTERNAL_CHANNEL, event.external_userid)
        decided = await HandoverService(session).transfer_failed(takeover, event.external_userid,
                                                                 event.fail_reason) if takeover else 0
        if decided:
            self.context.outbox_changed(session)
        else:
            log.info("transfer_fail for %s to %s matches no waiting handover", event.external_userid, event.userid)
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key,
                       msg_type="event:change_external_contact:transfer_fail", sent_at=event.sent_at,
                       sender=event.external_userid, recipient=event.userid, payload=item.payload,
                       meta={"FailReason": event.fail_reason}, customer_id=customer.id,
                       staff_id=takeover.id if takeover else None))
