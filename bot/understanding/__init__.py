"""Reps talk to the bot the way people type in WeCom: 查张三, 帮我查下张三的资料, 明天下午提醒我给张三打电话.

The dispatcher hands a line whose first word is no command to `Understanding.read`, which
answers with one of:

- a command line to run as if typed: the line was led by a command word (查张三 → 查 张三), or
  it was read from a sentence as a command that only shows something (张三怎么样了 → 查 张三);
- a confirmation: a write read from a sentence (note, follow-up, stage, tag) is saved only after
  the rep answers 1/是 (the dispatcher keeps it pending, see bot.dispatcher);
- numbered choices, each a command line: a did-you-mean (跟近 → 跟进), two readings, a name that
  is a customer and a colleague, or the closest commands to a line it could not read;
- a greeting with two example commands, from the declarations.

Commands stay declared in bot/handlers (names, aliases, arguments, parsers, usage): the reader
maps text onto them (bot.understanding.reader) and every reading is a command line their parser
reads again. config/understanding.toml holds only the everyday words around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.followups import WEEKDAYS
from bot.handlers.help import EXAMPLE_MARK
from bot.router import Command
from bot.timeparse import TimeExpressionError
from bot.understanding.lexicon import Lexicon, shipped_lexicon
from bot.understanding.names import names_in
from bot.understanding.reader import PHONE, Reader, Reading, Sentence
from config.templates import render
from crm_core.models import Staff
from crm_core.scope import scope_for

CLOSEST_LIMIT = 3

__all__ = ["Understanding", "Understood"]


@dataclass(frozen=True)
class Understood:
    run: str = ""  # a command line to run as if the rep had typed it
    reply: str = ""  # else the answer
    state: dict[str, Any] = field(default_factory=dict)  # what a 1/是 or a number continues


class Understanding:
    def __init__(self, commands: list[Command], lexicon: Lexicon | None = None):
        self.commands = commands
        self.lexicon = lexicon or shipped_lexicon()
        self.reader = Reader(commands, self.lexicon)

    def load(self) -> None:
        self.reader.load()

    async def read(self, session: AsyncSession, staff: Staff, line: str, now: datetime) -> Understood:
        """`now` is local (the business time zone)."""
        scope = await scope_for(session, staff)
        return self.decide(self.reader.sentence(line, await names_in(session, line, scope.where()), now), staff, now)

    def decide(self, sentence: Sentence, staff: Staff, now: datetime) -> Understood:
        """What to do with a sentence whose names are known; no database from here on."""
        line = sentence.line
        if self.reader.greeting(sentence):
            return Understood(reply=self._greeting(staff))
        if (reading := self.reader.leading(sentence)) is not None:
            return Understood(run=reading.line)
        if (typo := self.reader.did_you_mean(sentence)) is not None:
            typed, _, corrected = typo
            return self._choices(render("bot.understanding.did_you_mean", word=typed[:20]), [{"line": corrected}], now)
        try:
            readings = self.reader.free(sentence)
        except TimeExpressionError as exc:
            if exc.past:
                return Understood(reply=render("bot.time_passed"))
            return Understood(reply=render("bot.understanding.time_unread", unread=(exc.unread or line)[:20]))
        if len(readings) > 1:
            return self._choices(render("bot.understanding.two_readings"), [{"line": r.line} for r in readings], now)
        if readings:
            return self._one(sentence, readings[0], now)
        return self._not_understood(sentence, staff, now)

    def _one(self, sentence: Sentence, reading: Reading, now: datetime) -> Understood:
        customer = reading.customer
        if customer is not None and customer.query in sentence.names.colleagues:
            userid = sentence.names.colleagues[customer.query][0]
            return self._choices(render("bot.understanding.customer_or_colleague", name=customer.query),
                                 [{"line": reading.line}, {"colleague": customer.query, "userid": userid}], now)
        if reading.command.name in self.lexicon.reads:
            return Understood(run=reading.line)
        notes = ""
        if reading.when is not None:
            when = reading.when
            notes += render("bot.understanding.weekday", weekday=WEEKDAYS[when.when.weekday()])
            if when.default_time_used is not None:
                notes += render("bot.understanding.default_time", time=when.default_time_used.strftime("%H:%M"))
            if when.moved_to_next:
                notes += render("bot.understanding.moved_to_next")
            if when.deadline is not None:
                notes += render("bot.understanding.deadline", deadline=when.deadline.strftime("%Y-%m-%d %H:%M"))
        return Understood(reply=render("bot.understanding.confirm", action=reading.line, notes=notes),
                          state={"confirm": reading.line, "at": now.isoformat()})

    def _not_understood(self, sentence: Sentence, staff: Staff, now: datetime) -> Understood:
        """Never a dead end: what was understood, and the closest commands."""
        allowed = [c for c in self.commands if staff.role in c.roles]
        parts = [render("bot.understanding.part_phone" if t.kind == PHONE else "bot.understanding.part_customer",
                        name=t.query) for t in sentence.customers()]  # a number is not yet a customer
        parts += [render("bot.understanding.part_colleague", name=t.query) for t in sentence.colleagues()]
        if sentence.when is not None:
            parts.append(render("bot.understanding.part_time", time=sentence.when.when.strftime("%Y-%m-%d %H:%M")))
        understood = render("bot.understanding.understood", parts="、".join(parts)) if parts else \
            render("bot.understanding.understood_nothing", line=sentence.line[:20])
        fits = self.reader.fitting(sentence, allowed)[:CLOSEST_LIMIT]
        if fits:
            return self._choices(understood + "\n" + render("bot.understanding.closest_runnable"),
                                 [{"line": r.line} for r in fits], now)
        lines = [render("bot.help_line", usage=c.usage.split(EXAMPLE_MARK)[0], help=c.help_line)
                 for c in self._closest(sentence, allowed)]
        return Understood(reply="\n".join([understood, render("bot.understanding.closest_usage"), *lines,
                                           render("bot.understanding.closest_footer")]))

    def _closest(self, sentence: Sentence, commands: list[Command]) -> list[Command]:
        """The commands whose words share the most characters with the line (its help, names, usage)."""
        typed = set(sentence.line)

        def overlap(command: Command) -> int:
            return len(typed & set("".join([*command.names, command.help_line, command.usage])))

        ranked = sorted(commands, key=overlap, reverse=True)
        close = [c for c in ranked if overlap(c) > 0][:CLOSEST_LIMIT]
        return close or commands[:CLOSEST_LIMIT]

    def _choices(self, header: str, options: list[dict[str, str]], now: datetime) -> Understood:
        lines = [render("bot.understanding.choice_line", index=i, text=option.get("line") or render(
            "bot.understanding.colleague_choice", name=option["colleague"])) for i, option in enumerate(options, start=1)]
        return Understood(reply="\n".join([header, *lines, render("bot.understanding.choices_footer")]),
                          state={"choices": options, "at": now.isoformat()})

    def _greeting(self, staff: Staff) -> str:
        examples = [c.usage.split(EXAMPLE_MARK)[1] for c in self.commands
                    if staff.role in c.roles and EXAMPLE_MARK in c.usage][:2]
        return render("bot.understanding.greeting", name=staff.name or staff.userid,
                      examples="\n".join(render("bot.understanding.example", line=e) for e in examples))

    def pending_expired(self, state: dict[str, Any], now: datetime) -> bool:
        """A confirmation or a list of choices older than the lexicon's minutes is no longer answered."""
        at = datetime.fromisoformat(state["at"])
        return now - at > timedelta(minutes=self.lexicon.confirm_minutes)
