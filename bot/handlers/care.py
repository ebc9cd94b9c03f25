"""生日 / birthday, 合同 / contract, 关怀 / care: what the scheduler's care and renewal jobs read.

A rep records a customer's birthday (solar or lunar), contract end date and consent to care
messages. Consent is the customer's: a rep may record that the customer agreed or withdrew, but
a customer who unsubscribed themselves (care_opted_out_at) is resubscribed only when the rep
states that the customer agreed again (`关怀 张三 开启 客户已同意`), and that is audit-logged with
the opt-out it clears.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from bot.formatting import date_text, display_name
from bot.replies import Refusal
from bot.router import Arg, CommandContext, Router
from bot.timeparse import TimeExpressionError, take_when
from config.templates import render
from crm_core.birthdays import Birthday, parse_birthday
from crm_core.errors import InvalidDateError
from crm_core.models import Customer
from crm_core.nudges import default_policy

router = Router("care")

CONTRACT_ROLES = frozenset({"sales", "manager", "admin"})  # renewals are the sales side's business
WEEKDAYS = "一二三四五六日"
REMOVE_WORDS = frozenset({"删除", "清除", "清空", "delete", "clear", "remove"})
ON_WORDS = frozenset({"开启", "开", "打开", "同意", "on", "yes"})
OFF_WORDS = frozenset({"关闭", "关", "取消", "不同意", "off", "no"})
CONFIRM_WORDS = frozenset({"客户已同意", "已同意", "confirmed"})


@dataclass(frozen=True)
class Remove:
    """删除 in place of a value: the rep wants the recorded one gone."""


REMOVE = Remove()


def birthday_or_remove(text: str) -> Birthday | Remove:
    """A birthday as people give it, or 删除; anything else is refused with examples, not a usage line."""
    if text.casefold() in REMOVE_WORDS:
        return REMOVE
    try:
        return parse_birthday(text)
    except InvalidDateError as exc:
        raise Refusal("bot.care.birthday_invalid", text=text[:20]) from exc


def date_or_remove(text: str) -> str | Remove:
    """The date text is resolved by the handler, which knows the clock (6月30日 is the next one)."""
    return REMOVE if text.casefold() in REMOVE_WORDS else text


def switch(word: str) -> Literal["on", "off"]:
    if word.casefold() in ON_WORDS:
        return "on"
    if word.casefold() in OFF_WORDS:
        return "off"
    raise ValueError(f"not on or off: {word!r}")


def confirmation(text: str) -> bool:
    if text.casefold() not in CONFIRM_WORDS:
        raise ValueError(f"not a confirmation: {text!r}")
    return True


def contract_end(text: str, now: datetime) -> date:
    """2027-06-30, 2027年6月30日, 6月30日 (the next one), 年底 …: a future day, or a friendly refusal."""
    try:
        when, rest = take_when(text, now)
    except TimeExpressionError as exc:
        raise Refusal("bot.care.contract_passed" if exc.past else "bot.care.contract_invalid", text=text[:20]) from exc
    if rest:
        raise Refusal("bot.care.contract_invalid", text=text[:20])
    return when.date()


def care_hint(customer: Customer) -> str:
    """Why a recorded birthday will not be greeted, so the rep is not surprised on the day."""
    name = display_name(customer)
    if customer.care_opted_out_at is not None:
        return render("bot.care.hint_opted_out", name=name)
    if not customer.care_consent:
        return render("bot.care.hint_no_consent", name=name)
    return ""


@router.command("生日", aliases=("birthday", "bday"),
                args=[Arg("customer", customer=True), Arg("birthday", rest=True, optional=True, convert=birthday_or_remove)],
                usage="生日 <客户> [日期|删除]，如：生日 张三 农历三月初二")
async def birthday(ctx: CommandContext, customer: Customer, birthday: Birthday | Remove | str) -> str:
    """记录或查看客户生日（支持农历），用于生日祝福"""
    name, today = display_name(customer), ctx.local_now.date()
    current = customer.birthday
    if not birthday:  # no date given: show what is on file
        ctx.audit("customer.view", customer.id, "birthday")
        if current is None:
            return render("bot.care.birthday_none", name=name)
        upcoming = current.next_after(today)
        if upcoming == today:
            return render("bot.care.birthday_show_today", name=name, birthday=current)
        return render("bot.care.birthday_show", name=name, birthday=current, next=date_text(upcoming),
                      days=(upcoming - today).days)
    if isinstance(birthday, Remove):
        if current is None:
            return render("bot.care.birthday_none", name=name)
        customer.birthday = None
        ctx.audit("customer.birthday", customer.id, f"{current} -> -")
        return render("bot.care.birthday_removed", name=name, birthday=current)
    customer.birthday = birthday
    ctx.audit("customer.birthday", customer.id, f"{current or '-'} -> {birthday}")
    if birthday.lunar:
        reply = render("bot.care.birthday_saved_lunar", name=name, birthday=birthday, next=date_text(birthday.next_after(today)))
    else:
        reply = render("bot.care.birthday_saved", name=name, birthday=birthday)
    return "\n".join(filter(None, [reply, care_hint(customer)]))


@router.command("合同", aliases=("contract",), roles=CONTRACT_ROLES,
                args=[Arg("customer", customer=True), Arg("ends_on", rest=True, optional=True, convert=date_or_remove)],
                usage="合同 <客户> [到期日|删除]，如：合同 张三 2027-06-30")
async def contract(ctx: CommandContext, customer: Customer, ends_on: str | Remove) -> str:
    """记录或查看合同到期日，到期前提醒续约"""
    name, today = display_name(customer), ctx.local_now.date()
    current = customer.contract_ends_on
    if not ends_on:
        ctx.audit("customer.view", customer.id, "contract")
        if current is None:
            return render("bot.care.contract_none", name=name)
        if current < today:
            return render("bot.care.contract_show_ended", name=name, date=date_text(current))
        return render("bot.care.contract_show", name=name, date=date_text(current), left=(current - today).days)
    if isinstance(ends_on, Remove):
        if current is None:
            return render("bot.care.contract_none", name=name)
        customer.contract_ends_on = None
        ctx.audit("customer.contract", customer.id, f"{current.isoformat()} -> -")
        return render("bot.care.contract_removed", name=name, date=date_text(current))
    day = contract_end(ends_on, ctx.local_now)
    customer.contract_ends_on = day
    ctx.audit("customer.contract", customer.id, f"{current.isoformat() if current else '-'} -> {day.isoformat()}")
    days_before, left = default_policy().renewal_days_before, (day - today).days
    key = "bot.care.contract_saved_soon" if left <= days_before else "bot.care.contract_saved"
    return render(key, name=name, date=date_text(day), weekday=WEEKDAYS[day.weekday()], days=days_before, left=left)


@router.command("关怀", aliases=("care",),
                args=[Arg("customer", customer=True), Arg("state", optional=True, convert=switch),
                      Arg("confirmed", rest=True, optional=True, convert=confirmation)],
                usage="关怀 <客户> [开启|关闭]")
async def care(ctx: CommandContext, customer: Customer, state: Literal["on", "off", ""], confirmed: bool | str) -> str:
    """查看或记录客户是否同意接收关怀消息（生日、节日祝福）"""
    name = display_name(customer)
    opted_out = ctx.local(customer.care_opted_out_at, "%Y-%m-%d") if customer.care_opted_out_at else ""
    if not state:
        ctx.audit("customer.view", customer.id, "care")
        if opted_out:
            return render("bot.care.care_show_opted_out", name=name, date=opted_out)
        return render("bot.care.care_show_on" if customer.care_consent else "bot.care.care_show_off", name=name)
    if state == "off":
        if not customer.care_consent:
            return render("bot.care.care_off_already", name=name)
        customer.care_consent = False
        ctx.audit("customer.care_consent", customer.id, "on -> off")
        return render("bot.care.care_off", name=name)
    if opted_out:
        if not confirmed:
            return render("bot.care.care_opted_out", name=name, date=opted_out)
        customer.care_opted_out_at, customer.care_consent = None, True
        ctx.audit("customer.care_consent", customer.id, f"opted out {opted_out} -> on (rep confirmed the customer agreed again)")
        return render("bot.care.care_resubscribed", name=name, date=opted_out)
    if customer.care_consent:
        return render("bot.care.care_on_already", name=name)
    customer.care_consent = True
    ctx.audit("customer.care_consent", customer.id, "off -> on")
    return render("bot.care.care_on", name=name)
