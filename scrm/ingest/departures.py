"""A rep left the company: their managers hear how many customers now wait for a new owner.

WeCom's own list of what a departed member left behind (externalcontact/get_unassigned_list) is the
truth, not the CRM's owner column: it counts the contacts WeCom keeps under the departed account,
whose messages reach nobody until someone inherits them (`转交 全部 离职人 接手人`).
https://developer.work.weixin.qq.com/document/path/92124

The directory sync (scrm.sync.directory.Directory.on_departure) calls `notify_departure` when a `delete_user` callback arrives or a member's
status turns 离职; it runs in the caller's transaction, and the notice is one outbox row per
manager and departure, so a repeated callback tells nobody twice.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.audit import AuditService
from crm_core.models import Staff
from crm_core.outbox import OutboxService
from crm_core.scope import managers_of

log = logging.getLogger(__name__)


class UnassignedApi(Protocol):
    async def unassigned_customers(self) -> list[dict[str, Any]]: ...


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
