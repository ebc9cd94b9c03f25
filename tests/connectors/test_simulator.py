"""The fake WeCom's wire behaviour, spoken to directly over HTTP."""

from __future__ import annotations

import argparse
import json

import pytest
from aiohttp.test_utils import TestClient

from connectors.wecom.simulator.cli import register
from connectors.wecom.simulator.sample_data import DEMO_OPEN_KFID, sample_state
from connectors.wecom.simulator.server import create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from tests.support.clock import Clock

CUSTOMER = "wmDemoSunLi000000000000000000002"


@pytest.fixture
async def api(aiohttp_client, sim_state: SimulatorState) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_simulator_app(sim_state))


@pytest.fixture
async def token(api: TestClient, sim_state: SimulatorState) -> str:
    resp = await api.get("/cgi-bin/gettoken", params={"corpid": sim_state.corp_id, "corpsecret": sim_state.secret})
    body = await resp.json()
    assert body["errcode"] == 0 and body["expires_in"] == 7200
    return body["access_token"]


async def post(api: TestClient, path: str, token: str, payload: object | bytes) -> dict:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resp = await api.post(f"/cgi-bin/{path}", params={"access_token": token}, data=data)
    assert resp.status == 200
    return await resp.json()


@pytest.mark.parametrize(
    ("params", "errcode"),
    [({"corpid": "wrongcorp", "corpsecret": "x"}, 40013), ({"corpsecret": "x"}, 41002), ({}, 41002)],
)
async def test_gettoken_rejects_bad_credentials(api: TestClient, params: dict, errcode: int) -> None:
    body = await (await api.get("/cgi-bin/gettoken", params=params)).json()
    assert body["errcode"] == errcode and "more info at" in body["errmsg"]


async def test_gettoken_wrong_secret_is_40001(api: TestClient, sim_state: SimulatorState) -> None:
    resp = await api.get("/cgi-bin/gettoken", params={"corpid": sim_state.corp_id, "corpsecret": "guess"})
    assert (await resp.json())["errcode"] == 40001
    assert sim_state.gettoken_calls == 0


@pytest.mark.parametrize(("access_token", "errcode"), [(None, 41001), ("forged", 40014)])
async def test_missing_or_invalid_token(api: TestClient, access_token: str | None, errcode: int) -> None:
    params = {"userid": "zhangwei"} | ({"access_token": access_token} if access_token else {})
    assert (await (await api.get("/cgi-bin/user/get", params=params)).json())["errcode"] == errcode


async def test_token_expires_after_7200s(api: TestClient, token: str, clock: Clock) -> None:
    clock.advance(7199)
    ok = await (await api.get("/cgi-bin/user/get", params={"access_token": token, "userid": "lina"})).json()
    clock.advance(1)
    expired = await (await api.get("/cgi-bin/user/get", params={"access_token": token, "userid": "lina"})).json()
    assert (ok["errcode"], ok["department"], expired["errcode"]) == (0, [2], 42001)


async def test_bad_json_is_40058(api: TestClient, token: str) -> None:
    assert (await post(api, "message/send", token, b"{not json"))["errcode"] == 40058
    assert (await post(api, "kf/send_msg", token, [1, 2]))["errcode"] == 40058


@pytest.mark.parametrize(("content", "errcode"), [("字" * 682 + "ab", 0), ("字" * 683, 45002), ("", 44004)])
async def test_text_length_limit_is_2048_bytes(api: TestClient, token: str, content: str, errcode: int) -> None:
    payload = {"touser": "zhangwei", "msgtype": "text", "agentid": 1000002, "text": {"content": content}}
    assert (await post(api, "message/send", token, payload))["errcode"] == errcode


@pytest.mark.parametrize(("change", "errcode"), [({"agentid": 1000003}, 40056), ({"agentid": None}, 41011)])
async def test_message_send_checks_agentid(api: TestClient, token: str, change: dict, errcode: int) -> None:
    payload = {"touser": "zhangwei", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}} | change
    if change["agentid"] is None:
        del payload["agentid"]
    assert (await post(api, "message/send", token, payload))["errcode"] == errcode


async def test_message_send_to_department_and_all(api: TestClient, token: str, sim_state: SimulatorState) -> None:
    base = {"msgtype": "text", "agentid": 1000002, "text": {"content": "周报"}}
    by_party = await post(api, "message/send", token, base | {"toparty": "3|99"})
    everyone = await post(api, "message/send", token, base | {"touser": "@all"})
    assert by_party["invalidparty"] == "99" and everyone["invaliduser"] == ""
    assert sim_state.sent_app_messages[0]["recipients"] == ["liuyang", "wangfang"]
    assert len(sim_state.sent_app_messages[1]["recipients"]) == 5


async def test_duplicate_check_drops_the_same_request_json_within_its_interval(
        api: TestClient, token: str, sim_state: SimulatorState, clock: Clock) -> None:
    checked = {"touser": "zhangwei", "msgtype": "text", "agentid": 1000002, "text": {"content": "帮助"},
               "enable_duplicate_check": 1, "duplicate_check_interval": 600}
    first = await post(api, "message/send", token, checked)
    repeat = await post(api, "message/send", token, checked)
    other_window = await post(api, "message/send", token, checked | {"duplicate_check_interval": 601})
    unchecked = [await post(api, "message/send", token, checked | {"enable_duplicate_check": 0}) for _ in range(2)]
    clock.advance(600)
    after_window = await post(api, "message/send", token, checked)
    assert all(r["errcode"] == 0 for r in (first, repeat, other_window, *unchecked, after_window))
    assert repeat["msgid"] == first["msgid"] and after_window["msgid"] != first["msgid"]
    assert len(sim_state.sent_app_messages) == 5 and len(sim_state.dropped_app_messages) == 1


async def test_past_30_a_minute_or_1000_an_hour_a_member_gets_nothing_and_the_call_still_says_ok(
        api: TestClient, token: str, sim_state: SimulatorState, clock: Clock) -> None:
    """https://developer.work.weixin.qq.com/document/path/90236: 每应用对同一个成员不可超过30次/分钟，
    1000次/小时，超过部分会被丢弃不下发. A message to two members still reaches the one under the limit."""

    def note(i: int, touser: str = "zhangwei") -> dict:
        return {"touser": touser, "msgtype": "text", "agentid": 1000002, "text": {"content": f"提醒 {i}"}}

    answers = [await post(api, "message/send", token, note(i)) for i in range(30)]
    clock.advance(59)
    answers.append(await post(api, "message/send", token, note(30, "zhangwei|lina")))
    assert all(a["errcode"] == 0 for a in answers)
    assert [m["recipients"] for m in sim_state.sent_app_messages[-1:]] == [["lina"]]
    assert [userid for userid, _ in sim_state.over_limit_app_messages] == ["zhangwei"]
    clock.advance(1)  # the first 30 are a minute old
    await post(api, "message/send", token, note(31))
    assert sim_state.sent_app_messages[-1]["recipients"] == ["zhangwei"]

    for i in range(32, 1001):  # 30 a minute until 1,000 within the hour
        if i % 30 == 0:
            clock.advance(60)
        await post(api, "message/send", token, note(i))
    delivered = sum("zhangwei" in m["recipients"] for m in sim_state.sent_app_messages)
    assert delivered == 1000  # all but the one past the minute's 30
    clock.advance(60)
    await post(api, "message/send", token, note(1001))
    assert len(sim_state.over_limit_app_messages) == 1 + 1  # the hour is full


async def test_fail_next_counts_uses_and_applies_per_api(api: TestClient, token: str, sim_state: SimulatorState) -> None:
    sim_state.fail_next("user/get", errcode=-1, times=2)
    params = {"access_token": token, "userid": "lina"}
    codes = [(await (await api.get("/cgi-bin/user/get", params=params)).json())["errcode"] for _ in range(3)]
    assert codes == [-1, -1, 0]
    sim_state.fail_next("user/get", http_status=503)
    assert (await api.get("/cgi-bin/user/get", params=params)).status == 503
    with pytest.raises(ValueError):
        sim_state.fail_next("user/get")


async def test_kf_token_expires_after_ten_minutes(api: TestClient, token: str, sim_state: SimulatorState,
                                                  clock: Clock) -> None:
    kf_token = sim_state.kf_customer_writes(DEMO_OPEN_KFID, CUSTOMER, "在吗")
    clock.advance(601)
    body = await post(api, "kf/sync_msg", token, {"token": kf_token, "open_kfid": DEMO_OPEN_KFID})
    assert body["errcode"] == 95007


async def test_kf_event_and_filter_by_account(api: TestClient, token: str, sim_state: SimulatorState) -> None:
    sim_state.kf_accounts["wkOther"] = {"open_kfid": "wkOther", "name": "售后", "avatar": ""}
    sim_state.kf_customer_writes("wkOther", CUSTOMER, "另一个账号")
    kf_token = sim_state.kf_event(DEMO_OPEN_KFID, CUSTOMER, "enter_session", scene="123")
    body = await post(api, "kf/sync_msg", token, {"token": kf_token, "open_kfid": DEMO_OPEN_KFID})
    assert [m["msgtype"] for m in body["msg_list"]] == ["event"]
    assert body["msg_list"][0]["event"] == {"event_type": "enter_session", "open_kfid": DEMO_OPEN_KFID,
                                            "external_userid": CUSTOMER, "scene": "123"}
    assert (await post(api, "kf/sync_msg", token, {"cursor": "garbage!"}))["errcode"] == 40058
    assert (await post(api, "kf/sync_msg", token, {"open_kfid": "wkNope"}))["errcode"] == 95004
    with pytest.raises(KeyError):
        sim_state.kf_customer_writes("wkNope", CUSTOMER, "x")


async def test_sim_state_view_has_no_credentials(api: TestClient, token: str, sim_state: SimulatorState) -> None:
    await post(api, "message/send", token, {"touser": "lina", "msgtype": "text", "agentid": 1000002,
                                            "text": {"content": "客户赵磊已到访"}})
    text = await (await api.get("/sim/state")).text()
    view = json.loads(text)
    assert view["gettoken_calls"] == 1 and view["sent_app_messages"][0]["text"]["content"] == "客户赵磊已到访"
    assert sim_state.secret not in text and token not in text


def test_sample_company_is_consistent() -> None:
    state = sample_state()
    roles = sorted(user["position"] for user in state.staff.values())
    assert roles == ["客服专员", "系统管理员", "销售代表", "销售代表", "销售总监"]
    assert len(state.external_contacts) == 8
    for external_userid, contact in state.external_contacts.items():
        assert contact["external_contact"]["external_userid"] == external_userid
        assert all(follower["userid"] in state.staff for follower in contact["follow_user"])
    assert state.kf_accounts and len(state.encoding_aes_key) == 43


def test_cli_registers_simulator_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="scrm")
    register(parser.add_subparsers())
    args = parser.parse_args(["simulator", "--port", "8099"])
    assert (args.host, args.port, callable(args.func)) == ("127.0.0.1", 8099, True)


@pytest.mark.parametrize(("msgid", "errcode"), [("a" * 32, 0), ("a" * 33, 40058), ("bad id!", 40058)])
async def test_kf_send_msg_checks_caller_msgid(api: TestClient, token: str, sim_state: SimulatorState,
                                               msgid: str, errcode: int) -> None:
    sim_state.kf_customer_writes(DEMO_OPEN_KFID, CUSTOMER, "请问有优惠吗")
    payload = {"touser": CUSTOMER, "open_kfid": DEMO_OPEN_KFID, "msgid": msgid, "msgtype": "text",
               "text": {"content": "有的"}}
    body = await post(api, "kf/send_msg", token, payload)
    assert body["errcode"] == errcode and body.get("msgid", msgid) == msgid
