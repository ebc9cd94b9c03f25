"""A customer spreadsheet's columns and cells: what a row says, before it meets the CRM.

- Columns are recognised by their Chinese or English headers (HEADER_ALIASES); `mapping`
  (the CLI's `--map 列名=field`) overrides.
- Each cell is read the way a person wrote it (Excel numbers and dates, 农历 birthdays, 是/否,
  phones in any spacing, stored in one spelling: crm_core.phones); a row that cannot be read, or
  has no name, raises RowRejected with the reason an admin can act on, in Chinese and naming the
  column as the sheet does (config/templates_import.toml).
- 职位 has no column of its own in the CRM: it is kept as a labelled line ("职位：采购经理") at the end
  of the description, where reps already write 生日; `description_parts` and `compose_description`
  read and write it for import and export alike, and `birthday_text` writes a birthday the way
  this module reads it back.

Matching and merging rows into the CRM is crm_core.importer's job; writing customers back out is
crm_core.customer_export's. This module loads no database code, so the CLI can declare its
arguments from COLUMNS without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from config.templates import render
from crm_core.birthdays import LUNAR_MONTH_NAMES, Birthday, lunar_day_name, parse_birthday
from crm_core.errors import InvalidDateError, ValidationError
from crm_core.phones import normalise_phone

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
_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?[eE]\+?\d+")
_TIME_SUFFIX = re.compile(r"[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_DATE_TEXT = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?|(\d{4})(\d{2})(\d{2})")
_LABELLED = {"position": "职位"}
_LABEL_LINE = re.compile(r"(职位)[:：]\s*(.*)")
_YES = {"是", "y", "yes", "true", "1", "同意", "已同意", "√", "✓"}
_NO = {"否", "n", "no", "false", "0", "不同意", "未同意", "拒绝", "×", "✗"}
_NON_DIGIT = re.compile(r"\D")


class RowRejected(Exception):
    """A row that cannot be imported; the message is the reason written to the error file."""


@dataclass(frozen=True)
class ColumnMap:
    """Which file headers feed which field (several may: the first non-empty cell wins)."""

    fields: dict[str, list[str]]
    ignored: list[str]


# -- columns and cells ------------------------------------------------------------------------------

def header_key(header: str) -> str:
    """A header as people vary it (`手机号（必填）`, `Phone_Number`, `目标金额：`), reduced to compare with aliases."""
    return re.sub(r"[\s_\-*:：()（）]|必填", "", str(header).strip().lower())

_ALIAS_FIELD = {header_key(alias): name for name, aliases in HEADER_ALIASES.items() for alias in aliases}


def known_header(header: str) -> bool:
    return header_key(header) in _ALIAS_FIELD

def map_columns(headers: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnMap:
    """Recognise the file's headers; `mapping` ({header: field or known header}) wins over guessing."""
    mapping = dict(mapping or {})
    missing = [h for h in mapping if h not in headers]
    if missing:
        raise ValidationError(render("sheet.map_missing", columns="、".join(missing), headers="、".join(headers)))
    fields: dict[str, list[str]] = {}
    ignored: list[str] = []
    for header in headers:
        if header in mapping:
            target = mapping[header]
            name = target if target in COLUMNS or target == IGNORE else _ALIAS_FIELD.get(header_key(target))
            if name is None:
                raise ValidationError(render("sheet.map_unknown_field", header=header, target=target,
                                             fields=", ".join(COLUMNS), ignore=IGNORE))
        else:
            name = _ALIAS_FIELD.get(header_key(header))
        if name is None or name == IGNORE:
            ignored.append(header)
        else:
            fields.setdefault(name, []).append(header)
    if "name" not in fields:
        raise ValidationError(render("sheet.no_name_column", headers="、".join(headers)))
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
    digits = _NON_DIGIT.sub("", phone or "")
    for prefix in ("0086", "86"):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and len(rest) == 11 and rest.startswith("1"):
            return rest
    return digits

def _phone(column: str, value: Any) -> str:
    raw = cell_text(value)
    if not raw:
        return ""
    if _SCIENTIFIC.fullmatch(raw):
        raise RowRejected(render("sheet.phone_scientific", column=column, value=raw))
    phone = normalise_phone(raw)
    if phone is None:
        raise RowRejected(render("sheet.phone_invalid", column=column))
    return phone

def _date_from_text(raw: str) -> date | None:
    match = _DATE_TEXT.fullmatch(_TIME_SUFFIX.sub("", raw))
    if not match:
        return None
    year, month, day = (int(g) for g in (match.groups()[:3] if match.group(1) else match.groups()[3:]))
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDateError(f"no date {year}-{month}-{day}") from None

def _birthday(column: str, value: Any) -> Birthday | None:
    raw = cell_text(value)
    if not raw:
        return None
    try:
        if isinstance(value, (date, datetime)):
            day = value.date() if isinstance(value, datetime) else value
            return Birthday(day.month, day.day, year=day.year)
        solar = _date_from_text(raw)
        if solar is not None:
            return Birthday(solar.month, solar.day, year=solar.year)
        return parse_birthday(raw)
    except InvalidDateError:
        raise RowRejected(render("sheet.birthday_invalid", column=column, value=raw)) from None

def _contract_end(column: str, value: Any) -> date | None:
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
        raise RowRejected(render("sheet.date_invalid", column=column, value=raw))
    return parsed

def _consent(column: str, value: Any) -> bool | None:
    raw = cell_text(value).lower()
    if not raw:
        return None
    if raw in _YES:
        return True
    if raw in _NO:
        return False
    raise RowRejected(render("sheet.consent_invalid", column=column, value=cell_text(value)))

def _tags(column: str, value: Any) -> tuple[str, ...]:
    from crm_core.tags import MAX_TAG_LENGTH  # with the ORM: imported when a file is read, not with the CLI

    names = [t for t in _TAG_SPLIT.split(cell_text(value)) if t]
    too_long = [t for t in names if len(t) > MAX_TAG_LENGTH]
    if too_long:
        raise RowRejected(render("sheet.tag_too_long", column=column, tag=too_long[0][:20], limit=MAX_TAG_LENGTH))
    return tuple(dict.fromkeys(names))


def staff_label(userid: str, name: str) -> str:
    return f"{name}({userid})" if name else userid


def parse_row(number: int, cells: Mapping[str, Any], columns: ColumnMap,
              owner_of: Callable[[str, str], int]) -> ParsedRow:
    """One row → a ParsedRow, or RowRejected with the first reason it cannot be imported; `owner_of`
    turns a 负责人 cell (and its column's header) into a staff id
    (crm_core.importer.StaffDirectory.resolve_owner)."""

    def cell(name: str) -> tuple[str, Any]:
        """(the header the value came from, the value); the field's first header when it is empty."""
        headers = columns.fields.get(name, ())
        for header in headers:
            value = cells.get(header)
            if cell_text(value):
                return header, value
        return (headers[0] if headers else COLUMNS[name]), None

    values = {name: cell_text(cell(name)[1]) for name in ("name", "company", "position", "source", "remark", "description")}
    for name, limit in MAX_LENGTHS.items():
        if len(values.get(name, "")) > limit:
            raise RowRejected(render("sheet.too_long", column=cell(name)[0], limit=limit))
    if not values["name"]:
        raise RowRejected(render("sheet.no_name", column=cell("name")[0]))
    phone = _phone(*cell("phone"))
    owner_column, owner = cell("owner")
    owner = cell_text(owner)
    external_ids = tuple(dict.fromkeys(i for i in _ID_SPLIT.split(cell_text(cell("external_userid")[1])) if i))
    if any(len(i) > MAX_LENGTHS["external_userid"] for i in external_ids):
        raise RowRejected(render("sheet.too_long", column=cell("external_userid")[0],
                                 limit=MAX_LENGTHS["external_userid"]))
    return ParsedRow(
        row=number, phone=phone, birthday=_birthday(*cell("birthday")),
        owner_id=owner_of(owner, owner_column) if owner else None, tags=_tags(*cell("tags")), external_ids=external_ids,
        care_consent=_consent(*cell("care_consent")), contract_ends_on=_contract_end(*cell("contract_ends_on")),
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
