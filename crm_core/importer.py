"""Customer import and export: spreadsheet rows, as plain dicts, in and out of the CRM.

Reading and writing files is scrm.cli.import_export's job; here a row is `{header: cell value}`
(str, int, float, bool, date or datetime, as a spreadsheet gives them) and this module decides
what it means:

- Columns are recognised by their Chinese or English headers (HEADER_ALIASES); `mapping`
  (the CLI's `--map 列名=field`) overrides.
- A row matches an existing customer by WeCom external id, then phone (compared by digits, a
  +86 prefix ignored), then name + company (the name alone when the row has neither phone nor
  company). Rows earlier in the same file count as existing, so a file's own duplicates merge.
- Merging fills empty fields and unions tags. A non-empty field is never silently replaced: a
  different value is reported as a Conflict and applied only with `overwrite`. Two things are
  kept even then: a customer's WeCom identity (WeCom's fact, not the spreadsheet's) and a care
  opt-out (only the customer can opt in again).
- A row that cannot be imported (no name and no phone, a date that does not exist, an unknown
  owner, a phone that is not a number, ...) is reported with its reason; the other rows go in.
- 来源 goes to the customer's `source` (where a 渠道活码 also records its channel). There is no
  position column, so 职位 is kept as a labelled line ("职位：采购经理") at the end of the
  description, where reps already write 生日.
- Work goes in batches: one query per key kind per batch and one commit per batch, so a
  10,000-row file takes seconds and an interrupted import can simply be run again.

Export (`export_records`) writes the same columns back, so an exported file re-imports cleanly.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from crm_core.audit import AuditService
from crm_core.birthdays import LUNAR_MONTH_NAMES, Birthday, lunar_day_name, parse_birthday
from crm_core.db import UTCDateTime, utcnow
from crm_core.errors import InvalidDateError, StaffNotFoundError, ValidationError
from crm_core.lifecycle import IMPORT, PROSPECT, history_row
from crm_core.models import Customer, CustomerIdentity, CustomerTag, LifecycleChange, Staff
from crm_core.scope import Scope
from crm_core.search_keys import phone_digits, phone_tail
from crm_core.tags import MAX_TAG_LENGTH

# The identity channel of a WeCom external contact (connectors.wecom.inbound.EXTERNAL_CHANNEL;
# crm_core cannot import connectors, and a test keeps the two equal).
WECOM_CHANNEL = "wecom"

# Field → the header export writes (and import reads), in export column order.
COLUMNS: dict[str, str] = {
    "name": "姓名", "phone": "手机", "company": "公司", "position": "职位", "birthday": "生日",
    "owner": "负责人", "tags": "标签", "source": "来源", "remark": "备注", "description": "描述",
    "external_userid": "企业微信ID", "care_consent": "关怀同意", "contract_ends_on": "合同到期",
}
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "客户名称", "客户姓名", "客户名", "名称", "联系人", "name", "customer name", "full name"),
    "phone": ("手机", "电话", "手机号", "手机号码", "电话号码", "联系电话", "mobile", "phone", "tel", "telephone",
              "phone number"),
    "company": ("公司", "单位", "公司名称", "单位名称", "企业名称", "company", "organization", "organisation"),
    "position": ("职位", "职务", "岗位", "position", "title", "job title"),
    "birthday": ("生日", "出生日期", "birthday", "birth date", "date of birth"),
    "owner": ("负责人", "跟进人", "归属人", "所属员工", "客户经理", "owner", "sales rep", "account owner"),
    "tags": ("标签", "客户标签", "tags", "tag", "labels"),
    "source": ("来源", "客户来源", "source", "lead source"),
    "remark": ("备注", "备注名", "remark", "remarks", "note", "notes"),
    "description": ("描述", "客户描述", "description"),
    "external_userid": ("企业微信ID", "外部联系人ID", "external_userid", "wecom id", "wecom external id"),
    "care_consent": ("关怀同意", "同意关怀", "care consent", "consent"),
    "contract_ends_on": ("合同到期", "合同到期日", "合同到期时间", "合同截止日期", "contract end", "contract ends on"),
}
IGNORE = "ignore"  # `--map 列名=ignore` leaves a column out

MAX_LENGTHS = {"name": 128, "company": 128, "remark": 128, "source": 64, "external_userid": 128}
_TAG_SPLIT = re.compile(r"[,，、;；\s]+")
_ID_SPLIT = re.compile(r"[,，、;；\s]+")
_PHONE_TEXT = re.compile(r"\+?[\d\s\-()（）]+")
_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?[eE]\+?\d+")
_TIME_SUFFIX = re.compile(r"[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_DATE_TEXT = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?|(\d{4})(\d{2})(\d{2})")
_OWNER_WITH_ID = re.compile(r"(.*?)\s*[(（]\s*([^()（）]+?)\s*[)）]")
_LABELLED = {"position": "职位"}
_LABEL_LINE = re.compile(r"(职位)[:：]\s*(.*)")
_YES = {"是", "y", "yes", "true", "1", "同意", "已同意", "√", "✓"}
_NO = {"否", "n", "no", "false", "0", "不同意", "未同意", "拒绝", "×", "✗"}


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
    customer: str  # "张三 #12", or "张三 (row 7)" for a customer this file created in a dry run
    column: str
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


@dataclass(frozen=True)
class ColumnMap:
    """Which file headers feed which field (several may: the first non-empty cell wins)."""

    fields: dict[str, list[str]]
    ignored: list[str]


# -- columns and cells ------------------------------------------------------------------------------

def _header_key(header: str) -> str:
    key = str(header).strip().lower().replace("（必填）", "").replace("(必填)", "")
    return re.sub(r"[\s_\-*:：]", "", key)


_ALIAS_FIELD = {_header_key(alias): name for name, aliases in HEADER_ALIASES.items() for alias in aliases}


def known_header(header: str) -> bool:
    return _header_key(header) in _ALIAS_FIELD


def map_columns(headers: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnMap:
    """Recognise the file's headers; `mapping` ({header: field or known header}) wins over guessing."""
    mapping = dict(mapping or {})
    missing = [h for h in mapping if h not in headers]
    if missing:
        raise ValidationError(f"--map names column(s) {', '.join(missing)} that the file does not have; "
                              f"its columns are: {', '.join(headers)}")
    fields: dict[str, list[str]] = {}
    ignored: list[str] = []
    for header in headers:
        if header in mapping:
            target = mapping[header]
            name = target if target in COLUMNS or target == IGNORE else _ALIAS_FIELD.get(_header_key(target))
            if name is None:
                raise ValidationError(f"--map {header}={target}: unknown field; use one of "
                                      f"{', '.join(COLUMNS)} or {IGNORE}")
        else:
            name = _ALIAS_FIELD.get(_header_key(header))
        if name is None or name == IGNORE:
            ignored.append(header)
        else:
            fields.setdefault(name, []).append(header)
    if "name" not in fields and "phone" not in fields:
        raise ValidationError(f"no 姓名 (name) or 手机 (phone) column among: {', '.join(headers)}; "
                              "name yours with --map, e.g. --map 联系人姓名=name,移动电话=phone")
    return ColumnMap(fields, ignored)


def cell_text(value: Any) -> str:
    """A cell as a person would read it: 13800138000 not 13800138000.0, dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


class _Rejected(Exception):
    """A row that cannot be imported; the message is the reason written to the error file."""


@dataclass(frozen=True)
class ParsedRow:
    row: int
    name: str = ""
    phone: str = ""
    company: str = ""
    position: str = ""
    source: str = ""
    remark: str = ""
    description: str = ""
    birthday: Birthday | None = None
    owner_id: int | None = None
    tags: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    care_consent: bool | None = None
    contract_ends_on: date | None = None


def phone_key(phone: str) -> str:
    """The digits two spellings of one number share: +86 138-0013-8000 and 13800138000 agree."""
    digits = phone_digits(phone)
    for prefix in ("0086", "86"):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and len(rest) == 11 and rest.startswith("1"):
            return rest
    return digits


def _phone(value: Any) -> str:
    raw = cell_text(value)
    if not raw:
        return ""
    if _SCIENTIFIC.fullmatch(raw):
        raise _Rejected(f"手机 {raw!r} was turned into scientific notation by Excel and lost its digits; "
                        "format the column as text and save again")
    digits = phone_digits(raw)
    if not _PHONE_TEXT.fullmatch(raw) or not 5 <= len(digits) <= 20:
        raise _Rejected("手机 is not a phone number (digits, spaces, - + and brackets only)")
    return re.sub(r"\s+", " ", raw)[:32]  # as written: matching compares phone_key, so formats never matter


def _date_from_text(raw: str) -> date | None:
    match = _DATE_TEXT.fullmatch(_TIME_SUFFIX.sub("", raw))
    if not match:
        return None
    year, month, day = (int(g) for g in (match.groups()[:3] if match.group(1) else match.groups()[3:]))
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDateError(f"no date {year}-{month}-{day}") from None


def _birthday(value: Any) -> Birthday | None:
    raw = cell_text(value)
    if not raw:
        return None
    hint = "write it like 1990-03-02, 3月2日 or 农历三月初二"
    try:
        if isinstance(value, (date, datetime)):
            day = value.date() if isinstance(value, datetime) else value
            return Birthday(day.month, day.day, year=day.year)
        solar = _date_from_text(raw)
        if solar is not None:
            return Birthday(solar.month, solar.day, year=solar.year)
        return parse_birthday(raw)
    except InvalidDateError as exc:
        raise _Rejected(f"生日 {raw!r} is not a date ({exc}); {hint}") from None


def _contract_end(value: Any) -> date | None:
    raw = cell_text(value)
    if not raw:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        parsed = _date_from_text(raw)
    except InvalidDateError:
        parsed = None
    if parsed is None:
        raise _Rejected(f"合同到期 {raw!r} is not a date; write it like 2027-06-30")
    return parsed


def _consent(value: Any) -> bool | None:
    raw = cell_text(value).lower()
    if not raw:
        return None
    if raw in _YES:
        return True
    if raw in _NO:
        return False
    raise _Rejected(f"关怀同意 {cell_text(value)!r} must be 是 or 否")


def _tags(value: Any) -> tuple[str, ...]:
    names = [t for t in _TAG_SPLIT.split(cell_text(value)) if t]
    too_long = [t for t in names if len(t) > MAX_TAG_LENGTH]
    if too_long:
        raise _Rejected(f"标签 {too_long[0][:20]!r}… is longer than {MAX_TAG_LENGTH} characters")
    return tuple(dict.fromkeys(names))


class StaffDirectory:
    """Every staff member by userid and by name, read once: 负责人 is resolved for every row."""

    def __init__(self, rows: Iterable[tuple[int, str, str]]):
        self.by_userid: dict[str, int] = {}
        self.by_name: dict[str, list[int]] = {}
        self.labels: dict[int, str] = {}
        for staff_id, userid, name in rows:
            self.by_userid[userid] = staff_id
            if name:
                self.by_name.setdefault(name, []).append(staff_id)
            self.labels[staff_id] = staff_label(userid, name)

    @classmethod
    async def load(cls, session: AsyncSession) -> StaffDirectory:
        return cls((await session.execute(select(Staff.id, Staff.userid, Staff.name))).all())

    def resolve(self, who: str) -> int:
        """`zhangwei`, `张伟` or `张伟(zhangwei)` (how export writes it) → the staff id."""
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
            raise _Rejected(f"负责人 {who!r} matches {len(matches)} staff members; write the WeCom userid instead")
        raise _Rejected(f"负责人 {who!r} is no staff member (by WeCom userid or name); check the spelling "
                        "or sync the staff first")

    def label(self, staff_id: int | None) -> str:
        return self.labels.get(staff_id, f"#{staff_id}") if staff_id is not None else ""


def staff_label(userid: str, name: str) -> str:
    return f"{name}({userid})" if name else userid


def parse_row(number: int, cells: Mapping[str, Any], columns: ColumnMap, staff: StaffDirectory) -> ParsedRow:
    """One row → a ParsedRow, or _Rejected with the first reason it cannot be imported."""

    def cell(name: str) -> Any:
        for header in columns.fields.get(name, ()):
            value = cells.get(header)
            if cell_text(value):
                return value
        return None

    values = {name: cell_text(cell(name)) for name in ("name", "company", "position", "source", "remark", "description")}
    for name, limit in MAX_LENGTHS.items():
        if len(values.get(name, "")) > limit:
            raise _Rejected(f"{COLUMNS[name]} is longer than {limit} characters")
    phone = _phone(cell("phone"))
    if not values["name"] and not phone:
        raise _Rejected("no 姓名 and no 手机: a customer needs at least one of them")
    owner = cell_text(cell("owner"))
    external_ids = tuple(dict.fromkeys(i for i in _ID_SPLIT.split(cell_text(cell("external_userid"))) if i))
    if any(len(i) > MAX_LENGTHS["external_userid"] for i in external_ids):
        raise _Rejected(f"企业微信ID is longer than {MAX_LENGTHS['external_userid']} characters")
    return ParsedRow(
        row=number, phone=phone, birthday=_birthday(cell("birthday")),
        owner_id=staff.resolve(owner) if owner else None, tags=_tags(cell("tags")), external_ids=external_ids,
        care_consent=_consent(cell("care_consent")), contract_ends_on=_contract_end(cell("contract_ends_on")),
        **values,
    )


# -- the description's labelled lines and birthday text, shared by import and export --------------

def description_parts(description: str) -> dict[str, str]:
    """{"description": free text, "position": …} from a stored description."""
    parts = {"description": "", "position": ""}
    free: list[str] = []
    for line in (description or "").splitlines():
        labelled = _LABEL_LINE.fullmatch(line.strip())
        if labelled:
            parts["position"] = labelled.group(2).strip()
        else:
            free.append(line)
    parts["description"] = "\n".join(free).strip()
    return parts


def compose_description(parts: Mapping[str, str]) -> str:
    lines = [parts.get("description", "")] + [f"{label}：{parts[name]}" for name, label in _LABELLED.items()
                                              if parts.get(name)]
    return "\n".join(line for line in lines if line)


def birthday_text(birthday: Birthday | None) -> str:
    """Text that parse_birthday reads back to the same Birthday: 1990-03-02, 3月2日, 农历1990年闰四月十五."""
    if birthday is None:
        return ""
    if birthday.lunar:
        year = f"{birthday.year}年" if birthday.year else ""
        leap = "闰" if birthday.leap else ""
        return f"农历{year}{leap}{LUNAR_MONTH_NAMES[birthday.month - 1]}月{lunar_day_name(birthday.day)}"
    if birthday.year:
        return f"{birthday.year:04d}-{birthday.month:02d}-{birthday.day:02d}"
    return f"{birthday.month}月{birthday.day}日"


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

    async def run(
        self, headers: Sequence[str], rows: Iterable[tuple[int, dict[str, Any]]], *,
        mapping: Mapping[str, str] | None = None, dry_run: bool = False, source: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import `rows` ((row number, {header: value})); raises ValidationError before any
        row is read when the columns or the default owner are unusable."""
        columns = map_columns(headers, mapping)
        staff = await StaffDirectory.load(self.session)
        default_owner_id = None
        if self.default_owner:
            if self.default_owner not in staff.by_userid:
                raise StaffNotFoundError(f"--owner {self.default_owner}: no staff member has this WeCom userid")
            default_owner_id = staff.by_userid[self.default_owner]
        report = ImportReport(ignored_columns=columns.ignored, dry_run=dry_run)
        iterator = iter(rows)
        try:
            while batch := list(islice(iterator, self.batch_size)):
                parsed: list[ParsedRow] = []
                for number, cells in batch:
                    try:
                        parsed.append(parse_row(number, cells, columns, staff))
                    except _Rejected as exc:
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
                self._conflict(report, row, customer, index, COLUMNS[slot.field], show(current), show(incoming))
                if self.overwrite:
                    slot.set(customer, incoming)
                    changed = True
        if row.care_consent is not None and row.care_consent != customer.may_receive_care:
            if row.care_consent and customer.care_opted_out_at is None:
                customer.care_consent = True
                changed = True
            elif row.care_consent:
                opted_out = customer.care_opted_out_at.date().isoformat()
                self._conflict(report, row, customer, index, COLUMNS["care_consent"], f"否 (opted out {opted_out})",
                               "是", applied=False)
            else:
                self._conflict(report, row, customer, index, COLUMNS["care_consent"], "是", "否")
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
            self._conflict(report, row, customer, index, COLUMNS["external_userid"], "、".join(sorted(known)),
                           f"{external_id} (belongs to {self._describe(other, index)})", applied=False)
        wanted = [e for e in row.external_ids if e not in known and e not in taken]
        if wanted and known and not known & set(row.external_ids):
            self._conflict(report, row, customer, index, COLUMNS["external_userid"], "、".join(sorted(known)),
                           "、".join(wanted), applied=False)
            return []
        return wanted

    def _conflict(self, report: ImportReport, row: ParsedRow, customer: Customer, index: _BatchIndex,
                  column: str, current: str, incoming: str, *, applied: bool | None = None) -> None:
        report.conflicts.append(Conflict(row.row, self._describe(customer, index), column, current, incoming,
                                         self.overwrite if applied is None else applied))

    @staticmethod
    def _describe(customer: Customer, index: _BatchIndex) -> str:
        name = customer.name or "(no name)"  # never the phone: reports end up in terminals and logs
        if customer.id is not None:
            return f"{name} #{customer.id}"
        return f"{name} (row {index.created_by_row.get(customer, '?')})"


# -- export ----------------------------------------------------------------------------------------

async def export_records(session: AsyncSession, scope: Scope, *, page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
    """Customers within `scope` as {field: value} in COLUMNS' terms, read a page at a time by id."""
    after_id = 0
    while True:
        stmt = (select(Customer).where(Customer.id > after_id, *scope.where()).order_by(Customer.id)
                .limit(page_size).options(noload(Customer.identities)))
        page = list((await session.scalars(stmt)).all())
        if not page:
            return
        ids = [c.id for c in page]
        tags: dict[int, list[str]] = {}
        stmt = (select(CustomerTag.customer_id, CustomerTag.name)
                .where(CustomerTag.customer_id.in_(ids)).order_by(CustomerTag.id))
        for customer_id, name in (await session.execute(stmt)).all():
            tags.setdefault(customer_id, []).append(name)
        external: dict[int, list[str]] = {}
        stmt = (select(CustomerIdentity.customer_id, CustomerIdentity.external_id)
                .where(CustomerIdentity.channel == WECOM_CHANNEL, CustomerIdentity.customer_id.in_(ids))
                .order_by(CustomerIdentity.id))
        for customer_id, external_id in (await session.execute(stmt)).all():
            external.setdefault(customer_id, []).append(external_id)
        for customer in page:
            parts = description_parts(customer.description)
            yield {
                "name": customer.name, "phone": customer.phone, "company": customer.company,
                "position": parts["position"], "birthday": birthday_text(customer.birthday),
                "owner": staff_label(customer.owner.userid, customer.owner.name) if customer.owner else "",
                "tags": "、".join(tags.get(customer.id, [])), "source": customer.source, "remark": customer.remark,
                "description": parts["description"], "external_userid": "、".join(external.get(customer.id, [])),
                "care_consent": "是" if customer.may_receive_care else "否",
                "contract_ends_on": customer.contract_ends_on,
            }
        after_id = page[-1].id
        for customer in page:
            session.expunge(customer)


async def count_in_scope(session: AsyncSession, scope: Scope) -> int:
    return await session.scalar(select(func.count()).select_from(Customer).where(*scope.where())) or 0
