"""A customer's personal-data requests (个人信息保护法): see everything held about them, or erase it.

Erasure keeps the customer row and every record hanging off it, so counts, deals, tickets,
sentiment and the funnel still add up, but removes what identifies the person or what they said:
names, phone, WeCom ids, birthdays, message texts and raw payloads (also in the inbox rows they
came from), notes, ticket excerpts, tags. The customer is also opted out, and anything still
waiting in the outbox for them is parked, so nothing is ever sent to them again.

The customer is also named where no customer_id says so: staff commands (`记 张三 手机…`), the
bot's replies (the 查 card), notices to colleagues, raw callbacks, dedup keys. So erasure then
searches every text column of every table (JSON included) for what identifies them: their phone
numbers (also those they or their notes mentioned), WeCom ids, and their name and remark. A staff
chat line or bot reply that names them is cleared entirely (it may carry an address too); elsewhere
each value is replaced (in keys by a random token, so unique keys stay unique). Names are not
searched for when a colleague has the same name, which would scrub every line that names the
colleague; ids and phone numbers always are. The audit log's entries are kept, the record of who
saw the data, which the law asks us to keep; its details lose the erased values too.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, MetaData, String, Table, Text, UniqueConstraint, cast, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.audit import AuditService
from crm_core.errors import CustomerNotFoundError
from crm_core.models import (AuditEntry, CareDelivery, Customer, CustomerIdentity, CustomerTag, Deal, FollowUp, InboxItem,
                             LifecycleChange, Message, Note, OutboxItem, Staff)
from crm_core.search_keys import name_keys
from crm_core.ticket_models import Ticket, TicketEvent

BATCH = 500
# Analysis keys that quote the text (tokens, keywords); the rest (sentiment, label, intents) are kept.
TEXT_DERIVED = ("tokens", "keywords")
# Where staff talk to the bot: a line there that names the customer is about them, all of it.
STAFF_CHAT_CHANNEL = "wecom_app"
# Tables the search for mentions leaves alone: the customer's own row is erased above, and a
# colleague or another customer sharing a phone number keeps theirs.
NOT_SEARCHED = frozenset({"customers", "staff", "alembic_version"})
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@dataclass(frozen=True)
class Erasure:
    messages: int
    inbox_rows: int
    notes: int
    follow_ups: int
    tickets: int
    identities: int
    tags: int
    outbox_parked: int
    mentions: int  # rows elsewhere (staff lines, replies, notices, keys) that named the customer
    names_searched: bool  # False when a colleague has the customer's name (ids and phones still are)


class PrivacyService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def export(self, customer_id: int, *, actor: str) -> dict[str, Any]:
        """Everything held about the customer, as plain JSON-ready data; the export is audit-logged."""
        customer = await self._customer(customer_id)
        s = self.session
        data = {
            "customer": {
                "id": customer.id, "name": customer.name, "company": customer.company, "phone": customer.phone,
                "gender": customer.gender, "unionid": customer.unionid, "remark": customer.remark,
                "description": customer.description, "wecom_tags": customer.wecom_tags, "lifecycle": customer.lifecycle,
                "birthday": str(customer.birthday) if customer.birthday else None,
                "care_consent": customer.care_consent, "care_opted_out_at": customer.care_opted_out_at,
                "contract_ends_on": customer.contract_ends_on, "source": customer.source,
                "owner": customer.owner.userid if customer.owner else None,
                "created_at": customer.created_at, "last_contact_at": customer.last_contact_at,
            },
            "identities": await self._rows(CustomerIdentity, CustomerIdentity.customer_id == customer_id,
                                           ("channel", "external_id", "created_at")),
            "tags": await self._rows(CustomerTag, CustomerTag.customer_id == customer_id, ("name", "created_at")),
            "messages": await self._rows(Message, Message.customer_id == customer_id,
                                         ("sent_at", "channel", "direction", "msg_type", "text")),
            "notes": await self._rows(Note, Note.customer_id == customer_id, ("created_at", "text")),
            "follow_ups": await self._rows(FollowUp, FollowUp.customer_id == customer_id,
                                           ("due_at", "text", "status")),
            "deals": await self._rows(Deal, Deal.customer_id == customer_id,
                                      ("created_at", "stage", "status", "fields", "lost_reason", "closed_at")),
            "tickets": await self._rows(Ticket, Ticket.customer_id == customer_id,
                                        ("number", "created_at", "category", "status", "summary", "resolution", "csat")),
            "care_messages": await self._rows(CareDelivery, CareDelivery.customer_id == customer_id,
                                              ("occasion", "occasion_date", "channel", "status")),
            "lifecycle_changes": await self._rows(LifecycleChange, LifecycleChange.customer_id == customer_id,
                                                  ("changed_at", "from_stage", "to_stage", "reason")),
            "access_log": await self._rows(AuditEntry, AuditEntry.customer_id == customer_id,
                                           ("created_at", "actor", "action")),
        }
        AuditService(s).record(actor=actor, action="customer.export", customer_id=customer_id,
                               detail=f"{len(data['messages'])} messages")
        return _plain(data)

    async def erase(self, customer_id: int, *, actor: str, at: datetime) -> Erasure:
        """Remove the customer's personal data in the caller's transaction (see the module docstring)."""
        customer = await self._customer(customer_id)
        s = self.session
        traces = await self._traces(customer)
        customer.name = render("privacy.erased_name", id=customer.id)
        customer.phone = ""
        for field in ("company", "unionid", "remark", "description", "source"):
            setattr(customer, field, "")
        customer.wecom_tags, customer.gender, customer.birthday = [], 0, None
        customer.care_consent = False
        customer.care_opted_out_at = customer.care_opted_out_at or at

        inbox_rows = messages = 0
        after_id = 0
        while True:
            page = (await s.execute(
                select(Message.id, Message.channel, Message.external_msg_id)
                .where(Message.customer_id == customer_id, Message.id > after_id).order_by(Message.id).limit(BATCH)
            )).all()
            if not page:
                break
            after_id = page[-1].id
            keys = {key for row in page if row.external_msg_id for key in _inbox_keys(row.channel, row.external_msg_id)}
            if keys:
                inbox_rows += (await s.execute(
                    update(InboxItem).where(InboxItem.dedup_key.in_(keys)).values(payload="")
                )).rowcount
            for message in (await s.scalars(select(Message).where(Message.id.in_([r.id for r in page])))).all():
                message.text, message.payload, message.sender, message.recipient, message.meta = "", "", "", "", {}
                if message.analysis:
                    message.analysis = {k: v for k, v in message.analysis.items() if k not in TEXT_DERIVED}
            messages += len(page)

        notes = (await s.execute(update(Note).where(Note.customer_id == customer_id).values(text=""))).rowcount
        follow_ups = (await s.execute(update(FollowUp).where(FollowUp.customer_id == customer_id).values(text=""))).rowcount
        await s.execute(update(Deal).where(Deal.customer_id == customer_id).values(lost_reason=""))
        ticket_ids = list((await s.scalars(select(Ticket.id).where(Ticket.customer_id == customer_id))).all())
        if ticket_ids:
            await s.execute(update(Ticket).where(Ticket.id.in_(ticket_ids)).values(
                summary="", resolution="", reply_external_userid=""))
            await s.execute(update(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids)).values(detail=""))
        await s.execute(update(CareDelivery).where(CareDelivery.customer_id == customer_id).values(detail=""))
        identities = (await s.execute(delete(CustomerIdentity).where(CustomerIdentity.customer_id == customer_id))).rowcount
        tags = (await s.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer_id))).rowcount
        outbox = OutboxItem.customer_id == customer_id
        parked = (await s.execute(update(OutboxItem).where(outbox, OutboxItem.status.in_(("pending", "sending"))).values(
            status="parked", last_error="customer erased: not sent"))).rowcount
        await s.execute(update(OutboxItem).where(outbox, or_(OutboxItem.status == "sent", OutboxItem.status == "parked"))
                        .values(payload={"erased": True}, response=None))
        await s.flush()
        mentions = await MentionScrubber(s, traces, at).run()
        report = Erasure(messages, inbox_rows, notes, follow_ups, len(ticket_ids), identities, tags, parked, mentions,
                         bool(traces.names))
        AuditService(s).record(actor=actor, action="customer.erase", customer_id=customer_id,
                               detail=", ".join(f"{k}={v}" for k, v in asdict(report).items()))
        return report

    async def audit_trail(self, *, customer_id: int | None = None, actor: str | None = None, action: str | None = None,
                          since: datetime | None = None, limit: int = 200) -> list[AuditEntry]:
        """Who looked at or changed personal data, newest first."""
        stmt = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(limit)
        if customer_id is not None:
            stmt = stmt.where(AuditEntry.customer_id == customer_id)
        if actor:
            stmt = stmt.where(AuditEntry.actor == actor)
        if action:
            stmt = stmt.where(AuditEntry.action.startswith(action))
        if since is not None:
            stmt = stmt.where(AuditEntry.created_at >= since)
        return list((await self.session.scalars(stmt)).all())

    async def _traces(self, customer: Customer) -> Traces:
        """What identifies the customer, gathered before anything is cleared."""
        s = self.session
        identities = (await s.scalars(select(CustomerIdentity.external_id).where(
            CustomerIdentity.customer_id == customer.id))).all()
        texts = [customer.phone, customer.description, customer.remark]
        for model, column in ((Message, Message.text), (Note, Note.text), (FollowUp, FollowUp.text)):
            texts += (await s.scalars(select(column).where(model.customer_id == customer.id))).all()
        phones = {m for text in texts if text for m in _MOBILE.findall(text)}
        digits = re.sub(r"\D", "", customer.phone or "")
        if len(digits) >= 7:
            phones.add(digits)
        ids = {v for v in (*identities, customer.unionid) if v and len(v) >= 6}
        names = {v.strip() for v in (customer.name, customer.remark) if v and len(v.strip()) >= 2}
        # Staff look customers up by pinyin too (`查 sunli`); short ones (li, wang) are in everything.
        names |= {customer.name_pinyin} if len(customer.name_pinyin or "") >= 5 else set()
        colleagues = {n for staff_name in (await s.scalars(select(Staff.name))).all() if staff_name
                      for n in (staff_name, name_keys(staff_name)[0])}
        return Traces(unique=frozenset(phones | ids), names=frozenset() if names & colleagues else frozenset(names))

    async def _customer(self, customer_id: int) -> Customer:
        customer = await self.session.get(Customer, customer_id)
        if customer is None:
            raise CustomerNotFoundError(f"no customer {customer_id}")
        return customer

    async def _rows(self, model, condition, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        stmt = select(*(getattr(model, c) for c in columns)).where(condition).order_by(model.id)
        return [dict(zip(columns, row)) for row in (await self.session.execute(stmt)).all()]


@dataclass(frozen=True)
class Traces:
    unique: frozenset[str]  # phone numbers and external ids: searched for everywhere
    names: frozenset[str]  # name and remark: empty when a colleague shares them

    @property
    def values(self) -> list[str]:
        return sorted(self.unique | self.names, key=len, reverse=True)  # longest first: 孙丽-云帆 before 孙丽


class MentionScrubber:
    """Finds every row of every table (but NOT_SEARCHED) whose text or JSON holds a trace, and
    scrubs it: staff chat lines and the raw callbacks and outbox rows around them are cleared,
    everything else has each trace replaced."""

    def __init__(self, session: AsyncSession, traces: Traces, at: datetime):
        self.session, self.traces, self.at = session, traces, at
        self.tokens = {value: f"erased-{secrets.token_hex(6)}" for value in traces.values}  # for unique keys
        self.mention = render("privacy.erased_mention")

    async def run(self) -> int:
        if not self.tokens:
            return 0
        # The tables as the database has them, not as this code's models list them: whatever table
        # another feature adds is searched too.
        metadata = MetaData()
        await self.session.run_sync(lambda sync_session: metadata.reflect(sync_session.connection()))
        scrubbed = 0
        for table in metadata.sorted_tables:
            if table.name not in NOT_SEARCHED:
                scrubbed += await self._table(table)
        return scrubbed

    async def _table(self, table: Table) -> int:
        columns = [c for c in table.columns if isinstance(c.type, (String, Text, JSON)) and not c.primary_key]
        [key] = table.primary_key.columns
        if not columns:
            return 0
        patterns = [f"%{_like(form)}%" for value in self.traces.values for form in {value, json.dumps(value)[1:-1]}]
        found = (await self.session.execute(select(key, *columns).where(or_(*(
            cast(column, Text).like(pattern, escape="!") for column in columns for pattern in patterns))))).all()
        unique = {c.name for c in columns if c.unique}
        unique |= {c.name for index in table.indexes if index.unique for c in index.columns}
        unique |= {c.name for constraint in table.constraints if isinstance(constraint, UniqueConstraint)
                   for c in constraint.columns}
        for row in found:
            values = dict(zip([c.name for c in columns], row[1:]))
            changes = self._cleared(table.name, values) or {
                name: self._replaced(value, tokens=name in unique) for name, value in values.items()}
            changes = {k: v for k, v in changes.items() if v != values.get(k)}
            if changes:
                await self.session.execute(update(table).where(key == row[0]).values(**changes))
        return len(found)

    def _cleared(self, table: str, values: dict[str, Any]) -> dict[str, Any] | None:
        """A staff chat line, or what carried one, loses all of its content; None: not such a row."""
        if table == "messages" and values["channel"] == STAFF_CHAT_CHANNEL:
            analysis = {k: v for k, v in (values["analysis"] or {}).items() if k not in TEXT_DERIVED} or None
            return {"text": "", "payload": "", "meta": {}, "analysis": analysis,
                    "external_msg_id": self._replaced(values["external_msg_id"], tokens=True)}
        if table == "inbox_items":
            return {"payload": "", "dedup_key": self._replaced(values["dedup_key"], tokens=True),
                    "last_error": self._replaced(values["last_error"], tokens=False)}
        if table == "outbox_items":
            pending = values["status"] in ("pending", "sending")
            return {"payload": {"erased": True}, "response": None, "status": "parked" if pending else values["status"],
                    "last_error": "customer erased: not sent" if pending else self._replaced(values["last_error"], tokens=False),
                    "idempotency_key": self._replaced(values["idempotency_key"], tokens=True)}
        return None

    def _replaced(self, value: Any, *, tokens: bool) -> Any:
        """`value` with every trace replaced, inside JSON structures too (keys included)."""
        if isinstance(value, str):
            for trace in self.traces.values:
                if trace in value:
                    value = value.replace(trace, self.tokens[trace] if tokens else self.mention)
            return value
        if isinstance(value, list):
            return [self._replaced(v, tokens=tokens) for v in value]
        if isinstance(value, dict):
            return {self._replaced(k, tokens=tokens): self._replaced(v, tokens=tokens) for k, v in value.items()}
        return value


def _like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _inbox_keys(channel: str, external_msg_id: str) -> tuple[str, ...]:
    """The inbox dedup keys a message may have come in under (see each connector's dedup key)."""
    return (external_msg_id, f"wecom:kfmsg:{external_msg_id}", f"wecom:archive:{external_msg_id}",
            f"{channel}:{external_msg_id}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value
