"""Which customer and colleague names a chat line mentions, read from the database for each line.

Names are looked up rather than held in memory: at a million customers a process-wide name list
would cost hundreds of megabytes and go stale the moment a customer arrives, while one indexed
`name IN (...)` over the line's few dozen candidate spans is fresh and takes a millisecond.
Customers are looked up within the rep's data scope only, so a sentence about a colleague's
customer reads exactly like one about nobody (the reply must not tell that the name exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Staff

READ_CHARS = 200  # a longer line is pasted text: names are looked for at its start only, keeping the query small
NAME_LENGTHS = range(2, 6)  # people's names, 张三 to 欧阳娜娜 and 阿卜杜拉; companies need 查 <公司>
_LATIN = re.compile(r"[A-Za-z][A-Za-z.'-]{1,63}")  # Tony, O'Neil


@dataclass(frozen=True)
class Names:
    customers: frozenset[str] = frozenset()
    colleagues: dict[str, list[str]] = field(default_factory=dict)  # name -> userids

    def all(self) -> set[str]:
        return set(self.customers) | set(self.colleagues)


def candidate_spans(line: str) -> set[str]:
    """Every run of 2-5 Han characters in the line, and every Latin word: the names it could mention."""
    spans: set[str] = set(_LATIN.findall(line))
    for start in range(len(line)):
        for length in NAME_LENGTHS:
            span = line[start:start + length]
            if len(span) == length and all("\u4e00" <= ch <= "\u9fff" for ch in span):
                spans.add(span)
    return spans


async def names_in(session: AsyncSession, line: str, scope: list[ColumnElement[bool]]) -> Names:
    """One round trip for both: the customers' names (within scope) and the colleagues' userids."""
    spans = sorted(candidate_spans(line[:READ_CHARS]))
    if not spans:
        return Names()
    customers = select(Customer.name, literal("").label("userid")).where(Customer.name.in_(spans), *scope).distinct()
    colleagues = select(Staff.name, Staff.userid).where(Staff.name.in_(spans), Staff.active.is_(True))
    found: set[str] = set()
    userids: dict[str, list[str]] = {}
    for name, userid in (await session.execute(union_all(customers, colleagues))).all():
        if userid:
            userids.setdefault(name, []).append(userid)
        else:
            found.add(name)
    return Names(frozenset(found), {name: sorted(ids) for name, ids in userids.items()})
