"""How customers, notes, deals and follow-ups read in chat replies."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from config.markup import join
from config.templates import render
from crm_core.ticket_policy import default_policy
from crm_core.customer_view import CustomerView
from crm_core.lead_score import default_policy as lead_score_policy
from crm_core.models import Customer, Deal, FollowUp
from crm_core.search import Match

SENTIMENT_BANDS = ((0.3, "positive"), (-0.3, "neutral"), (-1.01, "negative"))


def mask_phone(phone: str) -> str:
    """138****5678: enough to recognise a number, not enough to copy it."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def redact(query: str, limit: int = 50) -> str:
    """A search query fit for the audit trail: phone numbers in it are masked like on the card."""
    return re.sub(r"\d{7,}", lambda m: mask_phone(m.group()), query[:limit])


def display_name(customer: Customer | Match) -> str:
    return customer.name or customer.remark or render("bot.none_value")


def customer_line(customer: Customer | Match, none: str) -> str:
    """One customer in a list: enough to tell two 张伟 apart, nothing more."""
    owner = customer.owner_name
    return render("bot.customer_line", name=display_name(customer), company=customer.company or none,
                  phone=mask_phone(customer.phone) or none, owner=owner if owner is not None else none)


def money(amount: int | float | None) -> str:
    if amount is None:
        return render("bot.none_value")
    if amount >= 10_000 and amount % 1_000 == 0:
        return f"{amount / 10_000:g}万"
    return f"{amount:,.0f}元"


def deal_text(deal: Deal | None) -> str:
    if deal is None:
        return render("bot.none_value")
    if deal.status == "lost":
        return render("bot.deal_lost", stage=deal.stage, reason=deal.lost_reason)
    budget = deal.fields.get("budget")
    return render("bot.deal_with_budget", stage=deal.stage, budget=money(budget)) if budget else deal.stage


def sentiment_text(score: float | None) -> str:
    if score is None:
        return render("bot.none_value")
    band = next(name for floor, name in SENTIMENT_BANDS if score > floor)
    return render(f"bot.sentiment_{band}", score=f"{score:+.1f}")


def heat_text(score: int) -> str:
    """热度 as the card shows it: 82 🔥高, 55 中, 12 低 (bands from config/lifecycle.toml)."""
    return render(f"bot.heat.{lead_score_policy().band(score)}", score=score)


def date_text(day: date) -> str:
    """2027年4月8日: how a day reads in a sentence."""
    return f"{day.year}年{day.month}月{day.day}日"


def care_status(customer: Customer) -> str:
    """已同意 / 未同意 / 已退订: whether birthday and festival greetings may reach the customer."""
    if customer.care_opted_out_at is not None:
        return render("bot.care.status_opted_out")
    return render("bot.care.status_on" if customer.care_consent else "bot.care.status_off")


def when_text(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def follow_up_line(follow_up: FollowUp, tz: ZoneInfo, now: datetime) -> str:
    key = "bot.todo_line_overdue" if follow_up.due_at <= now else "bot.todo_line"
    return render(key, due=follow_up.due_at.astimezone(tz).strftime("%m-%d %H:%M"),
                  name=display_name(follow_up.customer), text=follow_up.text or render("bot.none_value"))


def customer_card(view: CustomerView, tz: ZoneInfo) -> str:
    """The customer card, as WeCom markdown; the phone is always masked."""
    customer, none = view.customer, render("bot.none_value")
    last_contact = none
    if customer.last_contact_at:
        by = view.last_contact_by.name if view.last_contact_by else none
        last_contact = render("bot.card_last_contact", at=when_text(customer.last_contact_at, tz), by=by)
    notes = [
        render("bot.card_note", kind="markdown", at=n.created_at.astimezone(tz).strftime("%m-%d %H:%M"),
               author=n.author.name if n.author else none, text=n.text[:80])
        for n in view.notes
    ]
    next_follow_up = none
    if view.next_follow_up is not None:
        next_follow_up = f"{when_text(view.next_follow_up.due_at, tz)} {view.next_follow_up.text[:40]}".strip()
    return render(
        "bot.customer_card", kind="markdown",
        name=display_name(customer),
        company=customer.company or none,
        owner=customer.owner.name if customer.owner else none,
        lifecycle=render(f"lifecycle.{customer.lifecycle}"),
        heat=heat_text(customer.lead_score or 0),
        deal=deal_text(view.deal),
        phone=mask_phone(customer.phone) or none,
        birthday=str(customer.birthday) if customer.birthday else none,
        care=care_status(customer),
        contract=render("bot.card_contract", date=customer.contract_ends_on.isoformat()) if customer.contract_ends_on else "",
        tags="、".join(view.tags) or none,
        groups=render("groups.card_line", kind="markdown", names="、".join(view.groups)) if view.groups else "",
        last_contact=last_contact,
        sentiment=sentiment_text(view.sentiment),
        next_follow_up=next_follow_up,
        tickets="、".join(render("bot.card_ticket", number=t.number, priority=default_policy().sla[t.priority].label)
                         for t in view.open_tickets) or none,
        notes=join("\n", notes, "markdown") or render("bot.card_no_notes", kind="markdown"),
    ).strip()
