"""What happens to an inbox row: resolve who it is from, archive it, analyse it, route it.

Runs inside the queue worker's transaction for that row, or for a batch of rows that
`batchable` admits (see scrm.queue_worker). Anything raised rolls the work back and the row is
retried; WeCom calls happen before writes where possible so a slow API never holds a database
write lock, which is also why rows that call WeCom as a rule are processed on their own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Protocol
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from config.roles import RoleMap
from config.templates import render
from connectors.webhook import SOURCE as WEBHOOK_SOURCE
from connectors.wecom.errors import InvalidUserError
from connectors.wecom.inbound import (
    EXTERNAL_CHANNEL,
    AppMessage,
    Callback,
    ContactChange,
    KfWakeup,
    OtherCallback,
    kf_message_json,
    normalize_callback,
    normalize_kf_message,
)
from connectors.wecom.profiles import contact_profile, staff_profile
from connectors.wecom.receiver import SOURCE as CALLBACK_SOURCE
from connectors.wecom.receiver import parse_plaintext
from crm_core.channels import Acquisition
from crm_core.customers import CustomerService
from crm_core.db import utcnow
from crm_core.events import after_commit
from crm_core.inbox import InboxService
from crm_core.kf_cursors import KfCursorService
from crm_core.lifecycle import LifecycleService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import Customer, InboxItem, Message, Staff
from crm_core.outbox import OutboxService
from crm_core.staff import StaffProfile, StaffService
from scrm.ingest.chat_archive_puller import ARCHIVE_SOURCE, archive_chat_message
from scrm.ingest.webhook import receive_webhook_message

log = logging.getLogger(__name__)

KF_SOURCE = "wecom_kf"
APP_CHANNEL = "wecom_app"
KF_CHANNEL = "wecom_kf"
EVENT_CHANNEL = "wecom_event"


class UnknownSourceError(Exception):
    retryable = False


class WeComApi(Protocol):
    async def get_user(self, userid: str) -> dict: ...
    async def get_external_contact(self, external_userid: str) -> dict: ...
    async def kf_sync_msg(self, *, token: str | None, cursor: str | None, open_kfid: str | None = None, limit: int = 1000) -> dict: ...


# Called with (session, staff, archived message) for each new employee message; the bot plugs in here.
# An optional `prepare_batch(session, userids)` on it runs before a batch of those senders' messages.
StaffMessageHandler = Callable[[AsyncSession, Staff, Message], Awaitable[None]]
# Called in order with (session, customer, archived message) for each new customer message, inside
# the message's transaction (NLP analysis first, then whatever reads its result, e.g. tickets).
CustomerMessageHandler = Callable[[AsyncSession, Customer, Message], Awaitable[None]]


@dataclass
class Pipeline:
    wecom: WeComApi
    timezone: ZoneInfo
    roles: RoleMap = field(default_factory=RoleMap)
    on_staff_message: StaffMessageHandler | None = None
    customer_message_handlers: list[CustomerMessageHandler] = field(default_factory=list)
    on_new_inbox_rows: Callable[[], None] = lambda: None
    on_new_outbox_rows: Callable[[], None] = lambda: None
    acquisition: Acquisition = field(default_factory=Acquisition)  # 渠道活码: attribution, welcome, assignment

    def __post_init__(self) -> None:
        # Each claimed callback row's parsed form, so deciding whether it may join a batch and
        # processing it parse the XML once; entries go with the row objects.
        self._parsed: WeakKeyDictionary[InboxItem, Callback] = WeakKeyDictionary()

    def batchable(self, item: InboxItem) -> bool:
        """Rows that may share a transaction with others: all but the callbacks that call WeCom as
        a rule (contact changes pull the contact) or commit on their own (a 微信客服 wake-up pages
        through kf/sync_msg, committing its cursor after each page)."""
        if item.source != CALLBACK_SOURCE:
            return item.source in (KF_SOURCE, ARCHIVE_SOURCE, WEBHOOK_SOURCE)
        try:
            event = self._event(item)
        except Exception:
            return False  # let it fail on its own, with its own error
        return isinstance(event, (AppMessage, OtherCallback))

    async def prepare_batch(self, session: AsyncSession, items: list[InboxItem]) -> None:
        """Load the senders of a batch's employee messages with one query, not one per message, and
        let the staff message handler do the same for what it reads per sender."""
        userids = {event.userid for item in items if isinstance(event := self._parsed.get(item), AppMessage)}
        if not userids:
            return
        seen = _known_staff(session)
        for staff in await StaffService(session).get_many_by_userid(userids - seen.keys()):
            if staff.synced_at is not None:
                seen[staff.userid] = staff
        prepare_handler = getattr(self.on_staff_message, "prepare_batch", None)
        if prepare_handler is not None:
            await prepare_handler(session, userids)

    def _event(self, item: InboxItem) -> Callback:
        event = self._parsed.get(item)
        if event is None:
            event = self._parsed[item] = normalize_callback(parse_plaintext(item.payload))
        return event

    def outbox_changed(self, session: AsyncSession) -> None:
        """Wake this process's senders once the new outbox rows are committed (and visible)."""
        after_commit(session, self.on_new_outbox_rows)

    async def __call__(self, session: AsyncSession, item: InboxItem) -> dict[str, Any]:
        if item.source == CALLBACK_SOURCE:
            await self._callback(session, item, self._event(item))
        elif item.source == KF_SOURCE:
            await self._kf_message(session, item)
        elif item.source == ARCHIVE_SOURCE:
            await archive_chat_message(self, session, item)
        elif item.source == WEBHOOK_SOURCE:
            await receive_webhook_message(self, session, item)
        else:
            raise UnknownSourceError(f"no handler for inbox source {item.source!r}")
        return {"status": "done", "processed_at": utcnow()}

    async def _callback(self, session: AsyncSession, item: InboxItem, event) -> None:
        match event:
            case AppMessage():
                await self._app_message(session, item, event)
            case ContactChange():
                await self._contact_change(session, item, event)
            case KfWakeup():
                await self._kf_sync(session, event)
            case OtherCallback():
                await MessageService(session).archive(
                    NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key, msg_type=event.name,
                               sent_at=event.sent_at, sender=event.sender, payload=item.payload, meta=event.meta)
                )

    # -- employees -------------------------------------------------------------------------

    async def _app_message(self, session: AsyncSession, item: InboxItem, msg: AppMessage) -> None:
        staff = await self.staff(session, msg.userid)
        archived = await MessageService(session).archive(
            NewMessage(channel=APP_CHANNEL, direction="in", external_msg_id=msg.msg_id, msg_type=msg.msg_type,
                       text=msg.text, sender=msg.userid, payload=item.payload, meta=msg.meta, staff_id=staff.id,
                       sent_at=msg.sent_at)
        )
        if archived is not None and self.on_staff_message is not None:
            await self.on_staff_message(session, staff, archived)
            self.outbox_changed(session)

    async def staff(self, session: AsyncSession, userid: str) -> Staff:
        """The staff row for a WeCom userid, synced from user/get the first time we see them.

        Remembered for the rest of the session; `prepare_batch` loads a whole batch's senders at once."""
        seen = _known_staff(session)
        if userid in seen:
            return seen[userid]
        service = StaffService(session)
        known = await service.get_by_userid(userid)
        if known is not None and known.synced_at is not None:
            seen[userid] = known
            return known
        try:
            profile = staff_profile(await self.wecom.get_user(userid))
        except InvalidUserError:
            log.warning("user/get does not know %s; keeping a bare staff record", userid)
            profile = StaffProfile(userid=userid, active=False)
        role = self.roles.role_for(profile.userid, profile.department_ids, is_leader=profile.is_leader)
        seen[userid] = await service.upsert(profile, role=role)
        return seen[userid]

    # -- external contacts ----------------------------------------------------------------

    async def _contact_change(self, session: AsyncSession, item: InboxItem, change: ContactChange) -> None:
        customers = CustomerService(session)
        contact: dict = {}
        if change.change_type in ("add_external_contact", "edit_external_contact", "add_half_external_contact"):
            try:
                contact = await self.wecom.get_external_contact(change.external_userid)
            except InvalidUserError:
                log.warning("externalcontact/get does not know %s; recording the event only", change.external_userid)
        staff = await self.staff(session, change.userid) if change.userid else None
        customer = await customers.ensure(EXTERNAL_CHANNEL, change.external_userid)
        if contact:
            await customers.apply_profile(customer, contact_profile(contact, userid=change.userid, owner_staff_id=staff.id if staff else None),
                                          at=change.sent_at)
        if change.change_type == "del_follow_user":
            await self._customer_left(session, item, customer, staff, at=change.sent_at)
        if change.change_type == "add_external_contact":
            await self.acquisition.contact_added(session, customer, staff, external_userid=change.external_userid,
                                                 state=change.state, welcome_code=change.welcome_code)
            self.outbox_changed(session)  # the welcome code lives 20 s
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key,
                       msg_type=f"event:change_external_contact:{change.change_type}", sent_at=change.sent_at,
                       sender=change.external_userid, recipient=change.userid, payload=item.payload, meta=change.meta,
                       customer_id=customer.id, staff_id=staff.id if staff else None)
        )

    async def _customer_left(self, session: AsyncSession, item: InboxItem, customer: Customer, staff: Staff | None, *,
                             at: datetime) -> None:
        """The customer deleted the rep: mark churned and tell the rep while there is still a chance.

        Only the change to churned alerts; a second deletion event for an already churned customer
        (WeCom resending with a new timestamp) is archived but tells nobody again. The row lock makes
        two workers handling two such events agree on which one made the change."""
        if not await LifecycleService(session).churn(customer, at=at):
            return
        last = await MessageService(session).last_for_customer(customer.id)
        if staff is None:
            return
        last_text = (
            f"{self._local(last.sent_at)} {'客户' if last.direction == 'in' else '我方'}：{last.text[:60]}"
            if last is not None else render("alerts.customer_deleted_you_no_history")
        )
        content = render("alerts.customer_deleted_you", customer=customer.name or customer.remark or "一位客户", last_interaction=last_text)
        await OutboxService(session).enqueue(
            idempotency_key=f"alert:customer_left:{item.dedup_key}",
            kind="app_message",
            payload={"touser": staff.userid, "msgtype": "text", "text": {"content": content}},
            customer_id=customer.id,
            staff_id=staff.id,
        )
        self.outbox_changed(session)

    # -- 微信客服 ----------------------------------------------------------------------------

    async def _kf_sync(self, session: AsyncSession, wakeup: KfWakeup) -> None:
        """Pull every waiting kf message, page by page. Each page's messages and the cursor after
        it commit together, so a crash resumes exactly where the last page ended."""
        cursors, inbox = KfCursorService(session), InboxService(session)
        cursor = await cursors.get(wakeup.open_kfid)
        await session.commit()
        while True:
            page = await self.wecom.kf_sync_msg(token=wakeup.token, cursor=cursor or None, open_kfid=wakeup.open_kfid)
            for msg in page.get("msg_list", []) or []:
                await inbox.stage(dedup_key=f"wecom:kfmsg:{msg.get('msgid')}", source=KF_SOURCE, payload=kf_message_json(msg))
            cursor = page.get("next_cursor") or cursor
            await cursors.set(wakeup.open_kfid, cursor)
            await session.commit()
            self.on_new_inbox_rows()
            if not page.get("has_more"):
                return

    async def _kf_message(self, session: AsyncSession, item: InboxItem) -> None:
        msg = normalize_kf_message(json.loads(item.payload))
        customer = await CustomerService(session).ensure(EXTERNAL_CHANNEL, msg.external_userid) if msg.external_userid else None
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
        await CustomerService(session).touch_contact(customer, at=msg.sent_at, staff_id=staff.id if staff else None)
        if msg.from_customer:
            await self.customer_wrote(session, customer, archived)

    async def lead_arrived(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        """A customer's first message from another path (JSON webhook) may name a channel: attribute and
        assign them by the channel's sales group, and tell the owner."""
        if await self.acquisition.lead_arrived(session, customer, message, self.staff) is not None:
            self.outbox_changed(session)

    async def customer_wrote(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        """Everything that reacts to a customer's own words (analysis, opt-out, tickets), whatever the
        channel; call it once per newly archived message."""
        if not self.customer_message_handlers:
            return
        for handler in self.customer_message_handlers:
            await handler(session, customer, message)
        self.outbox_changed(session)

    def _local(self, at: datetime) -> str:
        return at.astimezone(self.timezone).strftime("%Y-%m-%d %H:%M")


def _known_staff(session: AsyncSession) -> dict[str, Staff]:
    """userid -> synced staff row, for the rest of this session (one batch of messages)."""
    return session.info.setdefault("pipeline_staff", {})
