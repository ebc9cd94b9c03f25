"""The WeCom callback source: each stored callback is parsed once and handed to the handler the
app registered for its kind (an employee's message, an external-contact change, a 微信客服
wake-up, …). Kinds nobody handles specially are archived raw, so nothing acked is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.inbound import Callback, OtherCallback, normalize_callback
from connectors.wecom.receiver import SOURCE as CALLBACK_SOURCE
from connectors.wecom.receiver import parse_plaintext
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem

EVENT_CHANNEL = "wecom_event"


class CallbackHandler(Protocol):
    # False for kinds that call WeCom as a rule or commit on their own: they get a transaction each.
    batchable: bool

    async def handle(self, session: AsyncSession, item: InboxItem, event: Any) -> None: ...


@runtime_checkable
class PreparesEvents(Protocol):
    async def prepare_batch(self, session: AsyncSession, events: list[Any]) -> None:
        """Load what a batch of this kind's events share in one go (their senders, say)."""


class RawEvents:
    """Menu clicks, enter_agent, kinds WeCom adds later: archived as they came."""

    batchable = True

    async def handle(self, session: AsyncSession, item: InboxItem, event: OtherCallback) -> None:
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key, msg_type=event.name,
                       sent_at=event.sent_at, sender=event.sender, payload=item.payload, meta=event.meta)
        )


@dataclass
class WeComCallbacks:
    handlers: dict[type, CallbackHandler]
    fallback: CallbackHandler = field(default_factory=RawEvents)
    name: str = CALLBACK_SOURCE

    def __post_init__(self) -> None:
        # Each claimed row's parsed form, so deciding whether it may join a batch and processing it
        # parse the XML once; entries go with the row objects.
        self._parsed: WeakKeyDictionary[InboxItem, Callback] = WeakKeyDictionary()

    def event(self, item: InboxItem) -> Callback:
        event = self._parsed.get(item)
        if event is None:
            event = self._parsed[item] = normalize_callback(parse_plaintext(item.payload))
        return event

    def handler_for(self, event: Callback) -> CallbackHandler:
        return self.handlers.get(type(event), self.fallback)

    def batchable(self, item: InboxItem) -> bool:
        try:
            event = self.event(item)
        except Exception:
            return False  # let it fail on its own, with its own error
        return self.handler_for(event).batchable

    async def prepare_batch(self, session: AsyncSession, items: list[InboxItem]) -> None:
        by_handler: dict[int, tuple[CallbackHandler, list[Callback]]] = {}
        for item in items:
            event = self._parsed.get(item)
            if event is not None:
                handler = self.handler_for(event)
                by_handler.setdefault(id(handler), (handler, []))[1].append(event)
        for handler, events in by_handler.values():
            if isinstance(handler, PreparesEvents):
                await handler.prepare_batch(session, events)

    async def process(self, session: AsyncSession, item: InboxItem) -> None:
        event = self.event(item)
        await self.handler_for(event).handle(session, item, event)
