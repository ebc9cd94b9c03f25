"""`scrm targets import|list` and `scrm report targets` run as an operator would, against the running
service's database: a good sheet (after a dry run that changes nothing), a sheet with bad rows
(each named with the sheet's own column, the good rows still in), a sheet missing a column."""

from __future__ import annotations

import asyncio
import csv
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from crm_core.targets import SalesTarget
from scrm.cli import main as cli
from tests.support.chat import Chat
from tests.support.service import use_service_env


async def scrm(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def sheet(path: Path, header: list[str], rows: list[list]) -> Path:
    book = Workbook()
    page = book.active
    page.append(["2026年12月销售目标"])  # a title row above the header, as people make them
    page.append(header)
    for row in rows:
        page.append(row)
    book.save(path)
    return path


async def stored(chat: Chat) -> list[tuple[str, str, int, int]]:
    async with chat.service.sessions() as session:
        rows = (await session.scalars(select(SalesTarget).order_by(SalesTarget.month, SalesTarget.kind,
                                                                   SalesTarget.subject_id))).all()
    return [(t.month, t.kind, t.subject_id, t.amount) for t in rows]


@pytest.fixture
async def operator(team: Chat, monkeypatch) -> Chat:
    use_service_env(monkeypatch, team.service)
    return team


async def test_a_good_sheet_after_a_dry_run_that_changes_nothing(operator: Chat, tmp_path, capsys):
    chat = operator
    zhang, lina, liu = [await chat.staff(u) for u in ("zhangwei", "lina", "liuyang")]
    path = sheet(tmp_path / "targets.xlsx", ["月份", "销售", "部门", "目标金额"], [
        ["2026-12", "张伟", None, 500000],
        ["2026年12月", "lina", None, "30万"],
        [datetime(2026, 12, 1), None, "销售部", "200万"],
        ["2026/12", "刘洋", "", "12.5万"],
    ])

    code, out, err = await scrm(capsys, "targets", "import", str(path), "--dry-run")
    assert (code, err.splitlines()) == (0, ["  已检查 4/4 行"]), err  # progress on stderr
    assert out.splitlines() == ["targets.xlsx：共 4 行（试运行，什么都没有改）",
                                "设定 4 个目标（新增 4，更新 0，不变 0）"]
    assert await stored(chat) == []

    code, out, err = await scrm(capsys, "targets", "import", str(path))
    assert (code, err.splitlines()) == (0, ["  已导入 4/4 行"]), err
    assert out.splitlines() == ["targets.xlsx：共 4 行", "设定 4 个目标（新增 4，更新 0，不变 0）"]
    assert await stored(chat) == sorted([("2026-12", "department", 2, 2_000_000), ("2026-12", "staff", zhang.id, 500_000),
                                         ("2026-12", "staff", lina.id, 300_000), ("2026-12", "staff", liu.id, 125_000)])
    code, out, _ = await scrm(capsys, "targets", "import", str(path))
    assert code == 0 and out.splitlines()[1] == "设定 4 个目标（新增 0，更新 0，不变 4）"

    code, out, _ = await scrm(capsys, "targets", "list", "--month", "2026-12")
    assert code == 0
    assert out.splitlines()[0] == "2026-12 已设定的目标（元）"
    assert any(line.split()[:3] == ["张伟(zhangwei)", "500000", "cli"] for line in out.splitlines())
    assert any(line.split()[:2] == ["【部门】销售部", "2000000"] for line in out.splitlines())


async def test_bad_rows_are_named_by_their_column_and_the_rest_go_in(operator: Chat, tmp_path, capsys):
    chat = operator
    zhang = await chat.staff("zhangwei")
    path = sheet(tmp_path / "bad.xlsx", ["目标月份", "员工", "团队", "金额"], [
        ["2026-12", "张伟", None, "50万"],  # row 3: fine
        ["13月", "李娜", None, "30万"],
        ["2026-12", "李娜", None, "五十万"],
        ["2026-12", "李娜", "销售部", "30万"],
        ["2026-12", None, None, "30万"],
        ["2026-12", "王小明", None, "30万"],
        ["2026-12", "zhangwei", None, "60万"],  # the same target as row 3
        ["2026-12", None, "张伟", "30万"],
        ["2026-12", "李娜", None, 0],
        ["", "李娜", None, "30万"],
    ])

    code, out, err = await scrm(capsys, "targets", "import", str(path))
    assert code == 1, (out, err)
    errors = tmp_path / "bad.errors.csv"
    assert out.splitlines()[:3] == ["bad.xlsx：共 10 行", "设定 1 个目标（新增 1，更新 0，不变 0）",
                                    f"9 行有问题，没有导入，见 {errors}"]
    with errors.open(encoding="utf-8-sig") as f:
        reasons = {int(row[0]): row[-1] for row in list(csv.reader(f))[1:]}
    assert reasons == {
        4: "「目标月份」的「13月」看不懂，请写成 2026-12、2026年12月 或 12月",
        5: "「金额」的「五十万」不是大于 0 的金额，请写成 500000、50万 或 12.5万",
        6: "「员工」和「团队」只能填一个（一行是一个人或一个部门的目标）",
        7: "「员工」和「团队」都为空，不知道是谁的目标",
        8: "「员工」的「王小明」没有这个同事或部门",
        9: "与第 3 行是同一个月、同一个对象的目标（文件里只能出现一次）",
        10: "「团队」的「张伟」是同事，不是部门，请填在「员工」列",
        11: "「金额」的「0」不是大于 0 的金额，请写成 500000、50万 或 12.5万",
        12: "「目标月份」为空",
    }
    assert "  第 4 行：「目标月份」的「13月」看不懂，请写成 2026-12、2026年12月 或 12月" in out.splitlines()
    assert await stored(chat) == [("2026-12", "staff", zhang.id, 500_000)]


async def test_a_sheet_without_a_needed_column_imports_nothing(operator: Chat, tmp_path, capsys):
    chat = operator
    path = sheet(tmp_path / "no_month.xlsx", ["销售", "目标金额"], [["张伟", "50万"]])
    code, out, err = await scrm(capsys, "targets", "import", str(path), "--dry-run")
    assert code == 2 and out == ""
    assert err.strip() == ("表头缺少必需的列：月份。需要「月份」「目标金额」，以及「销售」或「部门」之一"
                           "（也认：月份：月、目标月份、month）。")
    code, _, err = await scrm(capsys, "targets", "import", str(path))
    assert code == 2
    assert await stored(chat) == []


async def test_report_targets_prints_the_attainment_table(operator: Chat, tmp_path, capsys):
    chat = operator
    await chat.ask("liuyang", "目标 张伟 11月 50万")
    await chat.ask("liuyang", "目标 销售部 11月 200万")
    code, out, err = await scrm(capsys, "report", "targets", "--as", "liuyang", "--month", "2026-11",
                                "--at", "2026-11-18T12:00+08:00")
    assert code == 0, err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == "业绩目标与达成 2026-11 刘洋 的范围"
    assert "【部门】销售部 200万 40万 2 20.0%" in lines
    assert "【部门】客户服务部 未设 0元 0 -" in lines
    assert "张伟 50万 30万 1 60.0%" in lines
    assert "李娜 未设 10万 1 -" in lines
    assert not [line for line in lines if "陈静" in line or "行政部" in line]
    code, out, _ = await scrm(capsys, "report", "targets", "--month", "2026-11", "--at", "2026-11-18T12:00+08:00")
    assert "【部门】行政部" not in out and "业绩目标与达成 2026-11 全公司" in " ".join(out.split())
    code, _, err = await scrm(capsys, "report", "targets", "--month", "13月")
    assert code == 2 and "--month 13月" in err
