"""`scrm import customers` and `scrm export customers`, run as an admin runs them, on both backends.

Files are real .xlsx (openpyxl) and .csv files in the encodings Chinese Excel and WPS write;
results are read back from the database, the error file and the command's own summary.
"""

from __future__ import annotations

import asyncio
import csv
import random
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import delete, func, select

from connectors.wecom.inbound import EXTERNAL_CHANNEL
from crm_core.birthdays import Birthday
from crm_core.db import create_engine, session_factory
from crm_core.customer_sheet import birthday_text, phone_key
from crm_core.phones import normalise_phone
from crm_core.importer import WECOM_CHANNEL
from crm_core.migrate import upgrade_async
from crm_core.models import AuditEntry, Customer, CustomerIdentity, CustomerTag, Staff
from scrm.cli import main as cli

STAFF = [  # userid, name, role, departments
    ("chenjing", "陈静", "admin", [1]),
    ("liuyang", "刘洋", "manager", [2]),
    ("zhangwei", "张伟", "sales", [2]),
    ("lina", "李娜", "sales", [2]),
    ("wangfang", "王芳", "sales", [3]),
]
HEADERS = ["姓名", "手机", "公司", "职位", "生日", "负责人", "标签", "来源", "备注", "企业微信ID", "关怀同意", "合同到期"]


@pytest.fixture
async def db(backend, monkeypatch):
    await upgrade_async(backend.database_url)
    monkeypatch.setenv("SCRM_DATABASE_URL", backend.database_url)
    monkeypatch.delenv("SCRM_CONFIG", raising=False)
    engine = create_engine(backend.database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add_all(Staff(userid=u, name=n, role=r, department_ids=d) for u, n, r, d in STAFF)
        await session.commit()
    yield sessions
    await engine.dispose()


async def scrm(capsys, *argv: str) -> tuple[int, str, str]:
    """The real command line, in a thread (it runs its own event loop), with its output."""
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


SUMMARY_LINES = {"新建": "created", "合并": "merged", "无变化": "unchanged", "错误": "errors", "冲突": "conflicts"}


def counts(summary: str) -> dict[str, int]:
    return {SUMMARY_LINES[k]: int(v) for k, v in re.findall(r"^  (新建|合并|无变化|错误|冲突)\s+(\d+)", summary, re.M)}


async def staff_ids(sessions) -> dict[str, int]:
    async with sessions() as session:
        return dict((await session.execute(select(Staff.userid, Staff.id))).all())


async def table_sizes(sessions) -> dict[str, int]:
    async with sessions() as session:
        return {model.__tablename__: await session.scalar(select(func.count()).select_from(model))
                for model in (Customer, CustomerTag, CustomerIdentity, AuditEntry)}


async def customer_by_phone(sessions, digits: str) -> Customer:
    """The one customer whose phone, however it was written, has these digits."""
    async with sessions() as session:
        candidates = (await session.scalars(select(Customer).where(Customer.phone_tail == digits[-4:]))).all()
    [customer] = [c for c in candidates if phone_key(c.phone) == digits]
    return customer


async def tags_of(sessions, customer_id: int) -> set[str]:
    async with sessions() as session:
        return set((await session.scalars(select(CustomerTag.name).where(CustomerTag.customer_id == customer_id))).all())


def write_xlsx(path: Path, headers: list[str], rows: list[list]) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("客户名单")
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def write_csv(path: Path, headers: list[str], rows: list[list], encoding: str) -> None:
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        writer.writerows(rows)


def read_error_file(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# -- the 10,000-row workbook -------------------------------------------------------------------------

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"
COMPANIES = ["华东机械", "鼎盛贸易", "远航物流", "新源科技", "安达建材", "恒通电子", "金桥食品", "瑞丰化工"]
TAG_SETS = ["VIP、老客户", "A类,展会", "华东；重点", "渠道 代理", "", "复购，高意向"]
BAD_BIRTHDAYS = ["1990-13-45", "农历十三月初一", "2月30日", "下个月"]


@dataclass(eq=False)
class FileRow:
    kind: str  # new | existing_fill | existing_same | copy_more | copy_same | broken_*
    cells: list


def lunar_text(rng: random.Random) -> str:
    return birthday_text(Birthday(rng.randint(1, 12), rng.randint(1, 29), lunar=True, leap=rng.random() < 0.05))


def new_row(i: int, rng: random.Random) -> list:
    name = SURNAMES[i % len(SURNAMES)] + GIVEN[i // len(SURNAMES) % len(GIVEN)] + GIVEN[i // 1000 % len(GIVEN)]
    digits = f"150{i:08d}"
    phone = [int(digits), f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", f"+86 {digits}"][i % 3]
    birthday = [datetime(1960 + i % 40, 1 + i % 12, 1 + i % 28), lunar_text(rng),
                f"{1970 + i % 30}/{1 + i % 12}/{1 + i % 28}", f"{1 + i % 12}月{1 + i % 28}日", ""][i % 5]
    owner = ["张伟", "zhangwei", "李娜(lina)", "", "王芳"][i % 5]
    contract = [datetime(2027, 1 + i % 12, 1 + i % 28), f"2027-{1 + i % 12:02d}-15", ""][i % 3]
    return [name, phone, COMPANIES[i % len(COMPANIES)], ["采购经理", "总经理", ""][i % 3], birthday, owner,
            TAG_SETS[i % len(TAG_SETS)], ["展会", "转介绍", "官网", ""][i % 4], "", f"wmNEW{i:05d}" if i % 5 == 0 else "",
            ["是", "否", ""][i % 3], contract]


def build_rows(rng: random.Random) -> list[FileRow]:
    new = [FileRow("new", new_row(i, rng)) for i in range(8300)]
    rows = new + [
        # Existing customers (seeded by seed_existing): by WeCom id filling the birthday, by phone adding a tag,
        # by name + company adding a remark, or saying nothing new.
        *(FileRow("existing_fill", [f"欧阳{i}", "", "", "", datetime(1980, 1 + i % 12, 1 + i % 28), "", "", "", "",
                                    f"wmOLD{i:03d}", "", ""]) for i in range(100)),
        *(FileRow("existing_fill", [f"上官{i}", f"+86 139-0000-{i:04d}", "", "", "", "", "老客户", "", "", "", "", ""])
          for i in range(100)),
        *(FileRow("existing_fill", [f"司徒{i}", "", "远东集团", "", "", "", "", "", "展会认识", "", "", ""]) for i in range(50)),
        *(FileRow("existing_same", [f"司徒{i}", "", "远东集团", "", "", "", "", "", "", "", "", ""]) for i in range(50, 100)),
    ]
    for i in range(1200):  # 3% of each broken kind
        cells = new_row(20000 + i, rng)
        kind = ["broken_empty", "broken_birthday", "broken_owner", "broken_phone"][i % 4]
        if kind == "broken_empty":
            cells[0] = cells[1] = ""
        elif kind == "broken_birthday":
            cells[4] = BAD_BIRTHDAYS[i // 4 % len(BAD_BIRTHDAYS)]
        elif kind == "broken_owner":
            cells[5] = "不存在的人"
        else:
            cells[1] = ["138-abcd-0000", "无", "1.38E+10"][i % 3]
        rows.append(FileRow(kind, cells))
    rng.shuffle(rows)
    # Duplicates of other rows in the file come after their original: a reformatted phone and one more tag, or a copy.
    for n, original in enumerate(rng.sample(new, 200)):
        at = rows.index(original) + 1 + rng.randrange(50)
        cells = list(original.cells)
        if n % 2 == 0:
            digits = re.sub(r"\D", "", str(cells[1]))[-11:]
            cells[1], cells[6] = f"0086 {digits}", f"{cells[6]}、回头客".strip("、")
            rows.insert(at, FileRow("copy_more", cells))
        else:
            rows.insert(at, FileRow("copy_same", cells))
    return rows


async def seed_existing(sessions) -> None:
    owner = (await staff_ids(sessions))["wangfang"]  # so --owner has nothing to fill on 司徒 (an ownerless one gets it)
    async with sessions() as session:
        for i in range(100):
            customer = Customer(name=f"欧阳{i}", company="远东集团", phone=f"1380000{i:04d}")
            session.add(customer)
            await session.flush()
            session.add(CustomerIdentity(customer_id=customer.id, channel=WECOM_CHANNEL, external_id=f"wmOLD{i:03d}"))
        session.add_all(Customer(name=f"上官{i}", company="远东集团", phone=f"1390000{i:04d}") for i in range(100))
        session.add_all(Customer(name=f"司徒{i}", company="远东集团", owner_id=owner) for i in range(100))
        await session.commit()


@pytest.mark.slow  # a run at scale: 10,000 rows, three times
async def test_ten_thousand_row_workbook_dry_run_import_and_rerun(db, capsys, tmp_path):
    rows = build_rows(random.Random(7))
    assert len(rows) == 10_000
    path = tmp_path / "客户名单.xlsx"
    write_xlsx(path, HEADERS, [r.cells for r in rows])
    await seed_existing(db)
    before = await table_sizes(db)
    expected = {"created": 8300, "merged": 350, "unchanged": 150, "errors": 1200, "conflicts": 0}

    code, out, err = await scrm(capsys, "import", "customers", path, "--owner", "lina", "--dry-run")
    assert counts(out) == expected and "试运行：没有改动任何数据" in out
    assert await table_sizes(db) == before

    code, out, err = await scrm(capsys, "import", "customers", path, "--owner", "lina")
    assert code == 1 and counts(out) == expected
    assert re.search(r"已导入 10000(/10000)? 行", err)
    after = await table_sizes(db)
    assert after["customers"] == before["customers"] + 8300
    assert after["customer_identities"] == before["customer_identities"] + 1660  # every 5th new row has a WeCom id

    # The error file: each broken row by its spreadsheet row number, its cells as written, and why.
    errors = {int(r["行号"]): r for r in read_error_file(tmp_path / "客户名单.errors.csv")}
    broken = {n: r for n, r in enumerate(rows, 2) if r.kind.startswith("broken")}
    assert errors.keys() == broken.keys()
    reasons = {"broken_empty": "没有姓名", "broken_birthday": "生日「", "broken_owner": "负责人「不存在的人」不是员工",
               "broken_phone": "手机"}
    for number, row in broken.items():
        assert errors[number]["错误原因"].startswith(reasons[row.kind]), errors[number]
        assert errors[number]["公司"] == row.cells[2] and errors[number]["生日"] in (row.cells[4], str(row.cells[4])[:10])
    assert {errors[n]["生日"] for n, r in broken.items() if r.kind == "broken_birthday"} == set(BAD_BIRTHDAYS)

    # What a rep will see on the cards: owners, birthdays in both calendars, merged tags and fills.
    ids = await staff_ids(db)
    first = await customer_by_phone(db, "15000000000")  # row i=0: Excel date birthday, owner 张伟, WeCom id
    assert first.owner_id == ids["zhangwei"] and first.birthday == Birthday(1, 1, year=1960)
    assert first.description == "职位：采购经理" and first.source == "展会" and first.care_consent and first.contract_ends_on == date(2027, 1, 1)
    lunar = await customer_by_phone(db, "15000000001")
    assert lunar.birthday.lunar and lunar.owner_id == ids["zhangwei"]
    assert (await customer_by_phone(db, "15000000003")).owner_id == ids["lina"]  # no 负责人: --owner
    copy_more = next(r for r in rows if r.kind == "copy_more")
    merged = await customer_by_phone(db, re.sub(r"\D", "", copy_more.cells[1])[-11:])
    assert "回头客" in await tags_of(db, merged.id)
    old = await customer_by_phone(db, "13800000007")
    assert old.birthday == Birthday(8, 8, year=1980)
    assert (await tags_of(db, (await customer_by_phone(db, "13900000042")).id)) == {"老客户"}
    async with db() as session:
        remarks = (await session.scalars(select(Customer.remark).where(Customer.name.like("司徒%")))).all()
        audit = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "customers.import"))).all()
    assert sorted(remarks).count("展会认识") == 50
    assert [a.detail for a in audit] == [
        "file=客户名单.xlsx rows=10000 created=8300 merged=350 unchanged=150 errors=1200 conflicts=0 overwrite=False"]

    # The same file again creates and changes nothing.
    code, out, err = await scrm(capsys, "import", "customers", path, "--owner", "lina")
    assert counts(out) == {"created": 0, "merged": 0, "unchanged": 8800, "errors": 1200, "conflicts": 0}
    assert (await table_sizes(db))["customers"] == after["customers"]  # how long it takes: BENCHMARKS.md


# -- encodings, --map, the error file workflow -------------------------------------------------------

SMALL = [
    ["张三", "138 0013 8000", "华东机械", "", "农历三月初二", "张伟", "VIP，老客户；展会", "", "", "", "是", "2027年6月30日"],
    ["李四", "13900001111", "", "", "1985-07-08", "", "", "", "", "", "否", ""],
    ["王五", "", "鼎盛贸易", "总经理", "", "", "", "转介绍", "", "", "", ""],
]


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
async def test_csv_from_chinese_excel_is_read_in_its_encoding(db, capsys, tmp_path, encoding):
    path = tmp_path / "customers.csv"
    write_csv(path, HEADERS, SMALL, encoding)
    code, out, _ = await scrm(capsys, "import", "customers", path)
    assert code == 0 and counts(out) == {"created": 3, "merged": 0, "unchanged": 0, "errors": 0, "conflicts": 0}
    zhang = await customer_by_phone(db, "13800138000")
    assert (zhang.name, zhang.company, str(zhang.birthday)) == ("张三", "华东机械", "农历三月初二")
    assert zhang.contract_ends_on == date(2027, 6, 30) and zhang.care_consent
    assert await tags_of(db, zhang.id) == {"VIP", "老客户", "展会"}
    # The same rows as plain UTF-8 are recognised as the same customers.
    write_csv(path, HEADERS, SMALL, "utf-8")
    code, out, _ = await scrm(capsys, "import", "customers", path)
    assert counts(out)["unchanged"] == 3 and counts(out)["created"] == 0


async def test_map_names_columns_the_importer_does_not_know(db, capsys, tmp_path):
    path = tmp_path / "crm_export.csv"
    write_csv(path, ["联系人姓名", "移动电话", "所在单位", "微信号"],
              [["赵六", "13700001111", "安达建材", "zhao6"], ["钱七", "13700002222", "", "qian7"]], "utf-8")
    code, _, err = await scrm(capsys, "import", "customers", path)
    assert code == 2 and "找不到姓名列" in err and "--map 联系人姓名=name" in err

    code, _, err = await scrm(capsys, "import", "customers", path, "--map", "联系人姓名=name,移动电话=cellphone")
    assert code == 2 and "--map 移动电话=cellphone：没有这个字段" in err
    assert (await table_sizes(db))["customers"] == 0

    code, out, _ = await scrm(capsys, "import", "customers", path, "--map", "联系人姓名=name，移动电话=phone,所在单位=公司")
    assert code == 0 and counts(out)["created"] == 2 and "未导入的列：微信号" in out
    assert (await customer_by_phone(db, "13700001111")).company == "安达建材"


async def test_a_fixed_error_file_imports_as_it_is(db, capsys, tmp_path):
    path = tmp_path / "batch.xlsx"
    write_xlsx(path, HEADERS, [SMALL[0], ["孙八", "13600001111", "", "", "1990-02-30", "nobody", "", "", "", "", "", ""]])
    errors = tmp_path / "fix-me.csv"
    code, out, _ = await scrm(capsys, "import", "customers", path, "--errors", errors)
    assert code == 1 and counts(out)["created"] == 1 and f"-> {errors}" in out
    [bad] = read_error_file(errors)
    assert bad["行号"] == "3" and bad["生日"] == "1990-02-30" and bad["错误原因"].startswith("生日「1990-02-30」不是日期")
    assert "第 3 行：生日「1990-02-30」不是日期" in out
    bad["生日"], bad["负责人"] = "1990-02-28", "王芳"
    with errors.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(bad))
        writer.writeheader()
        writer.writerow(bad)
    code, out, _ = await scrm(capsys, "import", "customers", errors)
    assert code == 0 and counts(out)["created"] == 1 and "未导入的列：行号、错误原因" in out
    sun = await customer_by_phone(db, "13600001111")
    assert sun.birthday == Birthday(2, 28, year=1990) and sun.owner_id == (await staff_ids(db))["wangfang"]


async def test_unusable_input_is_refused_with_what_to_do_and_changes_nothing(db, capsys, tmp_path):
    path = tmp_path / "c.csv"
    write_csv(path, HEADERS, SMALL, "utf-8")
    code, _, err = await scrm(capsys, "import", "customers", path, "--owner", "nobody")
    assert code == 2 and "--owner nobody：没有这个企业微信账号的员工" in err
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    code, _, err = await scrm(capsys, "import", "customers", tmp_path / "old.xls")
    assert code == 2 and "另存为 .xlsx" in err
    assert (await table_sizes(db))["customers"] == 0


# -- validation: names, phones, and a dry run that touches no database ----------------------------

async def test_a_row_without_a_name_and_a_phone_that_is_no_number_are_error_rows(db, capsys, tmp_path):
    path = tmp_path / "sheet.csv"
    write_csv(path, ["客户名称", "联系电话", "生日"], [
        ["张三", "139 1234 0002", ""],         # spaces
        ["李四", "+86 139-1234-0003", ""],     # country code and dashes
        ["王五", "(021) 6234-5678", ""],       # a landline with its area code
        ["", "13912340004", ""],               # no name: not a nameless customer
        ["赵六", "12345", ""],                 # no phone number at all
        ["钱七", "6234 5678", ""],             # a landline without its area code
        ["孙八", "13912340005", "1990-13-45"],
    ], "utf-8")
    code, out, _ = await scrm(capsys, "import", "customers", path)
    assert code == 1 and counts(out) == {"created": 3, "merged": 0, "unchanged": 0, "errors": 4, "conflicts": 0}
    async with db() as session:
        stored = dict((await session.execute(select(Customer.name, Customer.phone))).all())
    assert stored == {"张三": "13912340002", "李四": "13912340003", "王五": "021-62345678"}
    # The reasons name the columns as the sheet does, in Chinese, one line per row.
    assert "第 5 行：没有客户名称：每位客户都要有姓名" in out
    assert "第 6 行：联系电话不是有效的手机号或固定电话" in out and "第 7 行：联系电话不是有效的手机号或固定电话" in out
    assert "第 8 行：生日「1990-13-45」不是日期" in out
    words = re.sub(r"\S+\.csv", "", out)  # file names are the admin's
    assert not re.search(r"[A-Za-z]{3,}", words), words


async def test_a_dry_run_neither_creates_nor_migrates_the_database(db, backend, capsys, tmp_path, monkeypatch):
    path = tmp_path / "c.csv"
    write_csv(path, HEADERS, SMALL, "utf-8")
    code, out, err = await scrm(capsys, "import", "customers", path, "--dry-run")  # the fixture's current database
    assert code == 0 and counts(out)["created"] == 3 and "alembic" not in err and "已检查 3/3 行" in err
    assert (await table_sizes(db))["customers"] == 0

    missing = tmp_path / "data" / "scrm.sqlite3"
    monkeypatch.setenv("SCRM_DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    code, out, err = await scrm(capsys, "import", "customers", path, "--dry-run")
    assert code == 2 and "还不存在" in err and "scrm db upgrade" in err and "alembic" not in err
    assert not missing.exists() and not missing.parent.exists()

    behind = tmp_path / "behind.sqlite3"
    await upgrade_async(f"sqlite+aiosqlite:///{behind}", "0013")
    before = behind.read_bytes()
    monkeypatch.setenv("SCRM_DATABASE_URL", f"sqlite+aiosqlite:///{behind}")
    code, out, err = await scrm(capsys, "import", "customers", path, "--dry-run")
    assert code == 2 and "数据库结构是 0013 版" in err and "scrm db upgrade" in err and "alembic" not in err
    assert behind.read_bytes() == before  # not migrated


# -- conflicts ---------------------------------------------------------------------------------------

async def test_conflicts_are_reported_and_kept_unless_overwrite(db, capsys, tmp_path):
    ids = await staff_ids(db)
    async with db() as session:
        zhang = Customer(name="张三", phone="13800000001", company="华东机械", owner_id=ids["zhangwei"], care_consent=True)
        zhang.birthday = Birthday(3, 2, year=1990)
        li = Customer(name="李四", phone="13800000002", care_consent=True,
                      care_opted_out_at=datetime(2026, 10, 1, tzinfo=timezone.utc))
        wang = Customer(name="王五", phone="13800000003", company="鼎盛贸易")
        session.add_all([zhang, li, wang])
        await session.flush()
        session.add(CustomerIdentity(customer_id=zhang.id, channel=WECOM_CHANNEL, external_id="wmA"))
        await session.commit()
    path = tmp_path / "update.csv"
    write_csv(path, HEADERS, [
        ["张三", "13800000001", "华东机械", "", "农历三月初二", "李娜", "", "", "老朋友", "wmB", "否", ""],
        ["李四", "138-0000-0002", "", "", "", "", "", "", "", "", "是", ""],
        ["王五", "13900000003", "鼎盛贸易", "", "", "", "", "", "", "", "", ""],
    ], "utf-8")

    code, out, _ = await scrm(capsys, "import", "customers", path)
    assert counts(out) == {"created": 0, "merged": 1, "unchanged": 2, "errors": 0, "conflicts": 6}
    assert f"第 2 行 张三 #{zhang.id}：生日 现为「1990-03-02」，文件里是「农历三月初二」（保留）" in out
    assert "负责人 现为「张伟(zhangwei)」，文件里是「李娜(lina)」（保留）" in out
    assert "企业微信ID 现为「wmA」，文件里是「wmB」（保留）" in out
    assert f"第 3 行 李四 #{li.id}：关怀同意 现为「否（2026-10-01 已退订关怀）」，文件里是「是」（保留）" in out
    assert f"第 4 行 王五 #{wang.id}：手机 现为「138****0003」，文件里是「139****0003」（保留）" in out
    assert "加 --overwrite 可替换" in out and "13800000003" not in out  # phones stay masked in the output
    zhang_now = await customer_by_phone(db, "13800000001")
    assert zhang_now.birthday == Birthday(3, 2, year=1990) and zhang_now.owner_id == ids["zhangwei"]
    assert zhang_now.remark == "老朋友" and zhang_now.care_consent  # the empty remark was filled

    code, out, _ = await scrm(capsys, "import", "customers", path, "--overwrite")
    assert counts(out)["conflicts"] == 6 and "生日 现为「1990-03-02」，文件里是「农历三月初二」（已替换）" in out
    zhang_now = await customer_by_phone(db, "13800000001")
    assert str(zhang_now.birthday) == "农历三月初二" and zhang_now.owner_id == ids["lina"] and not zhang_now.care_consent
    async with db() as session:
        external = (await session.scalars(select(CustomerIdentity.external_id))).all()
    assert external == ["wmA"]  # WeCom's identity is never replaced from a spreadsheet
    assert not (await customer_by_phone(db, "13800000002")).may_receive_care  # nor a customer's opt-out
    assert (await customer_by_phone(db, "13900000003")).name == "王五"


# -- export ------------------------------------------------------------------------------------------

async def seed_for_export(sessions) -> None:
    ids = await staff_ids(sessions)
    async with sessions() as session:
        def add(owner: str | None, name: str, phone: str, **fields) -> Customer:
            birthday = fields.pop("birthday", None)
            customer = Customer(name=name, phone=phone, owner_id=ids[owner] if owner else None, **fields)
            customer.birthday = birthday
            session.add(customer)
            return customer

        rich = add("zhangwei", "张三", "13800000001", company="华东机械", remark="张总", care_consent=True,
                   description="喜欢喝茶\n第二行\n职位：采购经理", source="展会", contract_ends_on=date(2027, 6, 30),
                   birthday=Birthday(4, 15, lunar=True, leap=True, year=1987))
        add("zhangwei", "李四", "010-6234 5678", birthday=Birthday(3, 2))
        add("zhangwei", "", "13800000003", care_consent=True, care_opted_out_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
        add("lina", "王五", "13800000004", company="鼎盛贸易", birthday=Birthday(12, 31, year=1975))
        add("lina", "赵六", "", company="远航物流", description="生日: 1985-03-12")
        add("wangfang", "钱七", "13800000006")
        add("wangfang", "孙八", "13800000007", birthday=Birthday(12, 30, lunar=True))
        add(None, "周九", "+86 139 0000 0008")
        await session.flush()
        session.add_all([CustomerIdentity(customer_id=rich.id, channel=WECOM_CHANNEL, external_id="wmRICH1"),
                         CustomerIdentity(customer_id=rich.id, channel=WECOM_CHANNEL, external_id="wmRICH2"),
                         CustomerTag(customer_id=rich.id, name="VIP"), CustomerTag(customer_id=rich.id, name="老客户")])
        await session.commit()


async def snapshot(sessions) -> list[tuple]:
    """Everything an export carries, per customer, comparable across databases."""
    async with sessions() as session:
        customers = (await session.scalars(select(Customer))).all()
        tags = (await session.execute(select(CustomerTag.customer_id, CustomerTag.name))).all()
        identities = (await session.execute(select(CustomerIdentity.customer_id, CustomerIdentity.external_id))).all()
        return sorted(
            (c.name, c.phone, c.company, c.remark, c.description, c.source, c.birthday,
             c.owner.userid if c.owner else None,
             c.may_receive_care, c.contract_ends_on, sorted(t for i, t in tags if i == c.id),
             sorted(e for i, e in identities if i == c.id))
            for c in customers)


def exported_names(path: Path) -> list[str]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    workbook.close()
    assert list(rows[0]) == ["姓名", "手机", "公司", "职位", "生日", "负责人", "标签", "来源", "备注", "描述",
                             "企业微信ID", "关怀同意", "合同到期"]
    return sorted(r[0] or r[1] for r in rows[1:])


async def test_export_reimports_into_an_empty_database_as_the_same_customers(db, capsys, tmp_path):
    await seed_for_export(db)
    before = await snapshot(db)
    out_path = tmp_path / "export.xlsx"
    code, out, _ = await scrm(capsys, "export", "customers", out_path)
    assert code == 0 and "exported 8 customers" in out and "all customers (no --as given)" in out
    workbook = openpyxl.load_workbook(out_path)
    rich = [c.value for c in next(r for r in workbook.active.iter_rows() if r[0].value == "张三")]
    assert rich[1:10] == ["13800000001", "华东机械", "采购经理", "农历1987年闰四月十五", "张伟(zhangwei)", "VIP、老客户",
                          "展会", "张总", "喜欢喝茶\n第二行"]
    assert rich[10:12] == ["wmRICH1、wmRICH2", "是"] and rich[12].date() == date(2027, 6, 30)

    # Onto itself: nothing to do, but the customer stored without a name (from before names were
    # required) is not let in again nameless: its row is an error row saying what to fill in.
    code, out, _ = await scrm(capsys, "import", "customers", out_path)
    assert counts(out) == {"created": 0, "merged": 0, "unchanged": 7, "errors": 1, "conflicts": 0}
    assert "没有姓名：每位客户都要有姓名" in out

    async with db() as session:
        await session.execute(delete(Customer))
        await session.commit()
    code, out, _ = await scrm(capsys, "import", "customers", out_path)
    assert code == 1 and counts(out)["created"] == 7
    # The same customers, their phones now in the one spelling (010-6234 5678 → 010-62345678).
    assert await snapshot(db) == [(c[0], normalise_phone(c[1]) or c[1], *c[2:]) for c in before if c[0]]


async def test_export_is_limited_to_what_the_caller_may_see(db, capsys, tmp_path):
    await seed_for_export(db)
    mine, team = tmp_path / "mine.xlsx", tmp_path / "team.xlsx"
    code, out, _ = await scrm(capsys, "export", "customers", mine, "--as", "zhangwei")
    assert code == 0 and "scope: customers owned by 张伟(zhangwei)" in out
    assert exported_names(mine) == ["13800000003", "张三", "李四"]
    code, out, _ = await scrm(capsys, "export", "customers", team, "--as", "liuyang")
    assert "customers of 刘洋(liuyang)'s departments" in out
    assert exported_names(team) == ["13800000003", "张三", "李四", "王五", "赵六"]
    code, _, err = await scrm(capsys, "export", "customers", team, "--as", "nobody")
    assert code == 2 and "no staff member" in err
    async with db() as session:
        audit = (await session.execute(select(AuditEntry.actor, AuditEntry.detail)
                                       .where(AuditEntry.action == "customers.export").order_by(AuditEntry.id))).all()
    assert [(actor, re.search(r"count=(\d+)", detail).group(1)) for actor, detail in audit] == [
        ("zhangwei", "3"), ("liuyang", "5")]


def test_wecom_identities_are_looked_up_on_the_channel_the_connector_writes():
    assert WECOM_CHANNEL == EXTERNAL_CHANNEL
