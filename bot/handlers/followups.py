"""跟进 / followup and 我的待办 / todo: reminders with natural Chinese times."""

from __future__ import annotations

from bot.formatting import display_name, follow_up_line
from bot.replies import Listing
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.followups import FollowUpService
from crm_core.models import Customer

router = Router("followups")

WEEKDAYS = "一二三四五六日"
FOLLOW_UP_TEXT_LIMIT = 500  # characters of what to do


@router.command("跟进", aliases=("followup", "提醒"),
                args=[Arg("customer", customer=True), Arg("due", when=True), Arg("text", rest=True, optional=True)],
                usage="跟进 <客户> <时间> [事项]，如：跟进 张三 下周三下午3点 带方案上门")
async def follow_up(ctx: CommandContext, customer: Customer, due, text: str) -> str:
    """设置跟进提醒（支持 明天、下周三下午3点、3天后、12月5日、月底 等）"""
    item = await FollowUpService(ctx.session).add(customer, ctx.staff, due, text[:FOLLOW_UP_TEXT_LIMIT], at=ctx.now)
    ctx.audit("customer.follow_up", customer.id, f"due={item.due_at.isoformat()}")
    local = item.due_at.astimezone(ctx.timezone)
    return render("bot.follow_up_saved", name=display_name(customer), due=local.strftime("%Y-%m-%d %H:%M"),
                  weekday=WEEKDAYS[local.weekday()], text=item.text or render("bot.none_value"))


@router.command("我的待办", aliases=("todo", "待办"), args=[], usage="我的待办")
async def todo(ctx: CommandContext) -> Listing | str:
    """我的跟进待办：已逾期的排在最前"""
    items, total = await FollowUpService(ctx.session).open_for_owner(ctx.staff.id)
    if not items:
        return render("bot.todo_none")
    overdue = sum(1 for item in items if item.due_at <= ctx.now)
    lines = [f"{i}. {follow_up_line(item, ctx.timezone, ctx.now)}" for i, item in enumerate(items, start=1)]
    return Listing(render("bot.todo_header", total=total, overdue=overdue), lines)
