"""A complaint through 微信客服 becomes a routed ticket; the agent works it from chat to a rating."""

from __future__ import annotations

from sqlalchemy import select

from crm_core.models import Message, Staff
from crm_core.ticket_models import TicketEvent
from crm_core.ticket_routing import AgentSelector
from crm_core.ticket_policy import Group
from scrm.delivery.sender import message_text as reply_text

COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"


async def test_complaint_to_rating_end_to_end(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)

    [ticket] = await desk.tickets()
    day = desk.now.astimezone(desk.service.settings.tz).strftime("%Y%m%d")
    assert ticket.number == f"T{day}-0001"
    assert (ticket.status, ticket.category, ticket.priority, ticket.group) == ("open", "refund", "urgent", "aftersales")
    assert ticket.assignee.userid == "wangfang"
    assert ticket.ack_status == "sent"
    async with desk.service.sessions() as session:
        trigger = await session.get(Message, ticket.trigger_message_id)
    assert trigger.text == COMPLAINT and trigger.customer_id == ticket.customer_id

    [card] = desk.app_sent("wangfang")
    assert card["msgtype"] == "textcard" and ticket.number in card["textcard"]["title"]
    assert "孙丽" in card["textcard"]["description"] and "紧急" in card["textcard"]["description"]
    [owner_note] = desk.app_sent("zhangwei")
    assert ticket.number in reply_text(owner_note) and "王芳" in reply_text(owner_note)
    [ack] = desk.kf_sent("孙丽")
    assert ticket.number in ack

    [listing] = await desk.say("wangfang", "工单")
    assert ticket.number in listing and "孙丽" in listing
    [accepted] = await desk.say("wangfang", f"接单 {ticket.number}")
    assert "已接单" in accepted
    [sent] = await desk.say("wangfang", f"回复 {ticket.number} 已为您补发，明天送到")
    assert "已提交发送" in sent
    assert desk.kf_sent("孙丽")[-1].endswith("已为您补发，明天送到")
    async with desk.service.sessions() as session:
        archived = (await session.scalars(select(Message).where(
            Message.channel == "wecom_kf", Message.direction == "out", Message.customer_id == ticket.customer_id))).all()
    assert any("已为您补发" in m.text for m in archived)

    [resolved] = await desk.say("wangfang", f"解决 {ticket.number} 已补发新品")
    assert "已解决" in resolved
    assert "1–5" in desk.kf_sent("孙丽")[-1] and "已补发新品" in desk.kf_sent("孙丽")[-1]

    desk.advance(hours=2)
    await desk.customer_writes("孙丽", "5")
    [ticket] = await desk.tickets()
    assert (ticket.status, ticket.csat) == ("resolved", 5)
    assert "感谢" in desk.kf_sent("孙丽")[-1]

    [details] = await desk.say("wangfang", f"工单 {ticket.number}")
    assert "已解决" in details and "满意度：5" in details
    for step in ("创建", "分配", "接单", "回复客户", "解决", "客户评分"):
        assert step in details
    async with desk.service.sessions() as session:
        kinds = (await session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)
                                       .order_by(TicketEvent.id))).all()
        actors = (await session.scalars(select(TicketEvent).where(TicketEvent.kind == "accepted"))).all()
    assert kinds == ["created", "assigned", "acknowledged", "accepted", "replied", "resolved", "csat"]
    assert actors[0].actor.userid == "wangfang" and actors[0].created_at is not None

    status, body = await desk.service.api("/api/v1/tickets", status="resolved")
    assert status == 200 and body["total"] == 1 and body["items"][0]["csat"] == 5
    status, body = await desk.service.api(f"/api/v1/tickets/{ticket.number}")
    assert status == 200 and [e["kind"] for e in body["events"]] == kinds


async def test_more_messages_attach_and_a_complaint_after_resolution_reopens(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", "快递一个星期了还没到，怎么回事？")
    await desk.customer_writes("孙丽", "到底什么时候能到？太过分了，客服也没人回")
    [ticket] = await desk.tickets()
    assert ticket.complaint_messages == 2 and ticket.category == "delivery"
    assert len(desk.kf_sent("孙丽")) == 1  # one acknowledgement, not one per message
    assert any("又发来消息" in reply_text(m) for m in desk.app_sent("wangfang"))

    await desk.say("wangfang", f"解决 {ticket.number} 已联系快递加急派送")
    desk.advance(days=3)
    await desk.customer_writes("孙丽", "东西还是没收到，你们到底管不管？")
    [ticket] = await desk.tickets()
    assert (ticket.status, ticket.reopened) == ("open", 1)

    await desk.say("wangfang", f"解决 {ticket.number} 已补发")
    desk.advance(days=8)
    await desk.customer_writes("孙丽", "这次买的又是坏的，质量太差了")
    old, new = await desk.tickets()
    assert (old.status, new.status, new.category) == ("resolved", "open", "quality")
    assert new.number != old.number


async def test_non_complaints_open_no_ticket(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", "你好，请问这款有现货吗？", "好的谢谢，收到了", "发票怎么开？")
    assert await desk.tickets() == []


async def test_vip_repeat_and_threat_priorities(desk):
    await desk.onboard("赵磊", "孙丽")
    await desk.customer_writes("赵磊", "上次买的设备又坏了，用不了")  # VIP tag 重要客户
    await desk.customer_writes("孙丽", "收到的杯子是破损的，很失望")
    vip, normal = await desk.tickets()
    assert vip.priority == "urgent" and normal.priority in ("normal", "high")
    await desk.say("wangfang", f"解决 {normal.number} 已补发")
    desk.advance(days=8)
    await desk.customer_writes("孙丽", "又收到一个破损的，太失望了")
    *_, repeat = await desk.tickets()
    assert repeat.priority == "urgent"  # second ticket within 30 days


async def test_agents_are_balanced_and_inactive_means_manager_is_told(desk, monkeypatch):
    await desk.onboard("赵磊", "孙丽", "周杰")
    async with desk.service.sessions() as session:
        lina = await session.scalar(select(Staff).where(Staff.userid == "lina"))
        lina.role = "support"
        await session.commit()
    policy = desk.policy  # 售后组: 客户服务部 (wangfang) and lina by userid
    monkeypatch.setitem(policy.groups, "aftersales", Group("aftersales", "售后组", AgentSelector((3,), users=("lina",))))
    await desk.customer_writes("赵磊", "东西坏了，要求退款")
    await desk.customer_writes("孙丽", "收到的货是坏的，我要退货")
    first, second = await desk.tickets()
    assert {first.assignee.userid, second.assignee.userid} == {"wangfang", "lina"}

    async with desk.service.sessions() as session:
        for staff in (await session.scalars(select(Staff).where(Staff.userid.in_(("wangfang", "lina"))))).all():
            staff.active = False
        await session.commit()
    await desk.customer_writes("周杰", "设备用了一周就坏了，质量太差，要退款")
    *_, orphan = await desk.tickets()
    assert orphan.status == "open" and orphan.assignee is None
    [note] = [m for m in desk.app_sent("liuyang") if orphan.number in reply_text(m)]
    assert "没有可用的客服" in reply_text(note)


async def test_agent_commands_refuse_politely(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    assert "没有找到工单" in (await desk.ask("wangfang", "工单 T20000101-0001"))
    assert "无权" in (await desk.ask("zhangwei", f"解决 {ticket.number} 好了"))  # sales role
    assert "格式不对" in (await desk.ask("wangfang", "接单 12345"))
    assert "没有找到在职同事" in (await desk.ask("wangfang", f"转派 {ticket.number} 不存在的人"))
    await desk.say("liuyang", "帮助")  # the manager has used the bot, so their profile (name) is synced
    reply = await desk.ask("wangfang", f"转派 {ticket.number} 刘洋")
    assert "转给 刘洋" in reply
    assert "由 刘洋 负责" in (await desk.ask("wangfang", f"解决 {ticket.number} 好了"))
    assert any(m["msgtype"] == "textcard" for m in desk.app_sent("liuyang"))
    await desk.ask("liuyang", f"关闭 {ticket.number}")
    assert "不能这样操作" in (await desk.ask("liuyang", f"关闭 {ticket.number}"))
    assert "已重开" in (await desk.ask("liuyang", f"重开 {ticket.number}"))


async def test_replies_stop_when_the_kf_window_is_used_up(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)  # the acknowledgement is reply 1 of 5
    [ticket] = await desk.tickets()
    for n in range(4):
        assert "已提交发送" in (await desk.ask("wangfang", f"回复 {ticket.number} 第{n + 2}条"))
    refusal = await desk.ask("wangfang", f"回复 {ticket.number} 第6条")
    assert "目前无法直接回复" in refusal
    assert len(desk.kf_sent("孙丽")) == 5
    desk.advance(hours=49)
    await desk.customer_writes("孙丽", "在吗")
    assert "已提交发送" in (await desk.ask("wangfang", f"回复 {ticket.number} 您好，我们在处理"))
    desk.advance(hours=49)
    assert "目前无法直接回复" in (await desk.ask("wangfang", f"回复 {ticket.number} 还在吗"))


async def test_an_agent_learns_when_a_reply_could_not_be_delivered(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    # WeCom closes the window between our check and the send (e.g. the customer's session ended).
    desk.service.sim.fail_next("kf/send_msg", errcode=95001)
    confirmation, notice = await desk.say("wangfang", f"回复 {ticket.number} 已为您补发")
    assert "已提交发送" in confirmation
    assert "消息未能送达 孙丽" in notice and "已为您补发" in notice and "48 小时" in notice


async def test_the_customer_card_lists_open_tickets(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    card = await desk.ask("zhangwei", "查 孙丽")
    assert f"未结工单：{ticket.number}（" in card
    await desk.ask("wangfang", f"解决 {ticket.number} 已补发")
    assert "未结工单：—" in (await desk.ask("zhangwei", "查 孙丽"))
