"""Every command through the real callback endpoint, the queues and the WeCom simulator."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import event, func, select, update

from crm_core.models import AuditEntry, Customer, Deal, FollowUp, Message, Note, OutboxItem
from scrm import keys
from tests.support.chat import FIXED_NOW, follow_handovers, later


async def audit_actions(chat, customer_id=None) -> list[str]:
    async with chat.service.sessions() as session:
        stmt = select(AuditEntry.action).order_by(AuditEntry.id)
        if customer_id is not None:
            stmt = stmt.where(AuditEntry.customer_id == customer_id)
        return list((await session.scalars(stmt)).all())


async def test_lookup_card_by_every_kind_of_query(chat):
    await chat.onboard("赵磊", "孙丽", "周杰")
    queries = ["查 赵磊", "lookup zhaolei", "查 zl", "查 1001", "查 13800131001", "查 华东", "查 赵总", "LOOKUP ZL"]
    for query in queries:
        card = await chat.ask("zhangwei", query)
        assert card.startswith("**【赵磊】华东精密机械有限公司**"), (query, card)
    assert "138****1001" in card and "13800131001" not in card
    assert "负责人：张伟" in card and "生日：1985年3月12日" in card and "重要客户" in card
    zhao = await chat.customer("赵磊")
    assert (await audit_actions(chat, zhao.id)).count("customer.view") == len(queries)
    [message] = [m for m in chat.service.sim.sent_app_messages if m["touser"] == "zhangwei"][:1]
    assert message["msgtype"] == "markdown"


async def test_card_shows_notes_deal_tags_follow_up_and_sentiment(chat):
    await chat.onboard("赵磊")
    zhao = await chat.customer("赵磊")
    async with chat.service.sessions() as session:  # the rolling sentiment the NLP stage keeps
        await session.execute(update(Customer).where(Customer.id == zhao.id).values(sentiment_score=-0.7))
        await session.commit()
    for line in ["记 赵磊 第一次拜访", "记 赵磊 电话沟通，客户想要报价单", "记 赵磊 发了报价", "记 赵磊 客户在比价",
                 "跟进 赵磊 明天下午3点 回访", "标签 赵磊 +价格敏感", "阶段 赵磊 方案演示"]:
        await chat.say("zhangwei", line)
    card = await chat.ask("zhangwei", "查 赵磊")
    assert "第一次拜访" not in card  # only the last three notes
    assert "电话沟通，客户想要报价单" in card and "客户在比价" in card
    assert "最近联系：2026-11-18 10:00（张伟）" in card
    assert "商机：方案演示" in card and "价格敏感" in card
    assert "下次跟进：2026-11-19 15:00 回访" in card
    assert "近期情绪：消极（-0.7）" in card


async def test_several_matches_give_a_numbered_list_and_a_number_picks(chat):
    await chat.say("zhangwei", "新客户 张三 13900000001 甲公司")
    await chat.say("zhangwei", "新客户 章三 13900000002 乙公司")
    listing = await chat.ask("zhangwei", "查 zhangsan")
    assert "找到 2 位" in listing and "1. 张三（甲公司）139****0001" in listing and "2. 章三（乙公司）" in listing
    assert "【章三】乙公司" in await chat.ask("zhangwei", "2")
    assert "找到 2 位" in await chat.ask("zhangwei", "查 zs") and "请回复 1 到 2" in await chat.ask("zhangwei", "7")
    # picking also finishes other commands: the note lands on the chosen customer
    assert "找到 2 位" in await chat.ask("zhangwei", "记 zs 约了周五见面")
    assert "已记录 张三 的备注" in await chat.ask("zhangwei", "1")
    zhang = await chat.customer("张三")
    async with chat.service.sessions() as session:
        [note] = (await session.scalars(select(Note))).all()
    assert note.text == "约了周五见面" and note.customer_id == zhang.id
    assert "没有待选择的列表" in await chat.ask("zhangwei", "2")  # the list is used up by a new command
    # a pick, then a question, then the answer: one command finished over three messages
    assert "找到 2 位" in await chat.ask("zhangwei", "阶段 zhangsan 报价谈判")
    assert "需要先填写预算" in await chat.ask("zhangwei", "2")
    assert await chat.ask("zhangwei", "30万") == "章三 的商机：新建 → 报价谈判（预算 30万）"


async def test_a_pick_list_expires_and_more_pages_through_long_lists(chat):
    await chat.say("zhangwei", "帮助")  # first sight: the rep's staff record is synced
    zhangwei = await chat.staff("zhangwei")
    async with chat.service.sessions() as session:
        session.add_all(Customer(name=f"王{i:02d}", company="大客户集团", phone=f"1390000{i:04d}", owner_id=zhangwei.id)
                        for i in range(60))
        await session.commit()
    first = await chat.ask("zhangwei", "查 大客户")
    assert "超过 50 位" in first and "第 1/" in first and len(first.encode()) <= 2048
    pages = [first]
    while "更多" in pages[-1]:
        pages.append(await chat.ask("zhangwei", "更多"))
    assert "请输入更完整的姓名" in pages[-1]
    assert "50. " in "".join(pages) and "51. " not in "".join(pages)
    assert "没有更多" in await chat.ask("zhangwei", "更多")
    assert "【王" in await chat.ask("zhangwei", "42")
    mine = await chat.ask("zhangwei", "我的客户")
    assert "60 位" in mine and "更多" in mine


async def test_a_pick_list_reads_only_what_its_lines_show_and_every_number_picks(chat):
    """Fifty listed customers are one read of their list lines: loaded whole (owner joined, identities
    after, and a count besides), they were most of a lookup's time at a million customers."""
    await chat.say("zhangwei", "帮助")
    zhangwei = await chat.staff("zhangwei")
    async with chat.service.sessions() as session:
        session.add_all(Customer(name=f"王{i:02d}", company="大客户集团", phone=f"1390000{i:04d}", owner_id=zhangwei.id)
                        for i in range(60))
        await session.commit()
    statements: list[str] = []
    engine = chat.service.app[keys.ENGINE].sync_engine
    record = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        pages = [await chat.ask("zhangwei", "查 大客户")]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert "超过 50 位" in pages[0]
    assert len([s for s in statements if re.search(r"\b(FROM|JOIN) customers\b", s)]) == 1
    assert not [s for s in statements if "customer_identities" in s]
    while "更多" in pages[-1]:
        pages.append(await chat.ask("zhangwei", "更多"))
    [last] = re.findall(r"^50\. (王\d\d)（", "\n".join(pages), re.MULTILINE)
    assert (await chat.ask("zhangwei", "50")).startswith(f"**【{last}】")


async def test_no_match_says_so_and_suggests_close_names(chat):
    await chat.say("zhangwei", "新客户 张三 13900000001")
    assert "没有找到「张山」。您是不是要找：张三" in await chat.ask("zhangwei", "查 张山")
    assert "没有找到与「不存在的人」相关的客户" in await chat.ask("zhangwei", "查 不存在的人")


async def test_note_is_timestamped_authored_and_updates_last_contact(chat):
    await chat.onboard("赵磊")
    reply = await chat.ask("zhangwei", "note 赵磊 电话沟通，客户想要报价单")
    assert reply == "已记录 赵磊 的备注（11-18 10:00），最近联系时间已更新。"
    zhao = await chat.customer("赵磊")
    async with chat.service.sessions() as session:
        [note] = (await session.scalars(select(Note))).all()
    assert (note.text, note.created_at, note.author_id) == ("电话沟通，客户想要报价单", FIXED_NOW, (await chat.staff("zhangwei")).id)
    assert zhao.last_contact_at == FIXED_NOW and zhao.last_contact_by_id == note.author_id
    assert "customer.note" in await audit_actions(chat, zhao.id)


async def test_follow_up_with_chinese_time_confirms_the_exact_time(chat):
    await chat.onboard("赵磊")
    reply = await chat.ask("zhangwei", "跟进 赵磊 下周三下午3点 带方案上门")
    assert "时间：2026-11-25 15:00（周三）" in reply and "事项：带方案上门" in reply
    assert "2026-11-19 09:00（周四）" in await chat.ask("zhangwei", "followup 赵磊 明天")
    assert "2026-11-30 09:00（周一）" in await chat.ask("zhangwei", "跟进 赵磊 月底 催款")
    assert "2026-12-05 09:00" in await chat.ask("zhangwei", "跟进 赵磊 12月5日")
    assert "2026-11-21 09:00" in await chat.ask("zhangwei", "跟进 赵磊 3天后")
    assert "2026-11-18 15:30" in await chat.ask("zhangwei", "跟进 赵磊 15:30 电话")
    assert "已经过去" in await chat.ask("zhangwei", "跟进 赵磊 本周一")
    assert "格式不对" in await chat.ask("zhangwei", "跟进 赵磊 改天吧")
    async with chat.service.sessions() as session:
        due = sorted((await session.scalars(select(FollowUp.due_at))).all())
    assert due[0] == FIXED_NOW + timedelta(hours=5, minutes=30)  # stored in UTC: 15:30 Shanghai is 07:30Z
    assert len(due) == 6


async def test_todo_lists_overdue_first_and_mine_sorts_by_last_contact(chat):
    await chat.onboard("赵磊", "孙丽", "周杰")
    await chat.say("zhangwei", "跟进 孙丽 下周一 报价")
    await chat.say("zhangwei", "跟进 赵磊 明天 回访")
    await chat.say("zhangwei", "记 周杰 见面")
    chat.set_clock(later(days=2))
    todo = await chat.ask("zhangwei", "我的待办")
    assert todo.splitlines()[0] == "您有 2 条待跟进（已逾期 1 条）："
    assert "1. 【已逾期】11-19 09:00 赵磊：回访" in todo and "2. 11-23 09:00 孙丽：报价" in todo
    mine = await chat.ask("zhangwei", "mine")
    assert mine.index("周杰") < mine.index("赵磊") and "从未联系" in mine
    assert "暂无待跟进" in await chat.ask("lina", "todo")


async def test_tags_add_and_remove(chat):
    await chat.onboard("赵磊")
    assert await chat.ask("zhangwei", "标签 赵磊 +VIP +价格敏感") == "已更新 赵磊 的标签：VIP、价格敏感"
    assert await chat.ask("zhangwei", "tag 赵磊 -价格敏感 +VIP") == "已更新 赵磊 的标签：VIP"
    assert "重要客户" in await chat.ask("zhangwei", "标签 赵磊")


async def test_stage_moves_along_the_pipeline_and_asks_for_required_fields(chat):
    await chat.onboard("赵磊", "孙丽")
    assert await chat.ask("zhangwei", "阶段 赵磊 需求确认") == "赵磊 的商机：新建 → 需求确认"
    ask = await chat.ask("zhangwei", "stage 赵磊 报价谈判")
    assert "进入「报价谈判」前需要先填写预算" in ask
    assert "需要先填写预算" in await chat.ask("zhangwei", "还没谈")  # not an amount: asked again
    assert await chat.ask("zhangwei", "50万") == "赵磊 的商机：需求确认 → 报价谈判（预算 50万）"
    assert "没有「签约」这个阶段" in await chat.ask("zhangwei", "阶段 赵磊 签约")
    assert await chat.ask("zhangwei", "输单 赵磊 价格太高") == "已记录 赵磊 输单，原因：价格太高"
    assert "格式不对" in await chat.ask("zhangwei", "输单 孙丽")  # the reason is required
    assert "需要先填写输单原因" in await chat.ask("zhangwei", "阶段 孙丽 输单")
    assert "已记录 孙丽 输单，原因：预算砍了" in await chat.ask("zhangwei", "预算砍了")
    async with chat.service.sessions() as session:
        deals = {d.customer_id: d for d in (await session.scalars(select(Deal))).all()}
    zhao = deals[(await chat.customer("赵磊")).id]
    assert (zhao.status, zhao.stage, zhao.fields, zhao.lost_reason) == ("lost", "输单", {"budget": 500000}, "价格太高")
    assert "恭喜" in await chat.ask("zhangwei", "赢单 赵磊")  # a closed deal: the next move opens a new one


async def test_new_customer_and_duplicate_detection(chat):
    await chat.onboard("赵磊", "吴敏")
    assert await chat.ask("zhangwei", "新客户 李四 13800001111 华东机械") == "已新建客户：李四（华东机械），负责人是您。"
    same_phone = await chat.ask("zhangwei", "new 李斯 138-0000-1111")
    assert "已有相同的客户" in same_phone and "1. 李四（华东机械）" in same_phone
    assert "【李四】华东机械" in await chat.ask("zhangwei", "1")
    assert "已有相同的客户" in await chat.ask("zhangwei", "新客户 李四 13911112222 华东机械")  # same name + company
    other = await chat.ask("zhangwei", "新客户 吴敏 13800131004")  # lina's customer: not shown, but not duplicated
    assert "已有同事在跟进" in other and "李娜" not in other and "南京" not in other
    assert "格式不对" in await chat.ask("zhangwei", "新客户 王五 电话不知道")
    async with chat.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 3


async def test_data_scope_across_roles(chat):
    await chat.onboard()
    # sales: own customers only; another rep's answers word for word like nobody at all (#18 item 7)
    assert await chat.ask("zhangwei", "查 吴敏") == "没有找到与「吴敏」相关的客户。可以试试拼音（zhangsan）、首字母（zs）或电话尾号。"
    assert await chat.ask("zhangwei", "查 13800131004") == (
        "没有找到与「13800131004」相关的客户。可以试试拼音（zhangsan）、首字母（zs）或电话尾号。")
    wu = await chat.customer("吴敏")
    async with chat.service.sessions() as session:
        denied = await session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.view_denied")
                                      .order_by(AuditEntry.id))
    assert denied.actor == "zhangwei" and "吴敏" in denied.detail
    assert "【吴敏】" in await chat.ask("liuyang", "查 吴敏")  # manager of departments 2 and 3
    assert "【何军】" in await chat.ask("liuyang", "查 何军")
    assert "【罗燕】" in await chat.ask("chenjing", "查 罗燕")  # admin: everyone
    assert "【何军】" in await chat.ask("wangfang", "查 何军")  # support: their own
    assert "没有找到" in await chat.ask("wangfang", "查 赵磊")
    assert "无权使用「阶段」" in await chat.ask("wangfang", "阶段 何军 初访")
    assert "没有找到" in await chat.ask("zhangwei", "记 吴敏 偷偷看看")
    assert "customer.view" in await audit_actions(chat, wu.id)


async def test_staff_unknown_to_the_system_get_a_polite_refusal(chat):
    chat.service.sim.staff["zhaoliu"] = {**chat.service.sim.staff["lina"], "userid": "zhaoliu", "name": "赵六"}
    chat.service.sim.fail_next("user/get", errcode=60111)  # the address book will not tell us who they are
    assert "系统里还没有您的员工信息" in await chat.ask("zhaoliu", "查 赵磊")


async def test_handover_of_one_customer_and_of_all_customers(chat):
    """Between reps on the job, 转交 is WeCom's 在职继承: the owner moves once WeCom says the customer
    was taken over, and the one who asked hears the outcome."""
    await chat.onboard()
    await chat.say("lina", "跟进 吴敏 明天 回访")
    await chat.say("lina", "阶段 郑浩 需求确认")
    await chat.say("lina", "记 冯雪 老客户")
    assert "只有主管和管理员" in await chat.ask("zhangwei", "转交 全部 李娜 张伟")
    reply = await chat.ask("liuyang", "handover all 李娜 zhangwei")
    assert reply.startswith("已向企业微信提交：把 李娜 的 3 位客户转交给 张伟") and "24 小时内可以拒绝" in reply
    assert (await chat.customer("吴敏")).owner_id == (await chat.staff("lina")).id  # not before WeCom accepts
    await follow_handovers(chat)
    assert "3 位已由 张伟 接手" in chat.replies("liuyang")[-1]
    assert "把 李娜 的 3 位客户转交给了您" in chat.replies("zhangwei")[-1]
    assert "【冯雪】" in await chat.ask("zhangwei", "查 冯雪") and "老客户" in chat.replies("zhangwei")[-1]
    assert "回访" in await chat.ask("zhangwei", "我的待办")
    assert "已向企业微信提交：把 赵磊 转交给 李娜" in await chat.ask("zhangwei", "转交 赵磊 李娜")
    await follow_handovers(chat)
    assert "1 位已由 李娜 接手" in chat.replies("zhangwei")[-1]
    assert "没有找到" in await chat.ask("zhangwei", "查 赵磊")
    assert "找不到同事「王五」" in await chat.ask("zhangwei", "转交 孙丽 王五")
    async with chat.service.sessions() as session:
        owners = {c.name: c.owner_id for c in (await session.scalars(select(Customer))).all()}
        deal_owner = await session.scalar(select(Deal.owner_id))
        follow_up_owner = await session.scalar(select(FollowUp.owner_id))
    zhangwei, lina = (await chat.staff("zhangwei")).id, (await chat.staff("lina")).id
    assert owners["吴敏"] == owners["郑浩"] == owners["冯雪"] == zhangwei and owners["赵磊"] == lina
    assert deal_owner == follow_up_owner == zhangwei
    assert (await audit_actions(chat)).count("customer.handover") == 4


async def test_help_is_generated_from_the_declarations(chat):
    help_text = await chat.ask("zhangwei", "帮助")
    for usage in ("查 <姓名/拼音/电话或尾号/公司>", "记 <客户> <内容>", "我的待办", "转交 <客户> <接手人>"):
        assert usage in help_text
    assert "阶段" not in await chat.ask("wangfang", "help")  # support cannot move deals, so it is not offered
    detail = await chat.ask("zhangwei", "帮助 跟进")
    assert detail.startswith("跟进 <客户> <时间> [事项]") and "followup" in detail and "可用角色：所有人" in detail
    assert "可用角色：销售、主管、管理员" in await chat.ask("zhangwei", "帮助 stage")


async def test_garbage_input_gets_friendly_replies_and_changes_nothing(chat):
    await chat.onboard("赵磊")
    lines = ["", "🙂🙂🙂", "查 " + "张" * 3400, "查 ' OR 1=1; DROP TABLE customers; --", "查 %", "查 _", "飞到月球",
             "记 赵磊", "\u200b\u200b", "帮助 不存在"]
    replies = [await chat.ask("zhangwei", line) for line in lines]
    empty, emoji, long, sql, percent, underscore, unknown, usage, control, help_unknown = replies
    assert "只能读懂文字消息" in empty and "只能读懂文字消息" in control
    assert "没有「🙂🙂🙂」这个命令" in emoji and "没有「飞到月球」这个命令" in unknown
    assert "没有找到" in long and "没有找到" in sql and "没有找到" in percent and "没有找到" in underscore
    assert usage.startswith("格式不对") and "记 <客户> <内容>" in usage
    assert "没有「不存在」这个命令" in help_unknown
    assert all(len(r.encode()) <= 2048 for r in replies)
    async with chat.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1
        assert await session.scalar(select(func.count()).select_from(Note)) == 0


async def test_an_unexpected_error_gets_an_apology_with_an_error_id(chat, caplog, monkeypatch):
    await chat.onboard("赵磊")

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug inside a command")

    monkeypatch.setattr("bot.handlers.customers.customer_view", broken)
    reply = await chat.ask("zhangwei", "查 赵磊")
    assert reply.startswith("抱歉，处理时出了点问题（错误编号 ")
    error_id = reply.split("错误编号 ")[1][:8]
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)


async def test_every_message_and_reply_is_archived_and_replies_survive_an_outage(chat):
    await chat.onboard("赵磊")
    await chat.service.stop_background_workers()
    chat.service.sim.fail_next("message/send", http_status=503, times=2)  # WeCom is down for a while
    await chat.service.wecom.text("zhangwei", "查 赵磊", msg_id=777)
    await chat.service.wecom.text("zhangwei", "查 赵磊", msg_id=777)  # and retries the callback
    for worker in chat.service.app[keys.INBOX_WORKERS]:
        await worker.run_once()
    for _ in range(3):
        async with chat.service.sessions() as session:
            await session.execute(OutboxItem.__table__.update().values(available_at=OutboxItem.created_at))
            await session.commit()
        for worker in chat.service.app[keys.OUTBOX_WORKERS]:
            await worker.run_once()
    assert len(chat.replies("zhangwei")) == 1 and "【赵磊】" in chat.replies("zhangwei")[0]
    async with chat.service.sessions() as session:
        archived = (await session.execute(select(Message.direction, Message.text).where(Message.channel == "wecom_app"))).all()
    assert ("in", "查 赵磊") in archived and sum(1 for d, t in archived if d == "out" and "【赵磊】" in t) == 1
