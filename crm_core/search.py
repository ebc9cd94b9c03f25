"""Finding customers the way reps type them: name, pinyin, initials, phone or its tail, company, remark.

Every branch is an indexed equality or prefix match (see the indexes at the end of
crm_core/models.py); there is no `%q%` anywhere, so a lookup stays fast at a million rows.
Equality branches have (key, last_contact_at DESC NULLS LAST) indexes, so their most recently
contacted matches come straight off the index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Staff
from crm_core.search_keys import name_keys, phone_digits

_PHONE_LIKE = re.compile(r"[\d\s+\-()]+")
_LATIN = re.compile(r"[A-Za-z][A-Za-z\s]*")


@dataclass(frozen=True)
class Match:
    """A customer as a list shows it, and the id to pick it by: a pick list of 50 needs no more, and
    loading 50 whole customers (their owner joined, their identities after) cost most of a lookup."""

    id: int
    name: str
    remark: str
    company: str
    phone: str
    owner_name: str | None


@dataclass(frozen=True)
class SearchPage:
    matches: list[Match]
    total: int  # up to the page size; `more`: further matches exist ("more than a page" is all a chat list needs)
    more: bool = False


class CustomerSearch:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def find(self, q: str, *, where: list[ColumnElement[bool]] | None = None, limit: int = 50) -> SearchPage:
        """Matches for `q` within `where` (the caller's data scope): exact names first, then most recently contacted.

        Each way of matching is its own ordered, limited subquery, so a common query (`wl` matches
        thousands at a million customers) reads `limit` index entries per branch instead of every match."""
        branches = match_branches(q)
        if not branches:
            return SearchPage([], 0)
        scope = where or []
        q = q.strip()
        rank = case((or_(Customer.name == q, Customer.name_pinyin == q.lower()), 0), else_=1).label("rank")
        parts = []
        for branch in branches:
            matches = select(Customer.id, Customer.last_contact_at, rank).where(branch.condition, *scope)
            if branch.few:
                # Read the matches off their own index, then sort: PostgreSQL otherwise sometimes walks
                # ix_customers_newest_first instead and filters ~35,000 rows for `王晶` (93-207 ms at a
                # million; 1,317 matches read and sorted: 10 ms). OFFSET 0 keeps the two steps apart.
                fenced = matches.offset(0).subquery()
                matches = select(fenced.c.id, fenced.c.last_contact_at, fenced.c.rank)
                recent_first = (fenced.c.last_contact_at.desc().nulls_last(), fenced.c.id)
            else:
                recent_first = (Customer.last_contact_at.desc().nulls_last(), Customer.id)
            part = matches.order_by(*recent_first).limit(limit + 1).subquery()
            parts.append(select(part.c.id, part.c.last_contact_at, part.c.rank))
        candidates = union(*parts).subquery()
        # One row past the page tells "more" without a count: more than `limit` customers match only
        # if a branch fills its `limit + 1` rows or the branches together do.
        ranked = (
            select(candidates)
            .order_by(candidates.c.rank, candidates.c.last_contact_at.desc().nulls_last(), candidates.c.id)
            .limit(limit + 1)
            .subquery()
        )
        rows = (await self.session.execute(
            select(*_MATCH_COLUMNS)
            .select_from(ranked)
            .join(Customer, Customer.id == ranked.c.id)
            .outerjoin(Staff, Staff.id == Customer.owner_id)
            .order_by(ranked.c.rank, ranked.c.last_contact_at.desc().nulls_last(), ranked.c.id)
        )).all()
        shown = [Match(*row) for row in rows[:limit]]
        return SearchPage(shown, len(shown), more=len(rows) > limit)

    async def suggest(self, q: str, *, where: list[ColumnElement[bool]] | None = None, limit: int = 5) -> list[Match]:
        """Close names for a query that found nothing: same sound (张珊 for 张三), then same initials."""
        pinyin, initials = name_keys(q.strip())
        if not initials:
            return []
        sound_alike = or_(Customer.name_pinyin == pinyin, Customer.name_initials == initials)
        stmt = (
            select(*_MATCH_COLUMNS)
            .outerjoin(Staff, Staff.id == Customer.owner_id)
            .where(sound_alike, *(where or []))
            .order_by(case((Customer.name_pinyin == pinyin, 0), else_=1), Customer.id)
            .limit(limit)
        )
        return [Match(*row) for row in (await self.session.execute(stmt)).all()]


_MATCH_COLUMNS = (Customer.id, Customer.name, Customer.remark, Customer.company, Customer.phone, Staff.name)


@dataclass(frozen=True)
class Branch:
    """One way a query may match. `few`: it matches few enough customers to read them all and sort."""

    condition: ColumnElement[bool]
    few: bool = False


def match_branches(q: str) -> list[Branch]:
    """The indexed conditions a query may match, one per way of matching; none for a blank query."""
    q = q.strip()
    if not q:
        return []
    digits = phone_digits(q)
    if _PHONE_LIKE.fullmatch(q) and len(digits) >= 4:
        if len(digits) == 4:
            return [Branch(Customer.phone_tail == digits)]
        return [Branch(Customer.phone == q), Branch((Customer.phone_tail == digits[-4:]) & Customer.phone.like(f"%{digits}"))]
    latin = bool(_LATIN.fullmatch(q))
    # Two or more characters of a Chinese name are a surname and more: about 0.1 % of the customers at
    # most (王晶, 王军: ~1,300 of a million), and a remark mostly starts with the name. One character (王)
    # or a company's city (上海) is far more: those the planner weighs.
    few = len(q) >= 2 and not latin
    branches = [Branch(Customer.name == q), Branch(_prefix(Customer.name, q), few=few),
                Branch(_prefix(Customer.company, q)), Branch(_prefix(Customer.remark, q), few=few)]
    if latin:
        letters = "".join(q.lower().split())
        branches += [Branch(Customer.name_pinyin == letters), Branch(Customer.name_initials == letters)]
        if len(letters) >= 2:
            branches.append(Branch(_prefix(Customer.name_pinyin, letters)))
    return branches


def _prefix(column, text: str) -> ColumnElement[bool]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"{escaped}%", escape="\\")
