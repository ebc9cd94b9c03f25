"""工单 / tickets: support agents work complaint tickets from chat.

Who may see a ticket is crm_core.ticket_routing's one rule, the API's too: the assignee, the
group's agents and managers, the customer's owner, the managers of the owner's departments and the
admins. A ticket outside it answers exactly like a ticket number that does not exist (numbers are
sequential, so guessable), and the attempt is audit-logged. Of those who see it, support agents
act on tickets assigned to them or still unassigned; managers and admins on any. Every step goes
through crm_core.tickets, which records who did it and when and sends what the customer or a
colleague must hear through the outbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.formatting import display_name
from bot.replies import Listing, Refusal
from bot.router import Arg, CommandContext, Router, UsageError
from config.templates import render
from crm_core.staff import find_staff
from crm_core.ticket_models import Ticket
from crm_core.ticket_routing import TicketAccess
from crm_core.tickets import (
    NoCustomerChannelError,
    TicketAlreadyOpenError,
    TicketNotFoundError,
    TicketService,
    TicketStateError,
    customer_name,
    is_ticket_number,
)

router = Router("tickets")

TICKET_ROLES = frozenset({"support", "manager", "admin"})
LEADS = frozenset({"manager", "admin"})


def ticket_number(word: str) -> str:
    """`T20261122-0042`, any case."""
    if not is_ticket_number(word):
        raise ValueError("not a ticket number")
    return word.upper()


NUMBER = Arg("number", convert=ticket_number)
DISMISS_WORDS = frozenset({"误判", "dismiss"})
DISMISS = "dismiss"


def ticket_or_action(word: str) -> str:
    """A ticket number, or 误判 (dismiss) before one."""
    return DISMISS if word.casefold() in DISMISS_WORDS else ticket_number(word)


def _service(ctx: CommandContext) -> TicketService:
    return TicketService(ctx.session, ctx.tickets, ctx.timezone)


async def _ticket(ctx: CommandContext, number: str, *, own: bool = True) -> Ticket:
    """The ticket, if the caller may see it and (`own`) work on it: assigned to them or unassigned,
    unless a lead. One not theirs to see is "not found", like one that does not exist."""
    service = _service(ctx)
    try:
        ticket = await service.get(number)
    except TicketNotFoundError as exc:
        raise Refusal("tickets.bot.not_found", number=number) from exc
    if not await TicketAccess(service.team, ctx.staff, await ctx.scope()).allows(ticket):
        raise Refusal("tickets.bot.not_found", number=number,
                      audit=("ticket.view_denied", ticket.customer_id, ticket.number))
    if own and ctx.staff.role not in LEADS and ticket.assignee_id not in (None, ctx.staff.id):
        raise Refusal("tickets.bot.not_yours", number=number,
                      agent=display_staff(ticket.assignee) if ticket.assignee else render("tickets.nobody"))
    return ticket


@contextmanager
def _refusals(ticket: Ticket) -> Iterator[None]:
    """Business refusals from the ticket service, as friendly replies."""
    try:
        yield
    except TicketStateError as exc:
        raise Refusal("tickets.bot.wrong_state", number=ticket.number, status=status_label(ticket.status)) from exc
    except NoCustomerChannelError as exc:
        raise Refusal("tickets.bot.no_channel", number=ticket.number, customer=customer_name(ticket.customer)) from exc
    except TicketAlreadyOpenError as exc:
        raise Refusal("tickets.bot.already_open", number=ticket.number, customer=customer_name(ticket.customer)) from exc


def display_staff(staff) -> str:
    return staff.name or staff.userid


def status_label(status: str) -> str:
    return render(f"tickets.status.{status}")


@router.command("工单", aliases=("tickets", "ticket"), roles=TICKET_ROLES,
                args=[Arg("target", optional=True, convert=ticket_or_action),
                      Arg("number", optional=True, convert=ticket_number), Arg("note", optional=True, rest=True)],
                usage="工单 [工单号] | 工单 误判 <工单号> [说明]，如：工单 T20261122-0042")
async def tickets(ctx: CommandContext, target: str, number: str, note: str) -> Listing | str:
    """我的待处理工单；带工单号查看详情和处理记录；「工单 误判 工单号」标记不是投诉"""
    service = _service(ctx)
    if target == DISMISS:
        if not number:
            raise UsageError("missing ticket number")
        return await _dismiss(ctx, await _ticket(ctx, number), note)
    if number or note:
        raise UsageError("nothing follows a ticket number")
    if target:
        return await _details(ctx, await _ticket(ctx, target, own=False))
    mine = await service.assigned_to(ctx.staff)
    queued = await service.unassigned_in_groups(ctx.staff)
    queue_line = render("tickets.bot.queue", count=queued) if queued else ""
    if not mine:
        return render("tickets.bot.none_mine") + (f"\n{queue_line}" if queue_line else "")
    policy = ctx.tickets
    lines = [
        render("tickets.bot.line", index=i, number=t.number, priority=policy.sla[t.priority].label,
               customer=customer_name(t.customer), category=policy.category(t.category).label,
               due=ctx.local(t.resolution_due_at, "%m-%d %H:%M"), excerpt=t.summary[:30])
        for i, t in enumerate(mine, start=1)
    ]
    ctx.audit("ticket.list_mine", detail=f"count={len(mine)}")
    return Listing(render("tickets.bot.header", count=len(mine)), lines, queue_line)


async def _dismiss(ctx: CommandContext, ticket: Ticket, note: str) -> str:
    """Close a ticket the complaint detection opened by mistake; the verdict is kept for retraining."""
    if ticket.dismissed_at is not None:
        raise Refusal("tickets.bot.already_dismissed", number=ticket.number)
    with _refusals(ticket):
        await _service(ctx).dismiss(ticket, ctx.staff, ctx.now, note)
    ctx.audit("ticket.dismiss", ticket.customer_id, ticket.number)
    return render("tickets.bot.dismissed", number=ticket.number, customer=display_name(ticket.customer))


async def _details(ctx: CommandContext, ticket: Ticket) -> Listing:
    policy = ctx.tickets
    ctx.audit("ticket.view", ticket.customer_id, ticket.number)
    head = render(
        "tickets.bot.details", number=ticket.number, status=status_label(ticket.status),
        customer=display_name(ticket.customer), category=policy.category(ticket.category).label,
        priority=policy.sla[ticket.priority].label, group=policy.groups[ticket.group].label,
        agent=display_staff(ticket.assignee) if ticket.assignee else render("tickets.nobody"),
        first_due=ctx.local(ticket.first_response_due_at, "%m-%d %H:%M"),
        due=ctx.local(ticket.resolution_due_at, "%m-%d %H:%M"), excerpt=ticket.summary,
        reasons=TicketService.open_reasons(ticket),
        verdict=render("tickets.bot.verdict_dismissed") if ticket.dismissed_at else "",
        csat=ticket.csat if ticket.csat is not None else render("tickets.bot.no_csat"),
    )
    history = [
        render("tickets.bot.history_line", when=ctx.local(e.created_at, "%m-%d %H:%M"),
               who=display_staff(e.actor) if e.actor else render("tickets.system"),
               what=render(f"tickets.event.{e.kind}"), detail=e.detail[:60])
        for e in await _service(ctx).history(ticket)
    ]
    return Listing(head, history)


@router.command("接单", aliases=("accept",), roles=TICKET_ROLES, args=[NUMBER], usage="接单 <工单号>")
async def accept(ctx: CommandContext, number: str) -> str:
    """接手工单（未分配或分配给我的）"""
    ticket = await _ticket(ctx, number)
    with _refusals(ticket):
        await _service(ctx).accept(ticket, ctx.staff, ctx.now)
    return render("tickets.bot.accepted", number=ticket.number, customer=display_name(ticket.customer))


@router.command("转派", aliases=("transfer", "reassign"), roles=TICKET_ROLES, args=[NUMBER, Arg("to")],
                usage="转派 <工单号> <同事姓名或账号>")
async def transfer(ctx: CommandContext, number: str, to: str) -> str:
    """把工单转给其他同事"""
    ticket = await _ticket(ctx, number)
    candidates = [s for s in await find_staff(ctx.session, to) if s.active]
    if not candidates:
        raise Refusal("tickets.bot.no_such_staff", who=to[:20])
    if len(candidates) > 1:
        raise Refusal("tickets.bot.ambiguous_staff", who=to[:20], userids="、".join(s.userid for s in candidates))
    [colleague] = candidates
    with _refusals(ticket):
        await _service(ctx).transfer(ticket, colleague, ctx.staff, ctx.now)
    return render("tickets.bot.transferred", number=ticket.number, to=display_staff(colleague))


@router.command("回复", aliases=("reply",), roles=TICKET_ROLES, args=[NUMBER, Arg("content", rest=True)],
                usage="回复 <工单号> <给客户的话>，如：回复 T20261122-0042 已为您补发")
async def reply(ctx: CommandContext, number: str, content: str) -> str:
    """通过当前允许的渠道回复客户（会存档）"""
    ticket = await _ticket(ctx, number)
    with _refusals(ticket):
        await _service(ctx).reply(ticket, ctx.staff, content, ctx.now)
    return render("tickets.bot.replied", number=ticket.number, customer=display_name(ticket.customer))


@router.command("解决", aliases=("resolve",), roles=TICKET_ROLES, args=[NUMBER, Arg("resolution", rest=True)],
                usage="解决 <工单号> <处理结果>，如：解决 T20261122-0042 已补发新品")
async def resolve(ctx: CommandContext, number: str, resolution: str) -> str:
    """标记已解决，并请客户打分（1–5）"""
    ticket = await _ticket(ctx, number)
    with _refusals(ticket):
        asked = await _service(ctx).resolve(ticket, ctx.staff, resolution, ctx.now)
    return render("tickets.bot.resolved" if asked else "tickets.bot.resolved_no_channel", number=ticket.number,
                  customer=display_name(ticket.customer))


@router.command("关闭", aliases=("close",), roles=TICKET_ROLES, args=[NUMBER], usage="关闭 <工单号>")
async def close(ctx: CommandContext, number: str) -> str:
    """关闭工单"""
    ticket = await _ticket(ctx, number)
    with _refusals(ticket):
        await _service(ctx).close(ticket, ctx.staff, ctx.now)
    return render("tickets.bot.closed", number=ticket.number)


@router.command("重开", aliases=("reopen",), roles=TICKET_ROLES, args=[NUMBER], usage="重开 <工单号>")
async def reopen(ctx: CommandContext, number: str) -> str:
    """重新打开已解决或已关闭的工单"""
    ticket = await _ticket(ctx, number)
    with _refusals(ticket):
        await _service(ctx).reopen(ticket, ctx.staff, ctx.now)
    return render("tickets.bot.reopened", number=ticket.number,
                  agent=display_staff(ticket.assignee) if ticket.assignee else render("tickets.nobody"))
