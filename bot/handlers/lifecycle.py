"""客户状态 / lifecycle: a customer's lifecycle stage and how it got there; a rep may set it by hand.

Events move stages on their own (crm_core.lifecycle); the command is for what the system cannot
see (a deal closed offline, a customer who told the rep they went elsewhere). Every manual change
is audit-logged with the stage it replaced and kept in the stage history.
"""

from __future__ import annotations

from bot.formatting import display_name
from bot.replies import Refusal
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.lifecycle import CHURNED, STAGES, LifecycleService
from crm_core.models import Customer

router = Router("lifecycle")

WRITERS = frozenset({"sales", "manager", "admin"})
# 流失 is how people say 已流失; the English names work too.
EXTRA_WORDS = {"流失": CHURNED}


def stage_word(word: str) -> str:
    """意向, 意向客户, interested → interested; anything else is refused with the list of stages."""
    words = {render(f"lifecycle.{s}"): s for s in STAGES} | {s: s for s in STAGES} | EXTRA_WORDS
    key = word.casefold()
    stage = words.get(key) or words.get(key.removesuffix("客户"))
    if stage is None:
        raise Refusal("bot.lifecycle.unknown_stage", stage=word[:20],
                      stages="、".join(render(f"lifecycle.{s}") for s in STAGES))
    return stage


@router.command("客户状态", aliases=("lifecycle", "生命周期"), roles=WRITERS,
                args=[Arg("customer", customer=True), Arg("stage", optional=True, convert=stage_word)],
                usage="客户状态 <客户> [潜在|意向|成交|忠诚|沉睡|已流失]，如：客户状态 张三 意向")
async def lifecycle(ctx: CommandContext, customer: Customer, stage: str) -> str:
    """查看或手动设置客户状态（潜在 → 意向 → 成交 → 忠诚，沉睡，已流失）"""
    service, name = LifecycleService(ctx.session), display_name(customer)
    if not stage:
        ctx.audit("customer.view", customer.id, "lifecycle")
        current = render(f"lifecycle.{customer.lifecycle}")
        since = render("bot.lifecycle.since", at=ctx.local(customer.lifecycle_changed_at, "%Y-%m-%d")) \
            if customer.lifecycle_changed_at else ""
        lines = [render("bot.lifecycle.show", name=name, stage=current, since=since)]
        history = await service.history(customer.id)
        lines.append(render("bot.lifecycle.history_header") if history else render("bot.lifecycle.history_none"))
        lines += [render("bot.lifecycle.history_line", at=ctx.local(change.changed_at, "%m-%d %H:%M"),
                         from_stage=render(f"lifecycle.{change.from_stage}") if change.from_stage
                         else render("bot.lifecycle.new"),
                         to_stage=render(f"lifecycle.{change.to_stage}"),
                         reason=render(f"lifecycle_reasons.{change.reason}"),
                         by=render("bot.lifecycle.history_by", who=actor) if actor else "")
                  for change, actor in history]
        return "\n".join(lines)
    previous = customer.lifecycle
    if not await service.set_by_hand(customer, stage, by=ctx.staff.id, at=ctx.now):
        return render("bot.lifecycle.same", name=name, stage=render(f"lifecycle.{stage}"))
    ctx.audit("customer.lifecycle", customer.id, f"{previous} -> {stage}")
    return render("bot.lifecycle.set", name=name, from_stage=render(f"lifecycle.{previous}"),
                  to_stage=render(f"lifecycle.{stage}"))
