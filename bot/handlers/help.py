"""帮助 / help: generated from the command declarations, so it can never go stale."""

from __future__ import annotations

from bot.replies import Listing
from bot.router import ALL_ROLES, Arg, CommandContext, Router
from config.roles import ROLES
from config.templates import render

router = Router("help")
EXAMPLE_MARK = "，如："


@router.command("帮助", aliases=("help", "?", "？"), args=[Arg("topic", optional=True)], usage="帮助 [命令]")
async def help_command(ctx: CommandContext, topic: str) -> str | Listing:
    """查看可用命令，或某个命令的详细用法"""
    commands = [c for c in ctx.commands if ctx.staff.role in c.roles]
    none = render("bot.none_value")
    if topic:
        match = next((c for c in ctx.commands if topic.casefold() in (n.casefold() for n in c.names)), None)
        if match is None:
            return render("bot.help_unknown", word=topic[:20])
        roles = render("bot.roles_all") if match.roles == ALL_ROLES else "、".join(
            render(f"roles.{r}") for r in ROLES if r in match.roles)
        return render("bot.help_detail", usage=match.usage, help=match.help_line, aliases="、".join(match.aliases) or none,
                      roles=roles)
    # The overview must fit one chat message: usage without its example, no aliases (both are in `帮助 X`).
    lines = [render("bot.help_line", usage=c.usage.split(EXAMPLE_MARK)[0], help=c.help_line) for c in commands]
    return Listing(render("bot.help_header"), lines, render("bot.help_footer"))
