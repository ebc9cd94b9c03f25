"""Birthdays as customers give them: parsing, and on which solar day each is celebrated."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from crm_core.birthdays import Birthday, celebrated_keys, parse_birthday
from crm_core.errors import InvalidDateError


@pytest.mark.parametrize("text, expected, shown", [
    ("3月2日", Birthday(3, 2), "3月2日"),
    ("03-02", Birthday(3, 2), "3月2日"),
    ("1990-03-02", Birthday(3, 2, year=1990), "1990年3月2日"),
    ("1990年3月2号", Birthday(3, 2, year=1990), "1990年3月2日"),
    ("农历三月初二", Birthday(3, 2, lunar=True), "农历三月初二"),
    ("农历3月2日", Birthday(3, 2, lunar=True), "农历三月初二"),
    ("阴历腊月廿三", Birthday(12, 23, lunar=True), "农历腊月廿三"),
    ("农历闰四月十五", Birthday(4, 15, lunar=True, leap=True), "农历闰四月十五"),
    ("农历正月初十", Birthday(1, 10, lunar=True), "农历正月初十"),
    ("农历冬月三十", Birthday(11, 30, lunar=True), "农历冬月三十"),
    ("农历二月二十一", Birthday(2, 21, lunar=True), "农历二月廿一"),
])
def test_parse_birthday(text, expected, shown):
    assert parse_birthday(text) == expected
    assert str(expected) == shown


@pytest.mark.parametrize("text", ["", "abc", "13月1日", "2月30日", "2023-02-29", "农历十三月初一", "农历三月初",
                                  "农历三月卅一", "3月", "2999-01-01"])
def test_impossible_birthdays_are_refused(text):
    with pytest.raises(InvalidDateError):
        parse_birthday(text)


def test_29_february_is_celebrated_on_28_february_in_common_years():
    leapling = Birthday(2, 29, year=2000)
    assert leapling.next_after(date(2026, 11, 29)) == date(2027, 2, 28)
    assert leapling.next_after(date(2027, 11, 29)) == date(2028, 2, 29)
    assert ("solar", 2, 29, False) in celebrated_keys(date(2027, 2, 28))
    assert ("solar", 2, 29, False) not in celebrated_keys(date(2028, 2, 28))


def test_lunar_birthdays_move_with_the_lunar_calendar():
    born = Birthday(3, 2, lunar=True)  # 农历三月初二
    assert born.next_after(date(2026, 1, 1)) == date(2026, 4, 18)
    assert born.next_after(date(2026, 4, 19)) == date(2027, 4, 8)
    # 腊月 birthdays land in the next solar year's January or February.
    assert Birthday(12, 23, lunar=True).next_after(date(2026, 11, 29)) == date(2027, 1, 30)


def test_missing_lunar_days_and_leap_months_fall_back():
    # 农历二月 2026 has 29 days: a 二月三十 birthday is celebrated on 二月廿九.
    assert Birthday(2, 30, lunar=True).next_after(date(2026, 3, 1)) == Birthday(2, 29, lunar=True).next_after(date(2026, 3, 1))
    # 2025 has a leap 6th month, 2026 none: 闰六月初五 is kept in the leap month, then in the ordinary one.
    leap_born = Birthday(6, 5, lunar=True, leap=True)
    assert leap_born.next_after(date(2025, 7, 1)) == date(2025, 7, 29)
    assert leap_born.next_after(date(2026, 1, 1)) == date(2026, 7, 18) == Birthday(6, 5, lunar=True).next_after(date(2026, 1, 1))


def test_the_daily_lookup_keys_agree_with_each_birthdays_next_date():
    """celebrated_keys(day) (what the scheduler queries) names a birthday exactly when it falls that day."""
    everyone = []
    for month in range(1, 13):
        for day in range(1, 31):
            for lunar, leap in ((False, False), (True, False), (True, True)):
                try:
                    everyone.append(Birthday(month, day, lunar=lunar, leap=leap))
                except InvalidDateError:
                    pass
    day = date(2025, 1, 1)
    while day < date(2029, 1, 1):
        keys = set(celebrated_keys(day))
        for birthday in everyone:
            assert (birthday.key() in keys) == (birthday.next_after(day) == day), (day, birthday)
        day += timedelta(days=11)
