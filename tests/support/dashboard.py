"""Deals with a history, this month's targets, and `scrm report` read back: what the 看板's tests compare."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from crm_core.db import utcnow
from crm_core.deals import DealService, default_stages
from crm_core.models import Customer, Staff
from crm_core.targets import Subject, TargetService
from scrm.cli import main as cli
from tests.support.chat import SHANGHAI, Chat

# (customer, rep, [(stage, days ago, fields)]): deals whose history lies behind the real clock the page reads.
PLAN = [
    ("赵磊", "zhangwei", [("初访", 40, {}), ("需求确认", 35, {}), ("报价谈判", 20, {"budget": "30万"}), ("赢单", 2, {})]),
    ("孙丽", "zhangwei", [("初访", 25, {}), ("输单", 10, {"lost_reason": "价格太高"})]),
    ("周杰", "zhangwei", [("初访", 70, {}), ("输单", 65, {"lost_reason": "选了竞品"})]),
    ("吴敏", "lina", [("初访", 15, {}), ("方案演示", 5, {})]),
    ("冯雪", "lina", [("初访", 60, {}), ("报价谈判", 50, {"budget": "10万"}), ("赢单", 45, {})]),
]


async def seed_deals(chat: Chat) -> None:
    """The plan's deals (moved with the chat's own service), and this month's targets for 张伟 and 销售部."""
    await chat.onboard(*(name for name, _, _ in PLAN))
    now = utcnow()
    async with chat.service.sessions() as session:
        staff = {s.userid: s for s in (await session.scalars(select(Staff))).all()}
        for name, rep, moves in PLAN:
            customer = await session.scalar(select(Customer).where(Customer.name == name))
            for stage, days_ago, values in moves:
                await DealService(session, default_stages()).move(customer, stage, staff[rep], values=values,
                                                                  at=now - timedelta(days=days_ago))
        month = f"{now.astimezone(SHANGHAI):%Y-%m}"
        targets = TargetService(session)
        zhang = staff["zhangwei"]
        await targets.set(Subject("staff", zhang.id, zhang.name), month, 500_000, actor=None, actor_label="cli", at=now)
        await targets.set(Subject("department", 2, "销售部"), month, 1_000_000, actor=None, actor_label="cli", at=now)
        await session.commit()


@dataclass
class Report:
    """`scrm report …` output, one line per row with the table's spacing folded."""

    lines: list[str]

    def has_row(self, cells: list[str]) -> bool:
        return " ".join(c for c in cells if c) in self.lines

    def has(self, text: str) -> bool:
        return " ".join(text.split()) in self.lines


async def scrm_report(capsys, *argv: str) -> Report:
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "report", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return Report([" ".join(line.split()) for line in out.splitlines()])
