"""Reps typing the way people type in WeCom, through the real callback endpoint: no spaces, filler,
sentences that carry a command, bare names and phones, typos, ambiguity and confirmations.

WeCom lets the service send a member 30 app messages a minute (scrm.delivery.send_limits, on the
wall clock), so each test keeps to fewer lines per rep than that."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from crm_core.models import CustomerTag, Deal, FollowUp, Note
from tests.support.chat import FIXED_NOW

CARD = "**【赵磊】华东精密机械有限公司**"


async def count(chat, model) -> int:
    async with chat.service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def writes(chat) -> tuple[int, ...]:
    return tuple([await count(chat, model) for model in (Note, FollowUp, Deal, CustomerTag)])


async def test_lookups_without_spaces_or_with_filler_show_the_card(chat):
    await chat.onboard("赵磊", "孙丽")
    lines = ["查赵磊", "查一下赵磊", "帮我查下赵磊的资料", "看看赵磊", "赵磊怎么样了", "赵磊电话", "尾号1001的客户",
             "赵磊", "13800131001", "请帮我看一下赵磊的情况", "lookup赵磊"]
    for line in lines:
        card = await chat.ask("zhangwei", line)
        assert card.startswith(CARD), (line, card)
        assert "138****1001" in card and "13800131001" not in card  # the phone is masked as always
    assert "没有找到与「王五」相关的客户" in await chat.ask("zhangwei", "查王五")  # the search still answers
    await chat.say("zhangwei", "新客户 Tony 13900000011 外企")
    assert (await chat.ask("zhangwei", "Tony怎么样了")).startswith("**【Tony】外企**")


async def test_lists_help_and_greetings_from_sentences(chat):
    await chat.onboard("赵磊", "孙丽")
    await chat.say("zhangwei", "跟进 赵磊 明天下午3点 回访")
    for line in ["我今天要跟进谁", "今天有什么待办", "待办"]:
        assert (await chat.ask("zhangwei", line)).startswith("您有 1 条待跟进"), line
    assert (await chat.ask("zhangwei", "我的客户有哪些")).startswith("您负责的客户（2 位")
    for line in ["怎么用", "你会什么", "你能做什么"]:
        assert (await chat.ask("zhangwei", line)).startswith("可用命令："), line
    hello = await chat.ask("zhangwei", "你好")
    assert hello.startswith("您好，张伟！")
    # the two examples come from the command declarations' usage
    assert "· 跟进 张三 下周三下午3点 带方案上门" in hello and "· 阶段 张三 报价谈判" in hello and len(hello) < 200


async def test_a_line_led_by_the_command_word_runs_like_the_typed_command(chat):
    await chat.onboard("赵磊")
    saved = await chat.ask("zhangwei", "跟进赵磊 后天 发报价")
    assert "时间：2026-11-20 09:00（周五）" in saved and "事项：发报价" in saved
    assert (await chat.ask("zhangwei", "记一下：赵磊 约了周五见面")).startswith("已记录 赵磊 的备注")
    assert (await chat.ask("zhangwei", "跟进赵磊后天下午3点带样品")).startswith("已设置跟进提醒")
    async with chat.service.sessions() as session:
        notes = (await session.scalars(select(Note.text))).all()
        items = (await session.scalars(select(FollowUp.text).order_by(FollowUp.id))).all()
    assert notes == ["约了周五见面"] and items == ["发报价", "带样品"]


async def test_writes_read_from_a_sentence_wait_for_a_confirmation(chat):
    await chat.onboard("赵磊", "孙丽")
    asked = await chat.ask("zhangwei", "明天下午提醒我给孙丽打电话")
    assert "跟进 孙丽 2026-11-19 14:00 打电话（周四）" in asked and "按 14:00" in asked and "回复「1」或「是」" in asked
    assert await writes(chat) == (0, 0, 0, 0)  # nothing saved before the answer
    saved = await chat.ask("zhangwei", "是")
    assert "时间：2026-11-19 14:00（周四）" in saved and "事项：打电话" in saved

    assert "跟进 孙丽 2026-11-23 09:00 回访" in await chat.ask("zhangwei", "下周一回访孙丽")
    assert "事项：回访" in await chat.ask("zhangwei", "1")

    assert "记 赵磊 客户要报价" in await chat.ask("zhangwei", "给赵磊记一条 客户要报价")
    assert (await chat.ask("zhangwei", "好的")).startswith("已记录 赵磊 的备注")

    assert "标签 赵磊 +VIP" in await chat.ask("zhangwei", "给赵磊加个VIP标签")
    assert "VIP" in await chat.ask("zhangwei", "1")

    assert "赢单 赵磊" in await chat.ask("zhangwei", "赵磊已经签了")
    assert await count(chat, Deal) == 0
    assert await chat.ask("zhangwei", "确认") == "恭喜！赵磊 已赢单。"

    async with chat.service.sessions() as session:
        items = (await session.execute(select(FollowUp.due_at, FollowUp.text).order_by(FollowUp.id))).all()
        [note] = (await session.scalars(select(Note.text))).all()
    assert [(due.astimezone(chat.service.settings.tz).strftime("%m-%d %H:%M"), text) for due, text in items] == [
        ("11-19 14:00", "打电话"), ("11-23 09:00", "回访")]
    assert note == "客户要报价"


async def test_anything_but_yes_cancels_and_a_confirmation_expires(chat):
    await chat.onboard("赵磊")
    await chat.say("zhangwei", "给赵磊记一条 客户要报价")
    assert await chat.ask("zhangwei", "不") == "好的，已取消，没有保存。"
    assert "没有待选择的列表" in await chat.ask("zhangwei", "1")  # nothing is pending any more

    await chat.say("zhangwei", "给赵磊记一条 客户要报价")
    other = await chat.ask("zhangwei", "查赵磊")  # a new request cancels, and is answered
    assert other.startswith("上一条没有保存（已取消）。") and CARD in other

    await chat.say("zhangwei", "赵磊已经签了")
    assert await chat.ask("zhangwei", "2") == "好的，已取消，没有保存。"  # only 1 confirms

    await chat.say("zhangwei", "给赵磊加个VIP标签")
    chat.set_clock(FIXED_NOW + timedelta(minutes=6))
    assert "已超过 5 分钟，没有保存" in await chat.ask("zhangwei", "是")
    assert await writes(chat) == (0, 0, 0, 0)


async def test_typos_get_a_did_you_mean_ready_to_send_as_1(chat):
    await chat.onboard("赵磊")
    offer = await chat.ask("zhangwei", "跟近赵磊 明天")
    assert offer.startswith("没有「跟近」这个命令。您是不是要：") and "1. 跟进 赵磊 明天" in offer
    assert await count(chat, FollowUp) == 0
    assert "时间：2026-11-19 09:00（周四）" in await chat.ask("zhangwei", "1")
    offer = await chat.ask("zhangwei", "差 赵磊")
    assert "1. 查 赵磊" in offer
    assert (await chat.ask("zhangwei", "1")).startswith(CARD)
    await chat.say("zhangwei", "跟近赵磊 后天")
    chat.set_clock(FIXED_NOW + timedelta(minutes=6))  # choices expire like confirmations
    assert "已超过 5 分钟" in await chat.ask("zhangwei", "1")
    assert await count(chat, FollowUp) == 1


async def test_unknown_lines_say_what_was_understood_and_offer_the_closest_commands(chat):
    await chat.onboard("赵磊")
    unknown = await chat.ask("zhangwei", "飞到月球")
    assert unknown.startswith("没有「飞到月球」这个命令") and "最接近的命令：" in unknown and "帮助" in unknown
    number_only = await chat.ask("zhangwei", "ping7000123")  # a number nobody has is no customer yet
    assert "号码「7000123」" in number_only and "客户「7000123」" not in number_only
    two = await chat.ask("zhangwei", "赵磊明天来签合同")  # a follow-up or a note: asked, not guessed
    assert "客户「赵磊」" in two and "时间 2026-11-19 09:00" in two
    assert "1. 跟进 赵磊 2026-11-19 09:00 来签合同" in two and "记 赵磊 明天来签合同" in two
    assert await writes(chat) == (0, 0, 0, 0)
    number = next(line.split(".")[0] for line in two.splitlines() if "记 赵磊" in line)
    assert (await chat.ask("zhangwei", number)).startswith("已记录 赵磊 的备注")
    assert "请回复 1 到" in await chat.ask("zhangwei", "9") or await count(chat, Note) == 1


async def test_a_bare_name_several_customers_share_gives_the_pick_list(chat):
    await chat.say("zhangwei", "新客户 张三 13900000001 甲公司")
    await chat.say("zhangwei", "新客户 张三 13900000002 乙公司")
    listing = await chat.ask("zhangwei", "张三")
    assert "找到 2 位" in listing and "1. 张三（" in listing and "2. 张三（" in listing
    assert "【张三】" in await chat.ask("zhangwei", "2")
    listing = await chat.ask("zhangwei", "给张三记一条 约了下周")
    assert "记 张三 约了下周" in listing
    assert "找到 2 位" in await chat.ask("zhangwei", "是")
    assert (await chat.ask("zhangwei", "1")).startswith("已记录 张三 的备注")


async def test_a_name_of_a_customer_and_a_colleague_is_asked(chat):
    await chat.say("lina", "帮助")  # first sight: the colleague's staff record is synced
    await chat.say("zhangwei", "新客户 李娜 13900000009 丙公司")
    asked = await chat.ask("zhangwei", "李娜")
    assert "「李娜」既是客户也是同事" in asked and "1. 查 李娜" in asked and "2. 李娜 是同事" in asked
    assert "是您的同事（企业微信账号 lina）" in await chat.ask("zhangwei", "2")
    await chat.say("zhangwei", "李娜")
    assert "【李娜】丙公司" in await chat.ask("zhangwei", "1")


async def test_someone_elses_customer_reads_like_nobody(chat):
    await chat.onboard("赵磊")  # zhangwei's; lina (sales) cannot see it
    hidden, nobody = await chat.ask("lina", "赵磊"), await chat.ask("lina", "钱七")
    assert hidden.replace("赵磊", "X") == nobody.replace("钱七", "X")
    hidden = await chat.ask("lina", "给赵磊记一条 客户要报价")
    nobody = await chat.ask("lina", "给钱七记一条 客户要报价")
    assert hidden.replace("赵磊", "X") == nobody.replace("钱七", "X") and "回复「1」" not in hidden
    assert await writes(chat) == (0, 0, 0, 0)


async def test_a_time_it_cannot_read_is_refused_with_what_was_not_understood(chat):
    await chat.onboard("赵磊")
    refused = await chat.ask("zhangwei", "13月5日提醒我给赵磊打电话")
    assert refused.startswith("没看懂时间「13月5日") and "没有保存" in refused
    assert "已经过去" in await chat.ask("zhangwei", "昨天提醒我给赵磊打电话")
    assert await writes(chat) == (0, 0, 0, 0)


async def test_a_command_without_spaces_is_not_taken_for_the_answer_to_a_question(chat):
    await chat.onboard("赵磊")
    assert "需要先填写预算" in await chat.ask("zhangwei", "阶段 赵磊 报价谈判")
    assert (await chat.ask("zhangwei", "查赵磊")).startswith(CARD)  # a new command; the question is dropped
    assert "需要先填写预算" in await chat.ask("zhangwei", "阶段 赵磊 报价谈判")
    assert await chat.ask("zhangwei", "30万") == "赵磊 的商机：新建 → 报价谈判（预算 30万）"
