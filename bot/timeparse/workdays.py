"""Working days in mainland China, for 节后 / 国庆后 and for vague periods that should not land on a day off.

The State Council publishes each year's holidays and make-up working days (调休) only late in the year
before; `chinese_calendar` keeps that official schedule (2004 through the last year it has been
published for). For a year it does not hold yet we fall back to the customary holiday spans below and
to Saturday/Sunday as the weekend, without make-up working days: the date may then be a day off from
what the official schedule will say, and the confirmation shows it to the rep.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

from bot.timeparse.festivals import festival_day

# Customary first and last day of each statutory holiday, for years the official schedule lacks yet:
# (festival whose solar day anchors it, days before it, days after it).
_CUSTOMARY_SPANS: dict[str, tuple[str, int, int]] = {
    "New Year's Day": ("元旦", 0, 0),
    "Spring Festival": ("春节", 1, 6),  # 除夕 to 初七, as in 2025 and after
    "Tomb-sweeping Day": ("清明", 0, 0),
    "Labour Day": ("劳动节", 0, 4),  # 1-5 May
    "Dragon Boat Festival": ("端午", 0, 0),
    "Mid-autumn Festival": ("中秋", 0, 0),
    "National Day": ("国庆", 0, 6),  # 1-7 October
}


def _covered(day: date) -> bool:
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=64)
def _customary_days_off(year: int) -> frozenset[date]:
    days: set[date] = set()
    for anchor, before, after in _CUSTOMARY_SPANS.values():
        first = festival_day(anchor, year) - timedelta(days=before)
        days.update(first + timedelta(days=i) for i in range(before + after + 1))
    return frozenset(days)


def is_workday(day: date) -> bool:
    if _covered(day):
        return chinese_calendar.is_workday(day)
    return day.weekday() < 5 and day not in _customary_days_off(day.year)


def workday_on_or_after(day: date) -> date:
    while not is_workday(day):
        day += timedelta(days=1)
    return day


def workday_on_or_before(day: date) -> date:
    while not is_workday(day):
        day -= timedelta(days=1)
    return day


def holiday_span(name: str, day: date) -> tuple[date, date]:
    """The block of days off around `day` for statutory holiday `name` (English name, as in
    chinese_calendar): from the official schedule when it holds the year, else the customary span
    widened over an adjacent weekend."""
    if _covered(day):
        on_holiday = lambda d: _covered(d) and chinese_calendar.get_holiday_detail(d) == (True, name)  # noqa: E731
        if on_holiday(day):
            first, last = day, day
            while on_holiday(first - timedelta(days=1)):
                first -= timedelta(days=1)
            while on_holiday(last + timedelta(days=1)):
                last += timedelta(days=1)
            return first, last
        # e.g. 中秋 on a Sunday with the day off on Monday: the nearest official block within a few days
        for offset in (1, -1, 2, -2, 3, -3):
            if on_holiday(day + timedelta(days=offset)):
                return holiday_span(name, day + timedelta(days=offset))
    _, before, after = _CUSTOMARY_SPANS[name]
    first, last = day - timedelta(days=before), day + timedelta(days=after)
    while (first - timedelta(days=1)).weekday() >= 5:
        first -= timedelta(days=1)
    while (last + timedelta(days=1)).weekday() >= 5:
        last += timedelta(days=1)
    return first, last
