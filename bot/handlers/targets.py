"""目标 / target: monthly sales targets and how far each rep and department got (crm_core.targets).

For managers and admins: `目标` alone lists this month's targets with what was won against them (a
manager's team and departments, an admin's whole company); `目标 12月` another month, `目标 张伟` one
person or department; `目标 张伟 12月 50万` or `目标 销售部 下个月 200万` sets one, a manager's only
within their departments. Reps are left out: every command a rep may use fits one help message,
and this one did not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.formatting import money
from bot.replies import Listing, Refusal
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.targets import (DEPARTMENT, MONTH_PATTERN, AmbiguousSubjectError, Attainment, AttainmentRow,
                              InvalidAmountError, InvalidMonthError, Subject, SubjectNotFoundError,
                              TargetNotAllowedError, TargetService, find_subject, month_of, read_amount, read_month)

router = Router("targets")

TARGET_ROLES = frozenset({"manager", "admin"})
# A word that is an attempt at an amount (50万, 五十万, -5万, 0): digits or Chinese numerals with money units.
_AMOUNT_LIKE = re.compile(r"[-+]?[0-9.,，零〇一二两三四五六七八九十百千万亿wWkK]*[0-9零〇一二两三四五六七八九十百千]"
                          r"[0-9.,，零〇一二两三四五六七八九十百千万亿wWkK]*元?")
_FILLER = frozenset({"的"})


@dataclass(frozen=True)
class TargetLine:
    """What follows 目标, as typed: who, the month phrase and the amount (each may be empty)."""

    who: str = ""
    month: str = ""
    amount: str = ""


def read_line(text: str) -> TargetLine:
    """`张伟 12月 50万`, `张伟12月50万`, `销售部 下个月 200万`, `12月`, `张伟`; ValueError when the words
    cannot be told apart (two names, or words that are neither a month nor an amount)."""
    month = ""
    rest = text
    if (found := MONTH_PATTERN.search(text)) is not None:
        month, rest = found.group(), f"{text[:found.start()]} {text[found.end():]}"
    words = [w for w in rest.split() if w not in _FILLER]
    amount = ""
    if words and (len(words) > 1 or words[0][0].isdigit()) and _AMOUNT_LIKE.fullmatch(words[-1]):
        amount = words.pop()
    if len(words) > 1:
        raise ValueError(f"cannot tell who from {' '.join(words)[:20]!r}")
    who = words[0].removesuffix("的") if words else ""
    return TargetLine(who, month, amount)


@router.command("目标", aliases=("target",), roles=TARGET_ROLES,
                args=[Arg("line", rest=True, optional=True, convert=read_line)],
                usage="目标 [同事或部门] [月份] [金额]，如：目标 张伟 12月 50万")
async def target(ctx: CommandContext, line: TargetLine | str) -> str | Listing:
    """业绩目标与达成；设目标：目标 张伟 12月 50万"""
    line = line or TargetLine()
    try:
        label = read_month(line.month).label(ctx.local_now.date()) if line.month else \
            f"{ctx.local_now:%Y-%m}"
    except InvalidMonthError as exc:
        raise Refusal("targets.bad_month", month=line.month[:20]) from exc
    if line.amount:
        return await _set(ctx, line, label)
    subject = await _subject(ctx, line.who) if line.who else None
    return await _list(ctx, label, subject)


async def _set(ctx: CommandContext, line: TargetLine, label: str) -> str:
    if not line.who:
        raise Refusal("bot.usage", usage=render("targets.usage_set"))
    try:
        amount = read_amount(line.amount)
    except InvalidAmountError as exc:
        raise Refusal("targets.bad_amount", amount=line.amount[:20]) from exc
    subject = await _subject(ctx, line.who)
    service = TargetService(ctx.session)
    try:
        change = await service.set(subject, label, amount, actor=ctx.staff, actor_label=ctx.staff.userid, at=ctx.now)
    except TargetNotAllowedError as exc:
        raise Refusal("targets.outside", name=subject.name) from exc
    month = month_of(label, ctx.timezone)
    row = _row_of(await service.attainment(None, month), subject)
    previous = render("targets.previous", amount=money(change.previous)) if change.previous else ""
    return render("targets.set", name=_name(subject), month=_month_text(label), amount=money(amount),
                  previous=previous, progress=_progress(row))


async def _list(ctx: CommandContext, label: str, subject: Subject | None) -> str | Listing:
    attainment = await TargetService(ctx.session).attainment(ctx.staff, month_of(label, ctx.timezone))
    rows = attainment.rows
    if subject is not None:
        rows = [r for r in rows if (r.kind, r.id) == (subject.kind, subject.id)]
        if not rows:
            raise Refusal("targets.not_visible", name=subject.name)
    header = render("targets.list_header", month=_month_text(label), at=ctx.local(ctx.now, "%m-%d %H:%M"))
    if not rows:
        return render("targets.list_empty", month=_month_text(label))
    lines = [render("targets.line", name=_name_of(row), progress=_progress(row)) for row in rows]
    return Listing(header, lines, render("targets.list_footer"))


async def _subject(ctx: CommandContext, who: str) -> Subject:
    """The colleague or department named, or a refusal that says why not."""
    try:
        return await find_subject(ctx.session, who)
    except SubjectNotFoundError as exc:
        raise Refusal("targets.departed" if exc.departed else "targets.not_found", who=who[:20]) from exc
    except AmbiguousSubjectError as exc:
        raise Refusal("targets.ambiguous", who=who[:20], count=exc.count) from exc


def _row_of(attainment: Attainment, subject: Subject) -> AttainmentRow | None:
    return next((r for r in attainment.rows if (r.kind, r.id) == (subject.kind, subject.id)), None)


def _progress(row: AttainmentRow | None) -> str:
    if row is None:
        return ""
    won = render("targets.won", amount=money(row.won_amount), deals=row.won_deals)
    if row.target is None:
        return render("targets.progress_no_target", won=won)
    return render("targets.progress", target=money(row.target), won=won, ratio=f"{row.ratio:.0%}")


def _name(subject: Subject) -> str:
    return render("targets.department_name", name=subject.name) if subject.kind == DEPARTMENT else subject.name


def _name_of(row: AttainmentRow) -> str:
    return render("targets.department_name", name=row.name) if row.kind == DEPARTMENT else row.name


def _month_text(label: str) -> str:
    year, month = label.split("-")
    return render("targets.month", year=int(year), month=int(month))
