"""离职继承 / 在职继承 and 微信客服 session endpoints: the simulator's wire format, limits and errcodes,
through the real client over HTTP. WeCom's 24 hours are `TransferBook.settle`, called by the test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.wecom.client import WeComClient
from connectors.wecom.errors import InvalidUserError, WeComError
from connectors.wecom.simulator import directory as company
from connectors.wecom.simulator.sample_data import DEMO_OPEN_KFID
from connectors.wecom.simulator.state import SimulatorState
from tests.support.clock import Clock

MakeClient = Callable[..., WeComClient]
ZHAO_LEI = "wmDemoZhaoLei0000000000000000001"  # zhangwei's
SUN_LI = "wmDemoSunLi000000000000000000002"  # zhangwei's
WU_MIN = "wmDemoWuMin000000000000000000004"  # lina's
ZHENG_HAO = "wmDemoZhengHao000000000000000005"  # lina's
FENG_XUE = "wmDemoFengXue0000000000000000006"  # lina's


def follow(sim: SimulatorState, external_userid: str) -> list[str]:
    return [f["userid"] for f in sim.external_contacts[external_userid]["follow_user"]]


async def test_a_departed_members_customers_are_listed_then_inherited(make_client: MakeClient,
                                                                      sim_state: SimulatorState) -> None:
    client = make_client()
    assert await client.unassigned_customers() == []
    company.leave(sim_state, "lina")
    left = await client.unassigned_customers()
    assert sorted(r["external_userid"] for r in left) == sorted([WU_MIN, ZHENG_HAO, FENG_XUE])
    assert {r["handover_userid"] for r in left} == {"lina"} and all(r["dimission_time"] for r in left)
    page = await client.call("POST", "externalcontact/get_unassigned_list", json={"page_size": 2})
    assert len(page["info"]) == 2 and page["is_last"] is False and page["next_cursor"]
    answer = await client.transfer_customers("lina", "zhangwei", [WU_MIN, ZHENG_HAO, ZHAO_LEI], resigned=True)
    assert answer["customer"] == [{"external_userid": WU_MIN, "errcode": 0}, {"external_userid": ZHENG_HAO, "errcode": 0},
                                  {"external_userid": ZHAO_LEI, "errcode": 40131}]  # not lina's customer
    assert [r["external_userid"] for r in await client.unassigned_customers()] == [FENG_XUE]
    assert {r["status"] for r in await client.transfer_results("lina", "zhangwei", resigned=True)} == {2}
    sim_state.transfer_book.refuse(ZHENG_HAO)
    sim_state.transfer_book.settle(sim_state)
    results = {r["external_userid"]: r for r in await client.transfer_results("lina", "zhangwei", resigned=True)}
    assert (results[WU_MIN]["status"], results[ZHENG_HAO]["status"]) == (1, 3) and results[WU_MIN]["takeover_time"]
    assert follow(sim_state, WU_MIN) == ["zhangwei"] and follow(sim_state, ZHENG_HAO) == []  # a refusal is lost
    assert await client.transfer_results("lina", "zhangwei", resigned=False) == []  # on-the-job results are apart


async def test_on_the_job_transfers_carry_a_message_and_are_limited_to_two_in_90_days(
        make_client: MakeClient, sim_state: SimulatorState, clock: Clock) -> None:
    client = make_client()
    book = sim_state.transfer_book
    for giver, taker in (("zhangwei", "lina"), ("lina", "zhangwei")):
        answer = await client.transfer_customers(giver, taker, [ZHAO_LEI], resigned=False, transfer_success_msg="您好")
        assert answer["customer"] == [{"external_userid": ZHAO_LEI, "errcode": 0}]
        again = await client.transfer_customers(giver, taker, [ZHAO_LEI], resigned=False)
        assert again["customer"][0]["errcode"] == 40129  # 当前客户正在转接中
        book.settle(sim_state)
        assert follow(sim_state, ZHAO_LEI) == [taker]
    assert book.transfers[0].message == "您好"
    third = await client.transfer_customers("zhangwei", "lina", [ZHAO_LEI], resigned=False)
    assert third["customer"][0]["errcode"] == 40128  # 90 个自然日内仅可被转接 2 次
    clock.advance(91 * 24 * 3600)
    fourth = await client.transfer_customers("zhangwei", "lina", [ZHAO_LEI], resigned=False)
    assert fourth["customer"][0]["errcode"] == 0


@pytest.mark.parametrize(("body", "resigned", "errcode"), [
    ({"handover_userid": "zhangwei", "takeover_userid": "lina", "external_userid": [ZHAO_LEI]}, True, 40097),
    ({"handover_userid": "lina", "takeover_userid": "nobody", "external_userid": [WU_MIN]}, False, 40003),
    ({"handover_userid": "zhangwei", "takeover_userid": "lina", "external_userid": []}, False, 41035),
    ({"handover_userid": "zhangwei", "takeover_userid": "lina", "external_userid": [ZHAO_LEI] * 101}, False, 40058),
    ({"handover_userid": "zhangwei", "takeover_userid": "lina", "external_userid": [ZHAO_LEI],
      "transfer_success_msg": "长" * 201}, False, 40058),
    ({"takeover_userid": "lina", "external_userid": [ZHAO_LEI]}, False, 41009),
    ({"handover_userid": "zhangwei", "takeover_userid": "zhangwei", "external_userid": [ZHAO_LEI]}, False, 40130),
])
async def test_bad_transfer_calls_get_wecoms_errcode_and_start_nothing(make_client: MakeClient, sim_state: SimulatorState,
                                                                       body: dict, resigned: bool, errcode: int) -> None:
    api = "externalcontact/resigned/transfer_customer" if resigned else "externalcontact/transfer_customer"
    with pytest.raises(WeComError) as raised:
        await make_client().call("POST", api, json=body)
    assert raised.value.errcode == errcode and sim_state.transfer_book.transfers == []


async def test_a_departed_member_cannot_hand_over_on_the_job(make_client: MakeClient, sim_state: SimulatorState) -> None:
    company.leave(sim_state, "lina")
    with pytest.raises(InvalidUserError):
        await make_client().transfer_customers("lina", "zhangwei", [WU_MIN], resigned=False)
    with pytest.raises(WeComError) as raised:
        await make_client().call("POST", "externalcontact/get_unassigned_list", json={"page_size": 1001})
    assert raised.value.errcode == 40058


async def test_kf_sessions_move_only_to_serving_servicers_and_end(make_client: MakeClient, sim_state: SimulatorState,
                                                                  clock: Clock) -> None:
    client = make_client()
    sessions = sim_state.kf_sessions
    sessions.add_servicer(DEMO_OPEN_KFID, "wangfang")
    sessions.add_servicer(DEMO_OPEN_KFID, "lina", status=1)
    assert await client.kf_servicers(DEMO_OPEN_KFID) == [{"userid": "lina", "status": 1},
                                                         {"userid": "wangfang", "status": 0}]
    assert (await client.kf_service_state(DEMO_OPEN_KFID, SUN_LI))["service_state"] == 4  # 未开始
    with pytest.raises(WeComError) as raised:
        await client.kf_change_service_state(DEMO_OPEN_KFID, SUN_LI, 3, "wangfang")
    assert raised.value.errcode == 95016  # an ended (or unstarted) session cannot be changed by API
    sim_state.kf_customer_writes(DEMO_OPEN_KFID, SUN_LI, "在吗")
    assert (await client.kf_service_state(DEMO_OPEN_KFID, SUN_LI))["service_state"] == 0
    for servicer, errcode in (("lina", 95019), ("zhangwei", 95014)):  # 停止接待, and not a servicer at all
        with pytest.raises(WeComError) as raised:
            await client.kf_change_service_state(DEMO_OPEN_KFID, SUN_LI, 3, servicer)
        assert raised.value.errcode == errcode
    assert (await client.kf_change_service_state(DEMO_OPEN_KFID, SUN_LI, 3, "wangfang"))["msg_code"]
    state = await client.kf_service_state(DEMO_OPEN_KFID, SUN_LI)
    assert (state["service_state"], state["servicer_userid"]) == (3, "wangfang")
    await client.kf_change_service_state(DEMO_OPEN_KFID, SUN_LI, 4)
    assert (await client.kf_service_state(DEMO_OPEN_KFID, SUN_LI))["service_state"] == 4
    clock.advance(60)
    sim_state.kf_customer_writes(DEMO_OPEN_KFID, SUN_LI, "还有个问题")
    assert (await client.kf_service_state(DEMO_OPEN_KFID, SUN_LI))["service_state"] == 0  # a new session
    with pytest.raises(WeComError) as raised:
        await client.kf_servicers("wkNoSuchAccount")
    assert raised.value.errcode == 95004
