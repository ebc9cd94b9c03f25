"""Care messages: birthday and festival greetings, only to customers who agreed, at most once each.

Who is due is asked of the database in id-ordered pages (the birthday index, or every consenting
customer on a festival), so a million customers never sit in memory. For each customer one
decision is made and recorded: a `care_deliveries` row, unique per (customer, occasion, local
date), inserted with the outbox row in the same transaction. A second scheduler, an operator's
re-run or a re-run after a crash finds the row and sends nothing; the row also says how the
greeting went out, or why it could not.

Channels, in order of preference (WeCom decides what is allowed, see DESIGN.md):
- kf: a 微信客服 message, while the customer's reply window is open at the time of sending;
- template: a group-send task (externalcontact/add_msg_template) for the owner rep to confirm,
  when the customer is the rep's WeCom contact;
- none: nothing WeCom allows; the owner rep (if any) is asked to greet in person.
Reps hear once per occasion and day, in one message listing their tasks and their customers
without a channel. Sends that fall in quiet hours are held until they end.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lunardate import LunarDate
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from config.policies import CONFIG_DIR, shipped_policy
from config.templates import has, render
from crm_core.birthdays import LUNAR, SOLAR, celebrated_keys
from crm_core.db import utcnow
from crm_core.kf_window import KfAddress, kf_reply_address, kf_reply_addresses
from crm_core.models import CareDelivery, Customer, CustomerIdentity, CustomerTag, Message, Staff
from crm_core.outbox import OutboxService
from crm_core.sql import insert_if_absent

CARE_FILE = CONFIG_DIR / "care.toml"
BIRTHDAY = "birthday"
KF, TEMPLATE, NONE = "kf", "template", "none"
# The identity channel of a WeChat user as this corp sees them (connectors.wecom.inbound.EXTERNAL_CHANNEL):
# its external_id is the external_userid a group-send task is addressed to.
CONTACT_CHANNEL = "wecom"
REP_NOTICE_NAMES = 10
_FESTIVAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,22}$")


# -- policy ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuietHours:
    """A local window in which nothing is sent to customers; it may cross midnight."""

    start: time
    end: time

    def next_allowed(self, at: datetime, timezone: ZoneInfo) -> datetime:
        """`at` itself when it is outside the window, else the window's end (local wall time)."""
        if self.start == self.end:
            return at
        local = at.astimezone(timezone)
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            quiet, end_day = self.start <= clock < self.end, local.date()
        else:
            quiet = clock >= self.start or clock < self.end
            end_day = local.date() + timedelta(days=1) if clock >= self.start else local.date()
        if not quiet:
            return at
        return datetime.combine(end_day, self.end, tzinfo=timezone).astimezone(UTC)


@dataclass(frozen=True)
class Festival:
    name: str
    calendar: str  # solar | lunar
    month: int
    day: int
    template: str  # a table in templates_care.toml with one text per segment
    enabled: bool = True

    def falls_on(self, day: date) -> bool:
        if self.calendar == SOLAR:
            return (day.month, day.day) == (self.month, self.day)
        lunar = LunarDate.from_solar_date(day.year, day.month, day.day)
        return not lunar.is_leap_month and (lunar.month, lunar.day) == (self.month, self.day)


@dataclass(frozen=True)
class CarePolicy:
    quiet_hours: QuietHours
    default_segment: str
    segment_tags: tuple[tuple[str, str], ...]  # (CRM tag, segment), first match wins
    festivals: tuple[Festival, ...]

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> CarePolicy:
        quiet, segments = raw["quiet_hours"], raw["segments"]
        policy = cls(
            quiet_hours=QuietHours(time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"])),
            default_segment=segments["default"],
            segment_tags=tuple(segments.get("tags", {}).items()),
            festivals=tuple(Festival(f["name"], f["calendar"], int(f["month"]), int(f["day"]), f["template"],
                                     bool(f.get("enabled", True))) for f in raw.get("festival", [])),
        )
        policy._check()
        return policy

    def _check(self) -> None:
        """Refuse at start what would otherwise fail on a festival morning."""
        segments = {self.default_segment, *(segment for _, segment in self.segment_tags)}
        problems = [f"no template care.birthday.{s} for segment {s!r}" for s in sorted(segments)
                    if not has(f"care.birthday.{s}")]
        names = [f.name for f in self.festivals]
        problems += [f"festival {n!r} is listed twice" for n in sorted(set(names)) if names.count(n) > 1]
        for f in self.festivals:
            if not _FESTIVAL_NAME.match(f.name):
                problems.append(f"festival name {f.name!r} must be lower-case ASCII, at most 23 characters")
            if f.calendar not in (SOLAR, LUNAR):
                problems.append(f"festival {f.name!r}: calendar must be solar or lunar")
            elif not _valid_day(f):
                problems.append(f"festival {f.name!r}: no {f.calendar} date {f.month}/{f.day}")
            if f.enabled and not has(f"{f.template}.{self.default_segment}"):
                problems.append(f"festival {f.name!r} needs the template {f.template}.{self.default_segment}")
            if f.enabled and not has(f"care.labels.{f.name}"):
                problems.append(f"festival {f.name!r} needs a label care.labels.{f.name}")
        if problems:
            raise ValueError("; ".join(problems))

    def festivals_on(self, day: date) -> list[Festival]:
        return [f for f in self.festivals if f.enabled and f.falls_on(day)]

    def segment(self, tags: Iterable[str]) -> str:
        owned = set(tags)
        return next((segment for tag, segment in self.segment_tags if tag in owned), self.default_segment)


def _valid_day(festival: Festival) -> bool:
    if festival.calendar == SOLAR:
        try:
            date(2000, festival.month, festival.day)
        except ValueError:
            return False
        return True
    return 1 <= festival.month <= 12 and 1 <= festival.day <= 30


default_care_policy = shipped_policy(CARE_FILE.name, CarePolicy.from_toml)


# -- occasions and channels -------------------------------------------------------------------------

@dataclass(frozen=True)
class Occasion:
    """One thing celebrated on one local day, and the keys that make its messages once-only."""

    key: str  # birthday | festival:<name>
    day: date
    template: str
    label_key: str

    @classmethod
    def birthday(cls, day: date) -> Occasion:
        return cls(BIRTHDAY, day, "care.birthday", "care.labels.birthday")

    @classmethod
    def festival(cls, festival: Festival, day: date) -> Occasion:
        return cls(f"festival:{festival.name}", day, festival.template, f"care.labels.{festival.name}")

    def customer_key(self, customer_id: int) -> str:
        return f"care:{self.key}:{customer_id}:{self.day.isoformat()}"

    def rep_key(self, staff_id: int) -> str:
        return f"care:{self.key}:{self.day.isoformat()}:staff:{staff_id}"

    def greeting(self, segment: str, default_segment: str, *, customer: str, signature: str) -> str:
        key = f"{self.template}.{segment}" if has(f"{self.template}.{segment}") else f"{self.template}.{default_segment}"
        return render(key, customer=customer, signature=signature)


def choose_channel(kf: KfAddress | None, owner: Staff | None, contact_userid: str | None) -> str:
    """kf while the window is open; else a task for the owner rep if the customer is their contact; else none."""
    if kf is not None:
        return KF
    if owner is not None and contact_userid:
        return TEMPLATE
    return NONE


# -- the service ------------------------------------------------------------------------------------

class CareService:
    def __init__(self, session: AsyncSession, policy: CarePolicy):
        self.session = session
        self.policy = policy

    async def birthdays_due(self, occasion: Occasion, after_id: int, limit: int) -> list[Customer]:
        """The next page (by id) of consenting customers whose birthday is celebrated on the occasion's day
        and who have no decision for it yet; looked up through ix_customers_birthday."""
        keys = celebrated_keys(occasion.day)
        on_day = or_(*(and_(Customer.birthday_calendar == calendar, Customer.birthday_month == month,
                            Customer.birthday_day == day, Customer.birthday_leap.is_(leap))
                       for calendar, month, day, leap in keys))
        return await self._page(occasion, after_id, limit, on_day)

    async def consenting(self, occasion: Occasion, after_id: int, limit: int) -> list[Customer]:
        """The next page (by id) of every consenting customer without a decision for the occasion."""
        return await self._page(occasion, after_id, limit)

    async def _page(self, occasion: Occasion, after_id: int, limit: int, *conditions) -> list[Customer]:
        decided = exists().where(CareDelivery.customer_id == Customer.id, CareDelivery.occasion == occasion.key,
                                 CareDelivery.occasion_date == occasion.day)
        stmt = (select(Customer)
                .where(Customer.id > after_id, Customer.care_consent.is_(True), Customer.care_opted_out_at.is_(None),
                       Customer.lifecycle != "churned", ~decided, *conditions)
                .options(noload(Customer.identities))
                .order_by(Customer.id).limit(limit))
        return list((await self.session.scalars(stmt)).unique().all())

    async def greet(self, customers: Sequence[Customer], occasion: Occasion, send_at: datetime) -> Counter[str]:
        """Decide and record each customer's greeting in the caller's transaction; counts by channel,
        plus `already` for customers another run decided first."""
        ids = [c.id for c in customers]
        tags = await self._segment_tags(ids)
        contacts = await self._contact_userids(ids)
        kf = await kf_reply_addresses(self.session, ids, send_at)
        counts = Counter[str]()
        for customer in customers:
            owner = customer.owner if customer.owner is not None and customer.owner.active else None
            contact = contacts.get(customer.id)
            channel = choose_channel(kf.get(customer.id), owner, contact)
            segment = self.policy.segment(tags.get(customer.id, ()))
            if not await self._record(customer, occasion, channel, owner, segment):
                counts["already"] += 1
                continue
            counts[channel] += 1
            if channel == NONE:
                continue
            text = occasion.greeting(segment, self.policy.default_segment,
                                     customer=customer.name or render("care.customer_fallback"),
                                     signature=owner.name if owner and owner.name else render("care.signature_fallback"))
            if channel == KF:
                address = kf[customer.id]
                kind, payload = "kf_message", {"touser": address.external_userid, "open_kfid": address.open_kfid,
                                               "msgtype": "text", "text": {"content": text}}
            else:
                kind, payload = "msg_template", {"chat_type": "single", "external_userid": [contact],
                                                 "sender": owner.userid, "text": {"content": text}}
            await OutboxService(self.session).enqueue(
                idempotency_key=occasion.customer_key(customer.id), kind=kind, payload=payload,
                customer_id=customer.id, staff_id=owner.id if owner else None, not_before=send_at)
        return counts

    async def _record(self, customer: Customer, occasion: Occasion, channel: str, owner: Staff | None, segment: str) -> bool:
        """Insert the customer's decision for the occasion; False when a decision already exists."""
        if channel == NONE:
            status, outbox_key = "no_channel", occasion.rep_key(owner.id) if owner else ""
            detail = f"segment={segment}; no kf window, " + ("not a WeCom contact" if owner else "no active owner")
        else:
            status, outbox_key, detail = "queued", occasion.customer_key(customer.id), f"segment={segment}"
        now = utcnow()
        recorded = await insert_if_absent(self.session, CareDelivery, {
            "customer_id": customer.id, "occasion": occasion.key, "occasion_date": occasion.day, "channel": channel,
            "status": status, "outbox_key": outbox_key, "staff_id": owner.id if owner else None, "wecom_msgid": "",
            "detail": detail, "created_at": now, "updated_at": now,
        }, ["customer_id", "occasion", "occasion_date"])
        return recorded is not None

    async def tell_reps(self, occasion: Occasion, send_at: datetime) -> int:
        """One message per owner rep: the group-send tasks to confirm and the customers to greet in
        person. Built from the recorded decisions, so a re-run after a crash reports every customer;
        returns how many messages were new."""
        per_rep = (await self.session.execute(
            select(CareDelivery.staff_id, CareDelivery.channel, func.count())
            .where(CareDelivery.occasion == occasion.key, CareDelivery.occasion_date == occasion.day,
                   CareDelivery.channel.in_((TEMPLATE, NONE)), CareDelivery.staff_id.is_not(None))
            .group_by(CareDelivery.staff_id, CareDelivery.channel)
        )).all()
        counts: dict[int, dict[str, int]] = {}
        for staff_id, channel, count in per_rep:
            counts.setdefault(staff_id, {})[channel] = count
        label = render(occasion.label_key)
        outbox, new = OutboxService(self.session), 0
        for staff_id in sorted(counts):
            rep = await self.session.get(Staff, staff_id)
            lines = [render("care.rep.header", occasion=label)]
            for channel, template in ((TEMPLATE, "care.rep.templates"), (NONE, "care.rep.no_channel")):
                if channel in counts[staff_id]:
                    names = await self._names(occasion, staff_id, channel, counts[staff_id][channel])
                    lines.append(render(template, count=counts[staff_id][channel], names=names, occasion=label))
            new += await outbox.enqueue(
                idempotency_key=occasion.rep_key(staff_id), kind="app_message",
                payload={"touser": rep.userid, "msgtype": "text", "text": {"content": "\n".join(lines)}},
                staff_id=staff_id, not_before=send_at)
        return new

    async def withdraw_consent(self, customer: Customer, at: datetime) -> bool:
        """Record an opt-out; False when the customer had already opted out (so it is confirmed once,
        even when two workers handle two such messages at the same moment)."""
        result = await self.session.execute(
            update(Customer).where(Customer.id == customer.id, Customer.care_opted_out_at.is_(None))
            .values(care_opted_out_at=at).execution_options(synchronize_session=False))
        await self.session.refresh(customer, ["care_opted_out_at"])
        return result.rowcount == 1

    async def confirm_opt_out(self, customer: Customer, message_id: int, at: datetime) -> bool:
        """Tell the customer through 微信客服 that they are opted out, when the window allows."""
        address = await kf_reply_address(self.session, customer.id, at)
        if address is None:
            return False
        return await OutboxService(self.session).enqueue(
            idempotency_key=f"care:opt_out:{customer.id}:{message_id}", kind="kf_message",
            payload={"touser": address.external_userid, "open_kfid": address.open_kfid, "msgtype": "text",
                     "text": {"content": render("care.opt_out_confirmed")}},
            customer_id=customer.id)

    async def tell_owner_opted_out(self, customer: Customer, message: Message, *, confirmed: bool = True) -> bool:
        """Tell the owner rep, once per customer, that the customer asked for no more messages; when
        no 微信客服 window carried the confirmation (a rep's WeChat contact), the rep is asked to pass it on."""
        owner = customer.owner
        if owner is None:
            return False
        content = render("care.opt_out_owner", customer=customer.name or customer.remark or f"客户#{customer.id}",
                         excerpt=(message.text or "")[:60])
        if not confirmed:
            content += "\n" + render("care.opt_out_owner_relay", confirmation=render("care.opt_out_confirmed"))
        return await OutboxService(self.session).enqueue(
            idempotency_key=f"care:opt_out:owner:{customer.id}", kind="app_message",
            payload={"touser": owner.userid, "msgtype": "text", "text": {"content": content}},
            customer_id=customer.id, staff_id=owner.id)

    async def _segment_tags(self, customer_ids: list[int]) -> dict[int, list[str]]:
        names = [tag for tag, _ in self.policy.segment_tags]
        if not names:
            return {}
        rows = await self.session.execute(select(CustomerTag.customer_id, CustomerTag.name)
                                          .where(CustomerTag.customer_id.in_(customer_ids), CustomerTag.name.in_(names)))
        tags: dict[int, list[str]] = {}
        for customer_id, name in rows:
            tags.setdefault(customer_id, []).append(name)
        return tags

    async def _contact_userids(self, customer_ids: list[int]) -> dict[int, str]:
        rows = await self.session.execute(
            select(CustomerIdentity.customer_id, CustomerIdentity.external_id)
            .where(CustomerIdentity.customer_id.in_(customer_ids), CustomerIdentity.channel == CONTACT_CHANNEL)
            .order_by(CustomerIdentity.id))
        contacts: dict[int, str] = {}
        for customer_id, external_id in rows:
            contacts.setdefault(customer_id, external_id)
        return contacts

    async def _names(self, occasion: Occasion, staff_id: int, channel: str, count: int) -> str:
        names = (await self.session.scalars(
            select(func.coalesce(func.nullif(Customer.name, ""), Customer.remark))
            .join(CareDelivery, CareDelivery.customer_id == Customer.id)
            .where(CareDelivery.occasion == occasion.key, CareDelivery.occasion_date == occasion.day,
                   CareDelivery.staff_id == staff_id, CareDelivery.channel == channel)
            .order_by(CareDelivery.id).limit(REP_NOTICE_NAMES))).all()
        listed = "、".join(name or "—" for name in names)
        return render("care.rep.names_more", names=listed) if count > len(names) else listed



async def settle_kf_delivery(session: AsyncSession, outbox_key: str, *, sent: bool, error: str = "") -> None:
    """A greeting sent by 微信客服 is done once its outbox row is: mark the delivery sent, or
    unsent with the reason when the sender gave up (e.g. the window closed while it was held)."""
    values = {"status": "sent"} if sent else {"status": "unsent", "detail": f"not delivered: {error}"[:2000]}
    await session.execute(update(CareDelivery).where(
        CareDelivery.outbox_key == outbox_key, CareDelivery.channel == KF, CareDelivery.status == "queued",
    ).values(**values, updated_at=utcnow()))
