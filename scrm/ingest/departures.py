"""A rep left the company: their managers hear how many customers now wait for a new owner.

WeCom's own list of what a departed member left behind (externalcontact/get_unassigned_list) is the
truth, not the CRM's owner column: it counts the contacts WeCom keeps under the departed account,
whose messages reach nobody until someone inherits them (`转交 全部 离职人 接手人`).
https://developer.work.weixin.qq.com/document/path/92124

The directory sync (scrm.sync.directory.Directory.on_departure) calls `request_departure_notice` when a
`delete_user` callback arrives or a member's status turns 离职. That only adds a `departure_notice`
outbox row to the caller's transaction, so the departure commits at once whatever WeCom is doing; the
outbox sender (scrm.delivery.sender) then runs `send_departure_notice`: it reads WeCom's list
(`notify_departure`) and adds one app message per manager. A WeCom that fails the read fails the row,
which the outbox retries by the usual rules (scrm.retries). Each notice's key names the manager and the
departure, so a step done again (a retried row, a repeated callback) tells nobody twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.audit import AuditService
from crm_core.db import utcnow
from crm_core.models import OutboxItem, Staff
from crm_core.outbox import OutboxService
from crm_core.scope import managers_of

log = logging.getLogger(__name__)

DEPARTURE_NOTICE = "departure_notice"  # the outbox kind


class UnassignedApi(Protocol):
    async def unassigned_customers(self) -> list[dict[str, Any]]: ...


async def request_departure_notice(session: AsyncSession, staff: Staff) -> None:
    """Queue the managers' notice of `staff`'s departure, in the caller's transaction (no WeCom call).

    The row carries no staff_id: nobody is to be told if it is given up on (the departed member least
    of all); their customers can still be handed over with `转交`."""
    await OutboxService(session).enqueue(idempotency_key=f"{DEPARTURE_NOTICE}:{staff.id}:{uuid.uuid4().hex}",
                                         kind=DEPARTURE_NOTICE, payload={"staff_id": staff.id, "userid": staff.userid})


async def send_departure_notice(wecom: UnassignedApi, session: AsyncSession, item: OutboxItem) -> dict[str, Any]:
    """Deliver a `departure_notice` row: WeCom's list read, the managers' notices queued beside it."""
    staff = await session.get(Staff, int(item.payload["staff_id"]))
    waiting = await notify_departure(session, wecom, staff) if staff is not None else 0
    return {"status": "sent", "sent_at": utcnow(), "response": {"unassigned_customers": waiting}, "last_error": ""}


async def notify_departure(session: AsyncSession, wecom: UnassignedApi, staff: Staff) -> int:
    """Tell `staff`'s managers how many customers WeCom holds for them unassigned; returns that count."""
    left_behind = [row for row in await wecom.unassigned_customers() if row.get("handover_userid") == staff.userid]
    AuditService(session).record(actor="wecom", action="staff.customers_waiting",
                                 detail=f"staff={staff.id} unassigned_customers={len(left_behind)}")
    if not left_behind:
        log.info("%s left with no customers waiting in WeCom", staff.userid)
        return 0
    dimission = max(int(row.get("dimission_time") or 0) for row in left_behind)
    text = render("departure.notice", name=staff.name or staff.userid, customers=len(left_behind))
    outbox = OutboxService(session)
    for manager in await managers_of(session, staff):
        await outbox.enqueue(idempotency_key=f"departure:{staff.id}:{dimission}:{manager.id}", kind="app_message",
                             payload={"touser": manager.userid, "msgtype": "text", "text": {"content": text}},
                             staff_id=manager.id)
    return len(left_behind)
