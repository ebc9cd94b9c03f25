"""add_corp_tag and mark_tag in the simulator, over HTTP as WeCom answers them
(https://developer.work.weixin.qq.com/document/path/92117, https://developer.work.weixin.qq.com/document/path/92118)."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import create_simulator_app

ZHAO_LEI = "wmDemoZhaoLei0000000000000000001"


@pytest.fixture
async def api(aiohttp_client) -> tuple[TestClient, object]:  # type: ignore[no-untyped-def]
    state = sample_state()
    return await aiohttp_client(create_simulator_app(state)), state


async def call(api, path: str, body: dict) -> dict:
    client, state = api
    resp = await client.post(f"/cgi-bin/externalcontact/{path}", params={"access_token": state.issue_access_token()},
                             data=json.dumps(body).encode())
    return await resp.json()


async def test_a_new_tag_goes_into_the_named_group_created_when_missing_and_then_marks_a_contact(api) -> None:
    _, state = api
    created = await call(api, "add_corp_tag", {"group_name": "CRM 标签", "tag": [{"name": "展会客户"}]})
    group = created["tag_group"]
    assert created["errcode"] == 0 and group["group_name"] == "CRM 标签" and [t["name"] for t in group["tag"]] == ["展会客户"]
    tag_id = group["tag"][0]["id"]
    assert (await call(api, "mark_tag", {"userid": "zhangwei", "external_userid": ZHAO_LEI, "add_tag": [tag_id],
                                         "remove_tag": ["etDemoVip0001"]}))["errcode"] == 0
    follow = state.external_contacts[ZHAO_LEI]["follow_user"][0]
    assert {t["tag_name"] for t in follow["tags"]} == {"报价谈判", "展会客户"}


@pytest.mark.parametrize(
    ("path", "body", "errcode"),
    [
        ("add_corp_tag", {"group_name": "CRM 标签"}, 40058),
        ("add_corp_tag", {"tag": [{"name": "x"}]}, 40058),
        ("add_corp_tag", {"group_id": "etNoSuchGroup", "tag": [{"name": "x"}]}, 40068),
        ("add_corp_tag", {"group_name": "客户等级", "tag": [{"name": "重要客户"}]}, 40071),  # the group has it
        ("add_corp_tag", {"group_name": "CRM 标签", "tag": [{"name": "长" * 31}]}, 40071),
        ("mark_tag", {"userid": "zhangwei", "external_userid": ZHAO_LEI}, 40058),  # add and remove both empty
        ("mark_tag", {"userid": "nobody", "external_userid": ZHAO_LEI, "add_tag": ["etDemoVip0001"]}, 60111),
        ("mark_tag", {"userid": "lina", "external_userid": ZHAO_LEI, "add_tag": ["etDemoVip0001"]}, 84061),
        ("mark_tag", {"userid": "zhangwei", "external_userid": ZHAO_LEI, "add_tag": ["etNoSuchTag"]}, 40068),
    ],
)
async def test_bad_requests_get_wecom_errcodes(api, path: str, body: dict, errcode: int) -> None:
    answer = await call(api, path, body)
    assert answer["errcode"] == errcode and "more info at" in answer["errmsg"]
