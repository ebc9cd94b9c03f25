"""JSON API (/api/v1) for integrators, plus the health endpoints every process serves.

Two kinds of bearer token: the service token (SCRM_API_TOKEN), for integrations, sees every
customer; a staff token (`scrm api-token issue USERID`) acts for that staff member and sees what
they see in chat (crm_core.scope), with refusals and views audit-logged under their userid. What a
staff token may not see answers 404 exactly as what does not exist, so ids cannot be probed.

Lists answer {"items": [...], "total": N, "next": cursor-or-null}; `next` is passed back as
`cursor`. A filter given with an empty value (`?since=`) is not applied, as if absent. Views
translate domain errors into HTTP errors and hold no business logic. scrm.http.openapi describes it all,
and tests/service/test_api_schema.py holds the two to each other.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from crm_core.api_tokens import TOKEN_PREFIX, ApiTokenService
from crm_core.audit import AuditService
from crm_core.customers import CustomerNotFoundError, CustomerService
from crm_core.errors import NotFoundError
from crm_core.messages import MessageFilter, MessageService
from crm_core.models import Customer, Message, Staff
from crm_core.scope import Scope, scope_for
from crm_core.staff import StaffService
from crm_core.targets import (MAX_AMOUNT, AttainmentRow, SubjectNotFoundError, TargetNotAllowedError, TargetService,
                              department_names, department_subject, month_of, staff_subject)
from scrm import keys
from scrm.http.openapi import OPENAPI
from scrm.resources import database_ok, redis_ok

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# Row ids are 64-bit: 18 digits always fit, and a longer number would overflow the database driver.
_ID = re.compile(r"[0-9]{1,18}")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
# RFC 3339 date-time (what the schema's `format: date-time` promises); fromisoformat alone would
# also take week dates, missing seconds and other ISO 8601 forms the schema rejects.
_MONTH = re.compile(r"20[0-9]{2}-(0[1-9]|1[0-2])")  # what a target's month is written as: 2026-12
_USERID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.@-]{0,63}")  # WeCom: "只能由数字、字母和“_-@.”四种字符组成"
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def health_routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def api_routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/openapi.json", openapi),
        web.get("/api/v1/customers", list_customers),
        web.get("/api/v1/customers/{customer_id}", get_customer),
        web.get("/api/v1/customers/{customer_id}/messages", customer_messages),
        web.get("/api/v1/messages", list_messages),
        web.get("/api/v1/staff", list_staff),
        web.get("/api/v1/targets", list_targets),
        web.put("/api/v1/targets", set_target),
    ]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "roles": sorted(request.app[keys.ROLES])})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when the database and Redis both answer; load balancers stop routing otherwise."""
    checks = {"database": await database_ok(request.app[keys.ENGINE]), "redis": await redis_ok(request.app[keys.REDIS])}
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


@dataclass(frozen=True)
class Caller:
    actor: str  # in the audit log: "api" for the service token, else the staff member's userid
    scope: Scope
    staff_id: int | None = None


async def _authorize(request: web.Request, session) -> Caller:
    """Every /api/v1 view starts here: who is asking (their bearer token), then the one rule for
    every parameter."""
    expected = request.app[keys.SETTINGS].api_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # Tokens are ASCII; anything else (aiohttp keeps bytes that are not UTF-8 as lone surrogates,
    # which no hash or comparison can take) is no token we issued: a 401 like any wrong one.
    given = given.strip() if scheme.lower() == "bearer" and header.isascii() else ""
    if expected and hmac.compare_digest(given.encode(), expected.encode()):
        caller = Caller("api", Scope(0, None))
    elif given.startswith(TOKEN_PREFIX) and (staff := await ApiTokenService(session).staff_for(given)) is not None:
        caller = Caller(staff.userid, await scope_for(session, staff), staff.id)
    elif not expected and not given.startswith(TOKEN_PREFIX):
        raise _error(web.HTTPUnauthorized, "the API is disabled: set SCRM_API_TOKEN, or issue staff tokens "
                                           "with `scrm api-token issue USERID`")
    else:
        raise _error(web.HTTPUnauthorized, "missing, wrong or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    _reject_nul(request)
    return caller


def hidden(session, caller: Caller, action: str, customer_id: int, not_found: Exception,
           detail: str = "") -> web.HTTPException:
    """A staff token asking for what is not theirs: the attempt is on file, and the answer is the
    404 of `not_found`, word for word what a nonexistent id gets."""
    AuditService(session).record(actor=caller.actor, action=f"{action}_denied", customer_id=customer_id, detail=detail)
    return _error(web.HTTPNotFound, str(not_found))


def _reject_nul(request: web.Request) -> None:
    """PostgreSQL text cannot hold NUL, so a filter with one would fail in the driver (a 500)
    instead of matching nothing; no name, id or cursor ever contains one."""
    values = [*request.query.values(), *request.match_info.values()]
    if any("\x00" in value for value in values):
        raise _error(web.HTTPBadRequest, "parameters must not contain NUL characters")


def _error(cls: type[web.HTTPException], message: str, **kwargs) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json", **kwargs)


def _page_params(request: web.Request) -> tuple[int, int]:
    """(limit, id to start after). An empty cursor is the first page, like an absent one."""
    raw_limit = request.query.get("limit")
    if raw_limit is None:
        limit = DEFAULT_LIMIT
    elif _INTEGER.fullmatch(raw_limit):
        limit = int(raw_limit)
    else:
        raise _error(web.HTTPBadRequest, "limit must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        raise _error(web.HTTPBadRequest, f"limit must be between 1 and {MAX_LIMIT}")
    cursor = request.query.get("cursor", "")
    if cursor and not _ID.fullmatch(cursor):
        raise _error(web.HTTPBadRequest, "cursor must be the `next` value of the previous page")
    return limit, int(cursor or 0)


def _id_param(request: web.Request, name: str) -> int | None:
    """An optional id filter from the query string: None when absent or empty, 400 when not an id."""
    raw = request.query.get(name, "")
    if not raw:
        return None
    if not _ID.fullmatch(raw):
        raise _error(web.HTTPBadRequest, f"{name} must be an id (up to 18 digits)")
    return int(raw)


def _page(items: list, total: int, limit: int, render) -> web.Response:
    more = len(items) > limit
    items = items[:limit]
    return web.json_response(
        {"items": [render(i) for i in items], "total": total, "next": str(items[-1].id) if more and items else None}
    )


def _customer_id(request: web.Request) -> int:
    raw = request.match_info["customer_id"]
    if not _ID.fullmatch(raw):
        raise _error(web.HTTPNotFound, "no such customer")
    return int(raw)


async def _visible_customer(session, caller: Caller, customer_id: int, action: str) -> Customer:
    """The customer, if it exists and the caller may see it; a 404 alike for either failure."""
    try:
        customer = await CustomerService(session).get(customer_id)
    except NotFoundError as exc:
        raise _error(web.HTTPNotFound, str(exc))
    if not caller.scope.allows(customer):
        refusal = hidden(session, caller, action, customer.id, CustomerNotFoundError(f"customer {customer_id} does not exist"))
        await session.commit()
        raise refusal
    return customer


async def list_customers(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        limit, after = _page_params(request)
        q = request.query.get("q", "").strip()
        items, total = await CustomerService(session).search(q, scope=caller.scope, after_id=after, limit=limit + 1)
        AuditService(session).record(actor=caller.actor, action="customer.search", detail=f"q={q!r} results={total}")
        await session.commit()
    return _page(items, total, limit, customer_json)


async def get_customer(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        customer = await _visible_customer(session, caller, _customer_id(request), "customer.view")
        AuditService(session).record(actor=caller.actor, action="customer.view", customer_id=customer.id)
        await session.commit()
    return web.json_response(customer_json(customer))


async def customer_messages(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        customer_id = _customer_id(request)
        limit, after = _page_params(request)
        await _visible_customer(session, caller, customer_id, "customer.messages")
        items, total = await MessageService(session).list(MessageFilter(customer_id=customer_id), after_id=after, limit=limit + 1)
        AuditService(session).record(actor=caller.actor, action="customer.messages", customer_id=customer_id)
        await session.commit()
    return _page(items, total, limit, message_json)


async def list_messages(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        limit, after = _page_params(request)
        direction = request.query.get("direction") or None
        if direction not in (None, "in", "out"):
            raise _error(web.HTTPBadRequest, "direction must be 'in' or 'out'")
        since = _parse_since(request.query.get("since"))
        flt = MessageFilter(channel=request.query.get("channel") or None, direction=direction, since=since,
                            owner_ids=caller.scope.owner_ids)
        items, total = await MessageService(session).list(flt, after_id=after, limit=limit + 1)
        AuditService(session).record(actor=caller.actor, action="messages.list", detail=f"channel={flt.channel} since={since}")
        await session.commit()
    return _page(items, total, limit, message_json)


async def list_staff(request: web.Request) -> web.Response:
    """The colleague directory: the same for every caller (it holds no customer data)."""
    async with request.app[keys.SESSIONS]() as session:
        await _authorize(request, session)
        limit, after = _page_params(request)
        items = await StaffService(session).list(after_id=after, limit=limit + 1)
        total = await StaffService(session).count()
        await session.commit()  # a staff token's last use
    return _page(items, total, limit, staff_json)


async def list_targets(request: web.Request) -> web.Response:
    """This month's (or `month`'s) targets and attainment, for what the caller sees: the service token
    every rep and department, a staff token what that person sees (crm_core.targets)."""
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        label = request.query.get("month", "")
        if label and not _MONTH.fullmatch(label):
            raise _error(web.HTTPBadRequest, "month must be written as YYYY-MM, e.g. 2026-12")
        tz = request.app[keys.SETTINGS].tz
        label = label or f"{request.app[keys.CLOCK]().astimezone(tz):%Y-%m}"
        department = _id_param(request, "department")
        viewer = await session.get(Staff, caller.staff_id) if caller.staff_id is not None else None
        attainment = await TargetService(session).attainment(viewer, month_of(label, tz), department_id=department)
        if department is not None and not attainment.departments and department not in await _seen_departments(
                session, viewer):
            raise _error(web.HTTPNotFound, f"department {department} does not exist")
        await session.commit()  # a staff token's last use
    return web.json_response({"month": label, "departments": [target_json(r) for r in attainment.departments],
                              "reps": [target_json(r) for r in attainment.reps]})


async def _seen_departments(session, viewer: Staff | None) -> set[int]:
    """The departments `viewer` may ask about (None: every one the directory knows)."""
    if viewer is None or viewer.role == "admin":
        return set(await department_names(session))
    return set(viewer.department_ids or []) if viewer.role == "manager" else set()


async def set_target(request: web.Request) -> web.Response:
    """Set (or replace) one rep's or department's target for a month. The service token may set any; a
    staff token what that person may set in chat (a manager within their departments, an admin any)."""
    async with request.app[keys.SESSIONS]() as session:
        caller = await _authorize(request, session)
        try:
            body = await request.json()
        except ValueError:
            raise _error(web.HTTPBadRequest, "the body must be a JSON object")
        if not isinstance(body, dict):
            raise _error(web.HTTPBadRequest, "the body must be a JSON object")
        month, amount = body.get("month"), _whole(body.get("amount"))
        if not isinstance(month, str) or not _MONTH.fullmatch(month):
            raise _error(web.HTTPBadRequest, "month must be written as YYYY-MM, e.g. 2026-12")
        if amount is None or not 1 <= amount <= MAX_AMOUNT:
            raise _error(web.HTTPBadRequest, f"amount must be a whole number of yuan from 1 to {MAX_AMOUNT}")
        if ("staff" in body) == ("department" in body):
            raise _error(web.HTTPBadRequest, "name either staff (a WeCom userid) or department (its id), not both")
        userid, department = body.get("staff"), _whole(body.get("department"))
        if "staff" in body and not (isinstance(userid, str) and _USERID.fullmatch(userid)):
            raise _error(web.HTTPBadRequest, "staff must be a WeCom userid")
        if "department" in body and (department is None or not 1 <= department <= 10**18 - 1):
            raise _error(web.HTTPBadRequest, "department must be a department id")
        try:
            subject = await (staff_subject(session, userid) if "staff" in body else department_subject(session, department))
        except SubjectNotFoundError:
            what = f"staff member {userid}" if "staff" in body else f"department {department}"
            raise _error(web.HTTPNotFound, f"no active {what}")
        actor = await session.get(Staff, caller.staff_id) if caller.staff_id is not None else None
        try:
            change = await TargetService(session).set(subject, month, amount, actor=actor, actor_label=caller.actor,
                                                      at=request.app[keys.CLOCK]())
        except TargetNotAllowedError:
            AuditService(session).record(actor=caller.actor, action="target.set_denied",
                                         detail=f"{subject.kind}={subject.id} month={month}")
            await session.commit()
            raise _error(web.HTTPForbidden, f"{caller.actor} may not set this target: managers set their departments' "
                                            "and their colleagues' there, admins any")
        await session.commit()
    return web.json_response({"month": change.month, "kind": subject.kind, "id": subject.id, "name": subject.name,
                              "userid": subject.userid or None, "amount": change.amount, "previous": change.previous})


def _whole(value: Any) -> int | None:
    """A JSON number that is a whole number (5 or 5.0), else None; true and false are no numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 2**63):
        return None
    return int(value)


def _parse_since(value: str | None) -> datetime | None:
    """An RFC 3339 time with its UTC offset, returned in UTC; empty or absent means no filter."""
    if not value:
        return None
    if not _DATE_TIME.fullmatch(value):
        raise _error(web.HTTPBadRequest, "since must be an RFC 3339 time with a UTC offset, "
                                         "e.g. 2026-11-22T08:00:00+08:00 or 2026-11-22T00:00:00Z")
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # 2026-02-30, or 9999-12-31T23:00:00-14:00 (past year 9999 in UTC)
        raise _error(web.HTTPBadRequest, "since is not a valid time")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def customer_json(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id, "name": c.name, "company": c.company, "phone": c.phone, "gender": c.gender, "remark": c.remark,
        "description": c.description, "tags": c.wecom_tags, "lifecycle": c.lifecycle,
        "lifecycle_changed_at": _iso(c.lifecycle_changed_at), "lead_score": c.lead_score,
        "lead_score_at": _iso(c.lead_score_at),
        "owner": c.owner.userid if c.owner else None, "churned_at": _iso(c.churned_at),
        "last_contact_at": _iso(c.last_contact_at), "created_at": _iso(c.created_at),
        "identities": [{"channel": i.channel, "external_id": i.external_id} for i in c.identities],
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id, "channel": m.channel, "direction": m.direction, "msg_type": m.msg_type, "text": m.text,
        "sender": m.sender, "recipient": m.recipient, "customer_id": m.customer_id, "staff_id": m.staff_id,
        "external_msg_id": m.external_msg_id, "sent_at": _iso(m.sent_at), "analysis": m.analysis,
    }


def target_json(r: AttainmentRow) -> dict[str, Any]:
    return {"kind": r.kind, "id": r.id, "name": r.name, "userid": r.userid or None, "target": r.target,
            "won_amount": r.won_amount, "won_deals": r.won_deals, "attainment": r.ratio}


def staff_json(s: Staff) -> dict[str, Any]:
    return {"id": s.id, "userid": s.userid, "name": s.name, "role": s.role, "department_ids": s.department_ids,
            "position": s.position, "active": s.active}
