"""Declaring chat commands: one decorator per handler carries everything about the command.

    router = Router("customers")

    @router.command("查", aliases=("lookup",), args=[Arg("customer", customer=True)], usage="查 <姓名/拼音/电话/公司>")
    async def lookup(ctx: CommandContext, customer: Customer) -> Reply:
        \"\"\"查看客户名片\"\"\"

The handler's docstring's first line is its help line. Arguments are parsed before the handler
runs (words, the rest of the line, Chinese time expressions, converted values); a line that does
not fit gets the command's usage, never a half-parsed call. `customer=True` arguments reach the
handler as a Customer resolved within the staff member's data scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.formatting import redact
from bot.replies import Listing, NeedsPick, Refusal, Reply, fit_text
from bot.timeparse import TimeExpressionError, take_when
from crm_core.audit import AuditService
from crm_core.deals import DealStages
from crm_core.models import Customer, Message, Staff
from crm_core.outbox import OutboxService
from crm_core.scope import Scope, scope_for
from crm_core.search import CustomerSearch
from crm_core.ticket_policy import TicketPolicy, default_policy

ALL_ROLES = frozenset({"sales", "support", "manager", "admin"})
PICK_LIMIT = 50  # candidates kept for pick-by-number; more means "type more of the name"


class UsageError(ValueError):
    """The line does not fit the command's arguments; the dispatcher answers with the usage."""


@dataclass(frozen=True)
class Arg:
    name: str
    rest: bool = False  # takes the rest of the line, spaces included
    optional: bool = False
    customer: bool = False  # resolved to a Customer in the caller's scope before the handler runs
    when: bool = False  # a Chinese time expression (明天下午3点), resolved against the command's clock
    convert: Callable[[str], Any] | None = None  # raises ValueError when the word does not fit


@dataclass
class CommandContext:
    """What a handler may use; handlers never see the web request or the WeCom payload."""

    session: AsyncSession
    staff: Staff
    message: Message
    timezone: ZoneInfo
    commands: list["Command"]
    now: datetime  # UTC, from the dispatcher's clock
    stages: DealStages
    picked: dict[str, int] = field(default_factory=dict)  # query -> customer id chosen from a numbered list
    answers: dict[str, str] = field(default_factory=dict)  # field -> what the rep answered when asked
    tickets: TicketPolicy = field(default_factory=default_policy)  # ticket policy with the deployment's routing
    page_base_url: str = ""  # the H5 pages' public origin, for links in replies; "" when not configured
    _scope: Scope | None = None

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.timezone)

    def local(self, at: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return at.astimezone(self.timezone).strftime(fmt)

    async def scope(self) -> Scope:
        if self._scope is None:
            self._scope = await scope_for(self.session, self.staff)
        return self._scope

    async def notify(self, to: Staff, text: str) -> None:
        """A message to another staff member, sent once per incoming command (keyed by it)."""
        await OutboxService(self.session).enqueue(
            idempotency_key=f"notify:{self.message.channel}:{self.message.external_msg_id}:{to.userid}",
            kind="app_message",
            payload={"touser": to.userid, "msgtype": "text", "text": {"content": fit_text(text)}},
            staff_id=to.id,
        )

    def audit(self, action: str, customer_id: int | None = None, detail: str = "") -> None:
        AuditService(self.session).record(actor=self.staff.userid, action=action, customer_id=customer_id, detail=detail)

    async def customer(self, query: str) -> Customer:
        """The one customer `query` means, within scope; otherwise a numbered list to pick from, or a refusal.

        A customer outside the caller's scope is answered exactly like no customer at all (the
        attempt is still audit-logged): the reply must not tell a rep that a number or name exists."""
        scope = await self.scope()
        search = CustomerSearch(self.session)
        if query in self.picked:
            customer = await self.session.get(Customer, self.picked[query])
            if customer is not None and scope.allows(customer):
                return customer
        page = await search.find(query, where=scope.where(), limit=PICK_LIMIT)
        exact = [m for m in page.matches if m.name == query]  # exact names sort first
        meant = page.matches if page.total == 1 else exact if len(exact) == 1 else []
        if meant:
            # Only the one customer meant is loaded whole; gone since the search (erased), it is not found.
            customer = await self.session.get(Customer, meant[0].id)
            if customer is not None:
                return customer
        elif page.total > 1:
            raise NeedsPick(query, page.matches, page.total, more=page.more)
        hidden = not scope.everyone and (await search.find(query, limit=1)).total > 0
        audit = ("customer.view_denied", None, f"q={redact(query)!r}") if hidden else None
        suggestions = await search.suggest(query, where=scope.where())
        if suggestions:
            names = "、".join(dict.fromkeys(c.name or c.remark for c in suggestions))
            raise Refusal("bot.lookup_none_suggest", audit=audit, query=query[:30], names=names)
        raise Refusal("bot.lookup_none", audit=audit, query=query[:30])


Handler = Callable[..., Awaitable["str | Reply | Listing"]]


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

    def parse(self, rest: str, now: datetime | None = None) -> dict[str, Any]:
        """Split the text after the command word into the declared arguments.

        `now` (local, aware) anchors time expressions; a time in the past is a Refusal, not a usage error."""
        values: dict[str, Any] = {}
        remaining = rest.strip()
        for arg in self.args:
            if arg.when:
                if not remaining and arg.optional:
                    values[arg.name] = None
                    continue
                try:
                    values[arg.name], remaining = take_when(remaining, now or datetime.now().astimezone())
                except TimeExpressionError as exc:
                    if exc.past:
                        raise Refusal("bot.time_passed") from exc
                    raise UsageError(f"{arg.name}: {exc}") from exc
                continue
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
            if arg.convert is not None:
                try:
                    values[arg.name] = arg.convert(word)
                except ValueError as exc:
                    raise UsageError(f"{arg.name}: {exc}") from exc
            else:
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
