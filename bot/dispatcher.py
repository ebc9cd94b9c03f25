"""From a staff member's chat line to exactly one reply in the outbox.

The dispatcher finds the command by its first word (Chinese or English alias, any case),
parses the arguments, checks the role, runs the handler and enqueues the reply keyed by the
incoming message, so a retried callback can never produce a second reply.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.replies import fit_text
from bot.router import Command, CommandContext, Router, UsageError
from config.templates import render
from crm_core.errors import DomainError
from crm_core.models import Message, Staff
from crm_core.outbox import OutboxService

log = logging.getLogger(__name__)


@dataclass
class Dispatcher:
    routers: list[Router]
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        self.by_name: dict[str, Command] = {}
        for router in self.routers:
            for command in router.commands:
                for name in command.names:
                    key = name.casefold()
                    if key in self.by_name:
                        raise ValueError(f"command name {name!r} declared twice")
                    self.by_name[key] = command

    @property
    def commands(self) -> list[Command]:
        return [c for r in self.routers for c in r.commands]

    def find(self, word: str) -> Command | None:
        return self.by_name.get(word.casefold())

    async def reply_to(self, session: AsyncSession, staff: Staff, message: Message) -> str:
        """The reply text for one line; business refusals and errors become friendly replies."""
        line = clean_line(message.text)
        if message.msg_type != "text" or not line:
            return render("bot.not_text")
        word, _, rest = line.partition(" ")
        command = self.find(word)
        if command is None:
            return render("bot.unknown_command", word=word[:20])
        if staff.role not in command.roles:
            return render("bot.not_allowed", command=command.name)
        try:
            kwargs = command.parse(rest)
        except UsageError:
            return render("bot.usage", usage=command.usage)
        try:
            async with session.begin_nested():
                return await command.handler(CommandContext(session=session, staff=staff, message=message, timezone=self.timezone, commands=self.commands), **kwargs)
        except DomainError as exc:
            return str(exc)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("command %s failed (error id %s)", command.name, error_id)
            return render("bot.internal_error", error_id=error_id)

    async def __call__(self, session: AsyncSession, staff: Staff, message: Message) -> None:
        reply = await self.reply_to(session, staff, message)
        await OutboxService(session).enqueue(
            idempotency_key=f"reply:{message.channel}:{message.external_msg_id}",
            kind="app_message",
            payload={"touser": staff.userid, "msgtype": "text", "text": {"content": fit_text(reply)}},
            staff_id=staff.id,
        )


def clean_line(text: str) -> str:
    """Normalise full-width spaces and control characters so `查　张三` works like `查 张三`."""
    text = unicodedata.normalize("NFKC", text or "")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())
