"""阶段 / stage, 赢单, 输单: moving a customer's deal along the configured pipeline."""

from __future__ import annotations

from bot.formatting import display_name, money
from bot.replies import NeedsAnswer, Refusal
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.deals import DealService
from crm_core.errors import MissingDealFieldsError
from crm_core.models import Customer

router = Router("deals")

DEAL_ROLES = frozenset({"sales", "manager", "admin"})


async def move(ctx: CommandContext, customer: Customer, stage: str, values: dict[str, str]) -> str:
    """Move, asking for the first missing required field; the rep's answer re-runs the command."""
    stages = ctx.stages
    if stage not in stages.all:
        raise Refusal("bot.stage_unknown", stage=stage[:20], stages=" → ".join(stages.stages), won=stages.won, lost=stages.lost)
    try:
        deal, previous = await DealService(ctx.session, stages).move(
            customer, stage, ctx.staff, values={**values, **ctx.answers}, at=ctx.now
        )
    except MissingDealFieldsError as exc:
        spec = stages.fields[exc.missing[0]]
        raise NeedsAnswer(spec.name, render("bot.stage_needs", stage=stage, field=spec.label, prompt=spec.prompt)) from exc
    ctx.audit("deal.stage", customer.id, f"{previous or '-'} -> {stage}")
    if deal.status == "won":
        return render("bot.deal_won", name=display_name(customer))
    if deal.status == "lost":
        return render("bot.deal_lost_saved", name=display_name(customer), reason=deal.lost_reason)
    budget = deal.fields.get("budget")
    extra = render("bot.stage_budget", budget=money(budget)) if budget else ""
    return render("bot.stage_moved", name=display_name(customer), previous=previous or render("bot.stage_new"), stage=stage, extra=extra)


@router.command("阶段", aliases=("stage",), roles=DEAL_ROLES,
                args=[Arg("customer", customer=True), Arg("stage")], usage="阶段 <客户> <阶段>，如：阶段 张三 报价谈判")
async def stage(ctx: CommandContext, customer: Customer, stage: str) -> str:
    """推进商机阶段（初访 → 需求确认 → 方案演示 → 报价谈判 → 签约回款，或 赢单/输单）"""
    return await move(ctx, customer, stage, {})


@router.command("赢单", aliases=("won",), roles=DEAL_ROLES, args=[Arg("customer", customer=True)], usage="赢单 <客户>")
async def won(ctx: CommandContext, customer: Customer) -> str:
    """标记赢单"""
    return await move(ctx, customer, ctx.stages.won, {})


@router.command("输单", aliases=("lost",), roles=DEAL_ROLES,
                args=[Arg("customer", customer=True), Arg("reason", rest=True)], usage="输单 <客户> <原因>，如：输单 张三 价格太高")
async def lost(ctx: CommandContext, customer: Customer, reason: str) -> str:
    """标记输单（必须写原因）"""
    return await move(ctx, customer, ctx.stages.lost, {"lost_reason": reason})
