"""The outbox: everything we send is first a row with a unique idempotency key.

Producers (bot replies, alerts, scheduled care) call `enqueue` inside their own transaction,
so the decision to send and the record of it commit together; the sender loop delivers later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import OutboxItem
from crm_core.sql import insert_if_absent

# customer_transfer: one WeCom transfer call of a handover (crm_core.handover); kf_service_state: a
# 微信客服 conversation handed to a servicer or ended (crm_core.kf_handoff); departure_notice: WeCom's
# unassigned list read for a departed member, and their managers told (scrm.ingest.departures).
KINDS = ("app_message", "kf_message", "msg_template", "welcome_msg", "contact_way", "customer_transfer",
         "kf_service_state", "mark_tag", "departure_notice")


class OutboxService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def enqueue(
        self,
        *,
        idempotency_key: str,
        kind: str,
        payload: dict[str, Any],
        customer_id: int | None = None,
        staff_id: int | None = None,
        not_before: datetime | None = None,
    ) -> bool:
        """Add a send to the caller's transaction; False when that key was enqueued before."""
        if kind not in KINDS:
            raise ValueError(f"unknown outbox kind {kind!r}; expected one of {KINDS}")
        now = utcnow()
        new_id = await insert_if_absent(
            self.session,
            OutboxItem,
            {"idempotency_key": idempotency_key, "kind": kind, "payload": payload, "status": "pending",
             "attempts": 0, "last_error": "", "locked_by": "", "customer_id": customer_id, "staff_id": staff_id,
             "available_at": not_before or now, "created_at": now},
            ["idempotency_key"],
        )
        return new_id is not None

    async def failed(self, limit: int = 100) -> list[OutboxItem]:
        stmt = select(OutboxItem).where(OutboxItem.status == "parked").order_by(OutboxItem.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())
