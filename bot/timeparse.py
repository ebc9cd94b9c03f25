"""Chinese time expressions as reps type them: 明天, 下周三下午3点, 3天后, 12月5日, 月底, 15:30.

`take_when(text, now)` reads the expression at the start of `text` against `now` (business
time zone, aware) and returns the resolved local datetime and the text after it. A date with no
time means 09:00; a time with no date means the next such time. A result in the past is refused.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time, timedelta

DEFAULT_TIME = time(9, 0)

_NUM = r"(\d{1,4}|[零〇一二两三四五六七八九十]{1,4})"
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5,
             "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_DAY_WORDS = {"今天": 0, "今日": 0, "今晚": 0, "明天": 1, "明日": 1, "明早": 1, "明晚": 1, "后天": 2, "大后天": 3}
_PERIODS = {"凌晨": 0, "早上": 0, "早晨": 0, "上午": 0, "中午": 12, "下午": 12, "傍晚": 12, "晚上": 12, "今晚": 12,
            "明早": 0, "明晚": 12}
_PERIOD_DEFAULT = {"凌晨": time(6), "早上": time(8), "早晨": time(8), "上午": time(9), "中午": time(12), "下午": time(14),
                   "傍晚": time(18), "晚上": time(19), "今晚": time(19), "明早": time(8), "明晚": time(19)}

_RELATIVE = re.compile(_NUM + r"\s*(个)?\s*(天|周|星期|礼拜|小时|钟头|分钟)\s*(后|以后|之后)")
_DAY_WORD = re.compile("|".join(sorted(_DAY_WORDS, key=len, reverse=True)))
_WEEKDAY = re.compile(r"(下下个?|下个?|本|这个?|这)?\s*(周|星期|礼拜)([一二三四五六日天末1-7])")
_FULL_DATE = re.compile(r"(?:(\d{4})\s*[年\-/.])?\s*" + _NUM + r"\s*[月\-/.]\s*" + _NUM + r"\s*[日号]?")
_MONTH_PART = re.compile(r"(下个?月|本月|这个?月)?\s*(月底|月末|月初|底|末|初|" + _NUM + r"\s*[日号])")
_YEAR_END = re.compile(r"年底|年末")
_PERIOD = re.compile("|".join(sorted(_PERIODS, key=len, reverse=True)))
_CLOCK = re.compile(r"(\d{1,2})[:：](\d{2})")
_HOUR = re.compile(_NUM + r"\s*[点时]\s*(?:(半)|(一刻)|(三刻)|" + _NUM + r"\s*分?)?")


class TimeExpressionError(ValueError):
    """The text does not start with a time we can resolve (`past`: it resolves to the past)."""

    def __init__(self, message: str, *, past: bool = False):
        super().__init__(message)
        self.past = past


def cn_number(text: str) -> int:
    """12 or 十二 → 12; 二十三 → 23; 两 → 2."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    value = 0
    for ch in text:
        value = value * 10 + _CN_DIGITS[ch]
    return value


def take_when(text: str, now: datetime) -> tuple[datetime, str]:
    """(resolved local datetime, remaining text) for the time expression at the start of `text`."""
    pos = _skip(text, 0)
    today = now.date()
    relative = _RELATIVE.match(text, pos)
    if relative:
        amount, unit = cn_number(relative.group(1)), relative.group(3)
        pos = relative.end()
        if unit in ("小时", "钟头", "分钟"):
            delta = timedelta(hours=amount) if unit != "分钟" else timedelta(minutes=amount)
            return _future((now + delta).replace(second=0, microsecond=0), now), text[pos:].strip()
        day = today + timedelta(days=amount * (7 if unit in ("周", "星期", "礼拜") else 1))
        return _with_time(text, pos, day, None, now)

    day: date | None = None
    period: str | None = None
    if match := _DAY_WORD.match(text, pos):
        day, pos = today + timedelta(days=_DAY_WORDS[match.group()]), match.end()
        if match.group() in _PERIODS:
            period = match.group()
    elif match := _WEEKDAY.match(text, pos):
        day, pos = _weekday(match.group(1) or "", _WEEKDAYS[match.group(3)], today), match.end()
    elif match := _FULL_DATE.match(text, pos):
        day, pos = _calendar_date(match, today), match.end()
    elif match := _YEAR_END.match(text, pos):
        day, pos = date(today.year, 12, 31), match.end()
    elif (match := _MONTH_PART.match(text, pos)) and (match.group(1) or match.group(2) not in ("底", "末", "初")):
        day, pos = _month_part(match, today), match.end()
    return _with_time(text, pos, day, period, now)


def _with_time(text: str, pos: int, day: date | None, period: str | None, now: datetime) -> tuple[datetime, str]:
    pos = _skip(text, pos)
    if match := _PERIOD.match(text, pos):
        period, pos = match.group(), _skip(text, match.end())
    clock: time | None = None
    if match := _CLOCK.match(text, pos):
        clock, pos = _clock(int(match.group(1)), int(match.group(2)), period), match.end()
    elif match := _HOUR.match(text, pos):
        hour = cn_number(match.group(1))
        minute = 30 if match.group(2) else 15 if match.group(3) else 45 if match.group(4) else (
            cn_number(match.group(5)) if match.group(5) else 0)
        clock, pos = _clock(hour, minute, period), match.end()
    elif period:
        clock = _PERIOD_DEFAULT[period]
    if day is None and clock is None:
        raise TimeExpressionError("no time expression")
    tz = now.tzinfo
    if day is None:
        when = datetime.combine(now.date(), clock, tz)
        if when <= now:
            when += timedelta(days=1)
    elif clock is None:
        when = datetime.combine(day, DEFAULT_TIME, tz)
        if day == now.date() and when <= now:  # "今天" after 9:00: the next full hour
            when = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    else:
        when = datetime.combine(day, clock, tz)
    return _future(when, now), text[pos:].strip()


def _clock(hour: int, minute: int, period: str | None) -> time:
    if period is None and 1 <= hour <= 6:  # "三点开会" in office talk is 15:00, not 03:00
        hour += 12
    elif period and _PERIODS[period] == 12 and hour < 12 and not (period == "中午" and hour >= 11):
        hour += 12
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise TimeExpressionError(f"no such time {hour}:{minute:02d}")
    return time(hour, minute)


def _weekday(prefix: str, weekday: int, today: date) -> date:
    monday = today - timedelta(days=today.weekday())
    if prefix.startswith("下下"):
        return monday + timedelta(days=14 + weekday)
    if prefix.startswith("下"):
        return monday + timedelta(days=7 + weekday)
    if prefix:  # 本周/这周: this week's, even when it has passed (then refused as past)
        return monday + timedelta(days=weekday)
    ahead = (weekday - today.weekday()) % 7  # bare 周三: the coming one (today counts)
    return today + timedelta(days=ahead)


def _calendar_date(match: re.Match, today: date) -> date:
    year = int(match.group(1)) if match.group(1) else today.year
    day = _valid_date(year, cn_number(match.group(2)), cn_number(match.group(3)))
    if not match.group(1) and day < today:  # 3月5日 said in December: next year's
        day = _valid_date(year + 1, day.month, day.day)
    return day


def _month_part(match: re.Match, today: date) -> date:
    which, part = match.group(1) or "", match.group(2)
    year, month = today.year, today.month
    if which.startswith("下"):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if part in ("月底", "月末", "底", "末"):
        return date(year, month, calendar.monthrange(year, month)[1])
    if part in ("月初", "初"):
        if not which:  # 月初 on its own: the next first of a month
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return date(year, month, 1)
    day = _valid_date(year, month, cn_number(match.group(3)))
    if not which and day < today:  # 5号 after the 5th: next month's
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        day = _valid_date(year, month, day.day)
    return day


def _valid_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise TimeExpressionError(f"no such date {year}-{month}-{day}") from None


def _future(when: datetime, now: datetime) -> datetime:
    if when <= now:
        raise TimeExpressionError("that time has passed", past=True)
    return when


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " ,，的":
        pos += 1
    return pos
