"""Customer groups (客户群) from chat: `查 群 华东客户交流群` shows a group, its owner and who is in it.

Declared as the two-word command `查 群`, so `查 <customer>` keeps its meaning; a rep sees the
groups they own, a manager their team's, an admin every group.
"""

from __future__ import annotations

from bot.formatting import display_name
from bot.replies import Refusal, Reply
from bot.router import Arg, CommandContext, Router
from config.markup import join
from config.templates import render
from crm_core.groups import GroupService, GroupView

router = Router("groups")

MEMBERS_SHOWN = 30
NAME_MAX = 64


@router.command("查 群", aliases=("查群", "group"), args=[Arg("name", rest=True)], usage="查 群 <群名>")
async def group_lookup(ctx: CommandContext, name: str) -> Reply | str:
    """查看客户群：群主、成员和群里的客户"""
    query = name.strip()[:NAME_MAX]
    groups = await GroupService(ctx.session).find(query, await ctx.scope())
    if not groups:
        raise Refusal("groups.bot.not_found", name=query)
    if len(groups) > 1 and groups[0].name != query:
        return render("groups.bot.several", name=query, names="、".join(g.name for g in groups))
    ctx.audit("group.view", detail=groups[0].chat_id)
    return Reply(group_card(await GroupService(ctx.session).view(groups[0]), ctx), markdown=True)


def group_card(view: GroupView, ctx: CommandContext) -> str:
    group, none = view.group, render("bot.none_value")
    customers = []
    for member in view.customers[:MEMBERS_SHOWN]:
        linked = member.customer
        if linked is not None:
            customers.append(render("groups.bot.card_customer", kind="markdown", name=display_name(linked),
                                    company=linked.company or none))
        else:
            customers.append(render("groups.bot.card_member", kind="markdown",
                                    name=member.member.name or member.member.group_nickname or render("groups.bot.unnamed")))
    if len(view.customers) > MEMBERS_SHOWN:
        customers.append(render("groups.bot.card_more", kind="markdown", count=len(view.customers) - MEMBERS_SHOWN))
    return render(
        "groups.bot.card", kind="markdown", name=group.name or none,
        owner=(group.owner.name if group.owner else "") or group.owner_userid or none,
        created=ctx.local(group.created_at, "%Y-%m-%d") if group.created_at else none,
        members=len(view.staff) + len(view.customers), customers=len(view.customers), staff=len(view.staff),
        notice=render("groups.bot.card_notice", kind="markdown", notice=group.notice[:120]) if group.notice else "",
        list=join("\n", customers, "markdown") or render("groups.bot.card_no_customers", kind="markdown"),
    ).strip()
