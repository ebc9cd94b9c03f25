"""From a staff member's chat line to exactly one reply in the outbox.

The dispatcher finds the command by its first word (Chinese or English alias, any case),
parses the arguments, checks the role, resolves customer arguments within the staff member's
data scope, runs the handler and enqueues the reply keyed by the incoming message, so a retried
callback can never produce a second reply. A bare number, `更多` or the answer to a question
continues the conversation kept in Redis (bot/conversation.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation import Conversations
from bot.formatting import customer_line, redact
from bot.rate_limit import CommandRateLimit, Verdict
from bot.replies import Listing, NeedsAnswer, NeedsPick, Refusal, Reply, fit_text, paginate
from bot.router import ALL_ROLES, Command, CommandContext, Router, UsageError
from bot.understanding import Understanding
from config.templates import has, render
from crm_core.db import utcnow
from crm_core.deals import DealStages
from crm_core.errors import DomainError
from crm_core.models import Message, Staff
from crm_core.outbox import OutboxService
from crm_core.ticket_policy import TicketPolicy, default_policy

log = logging.getLogger(__name__)

MORE_WORDS = frozenset({"更多", "more", "下一页"})


@dataclass
class Dispatcher:
    routers: list[Router]
    timezone: ZoneInfo
    stages: DealStages
    conversations: Conversations
    clock: Callable[[], datetime] = utcnow
    # (command name, seconds) after each command that ran, for metrics
    observe_command: Callable[[str, float], None] | None = None
    rate_limit: CommandRateLimit | None = None
    tickets: TicketPolicy = field(default_factory=default_policy)  # with the deployment's routing
    page_base_url: str = ""  # SCRM_PAGE_BASE_URL: where replies may link to the H5 pages ("": no links)

    def __post_init__(self) -> None:
        self.by_name: dict[str, Command] = {}
        for router in self.routers:
            for command in router.commands:
                for name in command.names:
                    key = name.casefold()
                    if key in self.by_name or key in MORE_WORDS:
                        raise ValueError(f"command name {name!r} declared twice")
                    self.by_name[key] = command
        self.understanding = Understanding(self.commands)

    @property
    def commands(self) -> list[Command]:
        return [c for r in self.routers for c in r.commands]

    def find(self, word: str) -> Command | None:
        return self.by_name.get(word.casefold())

    async def reply_to(self, session: AsyncSession, staff: Staff, message: Message) -> Reply:
        """The reply for one line; business refusals and errors become friendly replies."""
        line = clean_line(message.text)
        if message.msg_type != "text" or not line:
            return Reply(render("bot.not_text"))
        if not staff.active or staff.role not in ALL_ROLES:
            log.info("refusing a command from unknown or inactive staff id %s", staff.id)
            return Reply(render("bot.unknown_staff"))
        state = await self.conversations.get(session, staff.userid)
        if state.get("confirm") or state.get("choices"):
            settled = await self._settle(session, staff, message, line, state)
            if settled is not None:
                return settled
            state = {}
        if state.get("pick") and line.isdigit():
            ids = state["pick"]["ids"]
            number = int(line)
            if not 1 <= number <= len(ids):
                return Reply(render("bot.pick_out_of_range", count=len(ids)))
            picked = {**state.get("picked", {}), state["pick"]["query"]: ids[number - 1]}
            return await self._run(session, staff, message, state["line"], picked=picked, answers=state.get("answers", {}))
        if line.casefold() in MORE_WORDS:
            pages = state.get("pages") or []
            if not pages:
                return Reply(render("bot.no_more"))
            self.conversations.set(session, staff.userid, {**state, "pages": pages[1:]})
            return Reply(pages[0])
        if state.get("ask") and self.find(line.partition(" ")[0]) is None \
                and not self.understanding.reader.starts_with_command(line):
            answers = {**state.get("answers", {}), state["ask"]: line}
            return await self._run(session, staff, message, state["line"], picked=state.get("picked", {}), answers=answers)
        if line.isdigit() and len(line) <= 3:
            return Reply(render("bot.nothing_to_pick"))
        return await self._run(session, staff, message, line)

    async def _run(
        self, session: AsyncSession, staff: Staff, message: Message, line: str, *,
        picked: dict[str, int] | None = None, answers: dict[str, str] | None = None,
    ) -> Reply:
        picked, answers = picked or {}, answers or {}
        word, _, rest = line.partition(" ")
        second, _, after = rest.partition(" ")
        if second and (two_words := self.find(f"{word} {second}")) is not None:  # `查 群 …` before `查 …`
            command, word, rest = two_words, f"{word} {second}", after
        else:
            command = self.find(word)
        state: dict[str, Any] = {}
        if command is None:
            understood = await self.understanding.read(session, staff, line, self.clock().astimezone(self.timezone))
            if understood.run and self.find(understood.run.partition(" ")[0]) is not None:
                return await self._run(session, staff, message, understood.run, picked=picked, answers=answers)
            reply, state = Reply(understood.reply), understood.state
        elif staff.role not in command.roles:
            reply = Reply(render("bot.not_allowed", command=command.name))
        else:
            now = self.clock()
            ctx = CommandContext(session=session, staff=staff, message=message, timezone=self.timezone,
                                 commands=self.commands, now=now, stages=self.stages, picked=picked, answers=answers,
                                 tickets=self.tickets, page_base_url=self.page_base_url)
            started = time.perf_counter()
            reply, state = await self._handle(ctx, command, line, rest)
            if self.observe_command is not None:
                self.observe_command(command.name, time.perf_counter() - started)
        self.conversations.set(session, staff.userid, state)
        return reply

    async def _settle(self, session: AsyncSession, staff: Staff, message: Message, line: str,
                      state: dict[str, Any]) -> Reply | None:
        """The answer to a pending confirmation (1/是 saves, anything else cancels) or to numbered
        choices (a number runs that choice). None: the line is a new request, read as usual."""
        lexicon, expired = self.understanding.lexicon, self.understanding.pending_expired(state, self.clock())
        answer = line.casefold()
        self.conversations.set(session, staff.userid, {})
        if state.get("confirm"):
            if answer in lexicon.yes:
                if expired:
                    return Reply(render("bot.understanding.expired", minutes=lexicon.confirm_minutes))
                return await self._run(session, staff, message, state["confirm"])
            if answer in lexicon.no or line.isdigit():
                return Reply(render("bot.understanding.cancelled"))
            reply = await self.reply_to(session, staff, message)
            return Reply(render("bot.understanding.cancelled_and") + "\n" + reply.text, markdown=reply.markdown)
        if not line.isdigit():
            return None
        if expired:
            return Reply(render("bot.understanding.choices_expired", minutes=lexicon.confirm_minutes))
        options = state["choices"]
        number = int(line)
        if not 1 <= number <= len(options):
            self.conversations.set(session, staff.userid, state)
            return Reply(render("bot.pick_out_of_range", count=len(options)))
        option = options[number - 1]
        if "colleague" in option:
            return Reply(render("bot.understanding.colleague", name=option["colleague"], userid=option["userid"]))
        return await self._run(session, staff, message, option["line"])

    async def _handle(self, ctx: CommandContext, command: Command, line: str, rest: str) -> tuple[Reply, dict[str, Any]]:
        try:
            kwargs = command.parse(rest, ctx.local_now)
            async with ctx.session.begin_nested():
                for arg in command.args:
                    if arg.customer and kwargs.get(arg.name):
                        kwargs[arg.name] = await ctx.customer(kwargs[arg.name])
                return self._present(await command.handler(ctx, **kwargs))
        except UsageError:
            return Reply(render("bot.usage", usage=command.usage)), {}
        except Refusal as exc:
            if exc.audit:  # recorded outside the rolled-back savepoint, so the refusal itself is on file
                ctx.audit(*exc.audit)
            return Reply(exc.text()), {}
        except NeedsPick as exc:
            ctx.audit("customer.search", detail=f"q={redact(exc.query)!r} results={exc.total}{'+' if exc.more else ''}")
            return self._pick(ctx, line, exc)
        except NeedsAnswer as exc:
            return Reply(exc.prompt), {"line": line, "ask": exc.field_name, "picked": ctx.picked, "answers": ctx.answers}
        except DomainError as exc:
            key = f"bot_errors.{type(exc).__name__}"
            return Reply(render(key if has(key) else "bot_errors.DomainError")), {}
        except Exception as exc:
            if transaction_lost(ctx.session, exc):
                raise  # nothing can be stored, an apology neither: the queue retries the message whole
            error_id = uuid.uuid4().hex[:8]
            log.exception("command %s failed (error id %s)", command.name, error_id)
            return Reply(render("bot.internal_error", error_id=error_id)), {}

    def _present(self, result: str | Reply | Listing) -> tuple[Reply, dict[str, Any]]:
        if isinstance(result, Listing):
            pages = paginate(result)
            return Reply(pages[0]), ({"pages": pages[1:]} if len(pages) > 1 else {})
        return (result if isinstance(result, Reply) else Reply(result)), {}

    def _pick(self, ctx: CommandContext, line: str, exc: NeedsPick) -> tuple[Reply, dict[str, Any]]:
        none = render("bot.none_value")
        lines = [f"{i}. {customer_line(c, none)}" for i, c in enumerate(exc.customers, start=1)]
        if exc.header:
            header, footer = exc.header, render("bot.pick_footer")
        elif exc.more:
            header = render("bot.pick_header_many", shown=len(lines), query=exc.query[:30])
            footer = render("bot.pick_footer_truncated")
        else:
            header, footer = render("bot.pick_header", total=exc.total, query=exc.query[:30]), render("bot.pick_footer")
        pages = paginate(Listing(header, lines, footer))
        state = {"line": exc.line or line, "pick": {"query": exc.query, "ids": [c.id for c in exc.customers]},
                 "picked": ctx.picked, "answers": ctx.answers, "pages": pages[1:]}
        return Reply(pages[0]), state

    async def prepare_batch(self, session: AsyncSession, userids: set[str]) -> None:
        """Messages from these staff members come next in this session: fetch their conversations at once."""
        await self.conversations.load(session, userids)

    async def __call__(self, session: AsyncSession, staff: Staff, message: Message) -> None:
        verdict = Verdict.OK if self.rate_limit is None else await self.rate_limit.check(
            staff.userid, self.clock(), f"{message.channel}:{message.external_msg_id}")
        if verdict is Verdict.DROP:
            log.info("staff id %s is over the command rate limit; message %s archived, not answered", staff.id, message.id)
            return
        if verdict is Verdict.WARN:
            reply = Reply(render("bot.too_many_commands", per_minute=self.rate_limit.per_minute))
        else:
            reply = await self.reply_to(session, staff, message)
        msgtype = "markdown" if reply.markdown else "text"
        await OutboxService(session).enqueue(
            idempotency_key=f"reply:{message.channel}:{message.external_msg_id}",
            kind="app_message",
            payload={"touser": staff.userid, "msgtype": msgtype, msgtype: {"content": fit_text(reply.text)}},
            staff_id=staff.id,
        )


def clean_line(text: str) -> str:
    """Half-width letters, digits, + and -, plain spaces, no control characters: `查　ＺＳ` works like `查 zs`.

    Chinese punctuation (，。！) stays as typed: it is part of notes."""
    text = (text or "").translate(_HALF_WIDTH)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


_HALF_WIDTH = {0x3000: " ", 0xFF0B: "+", 0xFF0D: "-"} | {
    code: chr(code - 0xFEE0) for start, end in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)) for code in range(start, end + 1)
}


def transaction_lost(session: AsyncSession, exc: BaseException) -> bool:
    """The command failed because the message's transaction did: its database connection died (a
    restart, a failover) or the session can no longer go on. That is no bug of the command's."""
    return ((isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated)
            or isinstance(exc, sqlalchemy.exc.PendingRollbackError) or not session.is_active)
