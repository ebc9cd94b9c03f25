"""转交 in WeCom itself: a departed rep's customers are inherited (离职继承), reps on the job hand over
(在职继承), and the CRM follows only what WeCom accepted. Through chat, callbacks and the scheduler
job, against the simulator's own record of who follows whom."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from connectors.wecom.simulator import directory as company
from crm_core import handover as handover_module
from crm_core.models import AuditEntry, Customer, CustomerFollower, CustomerIdentity, Handover, HandoverCustomer, Staff
from scrm import keys
from scrm.ingest.departures import notify_departure
from scheduler.runner import JobContext
from scrm.delivery.handovers import make_handover_follow_job
from tests.support.chat import SHANGHAI, follow_handovers
from tests.support.service import external_id

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


async def test_a_rep_wecom_still_has_on_the_job_is_not_inherited_and_the_summary_says_so(chat):
    """The CRM took 李娜 for departed, but WeCom answers 40097 (该成员尚未离职) to the resigned transfer."""
    await chat.onboard(*LINAS, "赵磊")
    async with chat.service.sessions() as session:
        await session.execute(update(Staff).where(Staff.userid == "lina").values(active=False))
        await session.commit()
    submitted, summary = await chat.say("liuyang", "转交 全部 李娜 张伟")
    assert "已向企业微信提交" in submitted
    assert "0 位已由 张伟 接手，0 位客户拒绝，3 位未能转交" in summary and "李娜 尚未离职" in summary
    assert [await owner_of(chat, name) for name in LINAS] == ["lina"] * 3
    assert chat.service.sim.transfer_book.transfers == []


async def test_wecom_busy_through_every_attempt_ends_in_a_summary_not_a_silent_wait(chat):
    await chat.onboard(*LINAS, "赵磊")
    await chat.service.stop_background_workers()  # the test steps every attempt itself
    chat.service.sim.fail_next("externalcontact/transfer_customer", errcode=-1, times=100)  # 系统繁忙, always
    await chat.service.wecom.text("liuyang", "转交 全部 李娜 张伟", msg_id=99_101)
    for _ in range(40):  # every back-off passes; nobody sleeps
        await chat.service.settle_past_backoffs()
        if not await chat.service.pending():
            break
    [summary] = summaries(chat, "liuyang")
    assert "3 位未能转交" in summary and "请稍后重新发送「转交」" in summary
    assert [await owner_of(chat, name) for name in LINAS] == ["lina"] * 3
    assert chat.service.sim.transfer_book.transfers == []


async def test_a_contact_the_departed_rep_shared_keeps_its_owner_and_moves_her_relation(chat):
    """赵磊 is 张伟's customer; 李娜 added him too. When 李娜 leaves, WeCom holds her relation as
    unassigned: inheriting it gives 王芳 the relation, and 张伟 stays the owner."""
    await chat.onboard("赵磊", *LINAS)
    sim, zhao = chat.service.sim, external_id(chat.service.sim, "赵磊")
    sim.add_follower(zhao, "lina", remark="赵总（李娜）")
    await chat.service.wecom.change_external_contact("add_external_contact", "lina", zhao)
    await chat.service.settle()
    await chat.ask("wangfang", "帮助")  # 王芳 is known to the CRM once she writes
    assert await lina_leaves(chat) == 4
    await chat.say("liuyang", "转交 全部 李娜 王芳")
    await follow_handovers(chat)
    assert followers(chat, "赵磊") == ["zhangwei", "wangfang"]
    assert await owner_of(chat, "赵磊") == "zhangwei"
    assert [await owner_of(chat, name) for name in LINAS] == ["wangfang"] * 3
    assert "4 位已由 王芳 接手" in summaries(chat, "liuyang")[-1]


async def test_a_transfer_wecom_has_no_result_for_is_not_waited_for_forever(chat):
    await chat.onboard("赵磊", "吴敏")
    await chat.ask("liuyang", "转交 吴敏 张伟")
    chat.service.sim.transfer_book.transfers.clear()  # WeCom answers transfer_result without the customer
    job = make_handover_follow_job(chat.service.app[keys.WECOM])
    context = JobContext(chat.service.app[keys.SESSIONS], chat.now.astimezone(SHANGHAI), SHANGHAI)
    async with chat.service.sessions() as session:
        await session.execute(update(Handover).values(created_at=chat.now - timedelta(days=1)))
        await session.commit()
    await job(context)
    await chat.service.settle()
    assert summaries(chat, "liuyang") == []  # within WeCom's 24 hours and a margin: still waiting
    async with chat.service.sessions() as session:
        await session.execute(update(Handover).values(created_at=chat.now - timedelta(days=4)))
        await session.commit()
    await job(context)
    await chat.service.settle()
    [summary] = summaries(chat, "liuyang")
    assert "1 位未能转交" in summary and "查不到接替记录，仍由 李娜 负责" in summary
    assert await owner_of(chat, "吴敏") == "lina"


async def test_a_book_of_more_than_100_customers_goes_in_calls_of_100(chat):
    """WeCom takes at most 100 external_userid a call (40058 beyond): 153 customers go in two calls (100 and 53)."""
    await chat.onboard("赵磊", *LINAS)
    sim, lina = chat.service.sim, await chat.staff("lina")
    template = sim.external_contacts[external_id(sim, "吴敏")]
    async with chat.service.sessions() as session:
        for n in range(150):
            external = f"wmBulk{n:026d}"
            sim.external_contacts[external] = {
                "external_contact": {**template["external_contact"], "external_userid": external, "name": f"客户{n}"},
                "follow_user": [dict(template["follow_user"][0])]}
            customer = Customer(name=f"客户{n}", owner_id=lina.id)
            session.add(customer)
            await session.flush()
            session.add_all([CustomerIdentity(customer_id=customer.id, channel="wecom", external_id=external),
                             CustomerFollower(customer_id=customer.id, staff_id=lina.id, remark_mobiles=[], tag_ids=[])])
        await session.commit()
    assert "把 李娜 的 153 位客户转交给 张伟" in await chat.ask("liuyang", "转交 全部 李娜 张伟")
    assert len(sim.transfer_book.transfers) == 153
    await follow_handovers(chat)
    assert "153 位已由 张伟 接手" in summaries(chat, "liuyang")[-1]
    async with chat.service.sessions() as session:
        batches = (await session.scalars(select(HandoverCustomer.batch).distinct())).all()
    assert sorted(batches) == [0, 1]
