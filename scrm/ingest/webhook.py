"""Messages that came in through the generic JSON webhook (connectors/webhook.py): a website chat,
a DingTalk or Feishu bridge, an email gateway.

Each channel is its own identity space: the customer is CustomerIdentity("webhook:{channel}",
from.id), created on first sight with the name and phone the sender gave. The message is archived
once under channel "webhook:{channel}" and then goes through the same customer-message handlers
as a 微信客服 message (the reactions in scrm.ingest.context).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.webhook import SOURCE as WEBHOOK_SOURCE
from connectors.webhook import MalformedWebhookError, parse_message, read_inbox_payload
from crm_core.customers import CustomerService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem
from scrm.ingest.context import IngestContext

log = logging.getLogger(__name__)


class InvalidWebhookItemError(Exception):
    """An inbox row the receiver accepted but that no longer reads as a message; retrying cannot help."""

    retryable = False


def webhook_channel(channel: str) -> str:
    """The identity and message channel of a webhook channel name."""
    return f"webhook:{channel}"


@dataclass
class WebhookMessages:
    context: IngestContext
    name: str = WEBHOOK_SOURCE

    def batchable(self, item: InboxItem) -> bool:
        return True

    async def process(self, session: AsyncSession, item: InboxItem) -> None:
        try:
            channel, body = read_inbox_payload(item.payload)
            msg = parse_message(body)
        except (MalformedWebhookError, ValueError, KeyError, TypeError) as exc:
            raise InvalidWebhookItemError(f"webhook inbox row {item.dedup_key} is unreadable: {exc}") from exc
        customers = CustomerService(session)
        customer = await customers.ensure(webhook_channel(channel), msg.sender.id, name=msg.sender.name)
        # What the sender says fills gaps only: a name or phone a rep has corrected is kept.
        if msg.sender.name and not customer.name:
            customer.name = msg.sender.name
        if msg.sender.phone and not customer.phone:
            customer.phone = msg.sender.phone
        sent_at = msg.sent_at or item.received_at
        archived = await MessageService(session).archive(
            NewMessage(channel=webhook_channel(channel), direction="in", external_msg_id=msg.id, msg_type="text",
                       text=msg.text, sender=msg.sender.id, payload=body, meta=msg.meta, customer_id=customer.id,
                       sent_at=sent_at)
        )
        if archived is None:
            log.info("webhook message %s was archived before; not processed again", item.dedup_key)
            return
        await customers.touch_contact(customer, at=sent_at)
        await self.context.lead_arrived(session, customer, archived)
        await self.context.customer_wrote(session, customer, archived)
