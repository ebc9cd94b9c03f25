"""Customer lookups from chat."""

from __future__ import annotations

from bot.formatting import customer_card, mask_phone
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.audit import AuditService
from crm_core.customers import CustomerService
from crm_core.messages import MessageService

router = Router("customers")

LIST_LIMIT = 10


@router.command("查", aliases=("lookup", "search", "查询"), args=[Arg("query", rest=True)], usage="查 <姓名/电话/公司>")
async def lookup(ctx: CommandContext, query: str) -> str:
    """查看客户名片"""
    owner_id = ctx.staff.id if ctx.staff.role == "sales" else None
    customers, total = await CustomerService(ctx.session).search(query, owner_id=owner_id, limit=LIST_LIMIT)
    audit = AuditService(ctx.session)
    if total == 0:
        audit.record(actor=ctx.staff.userid, action="customer.search", detail=f"q={query!r} results=0")
        return render("bot.lookup_none", query=query[:30])
    if total > 1:
        audit.record(actor=ctx.staff.userid, action="customer.search", detail=f"q={query!r} results={total}")
        lines = [
            render("bot.lookup_many_line", index=i, name=c.name or c.remark, company=c.company or render("bot.none_value"), phone=mask_phone(c.phone))
            for i, c in enumerate(customers, start=1)
        ]
        return render("bot.lookup_many", total=total, lines="\n".join(lines))
    customer = customers[0]
    audit.record(actor=ctx.staff.userid, action="customer.view", customer_id=customer.id)
    last = await MessageService(ctx.session).last_for_customer(customer.id)
    return customer_card(customer, last, ctx.timezone)
