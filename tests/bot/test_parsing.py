"""Table tests for everything between the chat line and the handler: no database, no network."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import bot
from bot.dispatcher import clean_line
from bot.formatting import redact
from bot.handlers.customers import phone_number, tag_changes
from bot.replies import Listing, Refusal, fit_text, paginate
from bot.router import Arg, Router, UsageError
from bot.timeparse import TimeExpressionError, cn_number, take_when
from crm_core.deals import DealStages, default_stages, parse_money
from crm_core.search_keys import name_keys, phone_tail

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=TZ)  # a Wednesday


def _command(*args: Arg):
    router = Router("t")

    @router.command("x", args=list(args))
    async def handler(ctx, **kwargs):
        """help line"""

    return router.commands[0]


@pytest.mark.parametrize(
    ("args", "rest", "expected"),
    [
        ((Arg("customer", customer=True), Arg("text", rest=True)), "张三 电话沟通 要报价", {"customer": "张三", "text": "电话沟通 要报价"}),
        ((Arg("topic", optional=True),), "", {"topic": ""}),
        ((Arg("name"), Arg("phone", convert=phone_number), Arg("company", rest=True, optional=True)),
         "李四 13800001111 华东 机械", {"name": "李四", "phone": "13800001111", "company": "华东 机械"}),
        ((Arg("customer"), Arg("due", when=True), Arg("text", rest=True, optional=True)),
         "张三 下周三下午3点 带方案上门", {"customer": "张三", "due": datetime(2026, 11, 25, 15, 0, tzinfo=TZ), "text": "带方案上门"}),
        ((Arg("customer"), Arg("changes", rest=True, convert=tag_changes)), "张三 +VIP -价格敏感 重点",
         {"customer": "张三", "changes": (["VIP", "重点"], ["价格敏感"])}),
    ],
)
def test_arguments_are_parsed_before_the_handler(args, rest, expected):
    assert _command(*args).parse(rest, NOW) == expected


@pytest.mark.parametrize(
    ("args", "rest"),
    [
        ((Arg("customer"), Arg("text", rest=True)), "张三"),  # missing text
        ((Arg("customer"),), "张三 李四"),  # unexpected extra word
        ((Arg("name"), Arg("phone", convert=phone_number)), "李四 abc"),  # not a phone
        ((Arg("customer"), Arg("due", when=True)), "张三 改天再说"),  # no time expression
        ((Arg("customer"), Arg("changes", rest=True, convert=tag_changes)), "张三 + -"),
    ],
)
def test_malformed_arguments_are_usage_errors(args, rest):
    with pytest.raises(UsageError):
        _command(*args).parse(rest, NOW)


def test_a_time_in_the_past_is_a_refusal_not_a_usage_error():
    with pytest.raises(Refusal) as caught:
        _command(Arg("due", when=True)).parse("本周一", NOW)
    assert caught.value.key == "bot.time_passed"


@pytest.mark.parametrize(
    ("text", "expected", "rest"),
    [
        ("今天下午3点", "2026-11-18 15:00", ""),
        ("今天", "2026-11-18 11:00", ""),  # past 9:00 already: the next full hour
        ("明天", "2026-11-19 09:00", ""),
        ("后天 上午10点半 回访", "2026-11-20 10:30", "回访"),
        ("大后天", "2026-11-21 09:00", ""),
        ("下周三下午3点 带方案上门", "2026-11-25 15:00", "带方案上门"),
        ("下下周一", "2026-11-30 09:00", ""),
        ("周五", "2026-11-20 09:00", ""),
        ("星期三晚上8点", "2026-11-18 20:00", ""),
        ("礼拜天", "2026-11-22 09:00", ""),
        ("3天后", "2026-11-21 09:00", ""),
        ("三天后 再联系", "2026-11-21 09:00", "再联系"),
        ("两周后", "2026-12-02 09:00", ""),
        ("2小时后", "2026-11-18 12:00", ""),
        ("30分钟后", "2026-11-18 10:30", ""),
        ("12月5日", "2026-12-05 09:00", ""),
        ("12月5号下午2点", "2026-12-05 14:00", ""),
        ("3月1日", "2027-03-01 09:00", ""),  # already past this year: next year's
        ("2027年1月3日 9:00", "2027-01-03 09:00", ""),
        ("月底", "2026-11-30 09:00", ""),
        ("下月底", "2026-12-31 09:00", ""),
        ("下个月5号", "2026-12-05 09:00", ""),
        ("月初", "2026-12-01 09:00", ""),
        ("年底", "2026-12-31 09:00", ""),
        ("下午3点", "2026-11-18 15:00", ""),
        ("15:30 打电话", "2026-11-18 15:30", "打电话"),
        ("9:30", "2026-11-19 09:30", ""),  # already past today: tomorrow
        ("三点", "2026-11-18 15:00", ""),  # office talk: afternoon
        ("中午12点", "2026-11-18 12:00", ""),
        ("明晚", "2026-11-19 19:00", ""),
        ("明天下午三点一刻", "2026-11-19 15:15", ""),
        ("明天 下午 4点20分", "2026-11-19 16:20", ""),
    ],
)
def test_chinese_time_expressions(text, expected, rest):
    when, remaining = take_when(text, NOW)
    assert (when.strftime("%Y-%m-%d %H:%M"), remaining) == (expected, rest)
    assert when.tzinfo is TZ


@pytest.mark.parametrize("text", ["改天", "底价谈判", "hello", "", "13月5日", "25点", "本周一"])
def test_not_a_time_or_in_the_past(text):
    with pytest.raises(TimeExpressionError):
        take_when(text, NOW)


def test_numbers_names_and_money():
    assert [cn_number(t) for t in ("12", "十二", "二十三", "两", "十")] == [12, 12, 23, 2, 10]
    assert name_keys("张三") == ("zhangsan", "zs")
    assert name_keys("曾小贤") == ("zengxiaoxian", "zxx")  # surname reading
    assert name_keys("John Smith") == ("johnsmith", "js")
    assert phone_tail("+86 138-0013-5678") == "5678" and phone_tail("12") == ""
    assert [parse_money(t) for t in ("50万", "12.5万", "30w", "300000", "300,000元", "很多")] == [500000, 125000, 300000, 300000, 300000, None]


def test_search_queries_are_redacted_for_the_audit_trail():
    assert redact("13800135678") == "138****5678"
    assert redact("张三 5678") == "张三 5678"


def test_chat_line_cleanup_keeps_chinese_punctuation():
    assert clean_line("查\u3000ＺＳ\x00 ") == "查 ZS"
    assert clean_line("记 张三 电话沟通，要报价。") == "记 张三 电话沟通，要报价。"
    assert clean_line("标签 张三 ＋VIP －价格敏感") == "标签 张三 +VIP -价格敏感"


def test_long_listings_are_paginated_within_wecom_limits():
    pages = paginate(Listing("header", [f"{i}. " + "客户" * 30 for i in range(100)], "footer"))
    assert len(pages) > 1
    assert all(len(p.encode()) <= 2048 for p in pages)
    assert pages[0].startswith("header") and "更多" in pages[0] and pages[-1].endswith("footer")
    assert len(fit_text("字" * 1000).encode()) <= 2048


def test_every_command_is_declared_once_with_usage_and_help():
    dispatcher = bot.build_dispatcher(TZ, redis=None)
    names = [n.casefold() for c in dispatcher.commands for n in c.names]
    assert len(names) == len(set(names))
    for command in dispatcher.commands:
        assert command.help_line and command.usage.startswith(command.name)
    assert {"查", "记", "跟进", "标签", "阶段", "输单", "赢单", "新客户", "我的客户", "我的待办", "转交", "帮助"} <= {c.name for c in dispatcher.commands}
    assert {"lookup", "note", "followup", "tag", "stage", "new", "mine", "todo", "handover", "help"} <= set(names)


def test_the_default_deal_pipeline():
    stages = default_stages()
    assert stages.stages == ("初访", "需求确认", "方案演示", "报价谈判", "签约回款")
    assert (stages.won, stages.lost) == ("赢单", "输单")
    assert stages.requires["报价谈判"] == ("budget",) and stages.requires["输单"] == ("lost_reason",)
    with pytest.raises(ValueError):
        DealStages(stages=("a",), won="w", lost="l", requires={"b": ("budget",)})
