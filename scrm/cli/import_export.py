"""`scrm import customers FILE` and `scrm export customers OUT.xlsx`: spreadsheets in and out.

Files are read and written here (openpyxl for .xlsx, csv for .csv); what a row means is
crm_core.customer_sheet's business, how it merges with the CRM crm_core.importer's, and what an
export holds crm_core.customer_export's. Only the arguments are declared at import: openpyxl and
the database code are imported when a command runs. What the import says about the file and its
rows is Chinese, in config/templates_import.toml; `--dry-run` neither creates nor migrates the
database.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import csv
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from typing import TYPE_CHECKING

from config.templates import render
from crm_core.customer_sheet import COLUMNS, IGNORE, cell_text, known_header, staff_label

if TYPE_CHECKING:
    from crm_core.importer import ImportReport
    from crm_core.scope import Scope

IMPORT_HELP = """\
Recognised columns (Chinese or English headers; --map names others):
  姓名/客户名称  手机/电话/手机号  公司/单位  职位  生日 (1990-03-02, 3月2日, 农历三月初二, Excel dates)
  负责人 (staff name or WeCom userid)  标签 (separated by , ， 、 ; or spaces)  来源  备注  描述
  企业微信ID (external_userid)  关怀同意 (是/否)  合同到期
A row matches an existing customer by 企业微信ID, then 手机, then 姓名 + 公司; it fills empty fields
and adds tags. A different non-empty value is listed as a conflict and kept unless --overwrite
(a WeCom identity and a customer's care opt-out are kept even then). Rows that cannot be imported go
to the error file with the reason: fix them there and import that file again. Running the same file
twice creates nothing the second time.
Exit status: 0 every row imported, 1 some rows went to the error file, 2 nothing was imported."""

Numbered = Iterator[tuple[int, tuple[Any, ...]]]  # (row number, cells) as a reader yields them
Rows = Iterator[tuple[int, dict[str, Any]]]  # (row number as the spreadsheet shows it, {header: value})
CONFLICTS_SHOWN = 20
ERRORS_SHOWN = 5


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import", help="import customers from an Excel or CSV file")
    imp_what = imp.add_subparsers(dest="import_what", metavar="WHAT", required=True)
    customers = imp_what.add_parser(
        "customers", help="import customers from .xlsx or .csv", epilog=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    customers.add_argument("file", type=Path, help=".xlsx, or .csv in UTF-8 (with or without BOM) or GB18030")
    customers.add_argument("--map", metavar="列名=field,...",
                           help=f"name columns yourself, e.g. 联系人=name,移动电话=phone,微信号={IGNORE}; "
                                f"fields: {', '.join(COLUMNS)}")
    customers.add_argument("--dry-run", action="store_true",
                           help="report what would happen and change nothing (it imports in one transaction and rolls "
                                "it back, so on SQLite the service's writes wait until it is done)")
    customers.add_argument("--owner", metavar="USERID",
                           help="owner (WeCom userid) for rows without 负责人; matched customers without an owner get it too")
    customers.add_argument("--errors", metavar="OUT.csv", type=Path,
                           help="where rows that cannot be imported go (default: FILE.errors.csv next to FILE)")
    customers.add_argument("--overwrite", action="store_true",
                           help="let the file replace non-empty fields that differ (listed as conflicts either way)")
    customers.add_argument("--sheet", help="worksheet to read (default: the first)")
    customers.set_defaults(func=cmd_import_customers)

    exp = sub.add_parser("export", help="export customers to an Excel file")
    exp_what = exp.add_subparsers(dest="export_what", metavar="WHAT", required=True)
    out = exp_what.add_parser("customers", help="export customers to .xlsx (same columns as the import)")
    out.add_argument("out", type=Path, help="the .xlsx file to write")
    out.add_argument("--as", dest="as_userid", metavar="USERID",
                     help="export only what this staff member may see (sales: own, manager: departments, admin: all); "
                          "default: every customer")
    out.set_defaults(func=cmd_export_customers)


# -- reading ---------------------------------------------------------------------------------------

class FileProblem(ValueError):
    """The file cannot be read as a table; the message says what to do."""


@dataclass
class Table:
    headers: list[str]
    rows: Rows
    total: int | None  # data rows, when known up front (for the progress line)
    encoding: str = ""
    close: Callable[[], None] = lambda: None


def read_table(path: Path, sheet: str | None = None) -> Table:
    if not path.is_file():
        raise FileProblem(render("import.file_missing", path=path))
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet)
    if suffix in (".csv", ".txt"):
        return _read_csv(path)
    if suffix == ".xls":
        raise FileProblem(render("import.file_xls", name=path.name))
    raise FileProblem(render("import.file_type", name=path.name))


def _headers(row: tuple[Any, ...]) -> list[str]:
    """Header texts; an empty header drops its column, a repeated one gets a number (and is not guessed)."""
    seen: dict[str, int] = {}
    headers = []
    for value in row:
        header = cell_text(value)
        if header:
            seen[header] = seen.get(header, 0) + 1
            header = header if seen[header] == 1 else f"{header} ({seen[header]})"
        headers.append(header)
    return headers


def _table_rows(numbered: Numbered) -> tuple[list[str], int, int, Rows]:
    """Finds the header row: the first with a known column name or two cells, so a title row above it is skipped.

    Returns the headers, the header's row number, how many non-empty rows it took to reach it, and the data rows."""
    leading = 0
    for number, row in numbered:
        texts = [cell_text(v) for v in row if cell_text(v)]
        leading += bool(texts)
        if len(texts) >= 2 or any(known_header(t) for t in texts):
            headers = _headers(row)
            break
    else:
        raise FileProblem(render("import.no_header"))

    def rows() -> Rows:
        for number, row in numbered:
            cells = {h: v for h, v in zip(headers, row) if h}
            if any(cell_text(v) for v in cells.values()):
                yield number, cells

    return [h for h in headers if h], number, leading, rows()


def _read_xlsx(path: Path, sheet: str | None) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise FileProblem(render("import.file_unreadable", name=path.name, detail=exc)) from exc
    if sheet is not None and sheet not in workbook.sheetnames:
        workbook.close()
        raise FileProblem(render("import.no_sheet", sheet=sheet, sheets="、".join(workbook.sheetnames)))
    worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
    try:
        headers, header_row, _, rows = _table_rows(enumerate(worksheet.iter_rows(values_only=True), 1))
    except FileProblem:
        workbook.close()
        raise
    total = worksheet.max_row - header_row if worksheet.max_row else None  # None: the sheet does not say
    return Table(headers, rows, total, close=workbook.close)


def csv_encoding(path: Path) -> str:
    """UTF-8 (BOM or not) or GB18030, what Chinese Excel and WPS write; decided over the whole file."""
    with path.open("rb") as f:
        head = f.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        for encoding in ("utf-8", "gb18030"):
            f.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
                return encoding
            except UnicodeDecodeError:
                continue
    raise FileProblem(render("import.encoding_unknown", name=path.name))


def _read_csv(path: Path) -> Table:
    encoding = csv_encoding(path)
    with path.open(encoding=encoding, newline="") as f:
        first = f.readline()
        dialect = "excel-tab" if first.count("\t") > first.count(",") else "excel"
        f.seek(0)
        filled = sum(1 for record in csv.reader(f, dialect) if any(cell.strip() for cell in record))
    handle = path.open(encoding=encoding, newline="")
    try:
        headers, _, leading, rows = _table_rows(enumerate(csv.reader(handle, dialect), 1))
    except FileProblem:
        handle.close()
        raise
    return Table(headers, rows, filled - leading, encoding, close=handle.close)


def write_errors(path: Path, headers: list[str], report: ImportReport) -> None:
    """The rows left out, as they were, with their reason: fix them here and import this file again."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([render("import.error_file_row"), *headers, render("import.error_file_reason")])
        for error in report.errors:
            writer.writerow([error.row, *(cell_text(error.cells.get(h)) for h in headers), error.reason])


def parse_map(text: str | None) -> dict[str, str]:
    """`联系人=name,移动电话=phone` (commas may be full-width) → {header: field}."""
    mapping: dict[str, str] = {}
    for item in (text or "").replace("，", ",").split(","):
        if not item.strip():
            continue
        header, sep, target = item.partition("=")
        if not sep or not header.strip() or not target.strip():
            raise ValueError(render("sheet.map_syntax", item=item))
        mapping[header.strip()] = target.strip()
    return mapping


# -- commands --------------------------------------------------------------------------------------

class Progress:
    """`\\r  已导入 4000/10000 行` on a terminal; one line per batch when stderr is a file."""

    def __init__(self, verb: str, total: int | None, unit: str = "rows", stream: TextIO | None = None):
        self.verb, self.total, self.unit, self.shown = verb, total, unit, False
        self.stream = stream or sys.stderr

    def __call__(self, done: int) -> None:
        count = f"{done}/{self.total}" if self.total else str(done)
        text = f"  {self.verb} {count} {self.unit}"
        if self.stream.isatty():
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown and self.stream.isatty():
            self.stream.write("\n")
        self.shown = False


def cmd_import_customers(args: argparse.Namespace) -> int:
    try:
        mapping = parse_map(args.map)
        table = read_table(args.file, args.sheet)
    except (ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return asyncio.run(_import(args, table, mapping))
    finally:
        table.close()


async def _import(args: argparse.Namespace, table: Table, mapping: dict[str, str]) -> int:
    from crm_core.importer import CustomerImporter

    def run(session, settings, progress: Progress):
        importer = CustomerImporter(session, actor="cli", default_owner=args.owner, overwrite=args.overwrite)
        return importer.run(table.headers, table.rows, mapping=mapping, dry_run=args.dry_run, source=args.file.name,
                            progress=progress)

    outcome = await import_sheet(args, table, run, progress_keys=("import.progress_checked", "import.progress_imported",
                                                                  "import.progress_unit"))
    if isinstance(outcome, int):
        return outcome
    report, errors_path = outcome
    print(summary(args.file.name, report, errors_path, overwrite=args.overwrite))
    return 1 if report.errors else 0


async def import_sheet(args: argparse.Namespace, table: Table, run: Callable[..., Awaitable[Any]], *,
                       progress_keys: tuple[str, str, str]) -> tuple[Any, Path | None] | int:
    """What every sheet import does around its importer (`scrm import customers`, `scrm targets import`):
    a dry run neither creates nor migrates the database, the schema is checked or brought up to date,
    `run(session, settings, progress)` imports the rows, refusals are printed in Chinese (the exit
    code is returned), and rows that could not be imported go to the error file next to the sheet.
    Returns (the importer's report, the error file or None)."""
    # The schema check (and, on SQLite, the migration) is not what these commands report on: alembic's
    # English progress lines would only interleave with the import's own summary.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from config.settings import load_settings
    from crm_core.db import create_engine, session_factory
    from crm_core.errors import DomainError
    from scrm.resources import SchemaNotReady, check_schema, prepare_schema

    settings = load_settings(toml_path=args.config)
    url = make_url(settings.database_url)
    if args.dry_run and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():  # connecting would create the file
        print(render("import.no_database", path=url.database), file=sys.stderr)
        return 2
    engine = create_engine(settings.database_url)
    checked, imported, unit = progress_keys
    progress = Progress(render(checked if args.dry_run else imported), table.total, render(unit))
    try:
        try:
            # A dry run changes nothing, the schema included: it only checks that it is current.
            await (check_schema(engine, settings.database_url) if args.dry_run else prepare_schema(engine, settings))
        except SchemaNotReady as exc:
            print(render("import.schema_missing") if exc.version is None else
                  render("import.schema_behind", version=exc.version, head=exc.head), file=sys.stderr)
            return 2
        async with session_factory(engine)() as session:
            try:
                report = await run(session, settings, progress)
            except DomainError as exc:
                print(exc, file=sys.stderr)
                return 2
            except SQLAlchemyError as exc:
                progress.done()
                done = render("import.nothing_changed" if args.dry_run else "import.batches_saved")
                print(render("import.database_refused", detail=f"{exc.__class__.__name__}: {getattr(exc, 'orig', exc)}",
                             done=done), file=sys.stderr)
                return 2
            except UnicodeDecodeError as exc:
                print(render("import.encoding_broken", name=args.file.name, encoding=table.encoding, detail=exc),
                      file=sys.stderr)
                return 2
    finally:
        progress.done()
        await engine.dispose()
    errors_path = None
    if report.errors:
        errors_path = args.errors or args.file.with_name(f"{args.file.stem}.errors.csv")
        write_errors(errors_path, table.headers, report)
    return report, errors_path


def summary(source: str, report: ImportReport, errors_path: Path | None, *, overwrite: bool) -> str:
    from bot.formatting import mask_phone

    lines = [render("import.summary_title", source=source, rows=report.rows)
             + (render("import.summary_dry_run") if report.dry_run else "")]
    lines += [render("import.created", count=report.created), render("import.merged", count=report.merged),
              render("import.unchanged", count=report.unchanged)]
    line = render("import.errors", count=len(report.errors))
    if errors_path:
        line += render("import.errors_file", path=errors_path)
    lines.append(line)
    for error in report.errors[:ERRORS_SHOWN]:
        lines.append(render("import.error_row", row=error.row, reason=error.reason))
    if len(report.errors) > ERRORS_SHOWN:
        lines.append(render("import.errors_more", count=len(report.errors) - ERRORS_SHOWN))
    if overwrite:
        how = render("import.conflicts_overwrite_dry" if report.dry_run else "import.conflicts_overwrite")
    else:
        how = render("import.conflicts_kept")
    lines.append(render("import.conflicts", count=len(report.conflicts)) + (how if report.conflicts else ""))
    for c in report.conflicts[:CONFLICTS_SHOWN]:
        current, incoming = c.current, c.incoming
        if c.field == "phone":  # phones never reach a terminal or log in clear
            current, incoming = mask_phone(current), mask_phone(incoming)
        lines.append(render("import.conflict_row", row=c.row, customer=c.customer, column=c.column, current=current,
                            incoming=incoming, outcome=render("import.conflict_replaced" if c.applied else
                                                              "import.conflict_kept")))
    if len(report.conflicts) > CONFLICTS_SHOWN:
        lines.append(render("import.conflicts_more", count=len(report.conflicts) - CONFLICTS_SHOWN))
    if report.ignored_columns:
        lines.append(render("import.ignored_columns", columns="、".join(report.ignored_columns)))
    return "\n".join(lines)


def cmd_export_customers(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".xlsx":
        print(f"{args.out} must end in .xlsx", file=sys.stderr)
        return 2
    return asyncio.run(_export(args))


async def _export(args: argparse.Namespace) -> int:
    from crm_core.audit import AuditService
    from crm_core.customer_export import count_in_scope
    from scrm.resources import scope_as, with_session

    async def work(session) -> tuple[int, str]:
        staff, scope = await scope_as(session, args.as_userid)
        if staff is None:
            described, actor = "all customers (no --as given)", "cli"
        else:
            described, actor = _describe_scope(scope, staff_label(staff.userid, staff.name), staff.role), staff.userid
        progress = Progress("exported", await count_in_scope(session, scope), "customers")
        try:
            count = await write_customers(session, scope, args.out, progress)
        finally:
            progress.done()
        AuditService(session).record(actor=actor, action="customers.export",
                                     detail=f"file={args.out.name} count={count} scope={described}")
        await session.commit()
        return count, described

    count, described = await with_session(args.config, work)
    print(f"exported {count} customers to {args.out}; scope: {described}")
    return 0


def _describe_scope(scope: Scope, who: str, role: str) -> str:
    if scope.everyone:
        return f"all customers ({who} is {role})"
    if role == "manager":
        return f"customers of {who}'s departments ({len(scope.owner_ids or ())} staff)"
    return f"customers owned by {who}"


async def write_customers(session, scope: Scope, out: Path, progress: Callable[[int], None], *, batch: int = 1000) -> int:
    """Streams customers into a write-only workbook (rows go to disk as they come), then moves it in place."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    from crm_core.customer_export import export_records

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户")
    for letter, width in zip("ABCDEFGHIJKLM", (12, 14, 24, 12, 18, 16, 24, 10, 16, 30, 24, 9, 12)):
        sheet.column_dimensions[letter].width = width
    sheet.append(list(COLUMNS.values()))
    count = 0
    try:
        async for record in export_records(session, scope, page_size=batch):
            row: list[Any] = []
            for name in COLUMNS:
                value = record[name]
                if name == "contract_ends_on" and value is not None:
                    value = WriteOnlyCell(sheet, value=value)
                    value.number_format = "yyyy-mm-dd"
                row.append(value)
            sheet.append(row)
            count += 1
            if count % batch == 0:
                progress(count)
    except BaseException:
        workbook.close()
        raise
    progress(count)
    partial = out.with_name(out.name + ".part")
    workbook.save(partial)
    os.replace(partial, out)
    return count
