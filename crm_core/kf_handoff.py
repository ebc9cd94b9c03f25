"""微信客服 hand-off: a kf conversation that became a ticket moves to the agent's own kf workbench.

When a ticket from a 微信客服 conversation is assigned to (or transferred to) a support agent, the
conversation is handed to them in WeCom (kf/service_state/trans, state 3), so they answer the customer
in WeCom's kf workbench; when the ticket closes, the conversation is ended there (state 4). Both are
outbox rows ("kf_service_state", keyed by the ticket event), sent after the transaction commits by
scrm.delivery.kf_sessions, which first checks that the agent is one of the account's servicers.
Whether either happens is config/tickets.toml [kf_handoff].
https://developer.work.weixin.qq.com/document/path/94698 (分配客服会话)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import shipped_policy
from crm_core.models import Staff
from crm_core.outbox import OutboxService
from crm_core.ticket_models import Ticket

HUMAN, ENDED = 3, 4  # kf service_state: 由人工接待, 已结束


@dataclass(frozen=True)
class KfHandoffPolicy:
    to_servicer: bool = True  # move the conversation to the assigned agent when they are a kf servicer
    end_on_close: bool = True  # end the conversation in WeCom when its ticket closes

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> KfHandoffPolicy:
        section = raw.get("kf_handoff", {})
        unknown = set(section) - {"to_servicer", "end_on_close"}
        if unknown:
            raise ValueError(f"[kf_handoff] has unknown key(s) {', '.join(sorted(unknown))}")
        values = {k: section[k] for k in ("to_servicer", "end_on_close") if k in section}
        if not all(isinstance(v, bool) for v in values.values()):
            raise ValueError("[kf_handoff] to_servicer and end_on_close are true or false")
        return cls(**values)


shipped_kf_handoff = shipped_policy("tickets.toml", KfHandoffPolicy.from_toml)


async def hand_to_agent(session: AsyncSession, ticket: Ticket, agent: Staff, event_id: int,
                        policy: KfHandoffPolicy) -> bool:
    """Queue the hand-off of the ticket's kf conversation to `agent`; False when there is none to move."""
    if not (policy.to_servicer and ticket.reply_open_kfid and ticket.reply_external_userid):
        return False
    return await _queue(session, ticket, event_id, HUMAN, agent)


async def end_conversation(session: AsyncSession, ticket: Ticket, event_id: int, policy: KfHandoffPolicy) -> bool:
    """Queue ending the ticket's kf conversation in WeCom; False when there is none or config says no."""
    if not (policy.end_on_close and ticket.reply_open_kfid and ticket.reply_external_userid):
        return False
    return await _queue(session, ticket, event_id, ENDED, None)


async def _queue(session: AsyncSession, ticket: Ticket, event_id: int, state: int, agent: Staff | None) -> bool:
    return await OutboxService(session).enqueue(
        idempotency_key=f"ticket-event:{event_id}:kf-state", kind="kf_service_state",
        payload={"open_kfid": ticket.reply_open_kfid, "external_userid": ticket.reply_external_userid,
                 "service_state": state, "servicer_userid": agent.userid if agent else "", "ticket": ticket.number},
        customer_id=ticket.customer_id, staff_id=agent.id if agent else None)
