"""记 / note: a timestamped note on a customer, which also counts as the rep's latest contact."""

from __future__ import annotations

from bot.formatting import display_name
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.models import Customer
from crm_core.notes import NoteService

router = Router("notes")

NOTE_LIMIT = 2000  # characters; a note is a summary, not a transcript


@router.command("记", aliases=("note", "备注", "记录"), args=[Arg("customer", customer=True), Arg("text", rest=True)],
                usage="记 <客户> <内容>")
async def note(ctx: CommandContext, customer: Customer, text: str) -> str:
    """给客户记一条跟进备注"""
    await NoteService(ctx.session).add(customer, ctx.staff, text[:NOTE_LIMIT], at=ctx.now)
    ctx.audit("customer.note", customer.id)
    return render("bot.note_saved", name=display_name(customer), at=ctx.local(ctx.now, "%m-%d %H:%M"))
