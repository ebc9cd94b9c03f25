"""Who gets a new lead: the sales groups of `config/sales_groups.toml` and the rule that picks a rep.

The pure half reads the file and decides (`SalesGroups`, `region_of`, `SalesGroup.candidates`,
`pick_least_loaded`, `pick_round_robin`); `LeadAssigner` feeds it from the database. It locks the
candidates' staff rows before it counts, so two workers assigning at the same moment queue up and
the second sees the first one's pick instead of choosing the same rep. Round-robin remembers its
place through the audit trail: every rule assignment is recorded there, in lock order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, shipped_policy
from crm_core.audit import AuditService
from crm_core.models import AuditEntry, Customer, Staff

SALES_GROUPS_FILE = CONFIG_DIR / "sales_groups.toml"
STRATEGIES = ("least_loaded", "round_robin")
ASSIGNED = "lead.assigned"
CLOSED_LIFECYCLES = ("churned",)  # customers who no longer count towards a rep's load


@dataclass(frozen=True)
class SalesGroup:
    name: str
    members: tuple[str, ...]
    strategy: str = "least_loaded"
    regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # region -> members serving it

    def candidates(self, region: str | None) -> tuple[str, ...]:
        """The members who serve `region`, or every member when none is set up for it."""
        serving = self.regions.get(region or "", ())
        return tuple(m for m in self.members if m in serving) or self.members


@dataclass(frozen=True)
class SalesGroups:
    groups: Mapping[str, SalesGroup]
    region_words: Mapping[str, tuple[str, ...]]  # region -> province and city words

    def get(self, name: str) -> SalesGroup | None:
        return self.groups.get(name)

    def region_of(self, *texts: str) -> str | None:
        """The first region named by the first text that names one (channel name before company)."""
        for text in texts:
            for region, words in self.region_words.items():
                if text and any(word in text for word in words):
                    return region
        return None

    @classmethod
    def from_toml(cls, data: dict[str, Any]) -> "SalesGroups":
        region_words = {str(r): tuple(str(w) for w in words) for r, words in data.get("regions", {}).items()}
        groups: dict[str, SalesGroup] = {}
        for entry in data.get("groups", []):
            name, members = str(entry["name"]), tuple(str(m) for m in entry.get("members", []))
            strategy = str(entry.get("strategy", "least_loaded"))
            regions = {str(r): tuple(str(m) for m in ms) for r, ms in entry.get("regions", {}).items()}
            problems = [
                *([f"strategy {strategy!r} (use {' or '.join(STRATEGIES)})"] if strategy not in STRATEGIES else []),
                *([] if members else ["no members"]),
                *(f"region {r!r} is not in [regions]" for r in regions if r not in region_words),
                *(f"{m!r} in region {r!r} is not a member" for r, ms in regions.items() for m in ms if m not in members),
                *([f"name {name!r} is used twice"] if name in groups else []),
            ]
            if problems:
                raise ValueError(f"sales group {name!r}: " + "; ".join(problems))
            groups[name] = SalesGroup(name, members, strategy, regions)
        return cls(groups, region_words)



default_groups = shipped_policy(SALES_GROUPS_FILE.name, SalesGroups.from_toml)


def pick_least_loaded(candidates: Sequence[str], loads: Mapping[str, int]) -> str:
    """Fewest open customers; a tie goes to whoever is listed first."""
    return min(candidates, key=lambda userid: (loads.get(userid, 0), candidates.index(userid)))


def pick_round_robin(candidates: Sequence[str], last: str | None) -> str:
    """The candidate after the one who got the group's previous lead (the first when unknown)."""
    if last not in candidates:
        return candidates[0]
    return candidates[(candidates.index(last) + 1) % len(candidates)]


class LeadAssigner:
    def __init__(self, session: AsyncSession, groups: SalesGroups):
        self.session = session
        self.groups = groups

    async def assign(self, group: SalesGroup, customer: Customer, staff: Iterable[Staff], *, hints: Sequence[str]) -> Staff | None:
        """Give `customer` to a member of `group` by its rule and record it; None when no member is active.

        `staff`: the members' rows (the caller makes sure they exist); `hints`: texts that may name a
        region, most telling first (the channel's name, then the customer's company and description)."""
        by_userid = {s.userid: s for s in staff if s.active and s.userid in group.members}
        candidates = [u for u in group.candidates(self.groups.region_of(*hints)) if u in by_userid]
        if not candidates:
            candidates = [u for u in group.members if u in by_userid]
        if not candidates:
            return None
        ids = sorted(by_userid[u].id for u in candidates)
        # Rows locked in id order: concurrent assignments to this group wait here for each other.
        await self.session.execute(select(Staff.id).where(Staff.id.in_(ids)).order_by(Staff.id).with_for_update())
        if group.strategy == "round_robin":
            chosen = pick_round_robin(candidates, await self._last_assigned(group))
        else:
            chosen = pick_least_loaded(candidates, await self._loads(ids, by_userid, exclude=customer.id))
        owner = by_userid[chosen]
        customer.owner_id = owner.id
        AuditService(self.session).record(actor="system", action=ASSIGNED, customer_id=customer.id,
                                          detail=f"group={group.name};owner={owner.userid};rule={group.strategy}")
        await self.session.flush()
        return owner

    async def _loads(self, ids: list[int], by_userid: Mapping[str, Staff], *, exclude: int) -> dict[str, int]:
        rows = await self.session.execute(
            select(Customer.owner_id, func.count())
            .where(Customer.owner_id.in_(ids), Customer.lifecycle.not_in(CLOSED_LIFECYCLES), Customer.id != exclude)
            .group_by(Customer.owner_id)
        )
        userid_of = {s.id: u for u, s in by_userid.items()}
        return {userid_of[owner_id]: count for owner_id, count in rows.all()}

    async def _last_assigned(self, group: SalesGroup) -> str | None:
        detail = await self.session.scalar(
            select(AuditEntry.detail)
            .where(AuditEntry.action == ASSIGNED, AuditEntry.detail.startswith(f"group={group.name};", autoescape=True))
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        if detail is None:
            return None
        return dict(part.split("=", 1) for part in detail.split(";")).get("owner")
