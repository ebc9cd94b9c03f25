"""Which customer and colleague names a chat line mentions, read from the database for each line.

Names are looked up rather than held in memory: at a million customers a process-wide name list
would cost hundreds of megabytes and go stale the moment a customer arrives, while one indexed
`name IN (...)` over the line's few dozen candidate spans is fresh and takes a millisecond.
Customers are looked up within the rep's data scope only, so a sentence about a colleague's
customer reads exactly like one about nobody (the reply must not tell that the name exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Staff

NAME_LENGTHS = range(2, 6)  # people's names, 张三 to 欧阳娜娜 and 阿卜杜拉; companies need 查 <公司>


@dataclass(frozen=True)
class Names:
    customers: frozenset[str] = frozenset()
    colleagues: dict[str, list[Staff]] = field(default_factory=dict)

    def all(self) -> set[str]:
        return set(self.customers) | set(self.colleagues)


def candidate_spans(line: str) -> set[str]:
    """Every run of 2-5 Han characters in the line: the names it could mention."""
    spans: set[str] = set()
    for start in range(len(line)):
        for length in NAME_LENGTHS:
            span = line[start:start + length]
            if len(span) == length and all("\u4e00" <= ch <= "\u9fff" for ch in span):
                spans.add(span)
    return spans


async def names_in(session: AsyncSession, line: str, scope: list[ColumnElement[bool]]) -> Names:
    spans = sorted(candidate_spans(line))
    if not spans:
        return Names()
    customers = await session.scalars(select(Customer.name).where(Customer.name.in_(spans), *scope).distinct())
    colleagues: dict[str, list[Staff]] = {}
    for staff in await session.scalars(select(Staff).where(Staff.name.in_(spans), Staff.active.is_(True))
                                       .order_by(Staff.id)):
        colleagues.setdefault(staff.name, []).append(staff)
    return Names(frozenset(customers.all()), colleagues)
