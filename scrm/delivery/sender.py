"""Delivers outbox rows to WeCom and archives what was sent.

Delivery is at-least-once from our side (a crash between WeCom's answer and our commit means
the row is sent again after its lease expires), so every send also carries WeCom's own
de-duplication: `enable_duplicate_check` for app messages and a stable `msgid` for 微信客服
replies. Together they make each outbox row reach the person once.

WeCom's duplicate check compares the whole request JSON, so two rows with the same text to the
same person (a rep asking 帮助 twice) would look like one message sent twice, and the second would
be dropped without an error. Each row therefore asks for its own `duplicate_check_interval`,
derived from its idempotency key: a row sent again is the same JSON and is dropped; two rows are
two messages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from connectors.wecom.errors import InvalidUserError, WelcomeAlreadySentError
from crm_core.care import settle_kf_delivery
from crm_core.channels import ChannelService
from crm_core.db import utcnow
from crm_core.handover import HandoverService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import Customer, OutboxItem, Staff
from crm_core.outbox import OutboxService
from crm_core.tag_push import MARK_TAG
from scrm.delivery.corp_tags import send_mark_tag
from scrm.delivery.handovers import send_transfer
from scrm.delivery.kf_sessions import send_kf_service_state
from scrm.delivery.send_limits import MemberSendLimit
from scrm.ingest.departures import DEPARTURE_NOTICE, send_departure_notice

CHANNEL_BY_KIND = {"app_message": "wecom_app", "kf_message": "wecom_kf", "msg_template": "wecom_template",
                   "welcome_msg": "wecom_welcome"}
DUPLICATE_CHECK_SECONDS = 4 * 3600  # WeCom's maximum window
DUPLICATE_CHECK_SPREAD = 2 * 3600  # rows' windows spread over 2-4 h: far longer than any re-send takes


class WeComSendApi(Protocol):
    async def send_app_message(self, payload: dict) -> dict: ...
    async def kf_send_msg(self, payload: dict) -> dict: ...
    async def add_msg_template(self, payload: dict) -> dict: ...
    async def send_welcome_msg(self, body: dict) -> dict: ...
    async def add_contact_way(self, body: dict) -> dict: ...
    async def del_contact_way(self, config_id: str) -> dict: ...
    async def transfer_customers(self, handover_userid: str, takeover_userid: str, external_userids: list[str], *,
                                 resigned: bool, transfer_success_msg: str = "") -> dict: ...
    async def transfer_results(self, handover_userid: str, takeover_userid: str, *, resigned: bool) -> list[dict]: ...
    async def kf_servicers(self, open_kfid: str) -> list[dict]: ...
    async def unassigned_customers(self) -> list[dict]: ...
    async def kf_service_state(self, open_kfid: str, external_userid: str) -> dict: ...
    async def kf_change_service_state(self, open_kfid: str, external_userid: str, service_state: int,
                                      servicer_userid: str = "") -> dict: ...


@dataclass
class OutboxSender:
    wecom: WeComSendApi
    agent_id: str
    member_limit: MemberSendLimit | None = None  # WeCom's 30 a minute and 1,000 an hour per member

    async def __call__(self, session: AsyncSession, item: OutboxItem) -> dict[str, Any]:
        if item.kind == "contact_way":
            return await self._contact_way(session, item)
        if item.kind == "customer_transfer":
            return await send_transfer(self.wecom, session, item)
        if item.kind == "kf_service_state":
            return await send_kf_service_state(self.wecom, session, item)
        if item.kind == MARK_TAG:
            return await send_mark_tag(self.wecom, session, item)
        if item.kind == DEPARTURE_NOTICE:
            return await send_departure_notice(self.wecom, session, item)
        try:
            response = await self._send(item)
        except WelcomeAlreadySentError as exc:
            # 41051: WeCom says a welcome already reached this customer; sending or alerting again helps nobody.
            return {"status": "sent", "sent_at": utcnow(), "response": {"errcode": exc.errcode}, "last_error": ""}
        await MessageService(session).archive(
            NewMessage(
                channel=CHANNEL_BY_KIND[item.kind], direction="out", external_msg_id=f"outbox:{item.id}",
                msg_type=str(item.payload.get("msgtype", item.kind)), text=message_text(item.payload),
                recipient=recipient_of(item.payload), payload="", meta={"outbox_id": item.id, "response": response},
                customer_id=item.customer_id, staff_id=item.staff_id, sent_at=utcnow(),
            )
        )
        if item.kind == "kf_message":
            await settle_kf_delivery(session, item.idempotency_key, sent=True)
        return {"status": "sent", "sent_at": utcnow(), "response": response, "last_error": ""}

    async def _send(self, item: OutboxItem) -> dict:
        if item.kind == "app_message":
            if self.member_limit is not None:
                await self.member_limit.take(list(filter(None, str(item.payload.get("touser", "")).split("|"))))
            payload = {**item.payload, "agentid": int(self.agent_id), "enable_duplicate_check": 1,
                       "duplicate_check_interval": duplicate_check_interval(item.idempotency_key)}
            response = await self.wecom.send_app_message(payload)
            _raise_if_nobody_reached(payload, response)
            return response
        if item.kind == "kf_message":
            return await self.wecom.kf_send_msg({**item.payload, "msgid": kf_msgid(item.idempotency_key)})
        if item.kind == "msg_template":
            return await self.wecom.add_msg_template(item.payload)
        if item.kind == "welcome_msg":
            return await self.wecom.send_welcome_msg({"welcome_code": item.payload["welcome_code"],
                                                      "text": item.payload["text"]})
        raise ValueError(f"unknown outbox kind {item.kind!r}")

    async def _contact_way(self, session: AsyncSession, item: OutboxItem) -> dict[str, Any]:
        """A channel's 「联系我」 code: created (the link goes to whoever asked) or deleted."""
        if item.payload["action"] == "del":
            response = await self.wecom.del_contact_way(item.payload["body"]["config_id"])
        else:
            response = await self.wecom.add_contact_way(item.payload["body"])
            await ChannelService(session).qr_code_ready(item.payload["channel_id"], config_id=response["config_id"],
                                                        qr_code=response.get("qr_code", ""))
        return {"status": "sent", "sent_at": utcnow(), "response": response, "last_error": ""}


def duplicate_check_interval(idempotency_key: str) -> int:
    """The same for every send of one row, different (but for 1 in 7,200) between rows."""
    spread = int(hashlib.sha256(idempotency_key.encode()).hexdigest()[:8], 16) % DUPLICATE_CHECK_SPREAD
    return DUPLICATE_CHECK_SECONDS - spread


def kf_msgid(idempotency_key: str) -> str:
    """kf/send_msg accepts a caller-chosen msgid (≤ 32 chars of [0-9a-zA-Z_-]) and rejects a repeat."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def message_text(payload: dict) -> str:
    msgtype = payload.get("msgtype", "")
    body = payload.get(msgtype, {}) if isinstance(payload.get(msgtype), dict) else {}
    if "content" in body:
        return str(body["content"])
    if "title" in body:
        return f"{body['title']}\n{body.get('description', '')}".strip()
    text = payload.get("text", {})
    return str(text.get("content", "")) if isinstance(text, dict) else ""


def recipient_of(payload: dict) -> str:
    for key in ("touser", "external_userid", "toparty"):
        value = payload.get(key)
        if value:
            return "|".join(value) if isinstance(value, list) else str(value)
    return ""


def _raise_if_nobody_reached(payload: dict, response: dict) -> None:
    """message/send answers errcode 0 even when every recipient is invalid; treat that as a failure."""
    wanted = set(filter(None, str(payload.get("touser", "")).split("|")))
    invalid = set(filter(None, str(response.get("invaliduser", "")).split("|")))
    if wanted and wanted <= invalid:
        raise InvalidUserError(errcode=0, errmsg=f"invaliduser: {response.get('invaliduser')}", api="message/send")


def undeliverable_notifier(sessions):
    """When a message to a customer is given up on, tell the staff member who sent it, once:
    an agent who was told "sent" must learn that it was not."""

    async def notify(item: OutboxItem, error: str) -> None:
        if item.kind == "customer_transfer":  # the handover's summary says what became of its customers
            async with sessions() as session:
                await HandoverService(session).give_up(int(item.payload["handover_id"]), int(item.payload["batch"]))
                await session.commit()
            return
        if item.kind == "kf_service_state":
            return  # the conversation stays where it is; the agent still answers through the bot
        if item.kind == "kf_message":
            async with sessions() as session:
                await settle_kf_delivery(session, item.idempotency_key, sent=False, error=error)
                await session.commit()
        if item.kind == "app_message" or item.staff_id is None:
            return  # app messages go to staff themselves; there is nobody else to tell
        if "KfWindowClosedError" in error:
            reason = render("undeliverable.kf_window")
        elif "WelcomeCodeInvalidError" in error:
            reason = render("channels.welcome_expired")
        elif "InvalidUserError" in error:
            reason = render("undeliverable.invalid_user")
        else:
            reason = render("undeliverable.other", error=error[:80])
        if item.kind == "contact_way":
            if "InvalidUserError" in error:
                reason = render("channels.bot.invalid_member")
            async with sessions() as session:
                await ChannelService(session).qr_code_failed(item.payload["channel_id"], reason)
                await session.commit()
            return
        async with sessions() as session:
            staff = await session.get(Staff, item.staff_id)
            if staff is None:
                return
            customer = await session.get(Customer, item.customer_id) if item.customer_id else None
            recipient = (customer.name or customer.remark) if customer else recipient_of(item.payload)
            content = render("undeliverable.notice", recipient=recipient,
                             text=message_text(item.payload)[:60], reason=reason)
            await OutboxService(session).enqueue(
                idempotency_key=f"undeliverable:{item.id}", kind="app_message",
                payload={"touser": staff.userid, "msgtype": "text", "text": {"content": content}},
                customer_id=item.customer_id, staff_id=staff.id,
            )
            await session.commit()

    return notify
