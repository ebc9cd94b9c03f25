"""What reading a time phrase gives back: a `When`, or a `TimeExpressionError` saying what was not understood."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any


class TimeExpressionError(ValueError):
    """The phrase cannot be resolved to one future time.

    `past`: it resolves to a time that has passed (昨天, 本周一 on a Wednesday, 今天上午9点 at noon).
    `unread`: the part of the text that was not understood or cannot be settled without asking
    (`多钟`, `13月5日`, `下下下周三`, `后天` in 明天或后天, `下班后`); empty when the whole phrase was
    understood but resolves to the past. `end`: where the phrase read so far ends in the text.
    The message is English, for logs; the bot words its reply from `past` and `unread`."""

    def __init__(self, message: str, *, past: bool = False, unread: str = "", end: int | None = None):
        super().__init__(message)
        self.past = past
        self.unread = unread
        self.end = end


class When(tuple):
    """`(when, rest)` (so `when, rest = take_when(...)` keeps working), with what the bot tells the rep.

    when              aware datetime in the business time zone of `now`: the reminder time
    rest              the text around the expression (after it, for take_when; the sentence with
                      the expression cut out, for find_when), stripped
    text              the expression as the rep wrote it (`周五前`, `下午5点多钟`)
    span              (start, end) of `text` in the text that was read
    default_time_used the phrase gave no clock time and this one was picked (09:00 for a day,
                      19:00 for 晚上, 10:00 for 周末, the next full hour for 今天 said at 10:20), else None
    default_day_used  the phrase named a period (下周, 下个月中旬, 节后, 这两天) and a day in it was picked
    moved_to_next     the clock time had already passed (today, or this week's weekday) and the
                      next occurrence was taken (`9:30` said at 10:00 → tomorrow 09:30)
    deadline          for 周四之前, 三天内, 月底前, 下午5点前: the deadline itself (the task is due
                      before this moment), while `when` is a reminder ahead of it; else None
    approximate       the rep gave a rough time (十点左右, 5点多, 两三点 → its start)
    """

    _FIELDS = ("text", "span", "default_time_used", "default_day_used", "moved_to_next", "deadline", "approximate")
    text: str
    span: tuple[int, int]
    default_time_used: time | None
    default_day_used: bool
    moved_to_next: bool
    deadline: datetime | None
    approximate: bool

    def __new__(cls, when: datetime, rest: str, *, text: str, span: tuple[int, int],
                default_time_used: time | None = None, default_day_used: bool = False,
                moved_to_next: bool = False, deadline: datetime | None = None,
                approximate: bool = False) -> "When":
        self = super().__new__(cls, (when, rest))
        for name, value in (("text", text), ("span", span), ("default_time_used", default_time_used),
                            ("default_day_used", default_day_used), ("moved_to_next", moved_to_next),
                            ("deadline", deadline), ("approximate", approximate)):
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("When is immutable; use replace()")

    def __reduce__(self):
        return (_rebuild, (self.when, self.rest, {name: getattr(self, name) for name in self._FIELDS}))

    @property
    def when(self) -> datetime:
        return self[0]

    @property
    def rest(self) -> str:
        return self[1]

    def replace(self, **changes: Any) -> "When":
        fields = {name: getattr(self, name) for name in self._FIELDS}
        when, rest = changes.pop("when", self.when), changes.pop("rest", self.rest)
        return When(when, rest, **{**fields, **changes})

    def __repr__(self) -> str:
        extras = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"When({self.when!r}, {self.rest!r}, {extras})"


def _rebuild(when: datetime, rest: str, fields: dict[str, Any]) -> When:
    return When(when, rest, **fields)
