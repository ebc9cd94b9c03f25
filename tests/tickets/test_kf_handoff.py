"""微信客服 hand-off: a kf complaint routed to an agent who is a servicer of that kf account moves to
them in WeCom's kf workbench (service_state 3); closing the ticket ends the conversation (4)."""

from __future__ import annotations

from sqlalchemy import select

from crm_core.kf_handoff import KfHandoffPolicy
from crm_core.models import OutboxItem
from tests.service.conftest import external_id

COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"


def kf_state(desk, name: str):
    sim = desk.service.sim
    return sim.kf_sessions.state_of(sim, next(iter(sim.kf_accounts)), external_id(sim, name))


async def test_a_kf_ticket_moves_to_the_servicer_and_ends_on_close(desk):
    sim = desk.service.sim
    sim.kf_sessions.add_servicer(next(iter(sim.kf_accounts)), "wangfang")
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    assert ticket.assignee.userid == "wangfang"
    session = kf_state(desk, "孙丽")
    assert (session.state, session.servicer_userid) == (3, "wangfang")
    [closed] = await desk.say("wangfang", f"关闭 {ticket.number}")
    assert ticket.number in closed
    assert kf_state(desk, "孙丽").state == 4
    assert [c["service_state"] for c in sim.kf_sessions.changes] == [3, 4]


async def test_an_agent_who_is_no_servicer_keeps_the_conversation_with_the_bot(desk):
    sim = desk.service.sim
    sim.kf_sessions.add_servicer(next(iter(sim.kf_accounts)), "wangfang", status=1)  # 停止接待
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    assert ticket.assignee.userid == "wangfang" and kf_state(desk, "孙丽").state == 0
    async with desk.service.sessions() as session:
        [row] = (await session.scalars(select(OutboxItem).where(OutboxItem.kind == "kf_service_state"))).all()
    assert row.status == "sent" and "not a serving kf servicer" in row.response["outcome"]
    assert sim.kf_sessions.changes == []


def test_the_hand_off_policy_refuses_what_it_does_not_know():
    assert KfHandoffPolicy.from_toml({"kf_handoff": {"to_servicer": False}}) == KfHandoffPolicy(False, True)
    for bad in ({"to_servicr": True}, {"end_on_close": "yes"}):
        try:
            KfHandoffPolicy.from_toml({"kf_handoff": bad})
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")
