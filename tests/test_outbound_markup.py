"""Customer-controlled text never becomes live markup in what staff receive (#18 item 5).

A nickname, remark company, tag, note, follow-up or complaint can carry WeCom markup: a markdown
link or `<font>` in the 查 card and the manager's digest, `<a href>` in a text message, `<div>` in a
textcard. Hostile values travel every real path a person sees (the 查 card via chat, the morning
nudge, the daily digest job, ticket cards, notices and SLA escalations, the buying alert) and every
template; what reaches the simulator must show them as characters, and ordinary names, numbers,
phone masks and emoji must come out exactly as they went in.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select

from config.markup import Markup, escape, escape_markdown, escape_text, join, uses_markdown
from config.templates import all_templates, render
from crm_core.models import Customer
from scheduler.digests import send_daily_digests
from scheduler.jobs import escalate_ticket_slas, remind_due_followups
from scheduler.nudges import send_morning_nudges
from scheduler.runner import JobContext
from scrm import keys
from tests.tickets.conftest import *  # noqa: F403  (the desk fixture and the service fixtures it needs)

NICKNAME = "[点我领奖](https://evil.example/p)"
COMPANY = '<font color="warning">VIP认证</font>\n> 负责人：老板'
REMARK = '<a href="https://evil.example/r">官方客服</a>'
TAG = "<@all>**置顶**"
PHONE = "13800139999"
NOTE = "# 假标题 **刷单** `rm -rf` <@all> [领奖](https://evil.example/n)\n> 负责人：老板"
FOLLOW_UP = "[续约](https://evil.example/f) &lt;a href=x&gt;"
COMPLAINT = ('东西坏了我要退款，不退就去12315投诉 <a href="https://evil.example/t">退款入口</a> '
             "[客服](https://evil.example/k) <div class=\"highlight\">加急</div>")
BUYING = '我们想订一批冷链箱，麻烦报个价 <a href="https://evil.example/b">报价单</a>'
HOSTILE_VALUES = (NICKNAME, COMPANY, REMARK, TAG, NOTE, FOLLOW_UP, COMPLAINT, BUYING,
                  "<@zhangwei> ```\n## 标题\n>>> 引用", "**", "<!-- x -->", "&#60;a href=x&#62;")
HOSTILE_ID = "wmHostile00000000000000000000001"

# Independent of config/markup.py: what WeCom would render live (https://developer.work.weixin.qq.com/document/path/90236).
TAG_OPEN = re.compile(r"<\s*[A-Za-z/!?@]")
ENTITY = re.compile(r"&#?[0-9A-Za-z]+;")
LINK = re.compile(r"\]\s*\(")
BOLD = re.compile(r"\*\*")
LINE_MARK = re.compile(r"^[ \t]*(#{1,6}[ \t]|>)", re.MULTILINE)


def live_markup(text: str, kind: str) -> list[str]:
    """Every construct in `text` that a WeCom message of `kind` renders: tags (and entities that
    decode to them) in any kind; links, bold, code, headings and quotes in markdown."""
    found = TAG_OPEN.findall(text) + ENTITY.findall(text)
    if kind == "markdown":
        found += LINK.findall(text) + BOLD.findall(text) + LINE_MARK.findall(text) + re.findall("`", text)
    return found


def hostile_markup(message: dict) -> list[str]:
    """Live constructs in a sent message that came from a hostile value; the templates' own `**`,
    `>` lines and `<font color="warning">负面 …</font>` are theirs."""
    kind = message["msgtype"]
    body = message[kind]
    text = "\n".join(str(body.get(field, "")) for field in ("content", "title", "description"))
    found = [tag for tag in re.findall(r"<\s*[A-Za-z/!?@][^<>]*>?", text)
             if tag not in ('<font color="warning">', "</font>")] + ENTITY.findall(text)
    found += re.findall(r"<font[^>]*>\s*VIP", text)
    if kind == "markdown":
        found += LINK.findall(text) + re.findall("`", text) + re.findall(r"\*\*\s*(?:刷单|置顶)", text)
        found += re.findall(r"^[ \t]*(?:#+|>)[ \t]*(?:假标题|负责人：老板)", text, re.MULTILINE)
    return found


def all_sent(service) -> list[dict]:
    return [*service.sim.sent_app_messages,
            *({"msgtype": m["msgtype"], m["msgtype"]: m[m["msgtype"]]} for m in service.sim.sent_kf_messages)]


def assert_nothing_live(service) -> None:
    offending = {message[message["msgtype"]].get("content") or message[message["msgtype"]].get("description"):
                 hostile_markup(message) for message in all_sent(service) if hostile_markup(message)}
    assert offending == {}


def hostile_contact(service) -> None:
    """A WeChat user whose nickname, company, remark and tag are all markup, added by zhangwei."""
    service.sim.external_contacts[HOSTILE_ID] = {
        "external_contact": {"external_userid": HOSTILE_ID, "name": NICKNAME, "position": "", "avatar": "",
                             "corp_name": COMPANY, "corp_full_name": COMPANY, "type": 1, "gender": 0,
                             "unionid": "oUnionHostile000000000000001"},
        "follow_user": [{"userid": "zhangwei", "remark": REMARK, "description": "", "createtime": 1_704_000_000,
                         "tags": [{"group_name": "客户等级", "tag_name": TAG, "tag_id": "etHostile0001", "type": 1}],
                         "remark_corp_name": COMPANY, "remark_mobiles": [PHONE], "oper_userid": "zhangwei",
                         "add_way": 1, "state": ""}],
    }


async def onboard_hostile(desk) -> None:
    hostile_contact(desk.service)
    await desk.service.wecom.change_external_contact("add_external_contact", "zhangwei", HOSTILE_ID)
    await desk.service.settle()


async def job(desk, func, **later) -> str:
    summary = await func(JobContext(desk.service.app[keys.SESSIONS], desk.now + timedelta(**later),
                                    desk.service.settings.tz))
    await desk.service.settle()
    return summary


# -- every template ------------------------------------------------------------------------


TEMPLATES = sorted(all_templates().items())


def _fields(template: str) -> dict[str, str]:
    """Each field of a template and its format spec."""
    return {name.split(".")[0].split("[")[0]: spec or "" for _, name, spec, _ in string.Formatter().parse(template)
            if name}


def _filled(template: str, value) -> dict[str, object]:
    """`value` for every field, and a number where the field is formatted as one (`{score:.2f}`)."""
    return {name: 0.5 if spec else value for name, spec in _fields(template).items()}


def _kinds(template: str) -> list[str]:
    return ["markdown"] if uses_markdown(template) else ["text", "textcard", "markdown"]


def test_no_template_lets_a_hostile_value_become_live_markup():
    """Every template key, with every field hostile, in every kind it can be sent as: the output
    has exactly the live constructs of the template's own text."""
    leaks = []
    for key, template in TEMPLATES:
        for kind in _kinds(template):
            bare = render(key, kind=kind, **_filled(template, ""))
            for value in HOSTILE_VALUES:
                rendered = render(key, kind=kind, **_filled(template, value))
                if sorted(live_markup(rendered, kind)) != sorted(live_markup(bare, kind)):
                    leaks.append((key, kind, rendered))
    assert len(TEMPLATES) > 300 and leaks == []


ORDINARY = ("张伟", "赵总-华东精密", "138****5678", "13800131001", "¥1,200.50 / 3.5折", "😀🎂 生日快乐",
            "C# 工程师", "价格<5000", "1*2=2", "A&B 贸易", "5 > 3", "Ms. O'Neil (Sales)", "周一至周五 9:00-18:00")


def test_ordinary_values_render_unchanged():
    changed = [(key, kind, value) for key, template in TEMPLATES for kind in _kinds(template) for value in ORDINARY
               if render(key, kind=kind, **_filled(template, value)) != template.format(**_filled(template, value))]
    assert changed == []


def test_escaping_neutralises_each_construct_and_keeps_it_readable():
    assert escape_markdown(NICKNAME) == "［点我领奖］(https://evil.example/p)"
    assert escape_markdown(COMPANY) == '＜font color="warning">VIP认证＜/font>\n＞ 负责人：老板'
    assert escape_text(REMARK) == '＜a href="https://evil.example/r">官方客服＜/a>'
    assert escape_markdown(TAG) == "＜@all>＊＊置顶＊＊"
    assert escape_markdown("# 标题\n  > 引用\n`代码`") == "＃ 标题\n  ＞ 引用\n｀代码｀"
    assert escape_text(FOLLOW_UP) == "[续约](https://evil.example/f) ＆lt;a href=x＆gt;"  # text shows links as text
    for value in (*HOSTILE_VALUES, *ORDINARY):
        for kind in ("text", "textcard", "markdown"):
            once = escape(value, kind)
            assert escape(str(once), kind) == once  # escaping twice changes nothing more
    for value in ORDINARY:
        assert escape_markdown(value) == value and escape_text(value) == value


def test_rendered_markup_is_kept_in_its_own_kind_and_escaped_again_in_another():
    note = render("bot.card_note", kind="markdown", at="11-18 10:00", author="张伟", text=NICKNAME)
    assert isinstance(note, Markup) and note.startswith("> ")
    assert join("\n", [note, NICKNAME], "markdown") == f"{note}\n［点我领奖］(https://evil.example/p)"
    text_line = render("bot.customer_line", name=NICKNAME, company="-", phone="-", owner="-")
    assert NICKNAME in text_line  # a text message shows a markdown link as the characters it is
    card = render("digests.trending_line", kind="markdown", name=text_line, score=-0.5)
    assert "](" not in card  # text's output is not yet safe inside markdown
    with pytest.raises(ValueError, match="markdown"):
        render("bot.customer_card", **_filled(all_templates()["bot.customer_card"], "x"))


# -- every real path -------------------------------------------------------------------------


async def test_the_lookup_card_to_do_list_morning_nudge_and_reminder_show_hostile_text_as_text(desk):
    await onboard_hostile(desk)
    await desk.onboard("赵磊")
    async with desk.service.sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == NICKNAME))
    assert (customer.name, customer.company) == (NICKNAME, COMPANY)

    [noted] = await desk.say("zhangwei", f"记 {PHONE} {NOTE}")
    [planned] = await desk.say("zhangwei", f"跟进 {PHONE} 明天上午10点 {FOLLOW_UP}")
    [card] = await desk.say("zhangwei", f"查 {PHONE}")
    sent_card = desk.service.sim.sent_app_messages[-1]
    assert sent_card["msgtype"] == "markdown"
    assert "［点我领奖］(https://evil.example/p)" in card and "VIP认证" in card and "置顶" in card  # readable
    assert "刷单" in card and "evil.example/f" in card
    [ordinary] = await desk.say("zhangwei", "查 赵磊")
    assert ordinary.startswith("**【赵磊】华东精密机械有限公司**")  # ordinary names unchanged

    await desk.say("zhangwei", "我的待办")
    await job(desk, send_morning_nudges, days=2)
    nudge = desk.replies("zhangwei")[-1]
    assert "evil.example/f" in nudge and "点我领奖" in nudge
    await job(desk, remind_due_followups, days=2)
    reminder = desk.replies("zhangwei")[-1]
    assert reminder != nudge and "evil.example/f" in reminder and "点我领奖" in reminder
    assert_nothing_live(desk.service)


async def test_complaint_ticket_card_notices_escalation_and_digest_show_hostile_text_as_text(desk):
    await onboard_hostile(desk)
    await desk.customer_writes(NICKNAME, COMPLAINT)
    [ticket] = await desk.tickets()
    [card] = [m for m in desk.app_sent("wangfang") if m["msgtype"] == "textcard"]
    assert "退款入口" in card["textcard"]["description"] and "点我领奖" in card["textcard"]["description"]
    assert ticket.number in desk.replies("zhangwei")[-1]  # the owner is told
    [details] = await desk.say("wangfang", f"工单 {ticket.number}")
    assert "退款入口" in details and "evil.example/t" in details

    await job(desk, partial(escalate_ticket_slas, policy=desk.policy), days=3)
    await job(desk, send_daily_digests, hours=1)
    [digest] = [m for m in desk.app_sent("liuyang") if m["msgtype"] == "markdown"]
    assert "［点我领奖］(https://evil.example/p)" in digest["markdown"]["content"]  # 情绪走低的客户
    overdue = [text for text in desk.replies("wangfang") + desk.replies("liuyang") if "工单超时" in text]
    assert overdue and all("点我领奖" in text for text in overdue)  # the agent's and the manager's escalations
    assert_nothing_live(desk.service)


async def test_the_buying_alert_shows_hostile_text_as_text(desk):
    await onboard_hostile(desk)
    await desk.customer_writes(NICKNAME, BUYING)  # the customer zhangwei added
    [alert] = [text for text in desk.replies("zhangwei") if "购买意向" in text]
    assert "报价单" in alert and "点我领奖" in alert
    assert "<a href" not in alert
    assert_nothing_live(desk.service)
