"""`scrm targets import FILE.xlsx` and `scrm targets list`: monthly sales targets from a spreadsheet,
and the targets as they are set.

The file is read as `scrm import customers` reads one (scrm.cli.import_export.read_table: .xlsx or
.csv, the header row found below a title); what a row means and how it is checked is
crm_core.targets.TargetImporter's business. Rows that cannot be imported are listed with the reason
in the sheet's own column names and written to FILE.errors.csv; `--dry-run` checks every row and
changes nothing, the schema included. Attainment against the targets is `scrm report targets`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

IMPORT_HELP = """\
Columns (Chinese or English headers): 月份 (2026-12, 2026年12月, 12月, 下个月, or an Excel date),
目标金额 (500000, 50万, 12.5万), and one of 销售 (a colleague's name or WeCom userid) or 部门 (the
department's name). A row sets that month's target for that person or department; importing a
target again replaces it. Exit status: 0 every row imported, 1 some rows went to the error file,
2 nothing was imported."""
ERRORS_SHOWN = 5


def register(sub: argparse._SubParsersAction) -> None:
    targets = sub.add_parser("targets", help="monthly sales targets per rep and department")
    what = targets.add_subparsers(dest="targets_command", metavar="ACTION", required=True)
    imp = what.add_parser("import", help="set targets from an .xlsx or .csv file", epilog=IMPORT_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file", type=Path, help=".xlsx, or .csv in UTF-8 (with or without BOM) or GB18030")
    imp.add_argument("--dry-run", action="store_true", help="check every row and change nothing")
    imp.add_argument("--sheet", help="worksheet to read (default: the first)")
    imp.add_argument("--errors", metavar="OUT.csv", type=Path,
                     help="where rows that cannot be imported go (default: FILE.errors.csv next to FILE)")
    imp.set_defaults(func=cmd_import)
    listing = what.add_parser("list", help="the targets set for a month")
    listing.add_argument("--month", metavar="YYYY-MM", help="default: this month (business time zone)")
    listing.set_defaults(func=cmd_list)


def cmd_import(args: argparse.Namespace) -> int:
    from scrm.cli.import_export import read_table

    try:
        table = read_table(args.file, args.sheet)
    except (ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return asyncio.run(_import(args, table))
    finally:
        table.close()


async def _import(args: argparse.Namespace, table) -> int:
    from crm_core.db import utcnow
    from crm_core.targets import TargetImporter
    from scrm.cli.import_export import import_sheet

    def run(session, settings, progress):
        importer = TargetImporter(session, today=utcnow().astimezone(settings.tz).date())
        return importer.run(table.headers, table.rows, dry_run=args.dry_run, source=args.file.name, progress=progress)

    outcome = await import_sheet(args, table, run, progress_keys=(
        "targets.sheet.progress_checked", "targets.sheet.progress_imported", "targets.sheet.progress_unit"))
    if isinstance(outcome, int):
        return outcome
    report, errors_path = outcome
    print(summary(args.file.name, report, errors_path))
    if report.errors:
        return 1 if report.set else 2
    return 0


def summary(source: str, report, errors_path: Path | None) -> str:
    from config.templates import render

    def t(key: str, **values: object) -> str:
        return render(f"targets.sheet.{key}", **values)

    lines = [t("summary", source=source, rows=report.rows, dry_run=t("summary_dry_run") if report.dry_run else ""),
             t("set_count", count=report.set, created=report.created, updated=report.updated,
               unchanged=report.unchanged)]
    if report.errors:
        lines.append(t("errors", count=len(report.errors)) + (t("errors_file", path=errors_path) if errors_path else ""))
        lines += [t("error_row", row=e.row, reason=e.reason) for e in report.errors[:ERRORS_SHOWN]]
        if len(report.errors) > ERRORS_SHOWN:
            lines.append(t("errors_more", count=len(report.errors) - ERRORS_SHOWN))
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from config.settings import load_settings
    from crm_core.db import utcnow
    from crm_core.targets import InvalidMonthError, read_month
    from scrm.resources import CliError, with_session

    today = utcnow().astimezone(load_settings(toml_path=args.config).tz).date()
    try:
        label = read_month(args.month).label(today) if args.month else f"{today:%Y-%m}"
    except InvalidMonthError as exc:
        raise CliError(f"--month {args.month}: not a month; write it as 2026-12") from exc

    async def work(session) -> str:
        return await render_list(session, label)

    print(asyncio.run(with_session(args.config, work)))
    return 0


async def render_list(session, label: str) -> str:
    from sqlalchemy import select

    from config.templates import render
    from crm_core.models import Staff
    from crm_core.targets import DEPARTMENT, SalesTarget, department_names
    from scrm.cli.report import table

    rows = (await session.scalars(select(SalesTarget).where(SalesTarget.month == label)
                                  .order_by(SalesTarget.kind, SalesTarget.subject_id))).all()
    if not rows:
        return render("targets.list_none", month=label)
    names = await department_names(session)
    staff = {s.id: s for s in (await session.scalars(select(Staff).where(
        Staff.id.in_([r.subject_id for r in rows if r.kind != DEPARTMENT])))).all()}
    cells = []
    for r in rows:
        if r.kind == DEPARTMENT:
            who = render("targets.report.department", name=names.get(r.subject_id, f"#{r.subject_id}"))
        else:
            person = staff.get(r.subject_id)
            who = f"{person.name or person.userid}({person.userid})" if person else f"#{r.subject_id}"
        cells.append([who, str(r.amount), r.set_by or "-", f"{r.updated_at:%Y-%m-%d %H:%M}Z"])
    return "\n".join([render("targets.list_title", month=label), *table(render("targets.list_columns").split("|"), cells)])
