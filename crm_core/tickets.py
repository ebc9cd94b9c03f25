"""Support tickets: opening, routing, working and closing tickets, the customer's acknowledgement
and rating, and SLA escalations, by the rules of crm_core.ticket_policy.

Every message this module sends is an outbox row written in the caller's transaction, keyed by
the ticket event it reports (or, for escalations, by ticket, breach, level and cycle), so a
retried message or a scheduler that runs twice never notifies anyone twice. Wording comes from
config/templates_tickets.toml.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Date, and_, bindparam, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.errors import DomainError, DuplicateError, NotFoundError, ValidationError
from crm_core.kf_window import KF_CHANNEL, kf_reply_address
from crm_core.models import Customer, CustomerTag, Message, Staff
from crm_core.kf_handoff import end_conversation, hand_to_agent, shipped_kf_handoff
from crm_core.outbox import OutboxService
from crm_core.sql import insert_if_absent
from crm_core.ticket_models import CLOSED, OPEN, RESOLVED, Ticket, TicketEvent
from crm_core.ticket_policy import PRIORITIES, TicketPolicy, Verdict

log = logging.getLogger(__name__)

EXCERPT_CHARS = 200
_CSAT = re.compile(r"^\s*([1-5])\s*(分|星)?\s*[。.!！]?\s*$")
_NUMBER = re.compile(r"^T\d{8}-\d{4,}$")


class TicketNotFoundError(NotFoundError):
    pass


class TicketStateError(ValidationError):
    """The ticket is not in a state that allows this step (e.g. replying to a closed ticket)."""


class TicketAlreadyOpenError(DuplicateError):
    """Reopening would give the customer a second open ticket."""


class NoCustomerChannelError(DomainError):
    """No channel may reach the customer now (微信客服 window closed or never opened)."""


def csat_score(text: str) -> int | None:
    """A bare rating (`5`, `4分`, `３`) as the answer to the satisfaction question."""
    match = _CSAT.match((text or "").translate(_FULL_WIDTH_DIGITS))
    return int(match.group(1)) if match else None


_FULL_WIDTH_DIGITS = {0xFF10 + d: str(d) for d in range(10)}


def is_ticket_number(word: str) -> bool:
    return bool(_NUMBER.match(word.upper()))


def customer_name(customer: Customer) -> str:
    return customer.name or customer.remark or f"客户#{customer.id}"


# -- the service --------------------------------------------------------------------------------

@dataclass
class Intake:
    ticket: Ticket
    action: str  # created | attached | reopened


class TicketService:
    def __init__(self, session: AsyncSession, policy: TicketPolicy, timezone: ZoneInfo):
        self.session = session
        self.policy = policy
        self.timezone = timezone
        self.team = policy.team(session)

    # lookups

    async def get(self, number: str) -> Ticket:
        ticket = await self.session.scalar(select(Ticket).where(Ticket.number == number.upper()))
        if ticket is None:
            raise TicketNotFoundError(f"ticket {number} does not exist")
        return ticket

    async def open_for(self, customer_id: int) -> Ticket | None:
        return await self.session.scalar(select(Ticket).where(Ticket.open_key == str(customer_id)))

    async def history(self, ticket: Ticket) -> list[TicketEvent]:
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        return list((await self.session.scalars(stmt)).all())

    async def assigned_to(self, staff: Staff, limit: int = 100) -> list[Ticket]:
        stmt = (select(Ticket).where(Ticket.assignee_id == staff.id, Ticket.status == OPEN)
                .order_by(Ticket.resolution_due_at, Ticket.id).limit(limit))
        return list((await self.session.scalars(stmt)).all())

    async def unassigned_in_groups(self, staff: Staff) -> int:
        groups = sorted(await self.team.groups_of(staff))
        if not groups:
            return 0
        stmt = select(func.count()).where(Ticket.status == OPEN, Ticket.assignee_id.is_(None), Ticket.group.in_(groups))
        return await self.session.scalar(stmt) or 0

    # intake from the customer's side

    async def take_message(self, customer: Customer, message: Message, now: datetime) -> Intake | None:
        """React to one customer message: a rating, or a complaint that opens, joins or reopens a ticket."""
        rating = csat_score(message.text)
        if rating is not None and await self._record_csat(customer, message, rating, now):
            return None
        verdict = self.policy.verdict(message.text, message.analysis)
        if verdict is None:
            return None
        existing = await self.open_for(customer.id)
        if existing is not None:
            return Intake(await self._attach(existing, message, verdict, now), "attached")
        recent = await self._recently_resolved(customer.id, now)
        if recent is not None:
            try:
                await self.reopen(recent, None, now, message=message)
            except TicketAlreadyOpenError:
                pass  # a concurrent worker just opened one: join it below
            else:
                return Intake(recent, "reopened")
        created, ticket = await self._create(customer, message, verdict, now)
        if not created:
            return Intake(await self._attach(ticket, message, verdict, now), "attached")
        await self._after_create(ticket, now)
        return Intake(ticket, "created")

    async def _create(self, customer: Customer, message: Message, verdict: Verdict, now: datetime) -> tuple[bool, Ticket]:
        """Insert the ticket, or find the one a concurrent worker inserted first (unique open_key)."""
        priority = await self._priority(customer, verdict, now)
        sla = self.policy.sla[priority]
        number = await self._next_number(now)
        kfid, userid = kf_address(message)
        new_id = await insert_if_absent(self.session, Ticket, {
            "number": number, "customer_id": customer.id, "open_key": str(customer.id), "status": OPEN,
            "category": verdict.category.name, "priority": priority, "group": verdict.category.group,
            "trigger_message_id": message.id, "summary": message.text[:EXCERPT_CHARS], "complaint_messages": 1,
            "open_score": round(verdict.score, 3), "open_signals": list(verdict.threats + verdict.signals),
            "reply_open_kfid": kfid, "reply_external_userid": userid, "ack_status": "", "resolution": "",
            "first_response_due_at": now + sla.first_response, "resolution_due_at": now + sla.resolution,
            "reopened": 0, "created_at": now, "updated_at": now,
        }, ["open_key"])
        if new_id is None:
            ticket = await self.open_for(customer.id)
            if ticket is None:  # the other ticket was closed in between: a plain retry will do
                raise RuntimeError(f"open ticket of customer {customer.id} vanished during intake")
            return False, ticket
        ticket = await self.session.get(Ticket, new_id)
        await self._event(ticket, "created", None, now, message_id=message.id,
                          detail=f"category={ticket.category} priority={priority} score={verdict.score}"
                                 + (f" threats={','.join(verdict.threats)}" if verdict.threats else ""))
        return True, ticket

    async def _after_create(self, ticket: Ticket, now: datetime) -> None:
        """Route, then acknowledge; routing trouble never loses the ticket (it stays open, manager told)."""
        try:
            async with self.session.begin_nested():
                await self.route(ticket, now)
        except Exception:
            log.exception("routing ticket %s failed; it stays open and unassigned", ticket.number)
            await self.session.refresh(ticket)
            await self._unroutable(ticket, now, render("tickets.reason_routing_failed"))
        await self._acknowledge(ticket, now)

    async def _attach(self, ticket: Ticket, message: Message, verdict: Verdict, now: datetime) -> Ticket:
        ticket.complaint_messages += 1
        _follow_channel(ticket, message)
        if verdict.threats or ticket.complaint_messages >= self.policy.repeat_messages:
            self._raise_priority(ticket, "urgent")
        event = await self._event(ticket, "message", None, now, message_id=message.id, detail=message.text[:EXCERPT_CHARS])
        if ticket.assignee is not None:
            await self._tell(ticket, ticket.assignee, event, render(
                "tickets.agent_new_message", number=ticket.number, customer=customer_name(ticket.customer),
                priority=self._priority_label(ticket.priority), excerpt=message.text[:EXCERPT_CHARS]))
        return ticket

    async def _recently_resolved(self, customer_id: int, now: datetime) -> Ticket | None:
        since = now - timedelta(days=self.policy.reopen_days)
        stmt = (select(Ticket).where(Ticket.customer_id == customer_id, Ticket.status.in_((RESOLVED, CLOSED)),
                                     Ticket.resolved_at >= since, Ticket.dismissed_at.is_(None))
                .order_by(Ticket.resolved_at.desc()).limit(1))
        return await self.session.scalar(stmt)

    async def _record_csat(self, customer: Customer, message: Message, rating: int, now: datetime) -> bool:
        since = now - timedelta(days=self.policy.csat_days)
        stmt = (select(Ticket).where(Ticket.customer_id == customer.id, Ticket.csat.is_(None),
                                     Ticket.csat_requested_at >= since, Ticket.status.in_((RESOLVED, CLOSED)))
                .order_by(Ticket.csat_requested_at.desc()).limit(1))
        ticket = await self.session.scalar(stmt)
        if ticket is None:
            return False
        ticket.csat, ticket.csat_at = rating, now
        event = await self._event(ticket, "csat", None, now, message_id=message.id, detail=str(rating))
        if await self._kf_allowed(ticket, now):
            await self._to_customer(ticket, event, render("tickets.customer_csat_thanks", number=ticket.number))
        return True

    # priority and numbering

    async def _priority(self, customer: Customer, verdict: Verdict, now: datetime) -> str:
        if verdict.threats:
            return "urgent"
        tags = set(customer.wecom_tags or []) | set(
            (await self.session.scalars(select(CustomerTag.name).where(CustomerTag.customer_id == customer.id))).all())
        if tags & self.policy.vip_tags:
            return "urgent"
        since = now - timedelta(days=self.policy.repeat_days)
        earlier = await self.session.scalar(
            select(func.count()).where(Ticket.customer_id == customer.id, Ticket.created_at >= since)) or 0
        if earlier + 1 >= self.policy.repeat_tickets:
            return "urgent"
        return "high" if verdict.score >= self.policy.high_score else "normal"

    def _raise_priority(self, ticket: Ticket, priority: str) -> None:
        """Only ever up; the due times shrink to the new level's, counted from the ticket's start."""
        if PRIORITIES.index(priority) >= PRIORITIES.index(ticket.priority):
            return
        ticket.priority = priority
        sla = self.policy.sla[priority]
        start = ticket.created_at
        ticket.first_response_due_at = min(ticket.first_response_due_at, start + sla.first_response)
        ticket.resolution_due_at = min(ticket.resolution_due_at, start + sla.resolution)

    async def _next_number(self, now: datetime) -> str:
        """`T` + business date + per-day sequence; one atomic upsert, so concurrent workers never share a number."""
        day = now.astimezone(self.timezone).date()
        last = (await self.session.execute(_NEXT_NUMBER, {"day": day})).scalar_one()
        return f"T{day:%Y%m%d}-{last:04d}"

    # routing

    async def route(self, ticket: Ticket, now: datetime, *, exclude: int | None = None) -> Staff | None:
        """Least-loaded active agent of the ticket's group; ties go to whoever was assigned longest ago."""
        group = self.policy.groups[ticket.group]
        agents = [s for s in await self.team.agents(group.name) if s.id != exclude]
        if not agents:
            await self._unroutable(ticket, now, render("tickets.reason_no_agent", group=group.label))
            return None
        ids = [a.id for a in agents]
        load = dict((await self.session.execute(
            select(Ticket.assignee_id, func.count()).where(Ticket.assignee_id.in_(ids), Ticket.status == OPEN)
            .group_by(Ticket.assignee_id))).all())
        last = dict((await self.session.execute(
            select(Ticket.assignee_id, func.max(Ticket.assigned_at)).where(Ticket.assignee_id.in_(ids))
            .group_by(Ticket.assignee_id))).all())
        never = datetime.min.replace(tzinfo=UTC)
        agent = min(agents, key=lambda a: (load.get(a.id, 0), last.get(a.id) or never, a.id))
        await self.assign(ticket, agent, None, now)
        return agent

    async def assign(self, ticket: Ticket, agent: Staff, actor: Staff | None, now: datetime, *, kind: str = "assigned") -> None:
        previous = ticket.assignee
        ticket.assignee_id, ticket.assignee, ticket.assigned_at, ticket.accepted_at = agent.id, agent, now, None
        detail = f"{previous.userid if previous else '-'} -> {agent.userid}"
        event = await self._event(ticket, kind, actor, now, detail=detail)
        await self._card(agent, ticket, event, now)
        await hand_to_agent(self.session, ticket, agent, event.id, shipped_kf_handoff())
        owner = ticket.customer.owner
        if owner is not None and owner.id != agent.id and kind == "assigned":
            await self._tell(ticket, owner, event, render(
                "tickets.owner_told", number=ticket.number, customer=customer_name(ticket.customer),
                category=self.policy.category(ticket.category).label, priority=self._priority_label(ticket.priority),
                agent=agent.name or agent.userid, excerpt=ticket.summary[:80]))

    async def _unroutable(self, ticket: Ticket, now: datetime, reason: str) -> None:
        event = await self._event(ticket, "unassigned", None, now, detail=reason)
        managers = await self.team.managers(ticket.group)
        if not managers:
            log.warning("ticket %s is unassigned and its group %s has no manager or admin to tell", ticket.number,
                        ticket.group)
        for manager in managers:
            await self._tell(ticket, manager, event, render(
                "tickets.manager_unassigned", number=ticket.number, customer=customer_name(ticket.customer),
                group=self.policy.groups[ticket.group].label, reason=reason,
                priority=self._priority_label(ticket.priority), excerpt=ticket.summary[:80]))

    # agent actions

    async def accept(self, ticket: Ticket, actor: Staff, now: datetime) -> None:
        self._require(ticket, OPEN)
        if ticket.assignee_id != actor.id:
            ticket.assignee_id, ticket.assignee, ticket.assigned_at = actor.id, actor, now
        ticket.accepted_at = now
        await self._event(ticket, "accepted", actor, now)

    async def transfer(self, ticket: Ticket, to: Staff, actor: Staff, now: datetime) -> None:
        self._require(ticket, OPEN)
        if not to.active:
            raise TicketStateError(f"{to.userid} is not active")
        await self.assign(ticket, to, actor, now, kind="transferred")

    async def reply(self, ticket: Ticket, actor: Staff, content: str, now: datetime) -> None:
        """Send the agent's words to the customer through the channel allowed now; refuse if none is."""
        self._require(ticket, OPEN, RESOLVED)
        if not await self._kf_allowed(ticket, now):
            raise NoCustomerChannelError(f"no channel reaches the customer of {ticket.number} now")
        event = await self._event(ticket, "replied", actor, now, detail=content)
        await self._to_customer(ticket, event, render("tickets.customer_reply", number=ticket.number, content=content))
        ticket.first_response_at = ticket.first_response_at or now

    async def resolve(self, ticket: Ticket, actor: Staff, resolution: str, now: datetime) -> bool:
        """Resolve and ask the customer for a rating; False when no channel allowed asking (rep told)."""
        self._require(ticket, OPEN)
        ticket.status, ticket.resolved_at, ticket.resolution, ticket.open_key = RESOLVED, now, resolution, None
        event = await self._event(ticket, "resolved", actor, now, detail=resolution)
        if await self._kf_allowed(ticket, now):
            await self._to_customer(ticket, event, render("tickets.customer_resolved", number=ticket.number, resolution=resolution))
            ticket.csat_requested_at = now
            ticket.first_response_at = ticket.first_response_at or now
            return True
        await self._no_channel(ticket, event, now, render("tickets.rep_reach_out_resolved", number=ticket.number, customer=customer_name(ticket.customer), resolution=resolution))
        return False

    async def close(self, ticket: Ticket, actor: Staff, now: datetime) -> None:
        self._require(ticket, OPEN, RESOLVED)
        ticket.status, ticket.closed_at, ticket.open_key = CLOSED, now, None
        event = await self._event(ticket, "closed", actor, now)
        await end_conversation(self.session, ticket, event.id, shipped_kf_handoff())

    async def dismiss(self, ticket: Ticket, actor: Staff, now: datetime, note: str = "") -> None:
        """`工单 误判`: the complaint detection was wrong. The ticket closes (never to be reopened by the
        customer's next complaint, which opens a fresh one) and stays on file, with the agent's verdict,
        as a labelled example for the next retraining (`scrm nlp eval --from-tickets`)."""
        if ticket.dismissed_at is not None:
            raise TicketStateError(f"ticket {ticket.number} was already dismissed")
        if ticket.status != CLOSED:
            ticket.status, ticket.closed_at, ticket.open_key = CLOSED, now, None
        ticket.dismissed_at = now
        await self._event(ticket, "dismissed", actor, now, detail=note)

    async def reopen(self, ticket: Ticket, actor: Staff | None, now: datetime, *, message: Message | None = None) -> None:
        """Back to open with a fresh SLA cycle; the customer's one open ticket rule still holds."""
        self._require(ticket, RESOLVED, CLOSED)
        try:
            async with self.session.begin_nested():
                ticket.open_key = str(ticket.customer_id)
                await self.session.flush()
        except IntegrityError as exc:
            ticket.open_key = None
            raise TicketAlreadyOpenError(f"customer {ticket.customer_id} already has an open ticket") from exc
        sla = self.policy.sla[ticket.priority]
        ticket.status, ticket.reopened = OPEN, ticket.reopened + 1
        ticket.dismissed_at = None  # reopened by an agent: the 误判 verdict no longer stands
        ticket.resolved_at = ticket.closed_at = ticket.first_response_at = ticket.csat_requested_at = None
        ticket.first_response_due_at, ticket.resolution_due_at = now + sla.first_response, now + sla.resolution
        if message is not None:
            ticket.complaint_messages += 1
            _follow_channel(ticket, message)
        event = await self._event(ticket, "reopened", actor, now, message_id=message.id if message else None,
                                  detail=message.text[:EXCERPT_CHARS] if message else "")
        agent = ticket.assignee
        if agent is not None and agent.active:
            if actor is None or actor.id != agent.id:
                await self._card(agent, ticket, event, now)
        else:
            await self.route(ticket, now)

    # SLA

    async def escalate_sla_breaches(self, now: datetime) -> int:
        """Tell the agent when an SLA is breached and the manager `manager_after` later, once each per
        ticket, breach and reopen cycle (the outbox key decides); returns how many notices were new."""
        due = (select(Ticket).where(Ticket.status == OPEN, or_(
            and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at <= now),
            Ticket.resolution_due_at <= now)).order_by(Ticket.id))
        sent = 0
        for ticket in (await self.session.scalars(due)).all():
            sla = self.policy.sla[ticket.priority]
            breaches = [("resolution", ticket.resolution_due_at)]
            if ticket.first_response_at is None:
                breaches.insert(0, ("first_response", ticket.first_response_due_at))
            for breach, due_at in breaches:
                if due_at > now:
                    continue
                levels = [("agent", ticket.assignee)] if ticket.assignee is not None else []
                if now >= due_at + sla.manager_after or ticket.assignee is None:
                    levels += [("manager", manager) for manager in await self.team.managers(ticket.group)]
                for level, who in levels:
                    sent += await self._escalate(ticket, breach, level, who, due_at, now)
        return sent

    async def _escalate(self, ticket: Ticket, breach: str, level: str, who: Staff, due_at: datetime, now: datetime) -> int:
        content = render(f"tickets.sla_{level}", number=ticket.number, customer=customer_name(ticket.customer),
                         breach=render(f"tickets.breach_{breach}"), due=self._local(due_at),
                         priority=self._priority_label(ticket.priority),
                         agent=(ticket.assignee.name or ticket.assignee.userid) if ticket.assignee else render("tickets.nobody"),
                         excerpt=ticket.summary[:80])
        whom = f"{level}:{who.userid}" if level == "manager" else level  # a group may have several managers
        new = await OutboxService(self.session).enqueue(
            idempotency_key=f"ticket:{ticket.id}:sla:{breach}:{whom}:{ticket.reopened}", kind="app_message",
            payload={"touser": who.userid, "msgtype": "text", "text": {"content": content}},
            customer_id=ticket.customer_id, staff_id=who.id)
        if new:
            await self._event(ticket, "escalated", None, now, detail=f"{breach} -> {level} {who.userid}")
        return int(new)

    # the customer's channel

    async def _kf_allowed(self, ticket: Ticket, now: datetime) -> bool:
        """Whether a 微信客服 reply is allowed now (WeCom's window, see crm_core.kf_window)."""
        return bool(ticket.reply_open_kfid) and await kf_reply_address(self.session, ticket.customer_id, now) is not None

    async def _acknowledge(self, ticket: Ticket, now: datetime) -> None:
        if await self._kf_allowed(ticket, now):
            event = await self._event(ticket, "acknowledged", None, now, detail=KF_CHANNEL)
            await self._to_customer(ticket, event, render(
                "tickets.customer_ack", number=ticket.number, category=self.policy.category(ticket.category).label))
            ticket.ack_status = "sent"
            return
        event = await self._event(ticket, "no_channel", None, now, detail=render("tickets.no_channel_detail"))
        await self._no_channel(ticket, event, now, render(
            "tickets.rep_reach_out", number=ticket.number, customer=customer_name(ticket.customer), excerpt=ticket.summary[:80]))
        ticket.ack_status = "no_channel"

    async def _no_channel(self, ticket: Ticket, event: TicketEvent, now: datetime, content: str) -> None:
        """Ask a person to reach the customer: the owning rep, else the agent, else the group's managers."""
        who = [ticket.customer.owner or ticket.assignee] if ticket.customer.owner or ticket.assignee else \
            await self.team.managers(ticket.group)
        for person in who:
            await self._tell(ticket, person, event, content)

    async def _to_customer(self, ticket: Ticket, event: TicketEvent, content: str) -> None:
        """Sent on behalf of the event's actor, who hears back if it cannot be delivered."""
        await OutboxService(self.session).enqueue(
            idempotency_key=f"ticket-event:{event.id}:customer", kind="kf_message",
            payload={"touser": ticket.reply_external_userid, "open_kfid": ticket.reply_open_kfid, "msgtype": "text",
                     "text": {"content": content}},
            customer_id=ticket.customer_id, staff_id=event.actor_id)

    # staff notices

    @staticmethod
    def open_reasons(ticket: Ticket) -> str:
        """判定依据 as an agent reads it: the words behind the complaint score, and the score."""
        if ticket.open_score is None:
            return render("tickets.reasons_unknown")
        words = render("tickets.reasons_separator").join(ticket.open_signals or ()) or render("tickets.reasons_no_words")
        return render("tickets.reasons", words=words, score=f"{ticket.open_score:.2f}")

    async def _card(self, agent: Staff, ticket: Ticket, event: TicketEvent, now: datetime) -> None:
        description = render(
            "tickets.card_description", kind="textcard", customer=customer_name(ticket.customer),
            category=self.policy.category(ticket.category).label, priority=self._priority_label(ticket.priority),
            due=self._local(ticket.resolution_due_at), first_due=self._local(ticket.first_response_due_at),
            excerpt=ticket.summary[:120], reasons=self.open_reasons(ticket), number=ticket.number)
        await OutboxService(self.session).enqueue(
            idempotency_key=f"ticket-event:{event.id}:{agent.userid}", kind="app_message",
            payload={"touser": agent.userid, "msgtype": "textcard", "textcard": {
                "title": render("tickets.card_title", kind="textcard", number=ticket.number,
                                priority=self._priority_label(ticket.priority)),
                "description": description, "url": self.policy.card_url, "btntxt": render("tickets.card_button")}},
            customer_id=ticket.customer_id, staff_id=agent.id)

    async def _tell(self, ticket: Ticket, who: Staff, event: TicketEvent, content: str) -> None:
        await OutboxService(self.session).enqueue(
            idempotency_key=f"ticket-event:{event.id}:{who.userid}", kind="app_message",
            payload={"touser": who.userid, "msgtype": "text", "text": {"content": content}},
            customer_id=ticket.customer_id, staff_id=who.id)

    # helpers

    async def _event(self, ticket: Ticket, kind: str, actor: Staff | None, now: datetime, *,
                     message_id: int | None = None, detail: str = "") -> TicketEvent:
        event = TicketEvent(ticket_id=ticket.id, kind=kind, actor_id=actor.id if actor else None, actor=actor,
                            message_id=message_id, detail=detail, created_at=now)
        ticket.updated_at = now
        self.session.add(event)
        await self.session.flush()
        return event

    def _require(self, ticket: Ticket, *statuses: str) -> None:
        if ticket.status not in statuses:
            raise TicketStateError(f"ticket {ticket.number} is {ticket.status}")

    def _priority_label(self, priority: str) -> str:
        return self.policy.sla[priority].label

    def _local(self, at: datetime) -> str:
        return at.astimezone(self.timezone).strftime("%m-%d %H:%M")


def kf_address(message: Message) -> tuple[str, str]:
    """(open_kfid, external_userid) a 微信客服 message came through; empty for other channels."""
    return (message.recipient, message.sender) if message.channel == KF_CHANNEL else ("", "")


def _follow_channel(ticket: Ticket, message: Message) -> None:
    """Replies go where the customer wrote last."""
    kfid, userid = kf_address(message)
    if kfid:
        ticket.reply_open_kfid, ticket.reply_external_userid = kfid, userid


_NEXT_NUMBER = text(
    'INSERT INTO ticket_counters (day, "last") VALUES (:day, 1) '
    'ON CONFLICT (day) DO UPDATE SET "last" = ticket_counters."last" + 1 RETURNING "last"'
).bindparams(bindparam("day", type_=Date()))
