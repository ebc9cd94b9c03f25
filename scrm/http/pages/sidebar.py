"""/h5/sidebar: the customer card in the chat toolbar (聊天工具栏) of a rep's chat with a customer.

The page asks the WeCom client which customer the chat is with (wx.agentConfig, then
getCurExternalContact) and shows their card: masked phone, owner, lifecycle, 热度, deal stage, tags,
groups, open tickets, mood and its trend, the last messages and notes, the next follow-ups. Opened
anywhere else it lists the rep's own customers (the list `我的客户` answers in chat) to pick from.

The quick actions are the chat commands' work, done by the same crm_core services with the same role
rules and audit actions as bot/handlers (记, 跟进 with bot.timeparse, 标签 through crm_core.tag_push to
WeCom's corp tags, 阶段): a note written here is the note `查` shows in chat. A customer outside the
viewer's data scope (crm_core.scope, as in chat) is answered exactly like one that does not exist, and
the attempt is audit-logged. Each quick action is one of the member's commands for bot.rate_limit, in
the same count as the chat's: over the limit, it is refused (429) before anything is read or written.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.formatting import deal_text, display_name, heat_text, mask_phone, sentiment_text
from bot.handlers.deals import DEAL_ROLES
from bot.handlers.followups import FOLLOW_UP_TEXT_LIMIT, WEEKDAYS
from bot.handlers.notes import NOTE_LIMIT
from bot.rate_limit import CommandRateLimit, Verdict
from bot.timeparse import TimeExpressionError, take_when
from config.templates import render
from crm_core.audit import AuditService
from crm_core.customer_view import customer_view
from crm_core.customers import CustomerService
from crm_core.deals import DealService, DealStages, default_stages
from crm_core.errors import MissingDealFieldsError, ValidationError
from crm_core.followups import FollowUpService
from crm_core.handover import WECOM_CHANNEL
from crm_core.models import Customer, FollowUp, Message, Staff
from crm_core.notes import NoteService
from crm_core.scope import Scope, scope_for
from crm_core.tags import MAX_TAG_LENGTH, TagService
from crm_core.ticket_policy import default_policy
from scrm import keys
from scrm.http.pages import page_response, words
from scrm.http.pages.identity import Viewer, api_error, viewer_for_api, viewer_for_page

MESSAGES_SHOWN = 8
NOTES_SHOWN = 5
FOLLOW_UPS_SHOWN = 5
TREND_POINTS = 12  # the customer's last analysed messages, oldest first
MY_CUSTOMERS_SHOWN = 200  # as many as `我的客户` lists in chat
STAFF_CHANNEL = "wecom_app"  # the bot's own conversation with staff, not the customer's
MAX_TAGS_PER_CHANGE = 20
_ID = re.compile(r"[0-9]{1,18}")
_EXTERNAL_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def routes() -> list[web.AbstractRouteDef]:
    base = "/h5/api/sidebar"
    return [
        web.get("/h5/sidebar", page),
        web.get(f"{base}/customers", my_customers),
        web.get(f"{base}/customers/{{customer_id}}", card),
        web.get(f"{base}/contacts/{{external_userid}}", contact_card),
        web.post(f"{base}/customers/{{customer_id}}/notes", add_note),
        web.post(f"{base}/customers/{{customer_id}}/follow-ups", add_follow_up),
        web.post(f"{base}/customers/{{customer_id}}/tags", change_tags),
        web.post(f"{base}/customers/{{customer_id}}/stage", move_stage),
    ]


async def page(request: web.Request) -> web.Response:
    viewer = await viewer_for_page(request)
    stages = default_stages()
    return page_response(request, viewer, title=render("pages.sidebar.title"), page="sidebar", jssdk=True,
                         styles=("sidebar.css",),
                         data={"words": words("pages.sidebar"), "stages": list(stages.all),
                               "can_move_stage": viewer.role in DEAL_ROLES,
                               "limits": {"note": NOTE_LIMIT, "follow_up": FOLLOW_UP_TEXT_LIMIT,
                                          "tag": MAX_TAG_LENGTH}})


# -- reading ---------------------------------------------------------------------------------------------

async def my_customers(request: web.Request) -> web.Response:
    """The viewer's own customers, latest contact first: what `我的客户` lists in chat."""
    viewer = await viewer_for_api(request)
    async with request.app[keys.SESSIONS]() as session:
        customers = await CustomerService(session).owned_by(viewer.staff_id, limit=MY_CUSTOMERS_SHOWN)
        AuditService(session).record(actor=viewer.userid, action="customer.list_mine",
                                     detail=f"count={len(customers)} via=sidebar")
        await session.commit()
        tz = request.app[keys.SETTINGS].tz
        items = [{"id": c.id, "name": display_name(c), "company": c.company, "phone": mask_phone(c.phone),
                  "heat": heat_text(c.lead_score or 0), "lifecycle": str(render(f"lifecycle.{c.lifecycle}")),
                  "last_contact": _local(c.last_contact_at, tz)} for c in customers]
    return web.json_response({"items": items}, dumps=_dumps)


async def card(request: web.Request) -> web.Response:
    viewer = await viewer_for_api(request)
    async with request.app[keys.SESSIONS]() as session:
        customer = await _visible(session, viewer, _customer_id(request), "customer.view")
        return await _card_response(request, session, viewer, customer)


async def contact_card(request: web.Request) -> web.Response:
    """The card of the external contact the chat is with (getCurExternalContact's userId)."""
    viewer = await viewer_for_api(request)
    external_userid = request.match_info["external_userid"]
    async with request.app[keys.SESSIONS]() as session:
        customer = None
        if _EXTERNAL_ID.fullmatch(external_userid):
            customer = await CustomerService(session).resolve(WECOM_CHANNEL, external_userid)
        if customer is None:
            raise api_error(404, render("pages.sidebar.not_visible"))
        customer = await _visible(session, viewer, customer.id, "customer.view")
        return await _card_response(request, session, viewer, customer)


async def _card_response(request: web.Request, session: AsyncSession, viewer: Viewer, customer: Customer,
                         saved: str = "") -> web.Response:
    body = await card_json(session, customer, default_stages(), request.app[keys.SETTINGS].tz, _now(request))
    AuditService(session).record(actor=viewer.userid, action="customer.view", customer_id=customer.id,
                                 detail="via=sidebar")
    await session.commit()
    return web.json_response({**body, **({"saved": saved} if saved else {})}, dumps=_dumps)


async def card_json(session: AsyncSession, customer: Customer, stages: DealStages, tz, now: datetime) -> dict[str, Any]:
    """Everything the card shows, as text ready to put on the page (the phone masked)."""
    view = await customer_view(session, customer, stages)
    none = str(render("bot.none_value"))
    messages = list((await session.scalars(
        select(Message).where(Message.customer_id == customer.id, Message.channel != STAFF_CHANNEL,
                              Message.msg_type.not_like("event%"))
        .order_by(Message.sent_at.desc(), Message.id.desc()).limit(MESSAGES_SHOWN))).all())
    analysed = list((await session.scalars(
        select(Message).where(Message.customer_id == customer.id, Message.direction == "in",
                              Message.analysis.is_not(None))
        .order_by(Message.sent_at.desc(), Message.id.desc()).limit(TREND_POINTS))).all())
    follow_ups = list((await session.scalars(
        select(FollowUp).where(FollowUp.customer_id == customer.id, FollowUp.status == "open")
        .order_by(FollowUp.due_at, FollowUp.id).limit(FOLLOW_UPS_SHOWN))).all())
    notes = await NoteService(session).recent(customer.id, limit=NOTES_SHOWN)
    policy = default_policy()
    return {
        "customer": {
            "id": customer.id, "name": display_name(customer), "company": customer.company,
            "phone": mask_phone(customer.phone) or none,
            "owner": customer.owner.name if customer.owner else none,
            "lifecycle": str(render(f"lifecycle.{customer.lifecycle}")),
            "heat": str(heat_text(customer.lead_score or 0)), "heat_score": customer.lead_score or 0,
            "deal": str(deal_text(view.deal)), "stage": view.deal.stage if view.deal and view.deal.status == "open" else "",
            "tags": view.tags, "crm_tags": await TagService(session).names(customer.id), "groups": view.groups,
            "sentiment": str(sentiment_text(view.sentiment)),
            "trend": [{"at": _local(m.sent_at, tz), "score": round(float((m.analysis or {}).get("sentiment", 0.0)), 2)}
                      for m in reversed(analysed)],
            "tickets": [{"number": t.number, "priority": policy.sla[t.priority].label, "summary": t.summary}
                        for t in view.open_tickets],
        },
        "messages": [{"direction": m.direction, "text": m.text, "at": _local(m.sent_at, tz)} for m in reversed(messages)],
        "notes": [{"text": n.text, "at": _local(n.created_at, tz), "author": n.author.name if n.author else none}
                  for n in notes],
        "follow_ups": [{"due": _local(f.due_at, tz), "text": f.text, "overdue": f.due_at <= now} for f in follow_ups],
    }


# -- the quick actions -------------------------------------------------------------------------------------

async def add_note(request: web.Request) -> web.Response:
    """记: the note `查` shows in chat; it also counts as the viewer's latest contact."""
    viewer = await _commanding_viewer(request)
    body = await _body(request)
    text = _text(body, "text", NOTE_LIMIT, required=True)
    async with request.app[keys.SESSIONS]() as session:
        customer = await _visible(session, viewer, _customer_id(request), "customer.note")
        staff = await session.get(Staff, viewer.staff_id)
        now = _now(request)
        await NoteService(session).add(customer, staff, text, at=now)
        AuditService(session).record(actor=viewer.userid, action="customer.note", customer_id=customer.id)
        saved = render("bot.note_saved", name=display_name(customer),
                       at=now.astimezone(request.app[keys.SETTINGS].tz).strftime("%m-%d %H:%M"))
        return await _card_response(request, session, viewer, customer, str(saved))


async def add_follow_up(request: web.Request) -> web.Response:
    """跟进: a reminder at a time said the way chat takes it (明天下午3点, 下周三, 3天后)."""
    viewer = await _commanding_viewer(request)
    body = await _body(request)
    when_text = _text(body, "when", 40, required=True)
    text = _text(body, "text", FOLLOW_UP_TEXT_LIMIT)
    tz, now = request.app[keys.SETTINGS].tz, _now(request)
    try:
        due, rest = take_when(when_text, now.astimezone(tz))
    except TimeExpressionError as exc:
        if exc.past:
            raise api_error(400, render("bot.time_passed"))
        raise api_error(400, render("pages.sidebar.when_unread", when=when_text))
    if rest:
        raise api_error(400, render("pages.sidebar.when_unread", when=when_text))
    async with request.app[keys.SESSIONS]() as session:
        customer = await _visible(session, viewer, _customer_id(request), "customer.follow_up")
        staff = await session.get(Staff, viewer.staff_id)
        try:
            item = await FollowUpService(session).add(customer, staff, due, text, at=now)
        except ValidationError:
            raise api_error(400, render("bot.time_passed"))
        AuditService(session).record(actor=viewer.userid, action="customer.follow_up", customer_id=customer.id,
                                     detail=f"due={item.due_at.isoformat()}")
        local = item.due_at.astimezone(tz)
        saved = render("bot.follow_up_saved", name=display_name(customer), due=local.strftime("%Y-%m-%d %H:%M"),
                       weekday=WEEKDAYS[local.weekday()], text=item.text or render("bot.none_value"))
        return await _card_response(request, session, viewer, customer, str(saved))


async def change_tags(request: web.Request) -> web.Response:
    """标签: add and remove CRM tags; what changed reaches the customer's reps in WeCom as corp tags."""
    viewer = await _commanding_viewer(request)
    body = await _body(request)
    add, remove = _names(body, "add"), _names(body, "remove")
    if not add and not remove:
        raise api_error(400, render("pages.sidebar.tags_empty"))
    async with request.app[keys.SESSIONS]() as session:
        customer = await _visible(session, viewer, _customer_id(request), "customer.tags")
        staff = await session.get(Staff, viewer.staff_id)
        try:
            names = await TagService(session).change(customer, staff, add=add, remove=remove)
        except ValidationError:
            raise api_error(400, render("pages.sidebar.tag_too_long", limit=MAX_TAG_LENGTH))
        AuditService(session).record(actor=viewer.userid, action="customer.tags", customer_id=customer.id,
                                     detail=f"add={add} remove={remove}")
        saved = render("bot.tags_changed", name=display_name(customer), tags="、".join(names) or render("bot.none_value"))
        return await _card_response(request, session, viewer, customer, str(saved))


async def move_stage(request: web.Request) -> web.Response:
    """阶段: move the customer's deal; a stage that needs a field first answers 409 asking for it, as chat asks."""
    viewer = await _commanding_viewer(request)
    body = await _body(request)
    if viewer.role not in DEAL_ROLES:
        raise api_error(403, render("pages.sidebar.stage_not_allowed"))
    stages = default_stages()
    stage = _text(body, "stage", 20, required=True)
    if stage not in stages.all:
        raise api_error(400, render("bot.stage_unknown", stage=stage, stages=" → ".join(stages.stages),
                                    won=stages.won, lost=stages.lost))
    raw_values = body.get("values") or {}
    if not isinstance(raw_values, dict) or not all(k in stages.fields for k in raw_values):
        raise api_error(400, render("pages.sidebar.bad_request"))
    values = {k: _text(raw_values, k, 200) for k in raw_values}
    async with request.app[keys.SESSIONS]() as session:
        customer = await _visible(session, viewer, _customer_id(request), "deal.stage")
        staff = await session.get(Staff, viewer.staff_id)
        try:
            deal, previous = await DealService(session, stages).move(customer, stage, staff,
                                                                     values={k: v for k, v in values.items() if v},
                                                                     at=_now(request))
        except MissingDealFieldsError as exc:
            spec = stages.fields[exc.missing[0]]
            raise api_error(409, render("bot.stage_needs", stage=stage, field=spec.label, prompt=spec.prompt),
                            field=spec.name, label=spec.label)
        except ValidationError:
            raise api_error(400, render("pages.sidebar.bad_request"))
        AuditService(session).record(actor=viewer.userid, action="deal.stage", customer_id=customer.id,
                                     detail=f"{previous or '-'} -> {stage}")
        if deal.status == "won":
            saved = render("bot.deal_won", name=display_name(customer))
        elif deal.status == "lost":
            saved = render("bot.deal_lost_saved", name=display_name(customer), reason=deal.lost_reason)
        else:
            saved = render("bot.stage_moved", name=display_name(customer), previous=previous or render("bot.stage_new"),
                           stage=stage, extra="")
        return await _card_response(request, session, viewer, customer, str(saved))


# -- the rules every view follows ----------------------------------------------------------------------------

async def _commanding_viewer(request: web.Request) -> Viewer:
    """The viewer of a quick action, counted as one command in the chat's per-member limit (the same
    Redis count the bot keeps); over it, a 429 with the chat's words and nothing done."""
    viewer = await viewer_for_api(request)
    limit = CommandRateLimit(request.app[keys.REDIS], request.app[keys.SETTINGS].bot_commands_per_minute)
    if await limit.check(viewer.userid, _now(request), f"sidebar:{uuid.uuid4().hex}") is not Verdict.OK:
        raise api_error(429, render("pages.refusals.too_many_actions", per_minute=limit.per_minute))
    return viewer


async def _visible(session: AsyncSession, viewer: Viewer, customer_id: int | None, action: str) -> Customer:
    """The customer if the viewer may see it, within their scope as in chat; anything else is the same 404,
    and an attempt at someone else's customer is on file."""
    customer = await session.get(Customer, customer_id) if customer_id is not None else None
    if customer is None:
        raise api_error(404, render("pages.sidebar.not_visible"))
    staff = await session.get(Staff, viewer.staff_id)
    scope: Scope = await scope_for(session, staff)
    if not scope.allows(customer):
        AuditService(session).record(actor=viewer.userid, action=f"{action}_denied", customer_id=customer.id,
                                     detail="via=sidebar")
        await session.commit()
        raise api_error(404, render("pages.sidebar.not_visible"))
    return customer


def _customer_id(request: web.Request) -> int | None:
    raw = request.match_info["customer_id"]
    return int(raw) if _ID.fullmatch(raw) else None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise api_error(400, render("pages.sidebar.bad_request"))
    if not isinstance(body, dict):
        raise api_error(400, render("pages.sidebar.bad_request"))
    return body


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str:
    """A text field, trimmed: too long, not text, or holding NUL is refused (never cut short silently)."""
    value = body.get(name, "")
    if not isinstance(value, str) or "\x00" in value:
        raise api_error(400, render("pages.sidebar.bad_request"))
    value = value.strip()
    if required and not value:
        raise api_error(400, render("pages.sidebar.field_empty"))
    if len(value) > limit:
        raise api_error(400, render("pages.sidebar.too_long", limit=limit))
    return value


def _names(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if (not isinstance(value, list) or len(value) > MAX_TAGS_PER_CHANGE
            or not all(isinstance(v, str) and "\x00" not in v for v in value)):
        raise api_error(400, render("pages.sidebar.bad_request"))
    names = [v.strip() for v in value]
    if any(not 1 <= len(n) <= MAX_TAG_LENGTH for n in names):
        raise api_error(400, render("pages.sidebar.tag_too_long", limit=MAX_TAG_LENGTH))
    return list(dict.fromkeys(names))


def _now(request: web.Request) -> datetime:
    return request.app[keys.CLOCK]()


def _local(at: datetime | None, tz) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M") if at else ""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
