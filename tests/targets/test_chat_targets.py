"""目标 in chat: managers set targets within their departments and see attainment; reps see their own;
every bad line is refused with nothing changed; a target read from a free sentence waits for 是."""

from __future__ import annotations

from sqlalchemy import select

from config.templates import render
from crm_core.targets import SalesTarget
from tests.support.chat import Chat


async def targets(chat: Chat) -> list[tuple[str, str, int, int, str]]:
    async with chat.service.sessions() as session:
        rows = (await session.scalars(select(SalesTarget).order_by(SalesTarget.id))).all()
    return [(t.month, t.kind, t.subject_id, t.amount, t.set_by) for t in rows]


async def test_a_manager_sets_rep_and_department_targets_and_sees_attainment(team: Chat):
    chat = team
    zhang = await chat.staff("zhangwei")

    assert await chat.ask("liuyang", "目标 张伟 11月 50万") == (
        "已设定 张伟 2026年11月的目标：50万。\n目标 50万 · 已赢单 30万（1 单） · 达成 60%")
    assert await chat.ask("liuyang", "目标 销售部 本月 200万") == (
        "已设定 【部门】销售部 2026年11月的目标：200万。\n目标 200万 · 已赢单 40万（2 单） · 达成 20%")
    # Setting it again replaces it, and says what it was.
    assert await chat.ask("liuyang", "目标 zhangwei 本月 60万") == (
        "已设定 张伟 2026年11月的目标：60万（原为 50万）。\n目标 60万 · 已赢单 30万（1 单） · 达成 50%")
    assert await targets(chat) == [("2026-11", "staff", zhang.id, 600_000, "liuyang"),
                                   ("2026-11", "department", 2, 2_000_000, "liuyang")]

    listing = await chat.ask("liuyang", "目标")
    lines = listing.splitlines()
    assert lines[0].startswith("2026年11月 业绩目标与达成（截至 11-18 10:00）")
    assert lines[1:5] == ["【部门】销售部：目标 200万 · 已赢单 40万（2 单） · 达成 20%",
                          "【部门】客户服务部：未设目标 · 已赢单 0元（0 单）",
                          "张伟：目标 60万 · 已赢单 30万（1 单） · 达成 50%",
                          "李娜：未设目标 · 已赢单 10万（1 单）"]
    assert "刘洋：未设目标 · 已赢单 0元（0 单）" in lines
    assert "陈静" not in listing and "行政部" not in listing  # not in 刘洋's departments
    assert lines[-1] == "主管设目标：目标 张伟 12月 50万；部门同理：目标 销售部 12月 200万"
    assert (await chat.ask("liuyang", "目标 李娜")).splitlines()[1] == "李娜：未设目标 · 已赢单 10万（1 单）"
    assert (await chat.ask("liuyang", "目标 12月")).startswith("2026年12月 业绩目标与达成")


async def test_a_rep_cannot_set_a_target(team: Chat):
    chat = team
    await chat.ask("liuyang", "目标 张伟 11月 50万")
    before = await targets(chat)
    refused = "抱歉，您的角色无权使用「目标」。如需开通请联系管理员。"
    assert await chat.ask("zhangwei", "目标 张伟 11月 80万") == refused
    assert await chat.ask("wangfang", "目标") == refused  # support has no sales targets
    assert await targets(chat) == before


async def test_bad_lines_are_refused_and_change_nothing(team: Chat):
    chat = team
    await chat.ask("liuyang", "目标 张伟 11月 50万")
    before = await targets(chat)
    refusals = {
        "目标 陈静 11月 50万": "抱歉，陈静 不在您负责的部门里，不能为其设定目标。",
        "目标 行政部 11月 50万": "抱歉，行政部 不在您负责的部门里，不能为其设定目标。",
        "目标 张伟 11月 五十万": "金额「五十万」看不懂，请写成 50万、12.5万 或 500000（元），且要大于 0。目标没有改动。",
        "目标 张伟 11月 0": "金额「0」看不懂，请写成 50万、12.5万 或 500000（元），且要大于 0。目标没有改动。",
        "目标 张伟 13月 50万": "月份「13月」看不懂，可以写 12月、下个月 或 2027年1月。目标没有改动。",
        "目标 王小明 11月 50万": "没有找到叫「王小明」的同事或部门。可以写同事的姓名或企业微信账号（如 zhangwei），或部门全称。",
        "目标 11月 50万": "格式不对哦。用法：目标 <同事或部门> <月份> <金额>，如：目标 张伟 12月 50万",
        "目标 张伟 李娜 50万": "格式不对哦。用法：目标 [同事或部门] [月份] [金额]，如：目标 张伟 12月 50万",
    }
    for line, expected in refusals.items():
        assert await chat.ask("liuyang", line) == expected, line
    assert await targets(chat) == before


async def test_an_admin_sets_any_target(team: Chat):
    chat = team
    chen = await chat.staff("chenjing")
    assert (await chat.ask("chenjing", "目标 陈静 2026年12月 10万")).startswith("已设定 陈静 2026年12月的目标：10万。")
    assert (await chat.ask("chenjing", "目标 行政部 下个月 20万")).startswith("已设定 【部门】行政部 2026年12月的目标：20万。")
    assert await targets(chat) == [("2026-12", "staff", chen.id, 100_000, "chenjing"),
                                   ("2026-12", "department", 4, 200_000, "chenjing")]


async def test_a_target_read_from_a_sentence_is_confirmed_before_it_is_saved(team: Chat):
    chat = team
    ask = await chat.ask("liuyang", "张伟12月的业绩目标定为50万")
    assert ask.startswith("我理解为：目标 张伟12月的 50万"), ask
    assert await targets(chat) == []
    assert (await chat.ask("liuyang", "是")).startswith("已设定 张伟 2026年12月的目标：50万。")
    assert [t[2:4] for t in await targets(chat)] == [((await chat.staff("zhangwei")).id, 500_000)]

    assert (await chat.ask("liuyang", "把李娜下个月目标设为30万")).startswith("我理解为：目标 李娜下个月 30万")
    assert await chat.ask("liuyang", "不") == render("bot.understanding.cancelled")
    assert len(await targets(chat)) == 1
