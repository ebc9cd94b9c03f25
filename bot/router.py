"""Declaring chat commands: one decorator per handler carries everything about the command.

    router = Router("customers")

    @router.command("查", aliases=("lookup",), args=[Arg("query", rest=True)], usage="查 <姓名/电话/公司>")
    async def lookup(ctx: CommandContext, query: str) -> str:
        \"\"\"查看客户名片\"\"\"

The handler's docstring's first line is its help line. Arguments are parsed before the handler
runs; a line that does not fit gets the command's usage, never a half-parsed call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Message, Staff

ALL_ROLES = frozenset({"sales", "support", "manager", "admin"})


class UsageError(ValueError):
    """The line does not fit the command's arguments; the dispatcher answers with the usage."""


@dataclass(frozen=True)
class Arg:
    name: str
    rest: bool = False  # takes the rest of the line, spaces included
    optional: bool = False


@dataclass
class CommandContext:
    """What a handler may use; handlers never see the web request or the WeCom payload."""

    session: AsyncSession
    staff: Staff
    message: Message
    timezone: ZoneInfo
    commands: list["Command"]


Handler = Callable[..., Awaitable[str]]


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    args: tuple[Arg, ...]
    usage: str
    roles: frozenset[str]
    handler: Handler

    @property
    def help_line(self) -> str:
        return (self.handler.__doc__ or "").strip().splitlines()[0] if self.handler.__doc__ else ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def parse(self, rest: str) -> dict[str, str]:
        """Split the text after the command word into the declared arguments."""
        values: dict[str, str] = {}
        remaining = rest.strip()
        for arg in self.args:
            if arg.rest:
                word, remaining = remaining, ""
            else:
                word, _, remaining = remaining.partition(" ")
                remaining = remaining.strip()
            if not word:
                if arg.optional:
                    values[arg.name] = ""
                    continue
                raise UsageError(f"missing {arg.name}")
            values[arg.name] = word
        if remaining:
            raise UsageError(f"unexpected text: {remaining[:20]}")
        return values


@dataclass
class Router:
    name: str
    commands: list[Command] = field(default_factory=list)

    def command(
        self,
        name: str,
        *,
        aliases: tuple[str, ...] = (),
        args: list[Arg] | None = None,
        usage: str = "",
        roles: frozenset[str] = ALL_ROLES,
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.commands.append(
                Command(name=name, aliases=aliases, args=tuple(args or ()), usage=usage or name, roles=roles, handler=handler)
            )
            return handler

        return decorate
