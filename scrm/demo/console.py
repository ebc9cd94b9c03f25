"""The browser console of `scrm demo`: a WeCom-like chat page at /demo/ and its JSON under /demo/api/.

Only the demo adds these routes (`add_console`), never `scrm serve`: they act as any staff member
or customer without a password. The H5 pages (sidebar, 看板) open in a phone-wide frame as the chosen
member, who logs in through the simulator's OAuth like anyone in the WeCom client. What the page shows is what the simulator delivered (app
messages, 微信客服 messages, group-send tasks), so a bubble appears only if the service really
sent it; the record panel reads the database through crm_core, as the bot's customer card does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import select

from bot.formatting import mask_phone
from config.templates import render
from connectors.wecom.simulator.state import RESULT_SENT
from connectors.wecom.simulator.transfers import TAKEN
from crm_core.audit import AuditService
from crm_core.customer_view import customer_view
from crm_core.customers import CustomerService
from crm_core.deals import default_stages
from crm_core.errors import NotFoundError
from crm_core.models import Customer, CustomerIdentity, Message
from crm_core.staff import StaffService
from crm_core.ticket_models import Ticket
from crm_core.ticket_policy import TicketPolicy
from crm_core.ticket_policy import default_policy as ticket_policy
from scrm.delivery.sender import message_text
from scrm.http.pages.identity import COOKIE_PATH, SESSION_COOKIE
from scrm.http.tickets import ticket_json

if TYPE_CHECKING:
    from scrm.demo.world import Demo

STATIC_DIR = Path(__file__).with_name("static")
MAX_LINE_CHARS = 2000
RECORD_MESSAGES = 8
STAFF_CHANNEL = "wecom_app"  # notices to staff about the customer; the record shows the conversation with them
ROLE_LABELS = {"sales": "销售", "support": "客服", "manager": "主管", "admin": "管理员"}
MOOD_LABELS = {"positive": "正面", "neutral": "中性", "negative": "负面"}
CHANNEL_LABELS = {"wecom_kf": "微信客服", "wecom": "企业微信", "wecom_app": "应用消息", "wecom_template": "群发",
                  "wecom_archive": "会话存档"}


class Console:
    """The chats as the page shows them: one per persona, built from what WeCom delivered."""

    def __init__(self, demo: Demo):
        self.demo = demo
        self.entries: list[dict[str, Any]] = []
        self.seen = {"app": 0, "kf": 0, "templates": 0}
        self.group_sends: dict[str, dict[str, Any]] = {}  # msgid -> the rep's task entry
        self.transfers_shown: set[int] = set()  # positions in the simulator's transfer book

    @property
    def sim(self):
        return self.demo.sim

    def note(self, chat: str, side: str, text: str, **extra: Any) -> dict[str, Any]:
        local = self.demo.clock.now().astimezone(self.demo.settings.tz)
        entry = {"id": len(self.entries) + 1, "chat": chat, "side": side, "text": text,
                 "at": f"{local:%m-%d %H:%M}", "format": "text", **extra}
        self.entries.append(entry)
        return entry

    def collect(self) -> None:
        """Turn what the simulator received since the last look into chat entries."""
        for message in self.sim.sent_app_messages[self.seen["app"]:]:
            msgtype = message.get("msgtype", "text")
            extra: dict[str, Any] = {"format": msgtype if msgtype in ("markdown", "textcard") else "text"}
            text = message_text(message)
            if msgtype == "textcard":
                card = message["textcard"]
                extra.update(title=card.get("title", ""), button=card.get("btntxt", ""))
                text = card.get("description", "")
            for userid in message.get("recipients", []):
                self.note(f"staff:{userid}", "in", text, **extra)
        self.seen["app"] = len(self.sim.sent_app_messages)
        kf_names = {kfid: account.get("name", "") for kfid, account in self.sim.kf_accounts.items()}
        for message in self.sim.sent_kf_messages[self.seen["kf"]:]:
            self.note(f"customer:{message.get('touser')}", "in", message_text(message),
                      sender=kf_names.get(message.get("open_kfid"), ""))
        self.seen["kf"] = len(self.sim.sent_kf_messages)
        for task in self.sim.msg_templates[self.seen["templates"]:]:
            sender = task.get("sender", "")
            customers = [c for c in task.get("external_userid", []) if c not in task.get("fail_list", [])]
            entry = self.note(f"staff:{sender}", "in", task.get("text", {}).get("content", ""), format="group_send",
                              msgid=task["msgid"], sender=sender, customers=[self.customer_name(c) for c in customers],
                              confirmed=False)
            self.group_sends[task["msgid"]] = entry
        self.seen["templates"] = len(self.sim.msg_templates)
        for position, transfer in enumerate(self.sim.transfer_book.transfers):
            if transfer.status == TAKEN and transfer.message and position not in self.transfers_shown:
                self.transfers_shown.add(position)  # WeCom tells the customer who serves them now
                self.note(f"customer:{transfer.external_userid}", "in", transfer.message,
                          sender=self.sim.staff.get(transfer.takeover_userid, {}).get("name", transfer.takeover_userid))

    def confirm_group_send(self, msgid: str) -> None:
        """The rep taps 发送 in 群发助手: WeCom delivers the task to each customer it may reach."""
        entry = self.group_sends.get(msgid)
        if entry is None or entry["confirmed"]:
            raise web.HTTPConflict(text="这条群发已发送或不存在")
        outcome = self.sim.confirm_msg_template(msgid, entry["sender"])
        entry["confirmed"] = True
        sender_name = self.sim.staff.get(entry["sender"], {}).get("name", entry["sender"])
        for external_userid, status in outcome.items():
            if status == RESULT_SENT:
                self.note(f"customer:{external_userid}", "in", entry["text"], sender=sender_name)

    def customer_name(self, external_userid: str) -> str:
        contact = self.sim.external_contacts.get(external_userid, {}).get("external_contact", {})
        return contact.get("name", external_userid)

    async def personas(self) -> dict[str, list[dict[str, Any]]]:
        async with self.demo.sessions() as session:
            roles = {s.userid: s.role for s in await StaffService(session).list(limit=len(self.sim.staff) + 1)}
            customer_ids = dict((await session.execute(
                select(CustomerIdentity.external_id, CustomerIdentity.customer_id)
                .where(CustomerIdentity.external_id.in_(list(self.sim.external_contacts)))
            )).tuples().all())
        staff = [{"chat": f"staff:{userid}", "key": userid, "name": person["name"], "position": person["position"],
                  "role": ROLE_LABELS.get(roles.get(userid, ""), ""), "manages": roles.get(userid) in ("manager", "admin"),
                  "contacts": [{"key": external_userid, "name": contact["external_contact"]["name"]}
                               for external_userid, contact in self.sim.external_contacts.items()
                               if any(f["userid"] == userid for f in contact["follow_user"])]}
                 for userid, person in self.sim.staff.items()]
        customers = [{"chat": f"customer:{external_userid}", "key": external_userid,
                      "name": contact["external_contact"]["name"], "company": contact["external_contact"]["corp_name"],
                      "customer_id": customer_ids.get(external_userid)}
                     for external_userid, contact in self.sim.external_contacts.items()]
        return {"staff": staff, "customers": customers}

    async def state(self) -> dict[str, Any]:
        self.collect()
        tz, now = self.demo.settings.tz, self.demo.clock.now()
        local = now.astimezone(tz)
        return {
            "clock": {"now": f"{local:%Y-%m-%d %H:%M}", "weekday": "一二三四五六日"[local.weekday()],
                      "presets": [{"key": p.key, "label": p.label, "hint": p.hint,
                                   "target": f"{p.target.astimezone(tz):%m-%d %H:%M}", "enabled": p.target > now}
                                  for p in self.demo.presets()]},
            "personas": await self.personas(),
            "entries": self.entries,
        }

    async def say(self, chat: str, text: str) -> None:
        kind, _, key = chat.partition(":")
        if kind == "staff" and key in self.sim.staff:
            self.note(chat, "out", text)
            await self.demo.exchange("rep", key, text)
        elif kind == "customer" and key in self.sim.external_contacts:
            self.note(chat, "out", text)
            await self.demo.exchange("customer", key, text)
        else:
            raise web.HTTPBadRequest(text=f"没有这个身份：{chat}")

    async def record(self, customer_id: int) -> dict[str, Any]:
        """The customer's record as the panel shows it; the lookup is audit-logged like any other."""
        async with self.demo.sessions() as session:
            try:
                customer = await CustomerService(session).get(customer_id)
            except NotFoundError as exc:
                raise web.HTTPNotFound(text=str(exc)) from exc
            view = await customer_view(session, customer, default_stages())
            messages = (await session.scalars(
                select(Message).where(Message.customer_id == customer.id, Message.channel != STAFF_CHANNEL,
                                      Message.msg_type.not_like("event%"))
                .order_by(Message.id.desc()).limit(RECORD_MESSAGES)
            )).all()
            record = record_json(view, list(reversed(messages)), self.demo.settings.tz, ticket_policy())
            AuditService(session).record(actor="demo-console", action="customer.view", customer_id=customer.id)
            await session.commit()
        return record


def mood(score: float | None) -> str:
    if score is None:
        return "暂无"
    label = "positive" if score >= 0.3 else "negative" if score <= -0.3 else "neutral"
    return f"{MOOD_LABELS[label]} ({score:+.2f})"


def ticket_card(ticket: Ticket, policy: TicketPolicy) -> dict[str, Any]:
    """The API's ticket, with the words an agent reads in chat instead of the codes."""
    return {**ticket_json(ticket), "category": policy.category(ticket.category).label,
            "priority": policy.sla[ticket.priority].label, "status": render(f"tickets.status.{ticket.status}"),
            "assignee": ticket.assignee.name if ticket.assignee else None}


def record_json(view, messages: list[Message], tz, policy: TicketPolicy) -> dict[str, Any]:
    c: Customer = view.customer
    follow_up = view.next_follow_up
    return {
        "id": c.id, "name": c.name, "company": c.company, "phone": mask_phone(c.phone),
        "owner": c.owner.name if c.owner else "", "lifecycle": render(f"lifecycle.{c.lifecycle}"),
        "lead_score": c.lead_score,
        "tags": view.tags, "mood": mood(view.sentiment),
        "topics": [{"tag": tag, "count": value.get("count", 0)} for tag, value in (c.tag_counts or {}).items()],
        "stage": view.deal.stage if view.deal else "",
        "birthday": str(c.birthday) if c.birthday else "",
        "care": "已退订" if c.care_opted_out_at else "已同意" if c.care_consent else "未同意",
        "next_follow_up": {"due": f"{follow_up.due_at.astimezone(tz):%m-%d %H:%M}", "text": follow_up.text}
        if follow_up else None,
        "open_tickets": [ticket_card(t, policy) for t in view.open_tickets],
        "messages": [{"direction": m.direction, "channel": CHANNEL_LABELS.get(m.channel, m.channel), "text": m.text,
                      "at": f"{m.sent_at.astimezone(tz):%m-%d %H:%M}",
                      "mood": MOOD_LABELS.get((m.analysis or {}).get("label", ""), ""),
                      "tags": (m.analysis or {}).get("tags", [])} for m in messages],
    }


CONSOLE = web.AppKey("demo_console", Console)


def add_console(app: web.Application, demo: Demo) -> None:
    app[CONSOLE] = Console(demo)
    app.add_routes([
        web.get("/demo", to_index),
        web.get("/demo/", index),
        web.static("/demo/static", STATIC_DIR),
        web.get("/demo/api/state", get_state),
        web.post("/demo/api/say", post_say),
        web.post("/demo/api/clock", post_clock),
        web.post("/demo/api/group-sends/{msgid}/confirm", post_confirm),
        web.get("/demo/api/customers/{customer_id}", get_record),
        web.get("/demo/pages/open", open_page),
    ])


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/demo/")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONSOLE].state())


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="请求体须为 JSON") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="请求体须为 JSON 对象")
    return body


async def post_say(request: web.Request) -> web.Response:
    body, console = await _body(request), request.app[CONSOLE]
    text = str(body.get("text", "")).strip()
    if not text or len(text) > MAX_LINE_CHARS:
        raise web.HTTPBadRequest(text=f"消息须为 1 到 {MAX_LINE_CHARS} 个字")
    try:
        await console.say(str(body.get("chat", "")), text)
    except RuntimeError as exc:
        raise web.HTTPBadGateway(text=f"服务拒绝了回调：{exc}") from exc
    return web.json_response(await console.state())


async def post_clock(request: web.Request) -> web.Response:
    body, console = await _body(request), request.app[CONSOLE]
    preset = next((p for p in console.demo.presets() if p.key == body.get("preset")), None)
    if preset is None:
        raise web.HTTPBadRequest(text="没有这个快进选项")
    if preset.target <= console.demo.clock.now():
        raise web.HTTPConflict(text="这个时间已经过去了")
    ran = await console.demo.advance(preset.target)
    return web.json_response({**await console.state(), "ran": ran})


async def post_confirm(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    console.collect()
    console.confirm_group_send(request.match_info["msgid"])
    return web.json_response(await console.state())


async def open_page(request: web.Request) -> web.StreamResponse:
    """Open /h5/sidebar or /h5/dashboard as `as` would in the WeCom client: the simulator signs that member
    in and, with `chat`, has the toolbar of their chat with that customer open; this browser's page session is
    dropped so the page logs in afresh through the simulated OAuth (no shortcut past identity)."""
    sim = request.app[CONSOLE].sim
    userid, page, chat = request.query.get("as", ""), request.query.get("page", ""), request.query.get("chat", "")
    if userid not in sim.staff or page not in ("sidebar", "dashboard"):
        raise web.HTTPBadRequest(text="没有这个员工或页面")
    contact = sim.external_contacts.get(chat) if chat else None
    if chat and (contact is None or not any(f["userid"] == userid for f in contact["follow_user"])):
        raise web.HTTPBadRequest(text="该员工没有与这位客户的聊天")
    sim.web.member, sim.web.open_chat = userid, chat or None
    found = web.HTTPFound(f"/h5/{page}")
    found.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise found


async def get_record(request: web.Request) -> web.Response:
    try:
        customer_id = int(request.match_info["customer_id"])
    except ValueError as exc:
        raise web.HTTPNotFound(text="没有这个客户") from exc
    return web.json_response(await request.app[CONSOLE].record(customer_id))
