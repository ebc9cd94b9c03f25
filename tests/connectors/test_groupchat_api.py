"""客户群 in the simulator, spoken over HTTP as WeCom answers it: groupchat/list paging and
limits (https://developer.work.weixin.qq.com/document/path/92120), groupchat/get shapes
(https://developer.work.weixin.qq.com/document/path/92122), and the change_external_chat
callback's XML (https://developer.work.weixin.qq.com/document/path/92130)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from connectors.wecom.client import WeComClient
from connectors.wecom.errors import GroupChatGoneError
from connectors.wecom.inbound import ChatChange, callback_dedup_key, normalize_callback
from connectors.wecom.receiver import parse_plaintext
from connectors.wecom.simulator import groups
from connectors.wecom.simulator.callbacks import build_plaintext_change_external_chat
from connectors.wecom.simulator.server import create_simulator_app
from connectors.wecom.simulator.state import SimulatorState

MakeClient = Callable[..., WeComClient]
EAST = "wrDemoEastChina00000000000000001"


@pytest.fixture
def company(sim_state: SimulatorState) -> SimulatorState:
    sim_state.group_chats.update(groups.sample_groups())
    return sim_state


async def test_the_list_pages_by_cursor_and_filters_by_owner(make_client: MakeClient, company: SimulatorState) -> None:
    client = make_client()
    first = await client.groupchat_list(limit=2)
    second = await client.groupchat_list(cursor=first["next_cursor"], limit=2)
    mine = await client.groupchat_list(owners=["lina"])
    assert [g["chat_id"] for g in first["group_chat_list"]] == [EAST, "wrDemoLvYuan000000000000000000002"]
    assert first["next_cursor"] and second["next_cursor"] == ""
    assert second["group_chat_list"] == [{"chat_id": "wrDemoQiMing00000000000000000003", "status": 0}]
    assert [g["chat_id"] for g in mine["group_chat_list"]] == ["wrDemoLvYuan000000000000000000002"]


async def test_a_group_comes_with_its_members_names_only_when_asked(make_client: MakeClient,
                                                                    company: SimulatorState) -> None:
    client = make_client()
    named = (await client.groupchat_get(EAST))["group_chat"]
    bare = (await client.groupchat_get(EAST, need_name=False))["group_chat"]
    assert (named["name"], named["owner"], named["admin_list"]) == ("华东客户交流群", "zhangwei", [{"userid": "liuyang"}])
    qian = next(m for m in named["member_list"] if m["userid"] == "wmDemoQianSheng000000000000000009")
    assert qian == {"userid": "wmDemoQianSheng000000000000000009", "type": 2, "join_time": 1_705_000_300,
                    "join_scene": 3, "group_nickname": "老钱", "name": "钱先生",
                    "unionid": "ozDemoUnionQian0000000000009"}
    assert all("name" not in m for m in bare["member_list"]) and "status" not in named
    assert named["member_version"]
    groups.dismiss(company, EAST)
    with pytest.raises(GroupChatGoneError) as gone:
        await client.groupchat_get(EAST)
    assert gone.value.errcode == 40050 and not gone.value.retryable


@pytest.fixture
async def api(aiohttp_client, company: SimulatorState) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_simulator_app(company))


@pytest.mark.parametrize(
    ("path", "payload", "errcode"),
    [
        ("groupchat/list", {}, 40058),  # limit is required
        ("groupchat/list", {"limit": 0}, 40058),
        ("groupchat/list", {"limit": 1001}, 40058),
        ("groupchat/list", {"limit": 10, "status_filter": 4}, 40058),
        ("groupchat/list", {"limit": 10, "owner_filter": {"userid_list": [f"u{i}" for i in range(101)]}}, 40058),
        ("groupchat/list", {"limit": 10, "cursor": "not-a-cursor"}, 40058),
        ("groupchat/get", {}, 40058),
        ("groupchat/get", {"chat_id": EAST, "need_name": 2}, 40058),
        ("groupchat/get", {"chat_id": "wrNoSuchGroup"}, 40050),
    ],
)
async def test_bad_requests_get_wecom_errcodes(api: TestClient, company: SimulatorState, path: str, payload: dict,
                                               errcode: int) -> None:
    resp = await api.post(f"/cgi-bin/externalcontact/{path}", params={"access_token": company.issue_access_token()},
                          data=json.dumps(payload).encode())
    body = await resp.json()
    assert body["errcode"] == errcode and "more info at" in body["errmsg"]


def test_a_member_change_callback_names_the_members_and_each_change_has_its_own_key(company: SimulatorState) -> None:
    xml = build_plaintext_change_external_chat(company.corp_id, EAST, "update", update_detail="del_member",
                                               members=["wmA", "wmB"], quit_scene=1, current_version="v2",
                                               create_time=1_790_000_000)
    fields = parse_plaintext(xml)
    change = normalize_callback(fields)
    assert isinstance(change, ChatChange)
    assert (change.chat_id, change.change_type, change.update_detail, change.members, change.quit_scene,
            change.join_scene, change.member_version) == (EAST, "update", "del_member", ("wmA", "wmB"), 1, None, "v2")
    other = parse_plaintext(build_plaintext_change_external_chat(
        company.corp_id, "wrOther", "dismiss", create_time=1_790_000_000))
    assert fields["MemChangeCnt"] == "2" and callback_dedup_key(fields) != callback_dedup_key(other)
    with pytest.raises(ValueError):
        build_plaintext_change_external_chat(company.corp_id, EAST, "update")  # an update names what changed
