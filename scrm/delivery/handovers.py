"""Sends a handover's transfer calls to WeCom, and follows them until each customer's outcome is known.

A "customer_transfer" outbox row is one transfer call (≤ 100 customers). WeCom has no idempotency
key for transfers, so before each attempt (a row sent again after a crash: WeCom accepted, our commit
never happened) transfer_result says which of its customers WeCom already has on their way, and only
the others are sent; a customer WeCom still finds in transfer answers 40129, which counts as on its way too. So a
customer's transfer reaches WeCom once per handover.

The scheduler job (`make_handover_follow_job`) asks transfer_result for every handover still waiting
(WeCom takes over after 24 hours unless the customer refuses) and settles what WeCom decided; a
transfer_fail callback (scrm.ingest.transfer_failures) can settle a refusal sooner.
https://developer.work.weixin.qq.com/document/path/96333 (查询客户接替状态)
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.errors import WeComError
from crm_core.db import utcnow
from crm_core.handover import HandoverService
from crm_core.models import Handover, OutboxItem
from scheduler.runner import JobContext, JobFunc

log = logging.getLogger(__name__)

STILL_WAITING = 2  # transfer_result: 等待接替


class TransferApi(Protocol):
    async def transfer_customers(self, handover_userid: str, takeover_userid: str, external_userids: list[str], *,
                                 resigned: bool, transfer_success_msg: str = "") -> dict[str, Any]: ...
    async def transfer_results(self, handover_userid: str, takeover_userid: str, *,
                               resigned: bool) -> list[dict[str, Any]]: ...


async def send_transfer(wecom: TransferApi, session: AsyncSession, item: OutboxItem) -> dict[str, Any]:
    """Deliver one customer_transfer row; the per-customer answers commit with the row's "sent"."""
    service = HandoverService(session)
    batch = await service.batch(int(item.payload["handover_id"]), int(item.payload["batch"]))
    response: dict[str, Any] = {"customer": []}
    if batch is not None and batch.customers:
        handover = batch.handover
        leaving, receiving = handover.from_staff.userid, handover.to_staff.userid
        # An earlier attempt may have reached WeCom before it failed (however it failed: a lease that
        # expired, a connection lost before the commit), so WeCom is asked first, every time.
        # A transfer WeCom started stays 等待接替 for 24 hours, far longer than any retry takes.
        on_their_way = {row["external_userid"] for row in await wecom.transfer_results(
            leaving, receiving, resigned=batch.resigned) if row.get("status") == STILL_WAITING}
        errcodes = {eid: 0 for eid in on_their_way}
        to_send = [row.external_userid for row in batch.customers if row.external_userid not in on_their_way]
        if to_send:
            response = await wecom.transfer_customers(leaving, receiving, to_send, resigned=batch.resigned,
                                                      transfer_success_msg=handover.message)
            errcodes.update({str(c.get("external_userid")): int(c.get("errcode", 0)) for c in response.get("customer") or []})
        await service.started(batch, errcodes)
    return {"status": "sent", "sent_at": utcnow(), "response": response, "last_error": ""}


def make_handover_follow_job(wecom: TransferApi) -> JobFunc:
    """The scheduler job: ask WeCom how each waiting handover stands and settle what it decided."""

    async def follow_handovers(ctx: JobContext) -> str:
        async with ctx.sessions() as session:
            handovers = [(h.id, h.kind, h.from_staff.userid, h.to_staff.userid)
                         for h in await HandoverService(session).waiting_handovers()]
        decided, errors = 0, 0
        for handover_id, kind, leaving, receiving in handovers:
            try:  # WeCom is asked between transactions: no lock is held during HTTP
                rows = await wecom.transfer_results(leaving, receiving, resigned=kind == "resigned")
            except WeComError as exc:
                errors += 1
                log.warning("handover %s: transfer_result failed: %s", handover_id, exc)
                if exc.retryable:
                    break  # WeCom is unavailable: the next run picks up where this one stands
                continue
            async with ctx.sessions() as session:
                handover = await session.get(Handover, handover_id)
                decided += await HandoverService(session).outcomes(handover, {
                    str(row["external_userid"]): int(row.get("status", 0)) for row in rows})
                await session.commit()
        summary = f"{len(handovers)} waiting handover(s) checked: {decided} customer outcome(s) settled"
        return summary + (f"; {errors} WeCom error(s)" if errors else "")

    return follow_handovers

