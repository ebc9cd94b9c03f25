"""群发 标签:VIP …: a manager's campaign through the real callback endpoint, the outbox sender and
the WeCom simulator; the group-send sync brings back what each rep and customer did.

The chat clock is fixed at Wednesday 2026-11-18 10:00 Shanghai (tests/bot/conftest.py). VIP here:
张伟's 赵磊 and 孙丽 (and 周杰, who opted out), 李娜's 吴敏 and 冯雪 (and 郑浩, who already got as many
group messages this month as November has days: WeCom's limit since 2025-11), and 钱多 of 赵强, who works in another department than manager 刘洋.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from crm_core.campaigns import CampaignService
from crm_core.models import Campaign, CareDelivery, Customer, CustomerIdentity, CustomerTag, OutboxItem, Staff
from crm_core.scope import Scope
from scheduler.runner import JobContext
from scrm import keys
from scrm.delivery.group_sends import make_group_send_sync_job
from tests.support.chat import FIXED_NOW, Chat
from tests.support.service import external_id

TEXT = "双十二活动，全场八折"
OUTSIDER = "wmOutsiderQianDuo000000000000009"


async def vip_company(chat: Chat) -> None:
    sim = chat.service.sim
    sim.staff["zhaoqiang"] = {**deepcopy(sim.staff["lina"]), "userid": "zhaoqiang", "name": "赵强", "department": [5]}
    qian_duo = deepcopy(sim.external_contacts[external_id(sim, "冯雪")])
    qian_duo["external_contact"] |= {"external_userid": OUTSIDER, "name": "钱多"}
    qian_duo["follow_user"][0]["userid"] = "zhaoqiang"
    sim.external_contacts[OUTSIDER] = qian_duo
    await chat.onboard()
    for rep, name in (("zhangwei", "赵磊"), ("zhangwei", "孙丽"), ("zhangwei", "周杰"),
                      ("lina", "吴敏"), ("lina", "冯雪"), ("lina", "郑浩")):
        assert "VIP" in await chat.ask(rep, f"标签 {name} +VIP")
    async with chat.service.sessions() as session:
        await session.execute(update(Customer).where(Customer.name == "周杰").values(care_opted_out_at=FIXED_NOW))
        zheng = await session.scalar(select(Customer.id).where(Customer.name == "郑浩"))
        session.add_all(CareDelivery(customer_id=zheng, occasion=f"festival:promo{i}", occasion_date=FIXED_NOW.date(),
                                     channel="template", status="confirmed", created_at=FIXED_NOW - timedelta(hours=i))
                        for i in range(1, 31))
        outsider = Staff(userid="zhaoqiang", name="赵强", department_ids=[5])
        session.add(outsider)
        await session.flush()
        qian = Customer(name="钱多", owner_id=outsider.id)
        session.add(qian)
        await session.flush()
        session.add_all([CustomerIdentity(customer_id=qian.id, channel="wecom", external_id=OUTSIDER),
                         CustomerTag(customer_id=qian.id, name="VIP")])
        await session.commit()


def tasks(chat: Chat) -> dict[str, set[str]]:
    """The group-send tasks WeCom got: sender -> customers' names (a task's list has no order to keep)."""
    sim = chat.service.sim
    names = {k: c["external_contact"]["name"] for k, c in sim.external_contacts.items()}
    return {t["sender"]: {names.get(e, e) for e in t["external_userid"]} for t in sim.msg_templates}


async def campaigns(chat: Chat) -> int:
    async with chat.service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Campaign))


async def sync(chat: Chat, at: datetime) -> str:
    """The scheduler's care.group_send_sync run at `at`, then what it queued is delivered."""
    app, tz = chat.service.app, chat.service.settings.tz
    summary = await make_group_send_sync_job(app[keys.WECOM])(JobContext(app[keys.SESSIONS], at.astimezone(tz), tz))
    await chat.service.settle()
    return summary


async def task_sent_at(chat: Chat) -> datetime:
    """When WeCom got the campaign's tasks: the clock the sync's reminder and expiry run on."""
    async with chat.service.sessions() as session:
        return await session.scalar(select(func.max(OutboxItem.sent_at)).where(OutboxItem.kind == "msg_template"))


def msgid(chat: Chat, sender: str) -> str:
    return next(t["msgid"] for t in chat.service.sim.msg_templates if t["sender"] == sender)


async def test_a_previewed_campaign_becomes_one_task_per_rep_and_each_rep_is_told(chat):
    await vip_company(chat)

    preview = await chat.ask("liuyang", f"群发 标签:VIP {TEXT}")
    assert preview.splitlines()[:3] == [
        "群发预览 · 标签「VIP」",
        "将发给 4 位客户，由 2 位同事各自在「群发助手」确认发送：张伟 2 位、李娜 2 位",
        "不发送：已退订 1 位、已达企业微信群发接收上限 1 位",
    ]
    assert f"内容：{TEXT}" in preview and "回复「确认」" in preview
    assert chat.service.sim.msg_templates == [] and await campaigns(chat) == 0

    done = await chat.ask("liuyang", "确认")
    assert done.startswith("已创建群发活动 C1：4 位客户，2 个群发任务，已通知 2 位同事到「群发助手」确认发送。")
    assert tasks(chat) == {"zhangwei": {"赵磊", "孙丽"}, "lina": {"吴敏", "冯雪"}}  # not 周杰, 郑浩, nor 赵强's 钱多
    assert {t["text"]["content"] for t in chat.service.sim.msg_templates} == {TEXT}
    for rep in ("zhangwei", "lina"):
        notice = chat.replies(rep)[-1]
        assert notice.startswith("刘洋发起了群发活动 C1（标签「VIP」），已为您的 2 位客户创建群发任务。")
        assert "群发助手" in notice
    assert (await chat.ask("liuyang", "确认")).startswith("没有「确认」这个命令")  # the question is answered

    await chat.say("liuyang", f"群发 标签:VIP {TEXT}2")
    assert await chat.ask("liuyang", "算了") == "已取消，没有创建群发。"
    assert await campaigns(chat) == 1 and len(chat.service.sim.msg_templates) == 2


async def test_only_managers_and_admins_send_and_a_manager_reaches_only_their_departments(chat):
    await vip_company(chat)
    assert await chat.ask("zhangwei", f"群发 标签:VIP {TEXT} 确认") == "抱歉，您的角色无权使用「群发」。如需开通请联系管理员。"
    assert await campaigns(chat) == 0

    await chat.say("liuyang", f"群发 标签:VIP {TEXT} 确认")
    assert OUTSIDER not in {e for t in chat.service.sim.msg_templates for e in t["external_userid"]}
    assert (await chat.ask("chenjing", f"campaign tag:VIP {TEXT} confirm")).startswith("已创建群发活动 C2：5 位客户")
    assert tasks(chat)["zhaoqiang"] == {"钱多"}
    assert "C2" not in await chat.ask("liuyang", "群发 列表")  # the admin's campaign is not the manager's to see
    assert await chat.ask("liuyang", "群发 C2") == "没有找到群发活动 C2（或不在您的查看范围内）。"


async def test_the_same_campaign_sent_again_within_minutes_is_not_sent_twice(chat):
    await vip_company(chat)
    await chat.say("liuyang", f"群发 标签:VIP {TEXT} 确认")
    again = await chat.ask("liuyang", f"群发 标签:VIP {TEXT} 确认")
    assert again == "相同内容的群发 C1（标签「VIP」）在 1 分钟内刚创建过，没有重复发送。发送「群发 C1」查看进度。"
    assert await campaigns(chat) == 1 and len(chat.service.sim.msg_templates) == 2

    chat.set_clock(FIXED_NOW + timedelta(minutes=11))
    assert (await chat.ask("liuyang", f"群发 标签:VIP {TEXT} 确认")).startswith("已创建群发活动 C2")


async def test_what_reps_and_wecom_did_comes_back_and_a_rep_who_sits_on_the_task_is_reminded_once(chat):
    await vip_company(chat)
    await chat.say("liuyang", f"群发 标签:VIP {TEXT} 确认")
    sim = chat.service.sim
    sim.end_contact(external_id(sim, "冯雪"), "lina")
    sim.confirm_msg_template(msgid(chat, "lina"), "lina")
    sent_at = await task_sent_at(chat)
    notices = {rep: len(chat.replies(rep)) for rep in ("zhangwei", "lina")}

    assert (await sync(chat, sent_at + timedelta(hours=1))).startswith(
        "4 group-send task(s) checked: 1 confirmed, 1 unsent, 2 still open")
    assert (await sync(chat, sent_at + timedelta(hours=4))).endswith("1 reminder(s) queued for 1 rep(s)")
    await sync(chat, sent_at + timedelta(hours=5))
    [reminder] = chat.replies("zhangwei")[notices["zhangwei"]:]
    assert reminder.startswith("客户 赵磊等 2 位 的群发活动（C1）还在企业微信「群发助手」里等您确认")
    assert len(chat.replies("lina")) == notices["lina"]  # she sent hers

    report = await chat.ask("liuyang", "群发 C1")
    assert report.splitlines()[2:] == [
        "共 4 位客户：已送达 1，未送达 1，待确认 2",
        "· 张伟：2 位客户，任务待确认，已送达 0，未送达 0，待确认 2",
        "· 李娜：2 位客户，任务已确认发送，已送达 1，未送达 1，待确认 0",
        "  未送达 1 位（冯雪）：客户已不是李娜的微信好友，企业微信未能送达",
        "未纳入：已退订 1 位、已达企业微信群发接收上限 1 位",
    ]
    assert report.startswith("群发活动 C1 · 标签「VIP」· 11-18 10:00 刘洋发起")

    sim.confirm_msg_template(msgid(chat, "zhangwei"), "zhangwei")
    await sync(chat, sent_at + timedelta(hours=6))
    assert "共 4 位客户：已送达 3，未送达 1，待确认 0" in await chat.ask("liuyang", "群发 C1")
    listing = await chat.ask("liuyang", "群发 列表")
    assert f"C1 11-18 10:00 标签「VIP」4 位客户：已送达 3，未送达 1，待确认 0 — {TEXT}" in listing


async def test_a_rep_with_more_customers_than_one_task_holds_gets_several_tasks(chat):
    await vip_company(chat)
    async with chat.service.sessions() as session:
        liuyang = await session.scalar(select(Staff).where(Staff.userid == "liuyang"))
        service = CampaignService(session, chat.service.settings.tz, task_limit=1)
        audience = await service.audience("VIP", Scope(liuyang.id, frozenset({liuyang.id, *(
            await session.scalars(select(Staff.id).where(Staff.userid.in_(("zhangwei", "lina")))))})), FIXED_NOW)
        campaign = await service.launch(audience, TEXT, liuyang, FIXED_NOW)
        await session.commit()
    await chat.service.settle()
    senders = sorted((t["sender"], len(t["external_userid"])) for t in chat.service.sim.msg_templates)
    assert senders == [("lina", 1), ("lina", 1), ("zhangwei", 1), ("zhangwei", 1)]
    zhangwei = next(s for s in audience.reps.values() if s.userid == "zhangwei")
    assert f"campaign:{campaign.id}:staff:{zhangwei.id}:2" in campaign.summary["tasks"]
    [notice] = [r for r in chat.replies("zhangwei") if "群发活动 C1" in r]  # one notice, however many tasks
    assert "您的 2 位客户" in notice


async def test_each_customer_in_a_shared_task_keeps_their_own_outcome_and_wecom_is_asked_once_per_task(chat):
    await vip_company(chat)
    sim = chat.service.sim
    sim.end_contact(external_id(sim, "孙丽"), "zhangwei")  # before the task reaches WeCom: refused for her alone
    await chat.say("liuyang", f"群发 标签:VIP {TEXT} 确认")
    assert next(t for t in sim.msg_templates if t["sender"] == "zhangwei")["fail_list"] == [external_id(sim, "孙丽")]
    sim.fail_next("externalcontact/get_groupmsg_task", errcode=41063, times=3)  # "still dispatching", for both tasks

    summary = await sync(chat, await task_sent_at(chat) + timedelta(hours=1))
    assert summary == ("4 group-send task(s) checked: 0 confirmed, 1 unsent, 3 still open; "
                       "0 reminder(s) queued for 0 rep(s); 2 WeCom error(s)")
    report = await chat.ask("liuyang", "群发 C1")
    assert "  未送达 1 位（孙丽）：企业微信不允许张伟向该客户群发（对方不在其客户列表中），客户未收到" in report.splitlines()
