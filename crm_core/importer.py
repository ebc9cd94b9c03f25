"""Customer import: spreadsheet rows (read by crm_core.customer_sheet) matched and merged into the CRM.

- A row matches an existing customer by WeCom external id, then phone (compared by digits, a
  +86 prefix ignored), then name + company (the name alone when the row has neither phone nor
  company). Rows earlier in the same file count as existing, so a file's own duplicates merge.
- Merging fills empty fields and unions tags. A non-empty field is never silently replaced: a
  different value is reported as a Conflict and applied only with `overwrite`. Two things are
  kept even then: a customer's WeCom identity (WeCom's fact, not the spreadsheet's) and a care
  opt-out (only the customer can opt in again).
- A row that cannot be imported (no name, a phone that is no mainland number, a date that does not
  exist, …) is reported with its reason (RowError); the other rows go in.
- 负责人 is resolved by `StaffDirectory.resolve_owner`, the one place that knows how a sheet names
  a staff member.
- Work goes in batches: one query per key kind per batch and one commit per batch, so a
  10,000-row file takes seconds and an interrupted import can simply be run again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from config.templates import render
from crm_core.audit import AuditService
from crm_core.birthdays import Birthday
from crm_core.customer_sheet import (
    COLUMNS, ParsedRow, RowRejected, birthday_text, cell_text, compose_description, description_parts, map_columns,
    parse_row, phone_key, staff_label,
)
from crm_core.db import UTCDateTime, utcnow
from crm_core.errors import StaffNotFoundError
from crm_core.lifecycle import IMPORT, PROSPECT, history_row
from crm_core.models import Customer, CustomerIdentity, CustomerTag, LifecycleChange, Staff
from crm_core.search_keys import phone_tail
from crm_core.tag_push import queue_tag_push

# The identity channel of a WeCom external contact (connectors.wecom.inbound.EXTERNAL_CHANNEL;
# crm_core cannot import connectors, and a test keeps the two equal).
WECOM_CHANNEL = "wecom"
_OWNER_WITH_ID = re.compile(r"(.*?)\s*[(（]\s*([^()（）]+?)\s*[)）]")


# -- what an import reports ------------------------------------------------------------------------

@dataclass(frozen=True)
class RowError:
    """A row left out, with the reason an admin can act on; `cells` are the row as read."""

    row: int
    cells: dict[str, Any]
    reason: str

@dataclass(frozen=True)
class Conflict:
    """A non-empty field the file wanted to change; applied only when the import overwrites."""

    row: int
    customer: str  # "张三 #12", or "张三（第 7 行）" for a customer this file created in a dry run
    field: str  # COLUMNS' key
    column: str  # the sheet's header for it
    current: str
    incoming: str
    applied: bool

@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    merged: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False


class StaffDirectory:
    """Every staff member by userid and by name, read once: 负责人 is resolved for every row. Members
    who left (inactive in the WeCom directory) are named in labels but own nothing new."""

    def __init__(self, rows: Iterable[tuple[int, str, str, bool]]):
        self.by_userid: dict[str, int] = {}
        self.by_name: dict[str, list[int]] = {}
        self.labels: dict[int, str] = {}
        self.departed: set[str] = set()  # userids and names of members who left
        for staff_id, userid, name, active in rows:
            self.labels[staff_id] = staff_label(userid, name)
            if not active:
                self.departed.update(filter(None, (userid, name)))
                continue
            self.by_userid[userid] = staff_id
            if name:
                self.by_name.setdefault(name, []).append(staff_id)

    @classmethod
    async def load(cls, session: AsyncSession) -> StaffDirectory:
        return cls((await session.execute(select(Staff.id, Staff.userid, Staff.name, Staff.active))).all())

    def resolve_owner(self, who: str, column: str = COLUMNS["owner"]) -> int:
        """`zhangwei`, `张伟` or `张伟(zhangwei)` (how export writes it) → the staff id; `column` is the
        sheet's header for 负责人, named in the reason a row is rejected."""
        who = who.strip()
        with_id = _OWNER_WITH_ID.fullmatch(who)
        if with_id and with_id.group(2) in self.by_userid:
            return self.by_userid[with_id.group(2)]
        if who in self.by_userid:
            return self.by_userid[who]
        matches = self.by_name.get(who, [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RowRejected(render("sheet.owner_ambiguous", column=column, who=who, count=len(matches)))
        if who in self.departed or (with_id and with_id.group(2) in self.departed):
            raise RowRejected(render("sheet.owner_departed", column=column, who=who))
        raise RowRejected(render("sheet.owner_unknown", column=column, who=who))

    def label(self, staff_id: int | None) -> str:
        return self.labels.get(staff_id, f"#{staff_id}") if staff_id is not None else ""


# -- merging ---------------------------------------------------------------------------------------

def _get_part(name: str) -> Callable[[Customer], str]:
    return lambda c: description_parts(c.description)[name]

def _set_part(name: str) -> Callable[[Customer, str], None]:
    def apply(customer: Customer, value: str) -> None:
        parts = description_parts(customer.description)
        parts[name] = value
        customer.description = compose_description(parts)
    return apply

def _same_birthday(a: Birthday, b: Birthday) -> bool:
    return a.key() == b.key() and (a.year is None or b.year is None or a.year == b.year)

@dataclass(frozen=True)
class _Slot:
    """One mergeable field: how to read, write, compare and show it."""

    field: str
    get: Callable[[Customer], Any]
    set: Callable[[Customer, Any], None]
    same: Callable[[Any, Any], bool] = lambda a, b: a == b
    show: Callable[[Any], str] = cell_text

def _attr(name: str, **kwargs: Any) -> _Slot:
    return _Slot(name, lambda c: getattr(c, name), lambda c, v: setattr(c, name, v), **kwargs)

_SLOTS = (
    _attr("name"),
    _attr("phone", same=lambda a, b: phone_key(a) == phone_key(b)),
    _attr("company"),
    _Slot("position", _get_part("position"), _set_part("position")),
    _attr("source"),
    _attr("remark"),
    _Slot("description", _get_part("description"), _set_part("description")),
    _Slot("birthday", lambda c: c.birthday, lambda c, v: setattr(c, "birthday", v), same=_same_birthday,
          show=birthday_text),
    _Slot("owner", lambda c: c.owner_id, lambda c, v: setattr(c, "owner_id", v)),
    _attr("contract_ends_on"),
)

class _BatchIndex:
    """The customers one batch's rows can match, by each key, with their WeCom ids and tags."""

    def __init__(self) -> None:
        self.by_external_id: dict[str, Customer] = {}
        self.by_phone: dict[str, Customer] = {}
        self.by_name: dict[tuple[str, str], Customer] = {}
        self.external_ids: dict[Customer, set[str]] = {}
        self.tags: dict[Customer, set[str]] = {}
        self.created_by_row: dict[Customer, int] = {}

    def match(self, row: ParsedRow) -> Customer | None:
        for external_id in row.external_ids:
            if external_id in self.by_external_id:
                return self.by_external_id[external_id]
        if row.phone and phone_key(row.phone) in self.by_phone:
            return self.by_phone[phone_key(row.phone)]
        if row.name and (row.company or not row.phone):
            return self.by_name.get((row.name, row.company))
        return None

    def add(self, customer: Customer) -> None:
        self.external_ids.setdefault(customer, set())
        self.tags.setdefault(customer, set())
        for external_id in self.external_ids[customer]:
            self.by_external_id.setdefault(external_id, customer)
        if customer.phone:
            self.by_phone.setdefault(phone_key(customer.phone), customer)
        if customer.name:
            self.by_name.setdefault((customer.name, customer.company), customer)

_INSERT_IDENTITY = text(
    'INSERT INTO customer_identities (customer_id, channel, external_id, created_at) '
    'VALUES (:customer_id, :channel, :external_id, :created_at) ON CONFLICT (channel, external_id) DO NOTHING'
).bindparams(bindparam("created_at", type_=UTCDateTime()))

_INSERT_TAG = text(
    'INSERT INTO customer_tags (customer_id, name, created_at) '
    'VALUES (:customer_id, :name, :created_at) ON CONFLICT (customer_id, name) DO NOTHING'
).bindparams(bindparam("created_at", type_=UTCDateTime()))

class CustomerImporter:
    """Imports rows in batches: each batch is looked up set-wise, merged, and committed
    (flushed only, and rolled back at the end, in a dry run, so its report is the real one)."""

    def __init__(self, session: AsyncSession, *, actor: str = "cli", default_owner: str | None = None,
                 overwrite: bool = False, batch_size: int = 500):
        self.session = session
        self.actor = actor
        self.default_owner = default_owner
        self.overwrite = overwrite
        self.batch_size = batch_size
        self.column_names: dict[str, str] = {}  # field -> the sheet's header for it, once run() has read them

    async def run(
        self, headers: Sequence[str], rows: Iterable[tuple[int, dict[str, Any]]], *,
        mapping: Mapping[str, str] | None = None, dry_run: bool = False, source: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import `rows` ((row number, {header: value})); raises ValidationError before any
        row is read when the columns or the default owner are unusable."""
        columns = map_columns(headers, mapping)
        self.column_names = {name: found[0] for name, found in columns.fields.items()}
        staff = await StaffDirectory.load(self.session)
        default_owner_id = None
        if self.default_owner:
            if self.default_owner not in staff.by_userid:
                raise StaffNotFoundError(render("sheet.owner_option_unknown", userid=self.default_owner))
            default_owner_id = staff.by_userid[self.default_owner]
        report = ImportReport(ignored_columns=columns.ignored, dry_run=dry_run)
        iterator = iter(rows)
        try:
            while batch := list(islice(iterator, self.batch_size)):
                parsed: list[ParsedRow] = []
                for number, cells in batch:
                    try:
                        parsed.append(parse_row(number, cells, columns, staff.resolve_owner))
                    except RowRejected as exc:
                        report.errors.append(RowError(number, dict(cells), str(exc)))
                await self._apply(parsed, report, staff, default_owner_id)
                report.rows += len(batch)
                if not dry_run:
                    await self.session.commit()
                if progress:
                    progress(report.rows)
            if dry_run:
                await self.session.rollback()
            else:
                AuditService(self.session).record(
                    actor=self.actor, action="customers.import",
                    detail=f"file={source} rows={report.rows} created={report.created} merged={report.merged} "
                           f"unchanged={report.unchanged} errors={len(report.errors)} "
                           f"conflicts={len(report.conflicts)} overwrite={self.overwrite}")
                await self.session.commit()
        except BaseException:
            await self.session.rollback()
            raise
        return report

    async def _apply(self, rows: list[ParsedRow], report: ImportReport, staff: StaffDirectory,
                     default_owner_id: int | None) -> None:
        index = await self._lookup(rows)
        new_identities: list[tuple[Customer, str]] = []
        new_tags: list[tuple[Customer, str]] = []
        created: list[Customer] = []
        for row in rows:
            customer = index.match(row)
            if customer is None:
                customer = self._create(row, default_owner_id)
                created.append(customer)
                index.created_by_row[customer] = row.row
                index.add(customer)
                report.created += 1
                changed = True
            else:
                changed = self._merge(customer, row, index, report, staff, default_owner_id)
            for external_id in self._identities_to_add(customer, row, index, report):
                index.external_ids[customer].add(external_id)
                new_identities.append((customer, external_id))
                changed = True
            for tag in row.tags:
                if tag not in index.tags[customer]:
                    index.tags[customer].add(tag)
                    new_tags.append((customer, tag))
                    changed = True
            index.add(customer)
            if customer in index.created_by_row and index.created_by_row[customer] == row.row:
                continue
            if changed:
                report.merged += 1
            else:
                report.unchanged += 1
        await self.session.flush()
        now = utcnow()
        if created:  # the stage history starts with the import
            await self.session.execute(insert(LifecycleChange),
                                       [history_row(c.id, "", PROSPECT, IMPORT, now) for c in created])
        if new_identities:
            await self.session.execute(_INSERT_IDENTITY, [
                {"customer_id": c.id, "channel": WECOM_CHANNEL, "external_id": e, "created_at": now}
                for c, e in new_identities])
        if new_tags:
            await self.session.execute(_INSERT_TAG, [
                {"customer_id": c.id, "name": t, "created_at": now} for c, t in new_tags])
            by_customer: dict[Customer, list[str]] = {}
            for customer, tag in new_tags:
                by_customer.setdefault(customer, []).append(tag)
            for customer, tags in by_customer.items():  # an imported tag reaches the customer's reps in WeCom too
                await queue_tag_push(self.session, customer, add=tags, remove=[])

    async def _lookup(self, rows: list[ParsedRow]) -> _BatchIndex:
        """Everything this batch can match, in one query per key kind (not one per row)."""
        external_ids = {e for row in rows for e in row.external_ids}
        tails = {phone_tail(row.phone) for row in rows if row.phone} - {""}
        keys = {phone_key(row.phone) for row in rows if row.phone}
        names = {row.name for row in rows if row.name}
        ids_by_external: dict[str, int] = {}
        ids_by_phone: dict[str, int] = {}
        ids_by_name: dict[tuple[str, str], int] = {}
        if external_ids:
            stmt = select(CustomerIdentity.external_id, CustomerIdentity.customer_id).where(
                CustomerIdentity.channel == WECOM_CHANNEL, CustomerIdentity.external_id.in_(external_ids))
            ids_by_external = dict((await self.session.execute(stmt)).all())
        if tails:
            stmt = select(Customer.id, Customer.phone).where(Customer.phone_tail.in_(tails)).order_by(Customer.id)
            for customer_id, phone in (await self.session.execute(stmt)).all():
                if phone_key(phone) in keys:
                    ids_by_phone.setdefault(phone_key(phone), customer_id)
        if names:
            stmt = (select(Customer.id, Customer.name, Customer.company)
                    .where(Customer.name.in_(names)).order_by(Customer.id))
            for customer_id, name, company in (await self.session.execute(stmt)).all():
                ids_by_name.setdefault((name, company), customer_id)
        index = _BatchIndex()
        ids = set(ids_by_external.values()) | set(ids_by_phone.values()) | set(ids_by_name.values())
        if not ids:
            return index
        stmt = select(Customer).where(Customer.id.in_(ids)).options(noload(Customer.identities))
        customers = {c.id: c for c in (await self.session.scalars(stmt)).all()}
        for customer in customers.values():
            index.external_ids[customer] = set()
            index.tags[customer] = set()
        stmt = select(CustomerIdentity.customer_id, CustomerIdentity.external_id).where(
            CustomerIdentity.channel == WECOM_CHANNEL, CustomerIdentity.customer_id.in_(ids))
        for customer_id, external_id in (await self.session.execute(stmt)).all():
            index.external_ids[customers[customer_id]].add(external_id)
        stmt = select(CustomerTag.customer_id, CustomerTag.name).where(CustomerTag.customer_id.in_(ids))
        for customer_id, name in (await self.session.execute(stmt)).all():
            index.tags[customers[customer_id]].add(name)
        index.by_external_id = {e: customers[i] for e, i in ids_by_external.items()}
        index.by_phone = {k: customers[i] for k, i in ids_by_phone.items()}
        index.by_name = {k: customers[i] for k, i in ids_by_name.items()}
        return index

    def _create(self, row: ParsedRow, default_owner_id: int | None) -> Customer:
        customer = Customer(
            name=row.name, phone=row.phone, company=row.company, remark=row.remark,
            description=compose_description({"description": row.description, "position": row.position}),
            source=row.source,
            owner_id=row.owner_id or default_owner_id, care_consent=bool(row.care_consent),
            contract_ends_on=row.contract_ends_on, wecom_tags=[], lifecycle=PROSPECT, lifecycle_changed_at=utcnow(),
        )
        customer.birthday = row.birthday
        self.session.add(customer)
        return customer

    def _merge(self, customer: Customer, row: ParsedRow, index: _BatchIndex, report: ImportReport,
               staff: StaffDirectory, default_owner_id: int | None) -> bool:
        """Fill what is empty; report (and with overwrite, apply) what differs. True if anything changed."""
        changed = False
        for slot in _SLOTS:
            incoming = getattr(row, "owner_id" if slot.field == "owner" else slot.field)
            if slot.field == "owner" and incoming is None and customer.owner_id is None:
                incoming = default_owner_id
            if incoming in (None, ""):
                continue
            current = slot.get(customer)
            if current in (None, ""):
                slot.set(customer, incoming)
                changed = True
            elif slot.same(current, incoming):
                if slot.field == "birthday" and current.year is None and incoming.year is not None:
                    slot.set(customer, incoming)
                    changed = True
            else:
                show = staff.label if slot.field == "owner" else slot.show
                self._conflict(report, row, customer, index, slot.field, show(current), show(incoming))
                if self.overwrite:
                    slot.set(customer, incoming)
                    changed = True
        if row.care_consent is not None and row.care_consent != customer.may_receive_care:
            if row.care_consent and customer.care_opted_out_at is None:
                customer.care_consent = True
                changed = True
            elif row.care_consent:
                opted_out = customer.care_opted_out_at.date().isoformat()
                self._conflict(report, row, customer, index, "care_consent",
                               render("import.opted_out", date=opted_out), "是", applied=False)
            else:
                self._conflict(report, row, customer, index, "care_consent", "是", "否")
                if self.overwrite:
                    customer.care_consent = False
                    changed = True
        return changed

    def _identities_to_add(self, customer: Customer, row: ParsedRow, index: _BatchIndex,
                           report: ImportReport) -> list[str]:
        """The row's WeCom ids this customer lacks; none when it already has other ones (a conflict)."""
        known = index.external_ids[customer]
        taken = [e for e in row.external_ids if index.by_external_id.get(e, customer) is not customer]
        for external_id in taken:
            other = index.by_external_id[external_id]
            self._conflict(report, row, customer, index, "external_userid", "、".join(sorted(known)),
                           render("import.belongs_to", external_id=external_id, other=self._describe(other, index)),
                           applied=False)
        wanted = [e for e in row.external_ids if e not in known and e not in taken]
        if wanted and known and not known & set(row.external_ids):
            self._conflict(report, row, customer, index, "external_userid", "、".join(sorted(known)),
                           "、".join(wanted), applied=False)
            return []
        return wanted

    def _conflict(self, report: ImportReport, row: ParsedRow, customer: Customer, index: _BatchIndex,
                  field_name: str, current: str, incoming: str, *, applied: bool | None = None) -> None:
        report.conflicts.append(Conflict(row.row, self._describe(customer, index), field_name, self._column(field_name),
                                         current, incoming, self.overwrite if applied is None else applied))

    def _column(self, field_name: str) -> str:
        return self.column_names.get(field_name, COLUMNS[field_name])

    @staticmethod
    def _describe(customer: Customer, index: _BatchIndex) -> str:
        name = customer.name or render("import.no_name")  # never the phone: reports end up in terminals and logs
        if customer.id is not None:
            return render("import.customer_saved", name=name, id=customer.id)
        return render("import.customer_new", name=name, row=index.created_by_row.get(customer, "?"))
