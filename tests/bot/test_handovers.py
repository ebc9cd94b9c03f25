"""转交 in WeCom itself: a departed rep's customers are inherited (离职继承), reps on the job hand over
(在职继承), and the CRM follows only what WeCom accepted. Through chat, callbacks and the scheduler
job, against the simulator's own record of who follows whom."""

from __future__ import annotations

from sqlalchemy import func, select, update

from connectors.wecom.simulator import directory as company
from crm_core import handover as handover_module
from crm_core.models import AuditEntry, Customer, HandoverCustomer, Staff
from scrm import keys
from scrm.ingest.departures import notify_departure
from tests.bot.conftest import follow_handovers
from tests.service.conftest import external_id

LINAS = ("吴敏", "郑浩", "冯雪")


def followers(chat, name: str) -> list[str]:
    contact = chat.service.sim.external_contacts[external_id(chat.service.sim, name)]
    return [f["userid"] for f in contact["follow_user"]]


async def owner_of(chat, name: str) -> str:
    customer = await chat.customer(name)
    return (await chat.staff_by_id(customer.owner_id)).userid


async def lina_leaves(chat) -> int:
    """The admin deletes 李娜 in WeCom; the directory sync marks her inactive and calls the departure hook."""
    company.leave(chat.service.sim, "lina")
    async with chat.service.sessions() as session:
        await session.execute(update(Staff).where(Staff.userid == "lina").values(active=False))
        lina = await session.scalar(select(Staff).where(Staff.userid == "lina"))
        waiting = await notify_departure(session, chat.service.app[keys.WECOM], lina)
        await session.commit()
    await chat.service.settle()
    return waiting


def summaries(chat, userid: str) -> list[str]:
    return [r for r in chat.replies(userid) if "的客户转交已有结果" in r]


async def test_a_departed_reps_customers_end_up_under_the_new_rep(chat):
    await chat.onboard()
    assert await lina_leaves(chat) == 3
    assert "李娜 已离职，企业微信里有 3 位客户等待分配新的负责人" in chat.replies("liuyang")[-1]
    reply = await chat.ask("liuyang", "转交 全部 李娜 张伟")
    assert "已向企业微信提交：把 李娜 的 3 位客户转交给 张伟" in reply
    assert chat.service.sim.transfer_book.unassigned(chat.service.sim) == []  # on their way
    assert {t.kind for t in chat.service.sim.transfer_book.transfers} == {"resigned"}
    await follow_handovers(chat)
    for name in LINAS:
        assert followers(chat, name) == ["zhangwei"]  # WeCom's own record
        assert await owner_of(chat, name) == "zhangwei"
    [summary] = summaries(chat, "liuyang")
    assert "3 位已由 张伟 接手，0 位客户拒绝，0 位未能转交" in summary
    await follow_handovers(chat)  # the job again, and WeCom answering the same: nothing more is said
    assert len(summaries(chat, "liuyang")) == 1
    async with chat.service.sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert actions.count("customer.handover_requested") == 3 and actions.count("customer.handover") == 3
    assert "staff.customers_waiting" in actions and "handover.settled" in actions


async def test_a_refused_transfer_leaves_the_owner_and_the_summary_says_why(chat):
    await chat.onboard()
    sim = chat.service.sim
    sim.transfer_book.refuse(external_id(sim, "吴敏"))
    await chat.ask("liuyang", "转交 全部 李娜 张伟")
    settled = sim.transfer_book.settle(sim)
    [refusal] = [t for t in settled if t.status == 3]
    # WeCom tells us through a transfer_fail callback, naming the takeover rep
    await chat.service.wecom.change_external_contact("transfer_fail", "zhangwei", refusal.external_userid,
                                                     fail_reason="customer_refused")
    await chat.service.settle()
    assert await owner_of(chat, "吴敏") == "lina" and followers(chat, "吴敏") == ["lina"]
    await follow_handovers(chat)
    assert await owner_of(chat, "吴敏") == "lina"
    assert await owner_of(chat, "郑浩") == await owner_of(chat, "冯雪") == "zhangwei"
    [summary] = summaries(chat, "liuyang")
    assert "2 位已由 张伟 接手，1 位客户拒绝" in summary and "拒绝的客户仍由 李娜 负责" in summary


async def test_the_ninety_day_limit_is_explained_and_changes_nothing(chat):
    await chat.onboard("赵磊", "吴敏")
    for receiving, back in (("李娜", "lina"), ("张伟", "zhangwei")):
        await chat.ask("zhangwei" if back == "lina" else "lina", f"转交 赵磊 {receiving}")
        await follow_handovers(chat)
        assert await owner_of(chat, "赵磊") == back
    submitted, summary = await chat.say("zhangwei", "转交 赵磊 李娜")  # the third time within 90 days
    assert "已向企业微信提交" in submitted  # WeCom refuses the call at once: the outcome follows straight away
    assert "0 位已由 李娜 接手" in summary and "90 天内只能被转接 2 次" in summary
    assert await owner_of(chat, "赵磊") == "zhangwei" and followers(chat, "赵磊") == ["zhangwei"]


async def test_a_repeated_command_or_a_crash_never_sends_a_transfer_twice(chat, monkeypatch):
    await chat.onboard("赵磊", *LINAS)
    real_started, crashes = handover_module.HandoverService.started, []

    async def crash_once(self, batch, errcodes):
        if not crashes:  # WeCom accepted the call, then the process died before committing
            crashes.append(errcodes)
            raise RuntimeError("the worker died before its commit")
        return await real_started(self, batch, errcodes)

    monkeypatch.setattr(handover_module.HandoverService, "started", crash_once)
    await chat.service.wecom.text("liuyang", "转交 全部 李娜 张伟", msg_id=99_001)
    for _ in range(20):  # the crashed attempt backs off; time passes without anyone sleeping
        await chat.service.settle_past_backoffs()
        if not await chat.service.pending():
            break
    assert crashes and len(chat.service.sim.transfer_book.transfers) == 3
    assert "3 位客户已在转交中，没有重复提交" in await chat.ask("liuyang", "转交 全部 李娜 张伟")
    assert len(chat.service.sim.transfer_book.transfers) == 3  # one WeCom transfer per customer
    async with chat.service.sessions() as session:
        states = (await session.scalars(select(HandoverCustomer.state))).all()
        handovers = await session.scalar(select(func.count(func.distinct(HandoverCustomer.handover_id))))
    assert sorted(states) == ["waiting"] * 3 and handovers == 1
    await follow_handovers(chat)
    assert [await owner_of(chat, name) for name in LINAS] == ["zhangwei"] * 3
    assert len(summaries(chat, "liuyang")) == 1


async def test_bad_handover_input_changes_nothing(chat):
    await chat.onboard(*LINAS)
    assert "找不到同事「王五」" in await chat.ask("liuyang", "转交 全部 李娜 王五")
    assert "不能是同一个人" in await chat.ask("liuyang", "转交 全部 李娜 李娜")
    assert chat.service.sim.transfer_book.transfers == []
    lina = (await chat.staff("lina")).id
    async with chat.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(HandoverCustomer)) == 0
        assert {c.owner_id for c in (await session.scalars(select(Customer))).all()} == {lina}
