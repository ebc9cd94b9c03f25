"""The simulated address book answers as WeCom's pages say (department/list, user/list_id, user/get),
through the real client over HTTP."""

from __future__ import annotations

import aiohttp
import fakeredis
import pytest

from connectors.wecom.client import WeComClient
from connectors.wecom.errors import InvalidUserError, WeComError
from connectors.wecom.inbound import DirectoryChange, callback_dedup_key, normalize_callback
from connectors.wecom.receiver import parse_plaintext
from connectors.wecom.simulator import directory as company
from connectors.wecom.simulator.callbacks import build_plaintext_change_contact


@pytest.fixture
async def wecom(sim, sim_server):
    async with aiohttp.ClientSession() as http:
        yield WeComClient(http, api_base=str(sim_server.make_url("/cgi-bin/")), corp_id=sim.corp_id, secret=sim.secret,
                          redis=fakeredis.FakeAsyncRedis())


async def test_department_list_gives_the_tree_or_one_branch(wecom):
    departments = await wecom.list_departments()
    assert [(d["id"], d["name"], d["parentid"]) for d in departments] == [
        (1, "星河科技", 0), (2, "销售部", 1), (3, "客户服务部", 1), (4, "行政部", 1)]
    assert [d["department_leader"] for d in departments if d["id"] == 2] == [["liuyang"]]
    branch = await wecom.call("GET", "department/list", params={"id": "3"})
    assert [d["id"] for d in branch["department"]] == [3]
    with pytest.raises(WeComError) as unknown:
        await wecom.call("GET", "department/list", params={"id": "99"})
    assert unknown.value.errcode == 60123


async def test_user_list_id_pages_by_cursor_and_refuses_limits_out_of_range(wecom):
    rows, cursor = [], None
    while True:
        page = await wecom.list_member_ids(cursor=cursor, limit=4)
        rows += page["dept_user"]
        cursor = page["next_cursor"] or None
        if cursor is None:
            break
    assert len(rows) == 6 and {"userid": "liuyang", "department": 3} in rows  # one row per member and department
    for limit in (0, 10_001, "100"):
        with pytest.raises(WeComError) as refused:
            await wecom.call("POST", "user/list_id", json={"limit": limit})
        assert refused.value.errcode == 40058
    with pytest.raises(WeComError) as bad_cursor:
        await wecom.list_member_ids(cursor="not-a-cursor", limit=10)
    assert bad_cursor.value.errcode == 40058


async def test_user_get_hides_what_new_apps_are_not_told(sim, wecom):
    assert (await wecom.get_user("zhangwei"))["mobile"] == "13800130001"
    sim.hides_member_details = True
    user = await wecom.get_user("zhangwei")
    assert user["name"] == "张伟" and user["is_leader_in_dept"] == [0]
    assert not {"mobile", "gender", "email", "avatar"} & set(user)
    with pytest.raises(InvalidUserError):
        await wecom.get_user("nobody")


def test_change_contact_callbacks_parse_and_two_departments_in_one_second_are_two_events():
    member = normalize_callback(parse_plaintext(build_plaintext_change_contact(
        "wwcorp", "update_user", userid="lina", new_userid="lina2", department=[2, 3], create_time=1_700_000_000)))
    assert member == DirectoryChange(change_type="update_user", sent_at=member.sent_at, userid="lina",
                                     new_userid="lina2", party_id=None, meta=member.meta)
    assert member.about_member and member.meta["Department"] == "2,3"
    first, second = (parse_plaintext(build_plaintext_change_contact("wwcorp", "delete_party", party_id=p,
                                                                    create_time=1_700_000_000)) for p in (5, 6))
    assert normalize_callback(first).party_id == 5 and normalize_callback(first).about_department
    assert callback_dedup_key(first) != callback_dedup_key(second)
    with pytest.raises(ValueError):
        build_plaintext_change_contact("wwcorp", "update_user")


async def test_member_tags_list_and_get_and_an_unknown_tag_is_40068(sim, wecom):
    company.tag(sim, 7, "售后专员", userids=("lina", "gone"), departments=(3,))
    assert await wecom.list_tags() == [{"tagid": 7, "tagname": "售后专员"}]
    detail = await wecom.get_tag(7)
    assert detail["userlist"] == [{"userid": "lina", "name": "李娜"}] and detail["partylist"] == [3]  # members only
    with pytest.raises(WeComError) as unknown:
        await wecom.get_tag(8)
    assert unknown.value.errcode == 40068
