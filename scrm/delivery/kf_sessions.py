"""Sends a "kf_service_state" outbox row: a 微信客服 conversation handed to a servicer (3) or ended (4).

WeCom only lets a conversation move to a servicer who is 接待中 on that kf account (kf/servicer/list,
document/path/96420), and only from some states (kf/service_state/get first, document/path/94698): an
agent who is no servicer keeps answering through the bot, a conversation that already ended stays
ended, and a change that already happened (a row sent again after a crash) is not made twice.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.kf_handoff import ENDED, HUMAN
from crm_core.models import OutboxItem

log = logging.getLogger(__name__)

SERVING = 0  # servicer_list status 接待中


class KfSessionApi(Protocol):
    async def kf_servicers(self, open_kfid: str) -> list[dict[str, Any]]: ...
    async def kf_service_state(self, open_kfid: str, external_userid: str) -> dict[str, Any]: ...
    async def kf_change_service_state(self, open_kfid: str, external_userid: str, service_state: int,
                                      servicer_userid: str = "") -> dict[str, Any]: ...


async def send_kf_service_state(wecom: KfSessionApi, _: AsyncSession, item: OutboxItem) -> dict[str, Any]:
    payload = item.payload
    kfid, customer, target = payload["open_kfid"], payload["external_userid"], int(payload["service_state"])
    servicer = payload.get("servicer_userid", "")
    outcome = await _change(wecom, kfid, customer, target, servicer)
    log.info("kf conversation of ticket %s: %s", payload.get("ticket", "?"), outcome)
    return {"status": "sent", "sent_at": utcnow(), "response": {"outcome": outcome}, "last_error": ""}


async def _change(wecom: KfSessionApi, kfid: str, customer: str, target: int, servicer: str) -> str:
    if target == HUMAN:
        serving = {s.get("userid") for s in await wecom.kf_servicers(kfid) if s.get("status") == SERVING}
        if servicer not in serving:
            return f"kept: {servicer} is not a serving kf servicer"
    current = await wecom.kf_service_state(kfid, customer)
    state, now_serving = current.get("service_state"), current.get("servicer_userid", "")
    if state == ENDED:
        return "kept: the conversation has ended"
    if state == target and (target != HUMAN or now_serving == servicer):
        return "already so"
    await wecom.kf_change_service_state(kfid, customer, target, servicer if target == HUMAN else "")
    return f"moved to {servicer}" if target == HUMAN else "ended"
