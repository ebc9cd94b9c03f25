"""Deals along a configurable pipeline (config/deal_pipeline.toml).

A stage can require fields before a deal enters it (a budget before 报价谈判, a reason before
输单); `move` refuses with MissingDealFieldsError naming them, so the caller can ask and retry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.policies import CONFIG_DIR, shipped_policy
from crm_core.errors import MissingDealFieldsError, UnknownStageError
from crm_core.lifecycle import LifecycleService
from crm_core.models import Customer, Deal, DealStageChange, Staff

_MONEY = re.compile(r"(\d+(?:\.\d+)?)\s*(万|w|W|千|k|K|元)?元?")
_MONEY_UNITS = {"万": 10_000, "w": 10_000, "W": 10_000, "千": 1_000, "k": 1_000, "K": 1_000}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str = "text"  # money | text
    prompt: str = ""

    def parse(self, raw: str) -> Any:
        """The stored value for what a rep typed; None when it does not read as this kind."""
        raw = raw.strip()
        if self.kind == "money":
            return parse_money(raw)
        return raw[:500] or None


@dataclass(frozen=True)
class DealStages:
    stages: tuple[str, ...]
    won: str
    lost: str
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fields: dict[str, FieldSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        every = set(self.all)
        unknown = [s for s in self.requires if s not in every] + [
            f for names in self.requires.values() for f in names if f not in self.fields
        ]
        if unknown or len(every) != len(self.all):
            raise ValueError(f"deal pipeline config: unknown or repeated stages/fields {unknown}")

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.stages, self.won, self.lost)

    @classmethod
    def from_toml(cls, data: dict[str, Any]) -> "DealStages":
        fields = {
            name: FieldSpec(name=name, label=str(spec.get("label", name)), kind=str(spec.get("kind", "text")),
                            prompt=str(spec.get("prompt", "")))
            for name, spec in data.get("fields", {}).items()
        }
        return cls(
            stages=tuple(data["stages"]), won=str(data["won"]), lost=str(data["lost"]),
            requires={str(k): tuple(v) for k, v in data.get("requires", {}).items()}, fields=fields,
        )


DEAL_PIPELINE_FILE = CONFIG_DIR / "deal_pipeline.toml"
default_stages = shipped_policy(DEAL_PIPELINE_FILE.name, DealStages.from_toml)


def parse_money(text: str) -> int | None:
    """50万 → 500000, 12.5万 → 125000, 30w → 300000, 300000元 → 300000; None for anything else."""
    match = _MONEY.fullmatch(text.replace(",", "").replace("，", ""))
    if not match:
        return None
    return round(float(match.group(1)) * _MONEY_UNITS.get(match.group(2) or "", 1))


class DealService:
    def __init__(self, session: AsyncSession, stages: DealStages):
        self.session = session
        self.stages = stages

    async def current(self, customer_id: int) -> Deal | None:
        """The open deal, else the most recently closed one."""
        stmt = (
            select(Deal)
            .where(Deal.customer_id == customer_id)
            .order_by((Deal.status == "open").desc(), Deal.stage_changed_at.desc(), Deal.id.desc())
            .limit(1)
        )
        return await self.session.scalar(stmt)

    async def move(self, customer: Customer, stage: str, by: Staff, *, values: dict[str, str], at: datetime) -> tuple[Deal, str]:
        """Put the customer's open deal (a new one if none is open) into `stage`; returns (deal, previous stage)."""
        if stage not in self.stages.all:
            raise UnknownStageError(f"unknown stage {stage!r}")
        deal = await self.session.scalar(select(Deal).where(Deal.customer_id == customer.id, Deal.status == "open").limit(1))
        previous = deal.stage if deal is not None else ""
        known = {**(deal.fields if deal is not None else {})}
        if deal is not None and deal.lost_reason:
            known["lost_reason"] = deal.lost_reason
        for name, raw in values.items():
            spec = self.stages.fields.get(name)
            parsed = spec.parse(raw) if spec else None
            if parsed is not None:
                known[name] = parsed
        missing = [name for name in self.stages.requires.get(stage, ()) if known.get(name) in (None, "")]
        if missing:
            raise MissingDealFieldsError(stage, missing)
        if deal is None:
            deal = Deal(customer_id=customer.id, owner_id=customer.owner_id or by.id, stage=stage, status="open",
                        fields={}, lost_reason="", created_at=at, stage_changed_at=at)
            self.session.add(deal)
        deal.lost_reason = str(known.pop("lost_reason", deal.lost_reason or ""))
        deal.fields = known
        entered = deal.stage != stage or not previous
        if entered:
            deal.stage, deal.stage_changed_at = stage, at
        if stage in (self.stages.won, self.stages.lost):
            deal.status = "won" if stage == self.stages.won else "lost"
            deal.closed_at = at
        await self.session.flush()
        if entered:  # the funnel's history: one row per stage entered, 赢单/输单 by their pipeline names
            self.session.add(DealStageChange(deal_id=deal.id, customer_id=deal.customer_id, owner_id=deal.owner_id,
                                             from_stage=previous, to_stage=stage, changed_at=at))
            await self.session.flush()
        await LifecycleService(self.session).deal_moved(customer, deal, previous, at=at, actor_id=by.id)
        return deal, previous
