"""Chinese time phrases as reps type them: 明天下午3点, 下周三, 两个半小时后, 国庆后, 月底前, 周五下午两三点.

    take_when(text, now) -> When      the phrase at the start of `text` (command arguments:
                                      `跟进 张三 下周三 发报价`)
    find_when(text, now) -> When|None the first phrase anywhere in a sentence
                                      (`明天下午提醒我给张三打电话`), None when it has none

`now` is an aware datetime in the business time zone; every result is in that zone. A `When`
unpacks as `(when, rest)` and carries what the bot should tell the rep (see `When`): the default
time it picked, whether a passed time moved to its next occurrence, the deadline for 周四之前 /
三天内, the matched text and its span. A phrase that starts like a time but cannot be read raises
`TimeExpressionError` whose `unread` names the part not understood, and so does a phrase that
cannot be settled without asking (明天或后天, 十点 said at 18:00, 下班后); an explicit day or time
that has passed raises it with `past=True`. A clock time alone that has passed today (`9:30` at
10:00) is not an error: it moves to tomorrow and says so in `moved_to_next`.

find_when reads free sentences, where numbers are often not times: it skips counts (有三点建议),
greetings (周末愉快), numbers inside longer numbers and the numeral ending a name (李四两点前); it
passes over a past phrase to a later one (昨天说好了，明天再打) but raises at a phrase it cannot read
(13月5日, 每周一: recurring), rather than read a fragment of it.

Modules by job: `numbers` (Chinese numerals), `phrases` (the patterns), `reader` (reading and
resolving one phrase), `festivals` (solar days of festivals, lunar and solar-term ones computed),
`workdays` (the official working-day calendar), `result` (`When`, `TimeExpressionError`).
"""

from __future__ import annotations

from datetime import datetime

from bot.timeparse.numbers import cn_number, half_width
from bot.timeparse.phrases import COUNTED_AFTER, COUNTED_BEFORE, FILLER, GREETING
from bot.timeparse.reader import Unmatched, read_at
from bot.timeparse.result import TimeExpressionError, When

__all__ = ["TimeExpressionError", "When", "cn_number", "find_when", "take_when"]

_LEADING = " ,，、的"
_PREFIXES = set("下上这本今明后前大第农阴去次当")  # they would have started the phrase themselves
_CONTINUED = set("下上周星期礼拜个月年午天半季")


def take_when(text: str, now: datetime) -> When:
    """The time phrase at the start of `text` and the text after it.

    Raises TimeExpressionError when `text` does not start with a time we can resolve."""
    normal = half_width(text)
    start = len(normal) - len(normal.lstrip(_LEADING))
    filler = FILLER.match(normal, start)
    try:
        found = read_at(normal, filler.end(), now)
    except Unmatched:
        raise TimeExpressionError("no time expression", unread=_first_word(text[start:])) from None
    return found.replace(text=text[slice(*found.span)], rest=text[found.span[1]:].lstrip(_LEADING).strip(),
                         approximate=found.approximate or bool(filler.group("rough")))


def find_when(text: str, now: datetime) -> When | None:
    """The first time phrase anywhere in `text`, with `rest` the sentence without it, or None.

    A phrase that is found but cannot be resolved (a past day, 13月5日) raises TimeExpressionError,
    unless a later phrase in the sentence resolves (`昨天说好了，明天再打` → 明天)."""
    normal = half_width(text)
    first_error: TimeExpressionError | None = None
    resume, retry, past_end = 0, -1, None
    for start in range(len(normal)):
        if start < resume or (start != retry and not _may_start(normal, start)):
            continue
        try:
            found = read_at(normal, start, now)
        except Unmatched:
            continue
        except TimeExpressionError as exc:
            if _after_a_name(normal, start):
                first_error, retry = first_error or exc, start + 1  # 李四两点前: 四 ends a name, try 两点前
                continue
            if not exc.past:
                raise  # a time we cannot read: ask, rather than read a later fragment of it
            first_error, resume = first_error or exc, exc.end or start + 1
            past_end = resume
            continue
        if past_end is not None and normal[past_end:found.span[0]].strip(" 的") == "":
            resume = past_end = found.span[1]  # 3周前的下午5点: the clock belongs to the past day
            continue
        if _counted(normal, found) or GREETING.match(normal, found.span[1]):
            continue
        if _recurring(normal, found.span[0]):
            begin = normal.rindex("每", 0, found.span[0])
            raise TimeExpressionError("a recurring time", unread=text[begin:found.span[1]])
        begin, end = found.span
        before, after = text[:begin].rstrip(), text[end:].lstrip(_LEADING)
        spaced = before and after and (text[begin - 1].isspace() or text[end:end + 1].isspace())
        return found.replace(text=text[begin:end], rest=(f"{before} {after}" if spaced else before + after).strip())
    if first_error is not None:
        raise first_error
    return None


def _may_start(text: str, start: int) -> bool:
    """A phrase does not start inside a number (138 0013 5678, 2027/1/5 read from its 2)."""
    current = text[start]
    if current in _LEADING:
        return False
    if start == 0:
        return True
    previous = text[start - 1]
    if previous in _PREFIXES and current in _CONTINUED:
        return False  # 下下下周三 is not read from its second 下, nor 上个月底 from 个月底
    if previous.isdigit() and current.isdigit():
        return False
    return not (previous in "零〇一二两三四五六七八九十百千" and current in "零〇一二两三四五六七八九十百千")


def _counted(text: str, found: When) -> bool:
    """有三点建议, 第三点: a bare hour that counts things, not a time (only in free sentences)."""
    begin, end = found.span
    phrase = text[begin:end]
    if not (phrase.endswith("点") and len(phrase) <= 3 and found.default_time_used is None):
        return False
    return (begin > 0 and text[begin - 1] in COUNTED_BEFORE) or bool(COUNTED_AFTER.match(text, end))


def _after_a_name(text: str, start: int) -> bool:
    """张三 / 李四 end in numerals: a numeral right after a Han character may belong to the name."""
    return (0 < start < len(text) - 1 and text[start] in "一二三四五六七八九十" and "\u4e00" <= text[start - 1] <= "\u9fff"
            and text[start - 1] not in "零〇一二两三四五六七八九十百千")


def _recurring(text: str, begin: int) -> bool:
    """每周一, 每个月底: a repeating time, which one reminder cannot stand for."""
    return text[max(0, begin - 2):begin].endswith(("每", "每个", "每隔"))


def _first_word(text: str) -> str:
    return text.strip().split(" ")[0][:12] if text.strip() else ""
