"""`/api/v1/tickets`: support tickets over HTTP, within the caller's scope.

The work itself is crm_core.tickets; complaints become tickets in scrm.ingest.ticket_intake.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from crm_core.audit import AuditService
from crm_core.models import Staff
from crm_core.ticket_models import Ticket, TicketEvent
from crm_core.ticket_routing import TicketAccess
from crm_core.ticket_policy import PRIORITIES
from crm_core.tickets import TicketNotFoundError, TicketService
from scrm import keys
from scrm.http.api import Caller, _authorize, _error, _id_param, _iso, _page, _page_params, _parse_since, hidden

log = logging.getLogger(__name__)

STATUSES = ("open", "resolved", "closed")


# -- /api/v1/tickets --------------------------------------------------------------------------------

def ticket_routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/tickets", list_tickets), web.get("/api/v1/tickets/{number}", get_ticket)]


async def list_tickets(request: web.Request) -> web.Response:
    """Filters: status, priority, category, group, assignee (userid), customer_id, since (created at or after).
    A staff token sees the tickets chat would show it (crm_core.ticket_routing)."""
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        return await _list_tickets(request, session, caller)


async def _list_tickets(request: web.Request, session, caller: Caller) -> web.Response:
    limit, after = _page_params(request)
    query = request.query
    conditions = await (await _access(request, session, caller)).where()
    for name, allowed in (("status", STATUSES), ("priority", PRIORITIES)):
        value = query.get(name)
        if value:
            if value not in allowed:
                raise _error(web.HTTPBadRequest, f"{name} must be one of {', '.join(allowed)}")
            conditions.append(getattr(Ticket, name) == value)
    for name in ("category", "group"):
        if query.get(name):
            conditions.append(getattr(Ticket, name) == query[name])
    customer_id = _id_param(request, "customer_id")
    if customer_id is not None:
        conditions.append(Ticket.customer_id == customer_id)
    since = _parse_since(query.get("since"))
    if since is not None:
        conditions.append(Ticket.created_at >= since)
    if query.get("assignee"):
        conditions.append(Ticket.assignee_id.in_(select(Staff.id).where(Staff.userid == query["assignee"])))
    total = await session.scalar(select(func.count()).select_from(Ticket).where(*conditions)) or 0
    items = list((await session.scalars(
        select(Ticket).where(Ticket.id > after, *conditions).order_by(Ticket.id).limit(limit + 1))).all())
    AuditService(session).record(actor=caller.actor, action="tickets.list", detail=f"filters={dict(query)} results={total}")
    await session.commit()
    return _page(items, total, limit, ticket_json)


async def get_ticket(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        service = TicketService(session, request.app[keys.TICKETS], request.app[keys.SETTINGS].tz)
        try:
            ticket = await service.get(number)
        except TicketNotFoundError as exc:
            raise _error(web.HTTPNotFound, str(exc))
        if not await (await _access(request, session, caller)).allows(ticket):
            refusal = hidden(session, caller, "ticket.view", ticket.customer_id,
                             TicketNotFoundError(f"ticket {number} does not exist"), detail=ticket.number)
            await session.commit()
            raise refusal
        events = await service.history(ticket)
        AuditService(session).record(actor=caller.actor, action="ticket.view", customer_id=ticket.customer_id, detail=ticket.number)
        await session.commit()
    return web.json_response({**ticket_json(ticket), "events": [event_json(e) for e in events]})


async def _access(request: web.Request, session, caller: Caller) -> TicketAccess:
    staff = await session.get(Staff, caller.staff_id) if caller.staff_id is not None else None
    return TicketAccess(request.app[keys.TICKETS].team(session), staff, caller.scope)


def ticket_json(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id, "number": t.number, "status": t.status, "category": t.category, "priority": t.priority,
        "group": t.group, "customer_id": t.customer_id, "customer": t.customer.name or t.customer.remark,
        "assignee": t.assignee.userid if t.assignee else None, "summary": t.summary,
        "trigger_message_id": t.trigger_message_id, "complaint_messages": t.complaint_messages,
        "ack_status": t.ack_status, "created_at": _iso(t.created_at), "assigned_at": _iso(t.assigned_at),
        "accepted_at": _iso(t.accepted_at), "first_response_due_at": _iso(t.first_response_due_at),
        "first_response_at": _iso(t.first_response_at), "resolution_due_at": _iso(t.resolution_due_at),
        "resolved_at": _iso(t.resolved_at), "resolution": t.resolution, "closed_at": _iso(t.closed_at),
        "reopened": t.reopened, "csat": t.csat, "csat_at": _iso(t.csat_at),
    }


def event_json(e: TicketEvent) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "actor": e.actor.userid if e.actor else None, "message_id": e.message_id,
            "detail": e.detail, "created_at": _iso(e.created_at)}
