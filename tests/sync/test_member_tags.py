"""Member tags (通讯录标签) come in with the directory and follow update_tag: ticket routing names
support agents by tag (config/tickets.toml agent_tags), so the staff table must hold them."""

from __future__ import annotations

from sqlalchemy import select

from connectors.wecom.simulator import directory as company
from connectors.wecom.simulator.callbacks import build_plaintext_update_tag
from crm_core.models import Staff
from tests.sync.conftest import scrm


async def tags_of(chat) -> dict[str, list[str]]:
    async with chat.service.sessions() as session:
        return {s.userid: list(s.tags) for s in (await session.scalars(select(Staff).order_by(Staff.userid))).all()}


async def test_member_tags_arrive_with_the_directory_and_follow_update_tag(cli_env, capsys):
    chat = cli_env
    sim = chat.service.sim
    company.tag(sim, 7, "售后专员", userids=("lina",), departments=(3,))  # lina, and all of 客户服务部
    company.tag(sim, 8, "大客户经理", userids=("zhangwei", "liuyang"))
    code, out, err = await scrm(capsys, "sync", "directory")
    assert code == 0, err
    assert await tags_of(chat) == {"chenjing": [], "lina": ["售后专员"], "liuyang": ["售后专员", "大客户经理"],
                                   "wangfang": ["售后专员"], "zhangwei": ["大客户经理"]}

    company.tag(sim, 7, "售后专员", departments=(3,))  # lina is taken off the tag in WeCom
    status, _ = await chat.service.wecom.raw(build_plaintext_update_tag(sim.corp_id, 7, del_users=["lina"]))
    assert status == 200
    await chat.service.settle()
    assert (await tags_of(chat))["lina"] == []


async def test_tags_wecom_will_not_give_stay_as_they_were(cli_env, capsys):
    chat = cli_env
    sim = chat.service.sim
    company.tag(sim, 7, "售后专员", userids=("lina",))
    assert (await scrm(capsys, "sync", "directory"))[0] == 0
    sim.fail_next("tag/list", errcode=48002)  # the app lost the permission to read tags
    code, out, err = await scrm(capsys, "sync", "directory")
    assert code == 0, err
    assert "未能读取成员标签" in out and "errcode 48002" in out
    assert (await tags_of(chat))["lina"] == ["售后专员"]
