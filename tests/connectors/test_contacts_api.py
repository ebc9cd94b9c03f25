"""The simulator's 客户联系 endpoints over HTTP: shapes, paging and limits as Tencent documents them
(92571 get_follow_user_list, 92994 batch/get_by_user, 92117 get_corp_tag_list)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from connectors.wecom.simulator.contacts import GeneratedContacts
from connectors.wecom.simulator.server import create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from tests.connectors.test_simulator import post

BATCH = "externalcontact/batch/get_by_user"


@pytest.fixture
async def api(aiohttp_client, sim_state: SimulatorState) -> TestClient:
    return await aiohttp_client(create_simulator_app(sim_state))


@pytest.fixture
async def token(api: TestClient, sim_state: SimulatorState) -> str:
    resp = await api.get("/cgi-bin/gettoken", params={"corpid": sim_state.corp_id, "corpsecret": sim_state.secret})
    return (await resp.json())["access_token"]


async def page_all(api: TestClient, token: str, userids: list[str], limit: int) -> list[tuple[str, str]]:
    seen, cursor = [], ""
    while True:
        body = await post(api, BATCH, token, {"userid_list": userids, "limit": limit, "cursor": cursor})
        assert body["errcode"] == 0 and len(body["external_contact_list"]) <= min(limit, 100)
        seen += [(e["external_contact"]["external_userid"], e["follow_info"]["userid"])
                 for e in body["external_contact_list"]]
        cursor = body["next_cursor"]
        if not cursor:
            return seen


async def test_follow_user_list_names_the_members_with_customer_contact(api, token, sim_state: SimulatorState):
    body = await (await api.get("/cgi-bin/externalcontact/get_follow_user_list", params={"access_token": token})).json()
    assert body["errcode"] == 0 and body["follow_user"] == list(sim_state.staff)
    sim_state.customer_contact_users = ["zhangwei", "lina"]
    body = await (await api.get("/cgi-bin/externalcontact/get_follow_user_list", params={"access_token": token})).json()
    assert body["follow_user"] == ["zhangwei", "lina"]


async def test_batch_get_by_user_pages_one_entry_per_contact_and_rep_with_tag_ids(api, token, sim_state):
    zhao = "wmDemoZhaoLei0000000000000000001"
    sim_state.add_follower(zhao, "lina", remark="赵总")
    seen = await page_all(api, token, ["zhangwei", "lina", "wangfang", "liuyang"], limit=2)
    assert len(seen) == len(set(seen)) == 9 and (zhao, "zhangwei") in seen and (zhao, "lina") in seen
    body = await post(api, BATCH, token, {"userid_list": ["zhangwei"]})
    entry = body["external_contact_list"][0]
    assert entry["follow_info"]["tag_id"] == ["etDemoVip0001", "etDemoStage002"] and "tags" not in entry["follow_info"]
    assert entry["follow_info"]["state"] == "expo2024" and entry["external_contact"]["name"] == "赵磊"


@pytest.mark.parametrize("body", [
    {"userid_list": [f"u{i}" for i in range(101)]},  # "最多支持100个"
    {"userid_list": []},
    {"userid_list": "zhangwei"},
    {"userid_list": ["zhangwei"], "limit": 0},
    {"userid_list": ["zhangwei"], "limit": "50"},
    {"userid_list": ["zhangwei"], "cursor": "not-a-cursor"},
])
async def test_batch_get_by_user_refuses_bad_parameters_with_40058(api, token, body):
    assert (await post(api, BATCH, token, body))["errcode"] == 40058


async def test_a_limit_above_100_is_capped_not_refused_and_50_is_the_default(api, token, sim_state):
    sim_state.external_contacts = GeneratedContacts(260, ["zhangwei"], shared_every=0)
    body = await post(api, BATCH, token, {"userid_list": ["zhangwei"], "limit": 1000})
    assert body["errcode"] == 0 and len(body["external_contact_list"]) == 100 and body["next_cursor"]
    assert len((await post(api, BATCH, token, {"userid_list": ["zhangwei"]}))["external_contact_list"]) == 50
    assert len(await page_all(api, token, ["zhangwei"], limit=100)) == 260
    assert not sim_state.external_contacts._changed  # answering kept none of the generated contacts


async def test_a_generated_company_of_100k_is_cheap_and_pages_completely(sim_state):
    generated = GeneratedContacts(100_000, ["a", "b", "c", "d"])
    assert len(generated) == 100_000 and len(generated.followed_by("a")) == 25_000
    assert len(generated.followed_by("b")) == 25_000 + 5_000  # every 20th contact is also b's (shared with a)
    first = generated.followed_by("b")[0]
    generated[first]["follow_user"][0]["remark"] = "改过"
    assert generated[first]["follow_user"][0]["remark"] == "改过" and len(generated._changed) == 1


async def test_corp_tag_list_filters_by_group_over_tag_and_shows_deletions_only_when_filtered(api, token, sim_state):
    everything = await post(api, "externalcontact/get_corp_tag_list", token, {})
    groups = {g["group_name"]: g for g in everything["tag_group"]}
    assert set(groups) == {"客户等级", "客户阶段"} and [t["name"] for t in groups["客户等级"]["tag"]] == ["重要客户", "普通客户"]
    level = groups["客户等级"]["group_id"]
    sim_state.corp_tag_groups[0]["tag"][1]["deleted"] = True
    assert [t["name"] for t in (await post(api, "externalcontact/get_corp_tag_list", token, {}))["tag_group"][0]["tag"]] \
        == ["重要客户"]
    by_tag = await post(api, "externalcontact/get_corp_tag_list", token, {"tag_id": ["etDemoNormal01"]})
    assert [(t["id"], t["deleted"]) for t in by_tag["tag_group"][0]["tag"]] == [("etDemoNormal01", True)]
    by_group = await post(api, "externalcontact/get_corp_tag_list", token,
                          {"tag_id": ["etDemoStage001"], "group_id": [level]})  # group_id wins
    assert [g["group_id"] for g in by_group["tag_group"]] == [level]


def test_change_external_tag_is_parsed_and_two_tags_in_one_second_stay_two_events():
    from connectors.wecom.inbound import TagChange, callback_dedup_key, normalize_callback
    from connectors.wecom.receiver import parse_plaintext
    from connectors.wecom.simulator.callbacks import build_plaintext_change_external_tag

    fields = [parse_plaintext(build_plaintext_change_external_tag("wwcorp", "update", "tag", tag_id, create_time=1_760_000_000))
              for tag_id in ("etA", "etB")]
    assert callback_dedup_key(fields[0]) != callback_dedup_key(fields[1])
    change = normalize_callback(fields[0])
    assert isinstance(change, TagChange) and (change.change_type, change.tag_type, change.id) == ("update", "tag", "etA")
    shuffle = normalize_callback(parse_plaintext(build_plaintext_change_external_tag(
        "wwcorp", "shuffle", "tag_group", "", strategy_id="1")))
    assert shuffle.change_type == "shuffle" and shuffle.id == "" and shuffle.strategy_id == "1"
    with pytest.raises(ValueError):
        build_plaintext_change_external_tag("wwcorp", "rename", "tag", "etA")
