"""活码 / qrcode: managers create, list and stop channel QR codes (渠道活码) from chat.

`活码 新建 展会2026 分配:华东组 欢迎语:感谢关注…` registers the channel and asks WeCom for its code
through the outbox; the QR image link follows as a message of its own once WeCom answers (or why
it could not be made).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select

from bot.replies import Listing, Refusal
from bot.router import Arg, CommandContext, Router, UsageError
from config.templates import render
from crm_core.channels import (
    ChannelExistsError,
    ChannelNotFoundError,
    ChannelService,
    WELCOME_TEXT_MAX_BYTES,
    NoChannelUsersError,
    UnknownGroupError,
    WelcomeTooLongError,
)
from crm_core.models import ContactChannel, Customer

router = Router("channels")

CHANNEL_ROLES = frozenset({"manager", "admin"})
ACTIONS = {"新建": "new", "new": "new", "create": "new", "列表": "list", "list": "list",
           "停用": "stop", "stop": "stop", "disable": "stop"}
# 分配:华东组 成员:zhangwei,lina 欢迎语:… (欢迎语 takes the rest of the line, spaces included)
_OPTION = re.compile(r"(分配|组|group|成员|users|欢迎语|welcome)\s*[:：]\s*", re.IGNORECASE)
_KEYS = {"分配": "group", "组": "group", "group": "group", "成员": "users", "users": "users",
         "欢迎语": "welcome", "welcome": "welcome"}


@dataclass(frozen=True)
class ChannelOptions:
    group: str = ""
    users: tuple[str, ...] = ()
    welcome: str = ""


def action_word(word: str) -> str:
    if word.casefold() not in ACTIONS:
        raise ValueError("not an action")
    return ACTIONS[word.casefold()]


def channel_options(text: str) -> ChannelOptions:
    """`分配:华东组 成员:a,b 欢迎语:任意文字`; anything that is not such an option is a usage error."""
    values: dict[str, str] = {}
    position = 0
    for match in _OPTION.finditer(text):
        key = _KEYS[match.group(1).casefold()]
        if key == "welcome":
            if text[position:match.start()].strip():
                raise ValueError("text before an option")
            values["welcome"] = text[match.end():].strip()
            position = len(text)
            break
        if text[position:match.start()].strip() or key in values:
            raise ValueError("text between options, or an option twice")
        value, _, _ = text[match.end():].partition(" ")
        values[key] = value
        position = match.end() + len(value)
    if text[position:].strip():
        raise ValueError("unexpected text")
    users = tuple(u for u in re.split(r"[,，、]", values.get("users", "")) if u)
    return ChannelOptions(values.get("group", ""), users, values.get("welcome", ""))


@router.command("活码", aliases=("qrcode", "渠道活码"), roles=CHANNEL_ROLES,
                args=[Arg("action", convert=action_word), Arg("name", optional=True),
                      Arg("options", rest=True, optional=True, convert=channel_options)],
                usage=render("channels.bot.usage"))
async def qrcode(ctx: CommandContext, action: str, name: str, options: ChannelOptions | str) -> str | Listing:
    """渠道活码：新建（可指定销售组、欢迎语）、列表、停用"""
    service = ChannelService(ctx.session)
    options = options or ChannelOptions()
    if action == "list":
        if name or options != ChannelOptions():
            raise UsageError("list takes nothing more")
        return await _listing(ctx, service)
    if not name or _OPTION.match(name):
        raise UsageError("missing channel name")
    if action == "stop":
        if options != ChannelOptions():
            raise UsageError("stop takes only the name")
        return await _stop(ctx, service, name)
    try:
        channel = await service.create(name, group=options.group, users=options.users, welcome=options.welcome,
                                       by=ctx.staff)
    except ValueError as exc:
        raise Refusal("channels.bot.bad_name") from exc
    except ChannelExistsError as exc:
        raise Refusal("channels.bot.exists", name=name) from exc
    except UnknownGroupError as exc:
        raise Refusal("channels.bot.unknown_group", group=exc.group[:20], known="、".join(exc.known)) from exc
    except NoChannelUsersError as exc:
        raise Refusal("channels.bot.no_users") from exc
    except WelcomeTooLongError as exc:
        raise Refusal("channels.bot.welcome_too_long", size=exc.size, limit=WELCOME_TEXT_MAX_BYTES) from exc
    await service.request_qr_code(channel)
    return render("channels.bot.requested", name=channel.name, reps=service.reps_text(channel))


async def _stop(ctx: CommandContext, service: ChannelService, name: str) -> str:
    try:
        channel = await service.by_name(name)
        was_active = channel is not None and channel.active
        await service.deactivate(name, by=ctx.staff)
    except ChannelNotFoundError as exc:
        raise Refusal("channels.bot.not_found", name=name[:30]) from exc
    return render("channels.bot.stopped" if was_active else "channels.bot.already_stopped", name=name)


async def _listing(ctx: CommandContext, service: ChannelService) -> str | Listing:
    channels = await service.all()
    if not channels:
        return render("channels.bot.none")
    counts = dict((await ctx.session.execute(
        select(Customer.source_channel_id, func.count()).where(Customer.source_channel_id.is_not(None))
        .group_by(Customer.source_channel_id))).all())
    lines = [
        render("channels.bot.line", index=i, name=c.name, status=_status(c), state=c.state, reps=service.reps_text(c),
               customers=counts.get(c.id, 0), link=c.qr_code or render("channels.bot.no_link"))
        for i, c in enumerate(channels, start=1)
    ]
    return Listing(render("channels.bot.header", count=len(channels)), lines)


def _status(channel: ContactChannel) -> str:
    if not channel.active:
        return render("channels.bot.status_stopped")
    return render("channels.bot.status_active" if channel.config_id else "channels.bot.status_pending")
