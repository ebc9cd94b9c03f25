"""Monthly sales targets (业绩目标) per rep and per department, and how far each got (达成).

- A target is an amount in yuan for one business-time calendar month (crm_core.forecast.Month),
  for one staff member or one WeCom department; setting it again replaces it (one row per month
  and subject, the unique key decides, so two managers typing at once leave one row).
- Who may set one: admins (and the CLI and the service token) any; a manager their departments and
  the colleagues who share one of them (the relation crm_core.scope gives managers their view by);
  nobody else.
- Attainment counts the won deals whose won date (closed_at) falls in the month, by their `budget`
  field as the funnel and the forecast count it, for the rep who owns the deal (Deal.owner_id, not
  the customer's current owner: a deal won before a handover stays the winner's). A department's is
  the sum over its members, everyone whose department_ids list it, people who left included (what
  they won in the month still counts for the team).
- What a viewer sees: admins (and the company view) every rep and department; a manager their team
  and their departments; anyone else only themselves.

Month phrases (12月, 下个月, 2027年1月) and amounts (50万, as deals' budgets are typed: deals.parse_money)
are read here, so chat, the import and the API refuse the same things the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, CheckConstraint, String, UniqueConstraint, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from config.templates import render
from crm_core.audit import AuditService
from crm_core.customer_sheet import cell_text, header_key
from crm_core.db import Base, UTCDateTime, utcnow
from crm_core.deals import parse_money
from crm_core.errors import DomainError, NotFoundError, ValidationError
from crm_core.forecast import Month
from crm_core.funnel import budget
from crm_core.importer import RowError
from crm_core.models import BigId, Deal, Department, Staff

STAFF, DEPARTMENT = "staff", "department"
MAX_AMOUNT = 10**12  # 1万亿 yuan: anything above is a typo
# Roles whose members are listed even before they have a target or a win: the people who sell.
SELLING_ROLES = frozenset({"sales", "manager"})
# A bare month (12月) means the one within this window around the current month: in November 10月
# is the October just gone (to check it), 1月 the coming January (to plan it).
BARE_MONTH_BACK, BARE_MONTH_AHEAD = 5, 6
FIRST_YEAR, LAST_YEAR = 2000, 2099


class SalesTarget(Base):
    __tablename__ = "sales_targets"
    __table_args__ = (
        UniqueConstraint("month", "kind", "subject_id", name="uq_sales_target"),
        CheckConstraint("kind IN ('staff', 'department')", name="ck_sales_target_kind"),
        CheckConstraint("amount > 0", name="ck_sales_target_amount"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # 2026-12, business time
    kind: Mapped[str] = mapped_column(String(12))  # staff | department
    subject_id: Mapped[int] = mapped_column(BigInteger)  # staff.id, or the WeCom department id
    amount: Mapped[int] = mapped_column(BigInteger)  # yuan
    set_by: Mapped[str] = mapped_column(String(64), default="")  # userid, "cli" or "api"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- errors ------------------------------------------------------------------------------------------

class InvalidMonthError(ValidationError):
    """A month phrase that names no month (13月, 本月底)."""


class InvalidAmountError(ValidationError):
    """An amount that is no positive sum of money (五十万, 0, -5万)."""


class SubjectNotFoundError(NotFoundError):
    """No active colleague or department by that name; `departed` when the colleague left."""

    def __init__(self, who: str, *, departed: bool = False):
        super().__init__(f"no colleague or department {who!r}")
        self.who, self.departed = who, departed


class AmbiguousSubjectError(ValidationError):
    """Several colleagues share the name, or a colleague and a department do."""

    def __init__(self, who: str, count: int):
        super().__init__(f"{count} colleagues or departments are called {who!r}")
        self.who, self.count = who, count


class TargetNotAllowedError(DomainError):
    """The actor may not set this subject's target (a rep, or a manager outside their departments)."""


# -- months and amounts --------------------------------------------------------------------------------

_CN_MONTHS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10,
              "十一": 11, "十二": 12}
_RELATIVE = {"本月": 0, "这个月": 0, "这月": 0, "当月": 0, "下个月": 1, "下月": 1, "上个月": -1, "上月": -1}
# Where a month phrase stands in a line: the chat command finds it with this, then reads it.
MONTH_PATTERN = re.compile(
    r"(?P<relative>" + "|".join(sorted(_RELATIVE, key=len, reverse=True)) + r")"
    r"|(?<!\d)(?P<year>\d{4})\s*(?:年|-|/)\s*(?P<year_month>\d{1,2})(?!\d)\s*(?:月份|月)?"
    r"|(?<![\d年])(?P<month>\d{1,2}|十[一二]|[一二三四五六七八九十])\s*(?:月份|月)")


@dataclass(frozen=True)
class MonthPhrase:
    """A month as typed, before it meets a date: 2027年1月 (year and month), 12月 (month), 下个月 (shift)."""

    year: int | None = None
    month: int | None = None
    shift: int | None = None

    def label(self, today: date) -> str:
        """The month it names, as of `today` (business time): '2026-12'."""
        if self.shift is not None:
            return _label(*_add(today.year, today.month, self.shift))
        if self.year is not None:
            return _label(self.year, self.month)
        back = _add(today.year, today.month, -BARE_MONTH_BACK)
        year = today.year
        if (year, self.month) < back:
            year += 1
        elif (year, self.month) > _add(today.year, today.month, BARE_MONTH_AHEAD):
            year -= 1
        return _label(year, self.month)


def read_month(phrase: str) -> MonthPhrase:
    """12月, 十二月, 12月份, 下个月, 本月, 2027年1月, 2027-01, 2027/1; InvalidMonthError for anything else."""
    match = MONTH_PATTERN.fullmatch(phrase.strip())
    if match is None:
        raise InvalidMonthError(f"not a month: {phrase!r}")
    if match.group("relative"):
        return MonthPhrase(shift=_RELATIVE[match.group("relative")])
    if match.group("year"):
        year, month = int(match.group("year")), int(match.group("year_month"))
        if not (FIRST_YEAR <= year <= LAST_YEAR and 1 <= month <= 12):
            raise InvalidMonthError(f"no such month: {phrase!r}")
        return MonthPhrase(year=year, month=month)
    raw = match.group("month")
    month = int(raw) if raw.isdigit() else _CN_MONTHS[raw]
    if not 1 <= month <= 12:
        raise InvalidMonthError(f"no such month: {phrase!r}")
    return MonthPhrase(month=month)


def month_of(label: str, tz: ZoneInfo) -> Month:
    """The business-time month of a label ('2026-12')."""
    year, month = (int(part) for part in label.split("-"))
    return Month.of(datetime(year, month, 15, 12, tzinfo=tz), tz)


def read_amount(raw: str) -> int:
    """50万, 200万元, 12.5万, 500000, 30w as whole yuan; InvalidAmountError for no positive sum."""
    amount = parse_money(raw.strip())
    if amount is None or not 0 < amount <= MAX_AMOUNT:
        raise InvalidAmountError(f"not an amount: {raw!r}")
    return amount


def _add(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def _label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


# -- who a target is for -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Subject:
    kind: str  # STAFF | DEPARTMENT
    id: int  # staff.id or the department id
    name: str
    userid: str = ""  # staff only


async def find_subject(session: AsyncSession, who: str) -> Subject:
    """The active colleague (by WeCom userid or name) or the department (by name) `who` names."""
    who = who.strip()
    staff = (await session.scalars(select(Staff).where((Staff.userid == who) | (Staff.name == who))
                                   .order_by(Staff.id))).all()
    by_userid = [s for s in staff if s.userid == who and s.active]
    if by_userid:
        return _staff_subject(by_userid[0])
    active = [s for s in staff if s.active]
    departments = (await session.scalars(select(Department).where(Department.name == who)
                                         .order_by(Department.id))).all()
    if len(active) + len(departments) > 1:
        raise AmbiguousSubjectError(who, len(active) + len(departments))
    if active:
        return _staff_subject(active[0])
    if departments:
        return Subject(DEPARTMENT, departments[0].id, departments[0].name)
    raise SubjectNotFoundError(who, departed=bool(staff))


async def staff_subject(session: AsyncSession, userid: str) -> Subject:
    """An active colleague by WeCom userid (the API names people so)."""
    staff = await session.scalar(select(Staff).where(Staff.userid == userid, Staff.active.is_(True)))
    if staff is None:
        raise SubjectNotFoundError(userid)
    return _staff_subject(staff)


async def department_subject(session: AsyncSession, department_id: int) -> Subject:
    """A department by its WeCom id, known from the directory or from its members."""
    names = await department_names(session)
    if department_id not in names:
        raise SubjectNotFoundError(str(department_id))
    return Subject(DEPARTMENT, department_id, names[department_id])


def _staff_subject(staff: Staff) -> Subject:
    return Subject(STAFF, staff.id, staff.name or staff.userid, staff.userid)


async def department_names(session: AsyncSession) -> dict[int, str]:
    """Every department the directory or a member's department_ids knows, by id; a department the
    directory never named is called by its id."""
    names = {d.id: d.name for d in (await session.scalars(select(Department))).all()}
    for ids in (await session.scalars(select(Staff.department_ids))).all():
        for department_id in ids or ():
            names.setdefault(department_id, f"#{department_id}")
    return names


def may_set(actor: Staff | None, subject: Subject, subject_staff: Staff | None) -> bool:
    """Admins (and None: the CLI or the service token) any; managers within their departments."""
    if actor is None or actor.role == "admin":
        return True
    if actor.role != "manager":
        return False
    departments = set(actor.department_ids or [])
    if subject.kind == DEPARTMENT:
        return subject.id in departments
    return subject_staff is not None and (subject_staff.id == actor.id
                                          or bool(departments & set(subject_staff.department_ids or [])))


# -- setting -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetChange:
    subject: Subject
    month: str
    amount: int
    previous: int | None  # the amount it replaced


# One statement both dialects take: the unique key, not a read before the write, decides.
_UPSERT = text(
    "INSERT INTO sales_targets (month, kind, subject_id, amount, set_by, created_at, updated_at) "
    "VALUES (:month, :kind, :subject_id, :amount, :set_by, :at, :at) "
    "ON CONFLICT (month, kind, subject_id) DO UPDATE SET amount = excluded.amount, set_by = excluded.set_by, "
    "updated_at = excluded.updated_at"
).bindparams(bindparam("at", type_=UTCDateTime()))


class TargetService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def set(self, subject: Subject, month: str, amount: int, *, actor: Staff | None, actor_label: str,
                  at: datetime) -> TargetChange:
        """Set (or replace) `subject`'s target for `month`; TargetNotAllowedError outside the actor's reach."""
        subject_staff = await self.session.get(Staff, subject.id) if subject.kind == STAFF else None
        if not may_set(actor, subject, subject_staff):
            raise TargetNotAllowedError(f"{actor_label} may not set {subject.kind} {subject.id}'s target")
        if not 0 < amount <= MAX_AMOUNT:
            raise InvalidAmountError(f"not an amount: {amount!r}")
        previous = await self.session.scalar(select(SalesTarget.amount).where(
            SalesTarget.month == month, SalesTarget.kind == subject.kind, SalesTarget.subject_id == subject.id))
        await self.session.execute(_UPSERT, {"month": month, "kind": subject.kind, "subject_id": subject.id,
                                             "amount": amount, "set_by": actor_label[:64], "at": at})
        AuditService(self.session).record(
            actor=actor_label, action="target.set",
            detail=f"{subject.kind}={subject.id} month={month} amount={amount} previous={previous}")
        return TargetChange(subject, month, amount, previous)

    async def attainment(self, viewer: Staff | None, month: Month, *, department_id: int | None = None) -> Attainment:
        """Targets and what was won in `month`, for the reps and departments `viewer` sees (None: all),
        optionally only one department and its members."""
        everyone = (await self.session.scalars(select(Staff).order_by(Staff.id))).all()
        names = await department_names(self.session)
        reps, departments = _visible(viewer, everyone, names)
        if department_id is not None:
            reps = [s for s in reps if department_id in (s.department_ids or [])]
            departments = [d for d in departments if d == department_id]
        won = await won_by_owner(self.session, month.start, month.end)
        targets = {(t.kind, t.subject_id): t.amount for t in (await self.session.scalars(
            select(SalesTarget).where(SalesTarget.month == month.label))).all()}
        rep_rows = []
        for s in reps:
            deals, amount = won.get(s.id, (0, 0))
            target = targets.get((STAFF, s.id))
            if (s.active and s.role in SELLING_ROLES) or target is not None or deals:
                rep_rows.append(AttainmentRow(STAFF, s.id, s.name or s.userid, target, amount, deals, s.userid))
        department_rows = []
        for department in departments:
            members = [s for s in everyone if department in (s.department_ids or [])]
            deals = sum(won.get(s.id, (0, 0))[0] for s in members)
            amount = sum(won.get(s.id, (0, 0))[1] for s in members)
            target = targets.get((DEPARTMENT, department))
            sells = any(s.active and s.role in SELLING_ROLES for s in members)
            if sells or target is not None or deals:
                department_rows.append(AttainmentRow(DEPARTMENT, department, names.get(department, f"#{department}"),
                                                     target, amount, deals))
        rep_rows.sort(key=lambda r: (-r.won_amount, r.id))
        department_rows.sort(key=lambda r: r.id)
        return Attainment(month, department_rows, rep_rows)


def _visible(viewer: Staff | None, everyone: list[Staff], names: dict[int, str]) -> tuple[list[Staff], list[int]]:
    """(the staff, the department ids) whose targets `viewer` sees."""
    if viewer is None or viewer.role == "admin":
        return list(everyone), sorted(names)
    if viewer.role != "manager":
        return [viewer], []
    departments = set(viewer.department_ids or [])
    team = [s for s in everyone if s.id == viewer.id or departments & set(s.department_ids or [])]
    return team, sorted(departments)


async def won_by_owner(session: AsyncSession, start: datetime, end: datetime) -> dict[int, tuple[int, int]]:
    """{deal owner's staff id: (deals won in [start, end), their budget sum in yuan)}."""
    stmt = (select(Deal.owner_id, func.count(), func.coalesce(func.sum(budget()), 0)).select_from(Deal)
            .where(Deal.status == "won", Deal.closed_at >= start, Deal.closed_at < end, Deal.owner_id.is_not(None))
            .group_by(Deal.owner_id))
    return {owner: (int(count), round(float(amount))) for owner, count, amount in await session.execute(stmt)}


# -- attainment ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttainmentRow:
    kind: str
    id: int
    name: str
    target: int | None  # None: no target set for the month
    won_amount: int
    won_deals: int
    userid: str = ""

    @property
    def ratio(self) -> float | None:
        """Won as a share of the target (1.0 = reached)."""
        return self.won_amount / self.target if self.target else None


@dataclass(frozen=True)
class Attainment:
    month: Month
    departments: list[AttainmentRow]
    reps: list[AttainmentRow]

    @property
    def rows(self) -> list[AttainmentRow]:
        return [*self.departments, *self.reps]


# -- importing a sheet ------------------------------------------------------------------------------------

# Field → the header the sheet is expected to carry (config/templates_targets.toml names them in errors).
SHEET_FIELDS = ("month", "staff", "department", "amount")
SHEET_ALIASES: dict[str, tuple[str, ...]] = {
    "month": ("月份", "月", "目标月份", "month"),
    "staff": ("销售", "销售代表", "员工", "同事", "姓名", "负责人", "账号", "企业微信账号", "userid", "staff", "rep"),
    "department": ("部门", "团队", "部门名称", "department", "team"),
    "amount": ("目标金额", "目标", "金额", "业绩目标", "销售目标", "target", "amount"),
}
_FULL_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.]\d{1,2}")


_SHEET_ALIAS = {header_key(alias): name for name, aliases in SHEET_ALIASES.items() for alias in aliases}


@dataclass
class TargetImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    @property
    def set(self) -> int:
        return self.created + self.updated + self.unchanged


class RowProblem(Exception):
    """Why a row cannot be imported, in the sheet's words."""


class _Directory:
    """Staff and departments read once for the whole file."""

    def __init__(self, staff: list[Staff], departments: dict[int, str]):
        self.by_userid = {s.userid: s for s in staff if s.active}
        self.by_name: dict[str, list[Staff]] = {}
        self.departed = {key for s in staff if not s.active for key in (s.userid, s.name) if key}
        for s in staff:
            if s.active and s.name:
                self.by_name.setdefault(s.name, []).append(s)
        self.departments = departments
        self.department_by_name: dict[str, list[int]] = {}
        for department_id, name in departments.items():
            self.department_by_name.setdefault(name, []).append(department_id)


class TargetImporter:
    """Rows of (月份, 销售 or 部门, 目标金额) set as targets, a batch per commit; a dry run reads and
    checks everything and writes nothing."""

    def __init__(self, session: AsyncSession, *, today: date, actor: str = "cli", batch_size: int = 500):
        self.session, self.today, self.actor, self.batch_size = session, today, actor, batch_size

    @staticmethod
    def columns(headers: list[str]) -> dict[str, str]:
        """{field: the sheet's header}; ValidationError naming what is missing."""
        found: dict[str, str] = {}
        for header in headers:
            name = _SHEET_ALIAS.get(header_key(header))
            if name is not None:
                found.setdefault(name, header)
        missing = [f for f in ("month", "amount") if f not in found]
        if "staff" not in found and "department" not in found:
            missing.append("staff")
        if missing:
            names = "、".join(render(f"targets.sheet.{f}") for f in missing)
            aliases = "；".join(f"{render(f'targets.sheet.{f}')}：{'、'.join(SHEET_ALIASES[f][1:])}" for f in missing)
            raise ValidationError(render("targets.sheet.missing_columns", columns=names, aliases=aliases))
        return found

    async def run(self, headers: list[str], rows: Iterable[tuple[int, dict[str, Any]]], *, dry_run: bool = False,
                  source: str = "", progress: Callable[[int], None] | None = None) -> TargetImportReport:
        """Set the targets the rows name; ValidationError before any row is read when a column is missing."""
        columns = self.columns(headers)
        directory = _Directory(list((await self.session.scalars(select(Staff).order_by(Staff.id))).all()),
                               await department_names(self.session))
        report = TargetImportReport(dry_run=dry_run)
        seen: dict[tuple[str, str, int], int] = {}
        batch: list[tuple[str, str, int, int]] = []

        async def flush() -> None:
            await self._apply(batch, report, dry_run)
            report.rows += len(batch)
            if not dry_run:
                await self.session.commit()
            batch.clear()
            if progress:
                progress(report.rows)

        try:
            for number, cells in rows:
                try:
                    target = self._parse(cells, columns, directory)
                    key = target[:3]
                    if key in seen:
                        raise RowProblem(_t("duplicate", row=seen[key]))
                    seen[key] = number
                    batch.append(target)
                except RowProblem as exc:
                    report.errors.append(RowError(number, dict(cells), str(exc)))
                    report.rows += 1
                if len(batch) >= self.batch_size:
                    await flush()
            await flush()
            if dry_run:
                await self.session.rollback()
            else:
                AuditService(self.session).record(
                    actor=self.actor, action="targets.import",
                    detail=f"file={source} rows={report.rows} created={report.created} updated={report.updated} "
                           f"unchanged={report.unchanged} errors={len(report.errors)}")
                await self.session.commit()
        except BaseException:
            await self.session.rollback()
            raise
        report.errors.sort(key=lambda e: e.row)
        return report

    def _parse(self, cells: dict[str, Any], columns: dict[str, str], directory: _Directory) -> tuple[str, str, int, int]:
        month_column, amount_column = columns["month"], columns["amount"]
        staff_column, department_column = columns.get("staff"), columns.get("department")
        staff_label = staff_column or _t("staff")
        department_label = department_column or _t("department")
        month = self._month(cells.get(month_column), month_column)
        amount = _amount_cell(cells.get(amount_column), amount_column)
        who = cell_text(cells.get(staff_column)) if staff_column else ""
        department = cell_text(cells.get(department_column)) if department_column else ""
        if who and department:
            raise RowProblem(_t("who_both", staff=staff_label, department=department_label))
        if not who and not department:
            raise RowProblem(_t("who_empty", staff=staff_label, department=department_label))
        if who:
            return month, STAFF, self._staff(who, staff_column, directory, department_label), amount
        return month, DEPARTMENT, self._department(department, department_column, directory, staff_label), amount

    def _month(self, value: Any, column: str) -> str:
        if isinstance(value, (datetime, date)):
            return _label(value.year, value.month)
        text_value = cell_text(value)
        if not text_value:
            raise RowProblem(_t("month_empty", column=column))
        if (full := _FULL_DATE.fullmatch(text_value)) is not None and 1 <= int(full.group(2)) <= 12:
            return _label(int(full.group(1)), int(full.group(2)))
        try:
            return read_month(text_value).label(self.today)
        except InvalidMonthError as exc:
            raise RowProblem(_t("month_bad", column=column, value=text_value[:30])) from exc

    @staticmethod
    def _staff(who: str, column: str, directory: _Directory, department_label: str) -> int:
        if who in directory.by_userid:
            return directory.by_userid[who].id
        named = directory.by_name.get(who, [])
        if len(named) == 1:
            return named[0].id
        if named:
            raise RowProblem(_t("who_ambiguous", column=column, value=who, count=len(named)))
        if who in directory.departed:
            raise RowProblem(_t("who_departed", column=column, value=who))
        if who in directory.department_by_name:
            raise RowProblem(_t("who_not_staff", column=column, value=who, department=department_label))
        raise RowProblem(_t("who_unknown", column=column, value=who[:30]))

    @staticmethod
    def _department(name: str, column: str, directory: _Directory, staff_label: str) -> int:
        ids = directory.department_by_name.get(name, [])
        if not ids and name.isdigit() and int(name) in directory.departments:
            ids = [int(name)]
        if len(ids) == 1:
            return ids[0]
        if ids:
            raise RowProblem(_t("who_ambiguous", column=column, value=name, count=len(ids)))
        if name in directory.by_userid or name in directory.by_name:
            raise RowProblem(_t("who_not_department", column=column, value=name, staff=staff_label))
        raise RowProblem(_t("who_unknown", column=column, value=name[:30]))

    async def _apply(self, targets: list[tuple[str, str, int, int]], report: TargetImportReport, dry_run: bool) -> None:
        if not targets:
            return
        months = {t[0] for t in targets}
        existing = {(t.month, t.kind, t.subject_id): t.amount for t in (await self.session.scalars(
            select(SalesTarget).where(SalesTarget.month.in_(months)))).all()}
        now = utcnow()
        for month, kind, subject_id, amount in targets:
            previous = existing.get((month, kind, subject_id))
            if previous == amount:
                report.unchanged += 1
                continue
            if previous is None:
                report.created += 1
            else:
                report.updated += 1
            if not dry_run:
                await self.session.execute(_UPSERT, {"month": month, "kind": kind, "subject_id": subject_id,
                                                     "amount": amount, "set_by": self.actor[:64], "at": now})


def _amount_cell(value: Any, column: str) -> int:
    if isinstance(value, bool):
        raise RowProblem(_t("amount_bad", column=column, value=cell_text(value)))
    if isinstance(value, (int, float)):
        if value != value or not 0 < value <= MAX_AMOUNT:  # NaN, zero, negative, absurd
            raise RowProblem(_t("amount_bad", column=column, value=cell_text(value)))
        return round(value)
    text_value = cell_text(value)
    if not text_value:
        raise RowProblem(_t("amount_empty", column=column))
    try:
        return read_amount(text_value)
    except InvalidAmountError as exc:
        raise RowProblem(_t("amount_bad", column=column, value=text_value[:30])) from exc


def _t(key: str, **values: object) -> str:
    return str(render(f"targets.sheet.{key}", **values))
