"""The chat-archive (会话存档) inbox source: each archived rep↔customer message is filed under the
customer (created on first sight, owned by the rep), and the customer's own words get the same
reactions as 微信客服 messages. The puller that stages these rows is scrm.ingest.chat_archive_puller.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.chat_archive import ArchivedMessage, is_external, normalize_archive_message
from connectors.wecom.errors import InvalidUserError
from connectors.wecom.inbound import EXTERNAL_CHANNEL, placeholder
from connectors.wecom.profiles import contact_profile
from crm_core.customers import CustomerService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import Customer, InboxItem, Staff
from scrm.ingest.context import IngestContext

log = logging.getLogger(__name__)

ARCHIVE_SOURCE = "wecom_archive"
ARCHIVE_CHANNEL = "wecom_archive"
# The archive's names for message types that our placeholders know by another name.
PLACEHOLDER_TYPES = {"card": "business_card", "weapp": "miniprogram"}


@dataclass
class ChatArchiveMessages:
    context: IngestContext
    name: str = ARCHIVE_SOURCE

    def batchable(self, item: InboxItem) -> bool:
        return True

    async def process(self, session: AsyncSession, item: InboxItem) -> None:
        """File one archived message under its customer. Chats without a customer (staff among
        themselves, company switches) belong to WeCom's archive, not the CRM, and are left there."""
        msg = normalize_archive_message(json.loads(item.payload))
        if not msg.sender or not msg.externals:
            log.debug("archive record %s is not a customer conversation; not filed", msg.msg_id)
            return
        from_customer = is_external(msg.sender)
        external_userid, rep_userid = _parties(msg, from_customer)
        staff = await self.context.staff(session, rep_userid) if rep_userid else None
        customer = await self._customer(session, external_userid, staff) if external_userid else None
        archived = await MessageService(session).archive(
            NewMessage(channel=ARCHIVE_CHANNEL, direction="in" if from_customer else "out", external_msg_id=msg.msg_id,
                       msg_type=msg.msg_type, text=_text(msg), sender=msg.sender,
                       recipient=(msg.room_id or "|".join(msg.recipients))[:256], payload=item.payload,
                       meta={"action": msg.action, "roomid": msg.room_id, "tolist": msg.recipients,
                             **({} if msg.msg_type == "text" else {msg.msg_type: msg.body})},
                       customer_id=customer.id if customer else None, staff_id=staff.id if staff else None,
                       sent_at=msg.sent_at)
        )
        if archived is None or customer is None:
            return
        await CustomerService(session).touch_contact(customer, at=msg.sent_at, staff_id=staff.id if staff else None)
        if from_customer:
            await self.context.customer_wrote(session, customer, archived)

    async def _customer(self, session: AsyncSession, external_userid: str, rep: Staff | None) -> Customer:
        """The customer behind an external_userid; one seen for the first time gets WeCom's profile and the rep as owner."""
        customers = CustomerService(session)
        known = await customers.resolve(EXTERNAL_CHANNEL, external_userid)
        if known is not None:
            return known
        contact: dict[str, Any] = {}
        try:
            contact = await self.context.wecom.get_external_contact(external_userid)
        except InvalidUserError:
            log.warning("externalcontact/get does not know %s; filing the chat under a bare customer", external_userid)
        customer = await customers.ensure(EXTERNAL_CHANNEL, external_userid)
        if contact:
            await customers.apply_profile(customer, contact_profile(
                contact, userid=rep.userid if rep else "", owner_staff_id=rep.id if rep else None))
        if rep is not None and customer.owner_id in (None, rep.id):
            customer.owner = rep  # the relationship too: ticket intake reads it in this transaction
        return customer


def _parties(msg: ArchivedMessage, from_customer: bool) -> tuple[str, str]:
    """(customer's external_userid, rep's userid). A rep writing to a group with several
    customers addresses none of them in particular: no customer then."""
    if from_customer:
        return msg.sender, next(iter(msg.staff), "")
    customers = [u for u in msg.recipients if is_external(u)]
    return (customers[0] if len(customers) == 1 else ""), msg.sender


def _text(msg: ArchivedMessage) -> str:
    if msg.msg_type == "text":
        return str(msg.body.get("content", ""))
    body = msg.body
    return placeholder(PLACEHOLDER_TYPES.get(msg.msg_type, msg.msg_type),
                       name=str(body.get("filename") or body.get("name") or ""),
                       label=str(body.get("title") or body.get("address") or ""),
                       title=str(body.get("title") or ""))
