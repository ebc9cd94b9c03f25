"""Group-send task results (get_groupmsg_task, get_groupmsg_send_result): the simulator's wire
format and the client's paging, with the rep confirming the task in between."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient

from connectors.wecom.client import WeComClient
from connectors.wecom.errors import WeComError
from connectors.wecom.simulator.server import create_simulator_app
from connectors.wecom.simulator.state import SimulatorState, WelcomeCode
from tests.support.clock import Clock

MakeClient = Callable[..., WeComClient]
ZHAO_LEI = "wmDemoZhaoLei0000000000000000001"
SUN_LI = "wmDemoSunLi000000000000000000002"
ZHOU_JIE = "wmDemoZhouJie0000000000000000003"
WU_MIN = "wmDemoWuMin000000000000000000004"  # followed by lina
HE_JUN = "wmDemoHeJun000000000000000000007"  # followed by wangfang
LUO_YAN = "wmDemoLuoYan00000000000000000008"  # followed by liuyang


def greeting(*customers: str, sender: str | None = "zhangwei") -> dict:
    payload = {"chat_type": "single", "external_userid": list(customers), "text": {"content": "生日快乐！"}}
    return payload | ({"sender": sender} if sender else {})


async def test_rep_confirms_and_each_customer_gets_it(make_client: MakeClient, sim_state: SimulatorState,
                                                      clock: Clock) -> None:
    client = make_client()
    msgid = (await client.add_msg_template(greeting(ZHAO_LEI, SUN_LI)))["msgid"]
    before = await client.groupmsg_task_list(msgid)
    waiting = await client.groupmsg_send_list(msgid, "zhangwei")
    clock.advance(3600)
    assert sim_state.confirm_msg_template(msgid, "zhangwei") == {ZHAO_LEI: 1, SUN_LI: 1}
    after = await client.groupmsg_task_list(msgid)
    results = await client.groupmsg_send_list(msgid, "zhangwei")
    assert before == [{"userid": "zhangwei", "status": 0}]
    assert [(r["external_userid"], r["status"], "send_time" in r) for r in waiting] == [
        (ZHAO_LEI, 0, False), (SUN_LI, 0, False)]
    assert after == [{"userid": "zhangwei", "status": 2, "send_time": int(clock())}]
    assert {(r["external_userid"], r["userid"], r["status"], r["send_time"]) for r in results} == {
        (ZHAO_LEI, "zhangwei", 1, int(clock())), (SUN_LI, "zhangwei", 1, int(clock()))}


async def test_pages_follow_next_cursor_to_the_end(make_client: MakeClient) -> None:
    client = make_client()
    everyone = (await client.add_msg_template(greeting(ZHAO_LEI, SUN_LI, ZHOU_JIE, WU_MIN, HE_JUN, LUO_YAN,
                                                       sender=None)))["msgid"]
    first = await client.get_groupmsg_task(everyone, limit=3)
    second = await client.get_groupmsg_task(everyone, cursor=first["next_cursor"], limit=3)
    one = await client.get_groupmsg_send_result(everyone, "zhangwei", limit=1)
    two = await client.get_groupmsg_send_result(everyone, "zhangwei", cursor=one["next_cursor"], limit=1)
    assert [t["userid"] for t in first["task_list"]] == ["lina", "liuyang", "wangfang"]
    assert first["next_cursor"] and second == {"errcode": 0, "errmsg": "ok", "next_cursor": "",
                                               "task_list": [{"userid": "zhangwei", "status": 0}]}
    assert [r["external_userid"] for r in one["send_list"] + two["send_list"]] == [ZHAO_LEI, SUN_LI]
    assert [r["external_userid"] for r in await client.groupmsg_send_list(everyone, "zhangwei")] == [
        ZHAO_LEI, SUN_LI, ZHOU_JIE]
    assert len(await client.groupmsg_task_list(everyone)) == 4


async def test_customer_who_deleted_the_rep_fails_with_status_2(make_client: MakeClient,
                                                               sim_state: SimulatorState) -> None:
    client = make_client()
    msgid = (await client.add_msg_template(greeting(ZHAO_LEI, SUN_LI)))["msgid"]
    sim_state.end_contact(SUN_LI, "zhangwei")
    sim_state.confirm_msg_template(msgid, "zhangwei")
    results = {r["external_userid"]: r for r in await client.groupmsg_send_list(msgid, "zhangwei")}
    assert (results[ZHAO_LEI]["status"], results[SUN_LI]["status"]) == (1, 2)
    assert "send_time" not in results[SUN_LI]


def china(day: str) -> float:
    return datetime.fromisoformat(f"{day}T10:00:00+08:00").timestamp()


@pytest.mark.parametrize(
    ("rule", "start", "allowed", "next_window"),
    [
        # https://developer.work.weixin.qq.com/document/path/92135: as many a month as the month has days...
        ("month_days", "2026-02-01", 28, "2026-03-01"),
        # ...or, as the company chooses in 群发规则, 7 a week (Monday to Sunday) or 1 a day.
        ("week_7", "2026-02-02", 7, "2026-02-09"),
        ("day_1", "2026-02-02", 1, "2026-02-03"),
    ],
)
async def test_a_customer_past_the_receive_limit_gets_status_3_until_the_next_window(
        make_client: MakeClient, sim_state: SimulatorState, clock: Clock,
        rule: str, start: str, allowed: int, next_window: str) -> None:
    client = make_client()
    sim_state.group_msg_rule = rule

    async def send() -> int:
        msgid = (await client.add_msg_template(greeting(ZHAO_LEI)))["msgid"]
        sim_state.confirm_msg_template(msgid, "zhangwei")
        return (await client.groupmsg_send_list(msgid, "zhangwei"))[0]["status"]

    clock.value = china(start)
    statuses = []
    for _ in range(allowed + 1):
        statuses.append(await send())
        clock.advance(60)
    clock.value = china(next_window)
    assert statuses == [1] * allowed + [3]
    assert await send() == 1


async def test_unknown_msgid_is_41047(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(WeComError) as task:
        await client.groupmsg_task_list("msgNoSuchTask")
    with pytest.raises(WeComError) as result:
        await client.groupmsg_send_list("msgNoSuchTask", "zhangwei")
    assert (task.value.errcode, result.value.errcode) == (41047, 41047)
    assert not task.value.retryable and "invalid msgid" in task.value.errmsg


# -- the wire, spoken directly ---------------------------------------------------------------

@pytest.fixture
async def api(aiohttp_client, sim_state: SimulatorState) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_simulator_app(sim_state))


async def post(api: TestClient, sim_state: SimulatorState, path: str, payload: dict) -> dict:
    token = sim_state.issue_access_token()
    resp = await api.post(f"/cgi-bin/externalcontact/{path}", params={"access_token": token},
                          data=json.dumps(payload).encode())
    assert resp.status == 200
    return await resp.json()


@pytest.mark.parametrize(
    ("path", "payload", "errcode"),
    [
        ("get_groupmsg_task", {}, 41046),
        ("get_groupmsg_task", {"msgid": "MSGID", "limit": 0}, 40058),
        ("get_groupmsg_task", {"msgid": "MSGID", "limit": 1001}, 40058),
        ("get_groupmsg_task", {"msgid": "MSGID", "cursor": "not-a-cursor"}, 40058),
        ("get_groupmsg_task", {"msgid": "msgNoSuchTask"}, 41047),
        ("get_groupmsg_send_result", {"userid": "zhangwei"}, 41046),
        ("get_groupmsg_send_result", {"msgid": "MSGID"}, 41009),
        ("get_groupmsg_send_result", {"msgid": "MSGID", "userid": "nobody"}, 60111),
        ("get_groupmsg_send_result", {"msgid": "msgNoSuchTask", "userid": "zhangwei"}, 41047),
    ],
)
async def test_bad_requests_get_wecom_errcodes(api: TestClient, sim_state: SimulatorState, path: str,
                                               payload: dict, errcode: int) -> None:
    msgid, _ = sim_state.add_msg_template(greeting(ZHAO_LEI))
    body = await post(api, sim_state, path, {k: msgid if v == "MSGID" else v for k, v in payload.items()})
    assert body["errcode"] == errcode and "more info at" in body["errmsg"]


async def test_default_page_is_500_and_a_rep_without_a_task_gets_an_empty_list(
    api: TestClient, sim_state: SimulatorState
) -> None:
    msgid, _ = sim_state.add_msg_template(greeting(*sim_state.external_contacts, sender=None))
    tasks = await post(api, sim_state, "get_groupmsg_task", {"msgid": msgid})
    nothing = await post(api, sim_state, "get_groupmsg_send_result", {"msgid": msgid, "userid": "chenjing"})
    assert len(tasks["task_list"]) == 4 and tasks["next_cursor"] == ""
    assert nothing == {"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": []}


def test_confirming_twice_or_someone_elses_task_is_refused(sim_state: SimulatorState) -> None:
    msgid, _ = sim_state.add_msg_template(greeting(ZHAO_LEI))
    sim_state.confirm_msg_template(msgid, "zhangwei")
    with pytest.raises(ValueError):
        sim_state.confirm_msg_template(msgid, "zhangwei")
    with pytest.raises(KeyError):
        sim_state.confirm_msg_template(msgid, "lina")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        # Group-send and welcome texts hold 4000 bytes (92135, 92137); app messages, markdown included,
        # 2048 (https://developer.work.weixin.qq.com/document/path/90236; 4096 is the group robot's).
        ("externalcontact/add_msg_template", {"external_userid": [ZHAO_LEI], "sender": "zhangwei",
                                              "text": {"content": "TEXT"}}),
        ("externalcontact/send_welcome_msg", {"welcome_code": "CODE", "text": {"content": "TEXT"}}),
        ("message/send", {"touser": "zhangwei", "msgtype": "markdown", "markdown": {"content": "TEXT"}}),
        ("message/send", {"touser": "zhangwei", "msgtype": "text", "text": {"content": "TEXT"}}),
    ],
)
async def test_texts_are_held_to_their_documented_byte_limits(api: TestClient, sim_state: SimulatorState,
                                                              path: str, payload: dict) -> None:
    limit = 2048 if path == "message/send" else 4000

    async def call(size: int) -> int:
        body = json.loads(json.dumps(payload).replace("TEXT", "客" * (size // 3) + "a" * (size % 3)))
        if path.endswith("send_welcome_msg"):
            body["welcome_code"] = _welcome_code(sim_state)
        if path == "message/send":
            body["agentid"] = sim_state.agent_id
        token = sim_state.issue_access_token()
        resp = await api.post(f"/cgi-bin/{path}", params={"access_token": token}, data=json.dumps(body).encode())
        return (await resp.json())["errcode"]

    assert await call(limit) == 0
    assert await call(limit + 1) == 45002


def _welcome_code(sim_state: SimulatorState) -> str:
    """A fresh WelcomeCode, as an add_external_contact event would carry."""
    code = f"WC{len(sim_state.welcome_codes)}"
    sim_state.welcome_codes[code] = WelcomeCode("zhangwei", ZHAO_LEI, sim_state.now())
    return code
