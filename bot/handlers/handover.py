"""转交 / handover: one customer to another rep, or all of a departing rep's customers."""

from __future__ import annotations

from bot.formatting import display_name
from bot.replies import Refusal
from bot.router import Arg, CommandContext, Router, UsageError
from config.templates import render
from crm_core.handover import HandoverService, HandoverStarted
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
    """把客户（及其备注、待办、进行中的商机）转给同事，经企业微信确认后生效"""
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
        if not receiving.active:
            raise Refusal("bot.staff_inactive", who=_name(receiving))
        started = await service.start(leaving, receiving, by=ctx.staff, message=_message(receiving))
        if not started.sent and not started.moved.customers:
            if started.already:
                return render("handover.already_running", count=started.already)
            return render("bot.handover_nothing", leaving=_name(leaving))
        return await _reply(ctx, started, leaving, receiving,
                            render("handover.started_all", leaving=_name(leaving), sent=started.sent,
                                   receiving=_name(receiving)))
    if second:
        raise UsageError("handover of one customer takes the customer and the receiving rep")
    customer = await ctx.customer(subject)
    receiving = await one_staff(ctx, first)
    if not receiving.active:
        raise Refusal("bot.staff_inactive", who=_name(receiving))
    if customer.owner_id == receiving.id:
        raise Refusal("bot.handover_already", name=display_name(customer), receiving=_name(receiving))
    started = await service.start(customer.owner, receiving, by=ctx.staff, customer=customer, message=_message(receiving))
    if started.already:
        raise Refusal("handover.one_running", name=display_name(customer))
    if started.sent:
        return render("handover.started_one", name=display_name(customer), receiving=_name(receiving))
    await ctx.notify(receiving, render("bot.handover_notice_one", by=_name(ctx.staff), name=display_name(customer),
                                       follow_ups=started.moved.follow_ups, deals=started.moved.deals))
    return render("bot.handover_one_done", name=display_name(customer), receiving=_name(receiving),
                  follow_ups=started.moved.follow_ups, deals=started.moved.deals)


async def _reply(ctx: CommandContext, started: HandoverStarted, leaving: Staff, receiving: Staff, sent_text: str) -> str:
    """What happened to a whole book of customers: sent to WeCom, moved at once, already on their way."""
    moved = started.moved
    if moved.customers:
        await ctx.notify(receiving, render("bot.handover_notice_all", by=_name(ctx.staff), leaving=_name(leaving),
                                           customers=moved.customers, follow_ups=moved.follow_ups, deals=moved.deals))
    if not started.sent:
        parts = [render("bot.handover_all_done", leaving=_name(leaving), receiving=_name(receiving),
                        customers=moved.customers, follow_ups=moved.follow_ups, deals=moved.deals)]
    else:
        parts = [sent_text]
        if moved.customers:
            parts.append(render("handover.moved_now", customers=moved.customers, leaving=_name(leaving),
                                follow_ups=moved.follow_ups, deals=moved.deals))
    if started.already:
        parts.append(render("handover.already_running", count=started.already))
    return "".join(parts)


def _name(staff: Staff) -> str:
    return staff.name or staff.userid


def _message(receiving: Staff) -> str:
    """transfer_success_msg: what WeCom tells the customer once the new rep took over (≤ 200 characters)."""
    return render("handover.transfer_message", receiving=_name(receiving))[:200]
