"""Which solar day a festival falls on in a given year, computed rather than tabled.

Lunar festivals (春节, 元宵, 端午, 七夕, 中秋, 重阳, 腊八, 除夕) go through `lunardate`'s
calendar; 清明 and 冬至 are solar terms, found from the sun's apparent longitude with Meeus's
low-precision solar theory (Astronomical Algorithms, ch. 25; good to about 0.01°, i.e. a quarter of
an hour, which is why the day is exact except within minutes of midnight); the rest are fixed
solar dates or "the Nth weekday of a month".
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from lunardate import LunarDate

BEIJING = timezone(timedelta(hours=8))  # solar terms are dated in China Standard Time


def lunar_to_solar(year: int, month: int, day: int, leap: bool = False) -> date | None:
    """The solar day of lunar `year`-`month`-`day`, or None when that lunar year has no such day."""
    try:
        return LunarDate(year, month, day, leap).to_solar_date()
    except ValueError:
        return None


def new_year_eve(year: int) -> date:
    """除夕: the last day of the lunar year, the day before 春节 of solar `year`."""
    return LunarDate(year, 1, 1).to_solar_date() - timedelta(days=1)


def _sun_longitude(jde: float) -> float:
    """The sun's apparent longitude in degrees at Julian Ephemeris Day `jde` (Meeus 25.2-25.8)."""
    t = (jde - 2451545.0) / 36525
    mean_longitude = 280.46646 + 36000.76983 * t + 0.0003032 * t * t
    anomaly = math.radians(357.52911 + 35999.05029 * t - 0.0001537 * t * t)
    centre = ((1.914602 - 0.004817 * t - 0.000014 * t * t) * math.sin(anomaly)
              + (0.019993 - 0.000101 * t) * math.sin(2 * anomaly) + 0.000289 * math.sin(3 * anomaly))
    omega = math.radians(125.04 - 1934.136 * t)
    return (mean_longitude + centre - 0.00569 - 0.00478 * math.sin(omega)) % 360


def _julian_day(moment: datetime) -> float:
    return moment.timestamp() / 86400 + 2440587.5


def solar_term(year: int, longitude: float) -> date:
    """The Beijing-time day on which the sun reaches `longitude` (15° 清明, 270° 冬至) in `year`."""
    # Each term falls near the same solar day every year; start a week early and bisect a 3-week window.
    approx = date(year, 3, 20) + timedelta(days=round((longitude % 360) / 360 * 365.2422))
    if approx.year != year:
        approx = approx.replace(year=year)
    low = datetime(approx.year, approx.month, approx.day, tzinfo=timezone.utc) - timedelta(days=10)
    high = low + timedelta(days=20)
    delta_t = 69 / 86400  # TT - UTC, about 69 s in the 2020s; a minute either way moves no day but at midnight

    def past(moment: datetime) -> bool:
        return (_sun_longitude(_julian_day(moment) + delta_t) - longitude + 180) % 360 - 180 >= 0

    for _ in range(40):  # 20 days / 2**40: far below a second
        middle = low + (high - low) / 2
        low, high = (low, middle) if past(middle) else (middle, high)
    return high.astimezone(BEIJING).date()


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))


def _fixed(month: int, day: int) -> Callable[[int], date]:
    return lambda year: date(year, month, day)


def _lunar(month: int, day: int) -> Callable[[int], date]:
    def solar(year: int) -> date:
        # A lunar festival always falls within one solar year: the lunar year starting in that solar year.
        found = lunar_to_solar(year, month, day)
        assert found is not None  # festival days (初一..十五) exist in every lunar month
        return found

    return solar


# name -> (the solar day in a given solar year, the statutory holiday it opens, if any)
FESTIVALS: dict[str, tuple[Callable[[int], date], str | None]] = {
    "元旦": (_fixed(1, 1), "New Year's Day"),
    "春节": (_lunar(1, 1), "Spring Festival"),
    "除夕": (new_year_eve, "Spring Festival"),
    "元宵": (_lunar(1, 15), None),
    "情人节": (_fixed(2, 14), None),
    "妇女节": (_fixed(3, 8), None),
    "清明": (lambda year: solar_term(year, 15), "Tomb-sweeping Day"),
    "劳动节": (_fixed(5, 1), "Labour Day"),
    "母亲节": (lambda year: _nth_weekday(year, 5, 6, 2), None),
    "儿童节": (_fixed(6, 1), None),
    "618": (_fixed(6, 18), None),
    "端午": (_lunar(5, 5), "Dragon Boat Festival"),
    "父亲节": (lambda year: _nth_weekday(year, 6, 6, 3), None),
    "七夕": (_lunar(7, 7), None),
    "教师节": (_fixed(9, 10), None),
    "中秋": (_lunar(8, 15), "Mid-autumn Festival"),
    "国庆": (_fixed(10, 1), "National Day"),
    "重阳": (_lunar(9, 9), None),
    "双十一": (_fixed(11, 11), None),
    "感恩节": (lambda year: _nth_weekday(year, 11, 3, 4), None),
    "双十二": (_fixed(12, 12), None),
    "冬至": (lambda year: solar_term(year, 270), None),
    "平安夜": (_fixed(12, 24), None),
    "圣诞": (_fixed(12, 25), None),
    "腊八": (lambda year: _lunar_in_solar_year(year, 12, 8), None),
}


def _lunar_in_solar_year(year: int, month: int, day: int) -> date:
    """腊月 days mostly fall in January of the next solar year; take the one inside solar `year`."""
    for lunar_year in (year - 1, year):
        found = lunar_to_solar(lunar_year, month, day)
        if found is not None and found.year == year:
            return found
    found = lunar_to_solar(year, month, day)
    assert found is not None
    return found


def festival_day(name: str, year: int) -> date:
    return FESTIVALS[name][0](year)


def next_lunar_day(month: int, day: int, today: date, leap: bool = False) -> date | None:
    """The next solar day (today counts) that is lunar `month`-`day`; None if none within two years."""
    for lunar_year in (today.year - 1, today.year, today.year + 1, today.year + 2):
        found = lunar_to_solar(lunar_year, month, day, leap)
        if found is not None and found >= today:
            return found
    return None
