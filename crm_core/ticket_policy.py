"""The ticket policy: when a message is a complaint worth a ticket (its verdict), categories,
priorities, groups and SLAs, from config/tickets.toml; who the agents are from its [routing]
sections or the deployment's own routing file (crm_core.ticket_routing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, load_policy, shipped_policy
from crm_core.ticket_routing import SELECTOR_KEYS, AgentSelector, SupportTeam

POLICY_FILE = CONFIG_DIR / "tickets.toml"
PRIORITIES = ("urgent", "high", "normal")  # most pressing first


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    group: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sla:
    label: str
    first_response: timedelta
    resolution: timedelta
    manager_after: timedelta


@dataclass(frozen=True)
class Group:
    name: str
    label: str
    agents: AgentSelector  # the group's own, or [routing]'s


@dataclass(frozen=True)
class Verdict:
    """Why a message is a complaint worth a ticket."""

    category: Category
    threats: tuple[str, ...]
    score: float
    signals: tuple[str, ...] = ()  # the words behind the score (Analysis.signals)


@dataclass(frozen=True)
class TicketPolicy:
    complaint_score: float
    reopen_days: int
    csat_days: int
    categories: tuple[Category, ...]
    other: Category
    threat_keywords: tuple[str, ...]
    vip_tags: frozenset[str]
    repeat_tickets: int
    repeat_days: int
    repeat_messages: int
    high_score: float
    sla: dict[str, Sla]
    groups: dict[str, Group]
    card_url: str

    @classmethod
    def from_toml(cls, raw: dict[str, Any], routing_raw: dict[str, Any] | None = None,
                  routing_source: str = "the routing file") -> TicketPolicy:
        """The policy file's contents; `routing_raw` (a deployment's own [routing] and [groups.*] agent_*
        keys) replaces its routing, so the shipped file never has to name anyone."""
        routing = _routing(raw, POLICY_FILE.name)
        if routing_raw is not None:
            routing = {**routing, **_routing(routing_raw, routing_source)}
        unknown = sorted(set(routing) - {""} - set(raw["groups"]))
        if unknown:
            raise ValueError(f"{routing_source if routing_raw is not None else POLICY_FILE.name}: routing for unknown "
                             f"group(s) {', '.join(unknown)}; the groups are {', '.join(raw['groups'])}")
        detect, priority = raw["detect"], raw["priority"]
        policy = cls(
            complaint_score=float(detect["complaint_score"]),
            reopen_days=int(detect["reopen_days"]),
            csat_days=int(detect["csat_days"]),
            categories=tuple(Category(c["name"], c["label"], c["group"], tuple(k.lower() for k in c["keywords"]))
                             for c in raw.get("category", [])),
            other=Category("other", raw["other"]["label"], raw["other"]["group"]),
            threat_keywords=tuple(k.lower() for k in priority["threat_keywords"]),
            vip_tags=frozenset(priority["vip_tags"]),
            repeat_tickets=int(priority["repeat_tickets"]),
            repeat_days=int(priority["repeat_days"]),
            repeat_messages=int(priority["repeat_messages"]),
            high_score=float(priority["high_score"]),
            sla={name: Sla(s["label"], _minutes(s["first_response"]), _minutes(s["resolution"]), _minutes(s["manager_after"]))
                 for name, s in raw["sla"].items()},
            groups={name: Group(name, g["label"], routing.get(name) or routing.get("", AgentSelector()))
                    for name, g in raw["groups"].items()},
            card_url=raw["notify"]["card_url"],
        )
        policy._check()
        return policy

    def _check(self) -> None:
        problems = [f"[sla.{p}] is missing" for p in PRIORITIES if p not in self.sla]
        problems += [f"category {c.name!r} routes to unknown group {c.group!r}"
                     for c in (*self.categories, self.other) if c.group not in self.groups]
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def routing_configured(self) -> bool:
        """Whether any group names its agents; without, tickets cannot reach anyone."""
        return any(group.agents for group in self.groups.values())

    def team(self, session: AsyncSession) -> SupportTeam:
        return SupportTeam(session, {name: group.agents for name, group in self.groups.items()})

    def category(self, name: str) -> Category:
        return next((c for c in self.categories if c.name == name), self.other)

    def categorise(self, text: str) -> Category | None:
        lowered = text.lower()
        return next((c for c in self.categories if any(k in lowered for k in c.keywords)), None)

    def threats(self, text: str) -> tuple[str, ...]:
        lowered = text.lower()
        return tuple(k for k in self.threat_keywords if k in lowered)

    def verdict(self, text: str, analysis: dict[str, Any] | None) -> Verdict | None:
        """A Verdict when the message should open or join a ticket, else None.

        The complaint signal itself decides (the message model's calibrated complaint score, see
        nlp/): a score at `complaint_score` or above, or a named threat (12315, 律师 …), opens a
        ticket. Sentiment alone never does: a worried question is negative, not a complaint."""
        if not analysis or not text.strip():
            return None
        score = float(analysis.get("complaint_score", 0.0))
        threats = self.threats(text)
        if not threats and score < self.complaint_score:
            return None
        signals = tuple(str(s) for s in analysis.get("signals") or ())
        return Verdict(self.categorise(text) or self.other, threats, score, signals)


def _routing(raw: dict[str, Any], path: Path) -> dict[str, AgentSelector]:
    """Selectors by group name ("" for [routing], every group's default) from a TOML document;
    only groups that name agents of their own are keys."""
    try:
        routing = {"": AgentSelector.from_table(raw["routing"], "[routing]")} if "routing" in raw else {}
        for name, group in raw.get("groups", {}).items():
            if any(key in group for key in SELECTOR_KEYS):
                routing[name] = AgentSelector.from_table(group, f"[groups.{name}]")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return routing


def _minutes(value: float) -> timedelta:
    return timedelta(minutes=float(value))


# The shipped policy, routing included (which names nobody): labels, categories and SLAs.
default_policy = shipped_policy(POLICY_FILE.name, TicketPolicy.from_toml)


@cache
def load_ticket_policy(routing_file: Path | None = None) -> TicketPolicy:
    """config/tickets.toml with a deployment's routing file, read once per process."""
    if routing_file is None:
        return default_policy()
    routing = load_policy(routing_file, dict)
    return load_policy(POLICY_FILE, lambda raw: TicketPolicy.from_toml(raw, routing, str(routing_file)))
