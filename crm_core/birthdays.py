"""Birthdays as people in China give them: solar (3月2日, 1990-03-02) or lunar (农历三月初二).

A lunar birthday is stored as such (month, day, leap month) and falls on a different solar
date every year, so "whose birthday is today" is asked the other way round: `celebrated_keys`
turns one solar day into every stored (calendar, month, day, leap) that is celebrated on it,
and the scheduler looks those keys up through an index. The rules for dates a year lacks:
- solar 2月29日 is celebrated on 2月28日 in common years;
- lunar day 30 is celebrated on day 29 when that month has only 29 days that year;
- a birthday in a leap month (闰月) is celebrated in the leap month when the year has one,
  otherwise in the ordinary month of the same number.
Lunar conversion uses `lunardate` (covers 1900–2099), a small pure-Python table that is exact
for those years, rather than an astronomical computation of our own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from lunardate import LunarDate

from crm_core.errors import InvalidDateError

SOLAR, LUNAR = "solar", "lunar"
KeyTuple = tuple[str, int, int, bool]  # (calendar, month, day, leap)

LUNAR_MONTH_NAMES = ["正", "二", "三", "四", "五", "六", "七", "八", "九", "十", "冬", "腊"]
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


@dataclass(frozen=True)
class Birthday:
    month: int
    day: int
    lunar: bool = False
    leap: bool = False  # born in a lunar leap month (闰月)
    year: int | None = None  # the birth year when known (solar or lunar year to match the calendar)

    def __post_init__(self) -> None:
        if self.leap and not self.lunar:
            raise InvalidDateError("only a lunar birthday can be in a leap month")
        if self.lunar:
            if not (1 <= self.month <= 12 and 1 <= self.day <= 30):
                raise InvalidDateError(f"no lunar date {self.month}/{self.day}")
        else:
            try:
                date(2000, self.month, self.day)  # a leap year, so 2月29日 is allowed
            except ValueError:
                raise InvalidDateError(f"no date {self.month}/{self.day}") from None
            if self.year is not None:
                try:
                    date(self.year, self.month, self.day)
                except ValueError:
                    raise InvalidDateError(f"no date {self.year}-{self.month}-{self.day}") from None
        if self.year is not None and not (1900 <= self.year <= date.today().year):
            raise InvalidDateError(f"birth year {self.year} is out of range")

    @property
    def calendar(self) -> str:
        return LUNAR if self.lunar else SOLAR

    def key(self) -> KeyTuple:
        return (self.calendar, self.month, self.day, self.leap)

    def next_after(self, today: date) -> date:
        """The next solar date, on or after `today`, on which this birthday is celebrated.

        A lunar year is shorter than a solar one, so a lunar birthday may fall twice in one
        solar year or not at all; counting from `today` sidesteps that."""
        if not self.lunar:
            this_year = _solar_in(today.year, self.month, self.day)
            return this_year if this_year >= today else _solar_in(today.year + 1, self.month, self.day)
        lunar_year = LunarDate.from_solar_date(today.year, today.month, today.day).year
        return min(d for d in (_lunar_to_solar(y, self.month, self.day, self.leap)
                               for y in (lunar_year - 1, lunar_year, lunar_year + 1)) if d >= today)

    def __str__(self) -> str:
        if self.lunar:
            return f"农历{'闰' if self.leap else ''}{LUNAR_MONTH_NAMES[self.month - 1]}月{lunar_day_name(self.day)}"
        prefix = f"{self.year}年" if self.year else ""
        return f"{prefix}{self.month}月{self.day}日"


def celebrated_keys(day: date) -> list[KeyTuple]:
    """Every stored birthday key whose celebration falls on solar `day` (see the module rules)."""
    keys: list[KeyTuple] = [(SOLAR, day.month, day.day, False)]
    if day.month == 2 and day.day == 28 and not _is_leap_year(day.year):
        keys.append((SOLAR, 2, 29, False))
    lunar = LunarDate.from_solar_date(day.year, day.month, day.day)
    last_day = not _lunar_exists(lunar.year, lunar.month, lunar.day + 1, lunar.is_leap_month)
    days = [lunar.day, 30] if last_day and lunar.day == 29 else [lunar.day]
    if lunar.is_leap_month:
        keys += [(LUNAR, lunar.month, d, True) for d in days]
    else:
        keys += [(LUNAR, lunar.month, d, False) for d in days]
        if LunarDate.leap_month_for_year(lunar.year) != lunar.month:
            keys += [(LUNAR, lunar.month, d, True) for d in days]
    return keys


def parse_birthday(text: str) -> Birthday:
    """`3月2日`, `03-02`, `1990-03-02`, `1990年3月2日`, `农历三月初二`, `农历闰四月十五`, `阴历腊月廿三`, `农历3月2日`."""
    text = re.sub(r"\s+", "", text or "").replace("號", "号")
    lunar = False
    for prefix in ("农历", "阴历", "旧历", "lunar:"):
        if text.lower().startswith(prefix):
            lunar, text = True, text[len(prefix):]
            break
    if lunar:
        return _parse_lunar(text)
    match = re.fullmatch(r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})[日号]?", text)
    if not match:
        raise InvalidDateError(f"cannot read {text!r} as a birthday")
    year, month, day = match.groups()
    return Birthday(int(month), int(day), year=int(year) if year else None)


def lunar_day_name(day: int) -> str:
    if day <= 10:
        return "初" + ("十" if day == 10 else "一二三四五六七八九"[day - 1])
    if day < 20:
        return "十" + "一二三四五六七八九"[day - 11]
    if day == 20:
        return "二十"
    if day < 30:
        return "廿" + "一二三四五六七八九"[day - 21]
    return "三十"


def _parse_lunar(text: str) -> Birthday:
    match = re.fullmatch(r"(?:(\d{4})年)?(闰)?(.+?)月(.+?)[日号]?", text)
    if not match:
        raise InvalidDateError(f"cannot read {text!r} as a lunar birthday")
    year, leap, month_text, day_text = match.groups()
    month = _lunar_month(month_text)
    day = _lunar_day(day_text)
    return Birthday(month, day, lunar=True, leap=bool(leap), year=int(year) if year else None)


def _lunar_month(text: str) -> int:
    if text.isdigit():
        return int(text)
    names = {name: i + 1 for i, name in enumerate(LUNAR_MONTH_NAMES)} | {"一": 1, "元": 1, "十一": 11, "十二": 12}
    if text in names:
        return names[text]
    raise InvalidDateError(f"no lunar month {text!r}")


def _lunar_day(text: str) -> int:
    """初一…初十, 十一…十九, 二十, 廿一…廿九 (or 二十一…), 三十 (or 卅), or plain digits."""
    if text.isdigit():
        return int(text)
    tens = {"初": 0, "十": 10, "廿": 20, "念": 20, "二十": 20, "卅": 30, "三十": 30}
    for prefix in sorted(tens, key=len, reverse=True):
        if text.startswith(prefix):
            rest = text[len(prefix):]
            if not rest and prefix not in ("初",):
                return tens[prefix]
            if prefix == "初" and rest == "十":
                return 10
            if rest in _DIGITS and _DIGITS[rest] > 0 and tens[prefix] < 30:
                return tens[prefix] + _DIGITS[rest]
    raise InvalidDateError(f"no lunar day {text!r}")


def _is_leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _solar_in(year: int, month: int, day: int) -> date:
    return date(year, 2, 28) if (month, day) == (2, 29) and not _is_leap_year(year) else date(year, month, day)


def _lunar_exists(year: int, month: int, day: int, leap: bool) -> bool:
    try:
        LunarDate(year, month, day, leap).to_solar_date()
        return True
    except ValueError:
        return False


def _lunar_to_solar(year: int, month: int, day: int, leap: bool) -> date:
    """Lunar → solar, celebrating a missing leap month in the ordinary month and a missing 30th on the 29th."""
    if leap and LunarDate.leap_month_for_year(year) != month:
        leap = False
    if day == 30 and not _lunar_exists(year, month, 30, leap):
        day = 29
    return LunarDate(year, month, day, leap).to_solar_date()
