"""How customers read in chat replies."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from config.templates import render
from crm_core.models import Customer, Message

def mask_phone(phone: str) -> str:
    """138****5678: enough to recognise a number, not enough to copy it."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def customer_card(customer: Customer, last_message: Message | None, tz: ZoneInfo) -> str:
    none = render("bot.none_value")
    last = none
    if last_message is not None:
        last = f"{last_message.sent_at.astimezone(tz):%m-%d %H:%M} {last_message.text[:40]}"
    return render(
        "bot.customer_card",
        name=customer.name or customer.remark or none,
        company=customer.company,
        owner=customer.owner.name if customer.owner else none,
        lifecycle=render(f"lifecycle.{customer.lifecycle}"),
        phone=mask_phone(customer.phone) or none,
        tags="、".join(customer.wecom_tags) or none,
        last_contact=f"{customer.last_contact_at.astimezone(tz):%Y-%m-%d %H:%M}" if customer.last_contact_at else none,
        last_message=last,
    ).strip()
