"""转交 / handover: one customer to another rep, or all of a departing rep's customers."""

from __future__ import annotations

from bot.formatting import display_name
from bot.replies import Refusal
from bot.router import Arg, CommandContext, Router, UsageError
from config.templates import render
from crm_core.handover import HandoverService
from crm_core.models import Staff
from crm_core.staff import find_staff

router = Router("handover")

HANDOVER_ROLES = frozenset({"sales", "manager", "admin"})
BULK_ROLES = frozenset({"manager", "admin"})
ALL_WORDS = frozenset({"全部", "all"})


async def one_staff(ctx: CommandContext, who: str) -> Staff:
    """A colleague by name or userid, who must be an active member of the caller's scope (admins: anyone)."""
    matches = await find_staff(ctx.session, who)
    if not matches:
        raise Refusal("bot.staff_unknown", who=who[:20])
    if len(matches) > 1:
        raise Refusal("bot.staff_ambiguous", who=who[:20], userids="、".join(s.userid for s in matches))
    return matches[0]


@router.command("转交", aliases=("handover", "移交"), roles=HANDOVER_ROLES,
                args=[Arg("subject"), Arg("first"), Arg("second", optional=True)],
                usage="转交 <客户> <接手人>，或 转交 全部 <离职人> <接手人>（主管/管理员）")
async def handover(ctx: CommandContext, subject: str, first: str, second: str) -> str:
    """把客户（及其备注、待办、进行中的商机）转给同事"""
    scope = await ctx.scope()
    service = HandoverService(ctx.session)
    if subject.casefold() in ALL_WORDS:
        if not second:
            raise UsageError("handover all needs the leaving and the receiving rep")
        if ctx.staff.role not in BULK_ROLES:
            raise Refusal("bot.handover_all_not_allowed", audit=("customer.handover_denied", None, f"all of {first[:20]}"))
        leaving, receiving = await one_staff(ctx, first), await one_staff(ctx, second)
        if not (scope.covers_staff(leaving.id) and scope.covers_staff(receiving.id)):
            raise Refusal("bot.handover_outside_team", audit=("customer.handover_denied", None, f"{leaving.userid}->{receiving.userid}"))
        if leaving.id == receiving.id:
            raise Refusal("bot.handover_same")
        result = await service.all_of(leaving, receiving, by=ctx.staff)
        if result.customers == 0:
            return render("bot.handover_nothing", leaving=leaving.name or leaving.userid)
        await ctx.notify(receiving, render("bot.handover_notice_all", by=ctx.staff.name or ctx.staff.userid,
                                           leaving=leaving.name or leaving.userid, customers=result.customers,
                                           follow_ups=result.follow_ups, deals=result.deals))
        return render("bot.handover_all_done", leaving=leaving.name or leaving.userid, receiving=receiving.name or receiving.userid,
                      customers=result.customers, follow_ups=result.follow_ups, deals=result.deals)
    if second:
        raise UsageError("handover of one customer takes the customer and the receiving rep")
    customer = await ctx.customer(subject)
    receiving = await one_staff(ctx, first)
    if not receiving.active:
        raise Refusal("bot.staff_inactive", who=receiving.name or receiving.userid)
    if customer.owner_id == receiving.id:
        raise Refusal("bot.handover_already", name=display_name(customer), receiving=receiving.name or receiving.userid)
    result = await service.one(customer, receiving, by=ctx.staff)
    await ctx.notify(receiving, render("bot.handover_notice_one", by=ctx.staff.name or ctx.staff.userid,
                                       name=display_name(customer), follow_ups=result.follow_ups, deals=result.deals))
    return render("bot.handover_one_done", name=display_name(customer), receiving=receiving.name or receiving.userid,
                  follow_ups=result.follow_ups, deals=result.deals)
