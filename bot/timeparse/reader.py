"""Reading one time phrase at a position of a text and resolving it against `now`.

A phrase is read as up to four parts, each optional, in this order:

    offset | day        两小时后 / 三天后, 下周三, 12月5号, 国庆, 月底, 下个月中旬, 节后
    period              上午, 下午, 晚上, 半夜 (or implied by 今晚 / 明早)
    clock               3点, 三点半, 15:30, 两三点 (a range: its start), 5点多钟, 十点左右
    suffix              前 / 之前 / 内 (a deadline), 后 (for holidays: the first working day after)

then resolved: a day with no clock gets a default time, a clock with no day gets the next such
time, a vague period gets a day in it (a working day), and a deadline gets a reminder ahead of it.
Whatever starts like a time but is not understood is refused, never guessed: a wrong reminder is
worse than a question back.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.timeparse import workdays
from bot.timeparse.festivals import FESTIVALS, festival_day, next_lunar_day
from bot.timeparse.numbers import cn_number, number, spoken_count
from bot.timeparse.phrases import (
    AFTER, APPROX, BEFORE, CALENDAR_DATE, CLOCK, CLOCK_AMPM, CLOCK_COLON, DAY_OF_MONTH, DAY_WORD,
    DAY_WORD_PERIOD, DAY_WORDS, DEFAULT_TIME, FESTIVAL, FESTIVAL_NAMES, GAP, HOLIDAY_WORD, LUNAR_DATE,
    LUNAR_MONTHS, MONTH_PART, NUMERIC_DATE, PERIOD, PERIOD_DEFAULT, PERIOD_ENDS, PERIODS, QUARTER,
    FIRST_AFTER, LAST_DAY, RANGE_TAIL, SAME_DAY, RELATIVE, SHORT_DATE, SHORT_OF, THIS_TIME, UNREAD_TIME, VAGUE_DAY_OFFSET, VAGUE_DAYS, WEEK, WEEK_THEN_DAY,
    WEEKDAYS, WEEKEND_TIME, WITHIN, YEAR_PART,
)
from bot.timeparse.result import TimeExpressionError, When

_HOLIDAY_LOOKAHEAD_DAYS = 31
_WORKDAY_ENDS = 18  # 周三 said on a Wednesday means today until the working day ends
_RANGE = re.compile(r"\s*(?:到|至|~|-|—|一直到)\s*")  # 周一到周三
_ANOTHER = re.compile(r"[\s,，、]*(?:或者|或是|或|还是|和|及|、)\s*")  # 明天或后天, 三点、四点  # 节后 said further ahead than this names no holiday we can be sure of


@dataclass
class _Day:
    """What the day part said."""

    day: date
    kind: str = "named"  # named: a calendar day (passed → refused); weekday: bare 周三 (passed → next week);
    #                      period: 下周 / 月底 / 节后 (a day was picked)
    default_time: time = DEFAULT_TIME
    before_day: date | None = None  # with 前: the first day no longer allowed (周四前 → Thursday, 月底前 → the 1st)
    within_day: date | None = None  # with 内: likewise (本周内 → next Monday); None: 内 cannot follow
    festival: str | None = None  # 国庆 etc.: 后 means the first working day after it
    is_deadline: bool = False  # 节前 / 年前: a deadline without 前 after it


@dataclass
class _Clock:
    at: time
    next_day: bool = False  # 半夜12点, 晚上1点: the small hours after the day named
    bare_hour: int | None = None  # the hour as said with no period (八点), which the evening may reread


class Unmatched(Exception):
    """Nothing time-like starts here (not an error: find_when moves on)."""


class _Reader:
    def __init__(self, text: str, start: int, now: datetime):
        self.text, self.start, self.pos, self.now = text, start, start, now
        self.today = now.date()
        self.approximate = False
        self.default_day_used = False

    # --- helpers -------------------------------------------------------------------------------
    def match(self, pattern: re.Pattern, *, gap: bool = True) -> re.Match | None:
        pos = GAP.match(self.text, self.pos).end() if gap and self.pos > self.start else self.pos
        found = pattern.match(self.text, pos)
        if found and found.end() > pos:
            self.pos = found.end()
            return found
        return None

    def refuse(self, message: str, unread: str | None = None, *, past: bool = False) -> TimeExpressionError:
        if unread is None:
            unread = self.text[self.start:self.pos]
        return TimeExpressionError(message, past=past, unread=unread, end=max(self.pos, self.start + 1))

    def valid_date(self, year: int, month: int, day: int, said: str) -> date:
        try:
            return date(year, month, day)
        except ValueError:
            raise self.refuse(f"no such date {year}-{month}-{day}", said) from None

    def next_full_hour(self) -> datetime:
        return (self.now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)

    def at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, self.now.tzinfo)

    # --- the phrase ----------------------------------------------------------------------------
    def read(self) -> When:
        offset = self.read_offset()
        if isinstance(offset, When):
            return offset
        day = offset or self.read_day()
        if day is not None and (joined := _RANGE.match(self.text, self.pos)):
            second = _Reader(self.text, joined.end(), self.now)
            try:  # 周一到周三, 3号至5号: the range starts on the first day
                if second.read_day() is not None:
                    self.pos, self.approximate = second.pos, True
            except TimeExpressionError:
                pass
        period = None
        if day is not None and (word := self.text[self.start:self.pos]) in DAY_WORD_PERIOD:
            period = DAY_WORD_PERIOD[word]
        if found := self.match(PERIOD):
            period = PERIODS[found.group()]
            if found.group() in ("早", "晚") and not re.match(r"\s*[\d一二两三四五六七八九十]", self.text[self.pos:]):
                self.pos = found.start()  # 早点 / 晚些: not a period
                period = DAY_WORD_PERIOD.get(self.text[self.start:self.pos])
        clock = self.read_clock(period)
        if clock is None and period is None and day is not None and self.match(THIS_TIME):
            day, clock = self.this_time_on(day)
        elif day is not None and clock is None and period is None and self.match(SAME_DAY):
            day = self.this_time_on(day)[0]  # 下个月的今天: a month on, with the day's default time
            clock = None
        if day is None and period is None and clock is None:
            raise Unmatched
        if clock is None and period == "夜里":
            raise self.refuse("a night period needs a clock time")
        if self.match(APPROX):
            self.approximate = True
        return self.finish(day, period, clock)

    def this_time_on(self, day: _Day) -> tuple[_Day, _Clock]:
        """明天这个时候 / 下周这个时候: the day named (a week or a month on, for 下周 / 下个月) at the
        clock time it is now."""
        said = self.text[self.start:self.pos]
        if day.kind == "period":
            if re.match(r"下个?(?:周|星期|礼拜)", said):
                day = _Day(self.today + timedelta(days=7))
            elif re.match(r"下个?月", said):
                day = _Day(_add_months(self.today, 1))
            else:
                raise self.refuse("not one time", said)
            self.default_day_used = False  # the day is exact: a week on
        return day, _Clock(self.now.time().replace(second=0, microsecond=0))

    def finish(self, day: _Day | None, period: str | None, clock: _Clock | None) -> When:
        before = self.match(BEFORE) or (day is not None and day.is_deadline)
        within = None if before else (self.match(WITHIN) if day is not None and day.within_day else None)
        after = None if before or within else self.match(AFTER, gap=False)
        if after and day is not None and day.festival:
            day = self.after_festival(day)
        elif after:
            self.approximate = True  # 周五以后, 3点之后: from then on
        self.check_unread()
        if within:
            assert day is not None and day.within_day is not None
            return self.day_deadline(day.within_day)
        if before:
            return self.deadline(day, clock, period)
        when, default_time, moved = self.resolve(day, period, clock)
        return self.result(when, default_time=default_time, moved=moved)

    def result(self, when: datetime, *, default_time: time | None = None, moved: bool = False,
               deadline: datetime | None = None) -> When:
        if when <= self.now:
            raise self.refuse("that time has passed", "", past=True)
        end = self.start + len(self.text[self.start:self.pos].rstrip())  # patterns may swallow a trailing space
        return When(when, self.text[end:].lstrip(" ,，、的").strip(), text=self.text[self.start:end],
                    span=(self.start, end), default_time_used=default_time,
                    default_day_used=self.default_day_used, moved_to_next=moved, deadline=deadline,
                    approximate=self.approximate)

    def check_unread(self) -> None:
        """Refuse what follows the phrase when it is more time: a fragment we could not read (多钟,
        25点) or a second time (明天或后天, 三点、四点), which one reminder cannot stand for."""
        pos = GAP.match(self.text, self.pos).end()
        if pos < len(self.text) and (bad := UNREAD_TIME.match(self.text, pos)):
            tail = re.match(r"[^\s,，。；;]{1,8}", self.text[bad.start():])
            raise self.refuse("part of the time was not understood", tail.group() if tail else bad.group())
        if self.pos > self.start and (self.text[self.pos - 1] in "的 " or GAP.match(self.text, self.pos).end() > self.pos):
            self.refuse_second_day(GAP.match(self.text, self.pos).end())
        if joined := _ANOTHER.match(self.text, self.pos):
            try:
                other = _Reader(self.text, joined.end(), self.now).read()
            except (Unmatched, TimeExpressionError):
                return
            raise self.refuse("two times: which one?", self.text[joined.end():other.span[1]])

    def refuse_second_day(self, pos: int) -> None:
        """两周后的周一, 明天 三天后: a second time after the first, which one reminder cannot stand for."""
        try:
            second = _Reader(self.text, pos, self.now).read()
        except (Unmatched, TimeExpressionError):
            return
        raise self.refuse("two times: which one?", self.text[slice(*second.span)])

    # --- offsets: 两个半小时后, 3天后, 三天内 -----------------------------------------------------
    def read_offset(self) -> _Day | When | None:
        found = RELATIVE.match(self.text, self.pos)
        if not found:
            return None
        unit, suffix, over = found.group("unit"), found.group("suffix") or "", found.group("over")
        amount_text = found.group("amount")
        if not suffix and not over:
            return None  # 三天, 5日, 2月: a count or a calendar part, read elsewhere
        if unit == "日" and suffix in ("前", "以前", "之前"):
            return None  # 5日前: before the 5th
        if unit == "月" and not (found.group("ge") or amount_text == "半" or found.group("half1")) and suffix in ("前", "以前", "之前"):
            return None  # 3月前: before March
        if unit == "年" and amount_text.isdigit() and len(amount_text) >= 2:
            return None  # 2025年前: a year
        self.pos = found.end()
        if amount_text == "几":
            if not (over and unit == "天"):
                raise self.refuse("a vague count", found.group())
            amount: float = 3  # 过几天: in a few days, said back to the rep
            self.default_day_used = True
        else:
            try:
                if amount_text == "半":
                    amount = 0.5
                elif "." in amount_text:
                    amount = number(amount_text)
                else:
                    amount, rough = spoken_count(amount_text)
                    self.approximate = self.approximate or rough  # 两三天后: the start of the range
            except ValueError:
                raise self.refuse("not a number", found.group()) from None
        if amount_text == "半" and unit in ("天", "日"):
            raise self.refuse("半天 is a while, not twelve hours", found.group())
        if found.group("half1") or found.group("half2"):
            if amount_text == "半":
                raise self.refuse("not a duration", found.group())
            amount += 0.5
        if found.group("more1") or found.group("more2"):
            self.approximate = True
        if suffix in ("前", "以前", "之前"):
            raise self.refuse("that time has passed", "", past=True)
        if unit == "月" and not (found.group("ge") or amount_text == "半" or found.group("half1")):
            raise self.refuse("a month count needs 个 (3个月后)", found.group())
        if amount <= 0:
            raise self.refuse("not a duration", found.group())
        within = suffix in ("以内", "之内", "内")
        if unit in ("分钟", "小时", "钟头", "个钟", "刻钟") or (unit in ("天", "日", "周", "星期", "礼拜") and amount % 1):
            minutes = {"分钟": 1, "刻钟": 15, "小时": 60, "钟头": 60, "个钟": 60}.get(unit, 24 * 60 * (7 if unit in ("周", "星期", "礼拜") else 1))
            moment = (self.now + timedelta(minutes=amount * minutes)).replace(second=0, microsecond=0)
            self.check_unread()
            if within:
                return self.clock_deadline(moment)
            return self.result(moment)
        if unit == "工作日":
            if amount % 1:
                raise self.refuse("not a whole number of working days", found.group())
            day = self.today
            for _ in range(int(amount)):
                day = workdays.workday_on_or_after(day + timedelta(days=1))
        elif unit in ("天", "日"):
            day = self.today + timedelta(days=int(amount))
        elif unit in ("周", "星期", "礼拜"):
            day = self.today + timedelta(days=7 * int(amount))
        else:
            months = amount * (12 if unit == "年" else 1)
            day = _add_months(self.today, int(months))
            if months % 1:
                day += timedelta(days=15)
        if within:
            self.check_unread()
            return self.day_deadline(day + timedelta(days=1))
        return _Day(day, kind="offset")

    # --- the day part ----------------------------------------------------------------------------
    def read_day(self) -> _Day | None:
        for reader in (self.read_festival, self.read_lunar, self.read_numeric_date, self.read_calendar_date,
                       self.read_short_date, self.read_day_of_month, self.read_day_word, self.read_week,
                       self.read_vague_days, self.read_quarter, self.read_year_part, self.read_month_part,
                       self.read_holiday_word):
            day = reader()
            if day is not None:
                self.check_weekday(day)
                return day
        return None

    def check_weekday(self, day: _Day) -> None:
        """6月1日周六: a weekday said with a date must agree with it, or we would guess which one was meant."""
        if day.kind != "named":
            return
        if found := re.compile(r"[ ,，(（]*(?:周|星期|礼拜)([一二三四五六日天1-7])[)）]?").match(self.text, self.pos):
            if WEEKDAYS[found.group(1)] != day.day.weekday():
                raise self.refuse(f"{day.day.isoformat()} is not that weekday", found.group().strip(" ,，(（)）"))
            self.pos = found.end()

    def year_of(self, found: re.Match) -> int | None:
        if word := found.group("year_word"):
            if word in ("去年", "前年"):
                raise self.refuse("that time has passed", "", past=True)
            return self.today.year + {"今年": 0, "明年": 1, "后年": 2}[word]
        if text := found.group("year"):
            year = cn_number(text)
            return year + 2000 if year < 100 else year
        return None

    def read_festival(self) -> _Day | None:
        if not (found := self.match(FESTIVAL)):
            return None
        name = FESTIVAL_NAMES[found.group("name")]
        which = found.group("which")
        if which == "去年":
            raise self.refuse("that time has passed", "", past=True)
        if which:
            day = festival_day(name, self.today.year + {"今年": 0, "明年": 1, "后年": 2}[which])
        else:
            day = festival_day(name, self.today.year)
            statutory = FESTIVALS[name][1]
            ends = workdays.holiday_span(statutory, day)[1] if statutory else day
            if ends < self.today or (day < self.today and not AFTER.match(self.text, self.pos)):
                day = festival_day(name, self.today.year + 1)
        statutory = FESTIVALS[name][1]
        before = workdays.holiday_span(statutory, day)[0] if statutory else day
        return _Day(day, before_day=min(before, day), festival=name)

    def after_festival(self, day: _Day) -> _Day:
        """国庆后 / 春节后: the first working day after the days off (after the day itself for 七夕, 双十一)."""
        assert day.festival is not None
        statutory = FESTIVALS[day.festival][1]
        last = workdays.holiday_span(statutory, day.day)[1] if statutory else day.day
        self.default_day_used = True
        self.match(FIRST_AFTER)  # 国庆后第一天: said twice
        return _Day(workdays.workday_on_or_after(last + timedelta(days=1)), kind="period")

    def read_holiday_word(self) -> _Day | None:
        if not (found := self.match(HOLIDAY_WORD)):
            return None
        word = found.group("word")
        if word.startswith("年") or word in ("过完年", "开年后", "开年"):
            name = "春节"
            day = festival_day(name, self.today.year)
            if workdays.holiday_span("Spring Festival", day)[1] < self.today:
                day = festival_day(name, self.today.year + 1)
        else:
            name, day = self.coming_holiday()
        statutory = FESTIVALS[name][1]
        first, last = workdays.holiday_span(statutory, day) if statutory else (day, day)
        if word in ("节前", "年前", "放假前"):
            return _Day(day, before_day=first, is_deadline=True)
        self.default_day_used = True
        self.match(FIRST_AFTER)
        return _Day(workdays.workday_on_or_after(last + timedelta(days=1)), kind="period")

    def coming_holiday(self) -> tuple[str, date]:
        """The statutory holiday going on now or coming next; refused when none is near enough to be meant."""
        candidates = []
        for name, (_, statutory) in FESTIVALS.items():
            if statutory is None or name == "除夕":
                continue
            for year in (self.today.year, self.today.year + 1):
                day = festival_day(name, year)
                first, last = workdays.holiday_span(statutory, day)
                if last >= self.today:
                    candidates.append((first, name, day))
                    break
        first, name, day = min(candidates)
        if (first - self.today).days > _HOLIDAY_LOOKAHEAD_DAYS:
            raise self.refuse("no holiday is near enough to tell which one is meant")
        return name, day

    def read_lunar(self) -> _Day | None:
        found = LUNAR_DATE.match(self.text, self.pos)
        if not found:
            return None
        day_text = found.group("day").replace(" ", "")
        month_text = found.group("month")
        if not (found.group("marker") or found.group("big") or month_text in LUNAR_MONTHS
                or day_text.startswith(("初", "廿"))):
            return None  # 8月15日: a solar date
        self.pos = found.end()
        month = 1 if found.group("big") else LUNAR_MONTHS.get(month_text) or cn_number(month_text)
        try:
            day_number = cn_number(day_text.removeprefix("初"))
        except ValueError:
            raise self.refuse("not a lunar date", found.group()) from None
        if not (1 <= month <= 12 and 1 <= day_number <= 30) or (day_text.startswith("初") and day_number > 10):
            raise self.refuse("no such lunar date", found.group())
        day = next_lunar_day(month, day_number, self.today, bool(found.group("leap")))
        if day is None:
            raise self.refuse("no such lunar date", found.group())
        return _Day(day)

    def read_numeric_date(self) -> _Day | None:
        if not (found := self.match(NUMERIC_DATE)):
            return None
        return _Day(self.valid_date(int(found.group("year")), int(found.group("month")), int(found.group("day")), found.group()))

    def read_calendar_date(self) -> _Day | None:
        if not (found := self.match(CALENDAR_DATE)):
            return None
        try:
            month, day_number = cn_number(found.group("month")), cn_number(found.group("day"))
        except ValueError:
            raise self.refuse("not a date", found.group()) from None
        year = self.year_of(found)
        return _Day(self.next_date(year, month, day_number, found.group()))

    def read_short_date(self) -> _Day | None:
        """6.18, 1/5: month and day; refused unless both fit a calendar."""
        found = SHORT_DATE.match(self.text, self.pos)
        if not found or not (1 <= int(found.group("month")) <= 12 and 1 <= int(found.group("day")) <= 31):
            return None
        self.pos = found.end()
        return _Day(self.next_date(None, int(found.group("month")), int(found.group("day")), found.group()))

    def next_date(self, year: int | None, month: int, day_number: int, said: str) -> date:
        """A month and day, with the year said or the next one that has it (3月1日 said in November: next March)."""
        if year is not None:
            return self.valid_date(year, month, day_number, said)
        if not (1 <= month <= 12 and 1 <= day_number <= 31):
            raise self.refuse(f"no such date {month}-{day_number}", said)
        try:
            this_year = date(self.today.year, month, day_number)
        except ValueError:
            this_year = None
        if this_year is not None and timedelta(0) < self.today - this_year <= timedelta(days=31):
            # 11月17日 said on the 18th: more likely a slip or a past date than next year's
            raise self.refuse("that time has passed", "", past=True)
        for candidate_year in range(self.today.year, self.today.year + 9):  # 2月29日: the next leap year
            try:
                candidate = date(candidate_year, month, day_number)
            except ValueError:
                continue
            if candidate >= self.today:
                return candidate
        raise self.refuse(f"no such date {month}-{day_number}", said)

    def read_day_of_month(self) -> _Day | None:
        if not (found := self.match(DAY_OF_MONTH)):
            return None
        try:
            day_number = cn_number(found.group("day"))
        except ValueError:
            raise self.refuse("not a date", found.group()) from None
        if not 1 <= day_number <= 31:
            raise self.refuse(f"no such day {day_number}", found.group())
        which = found.group("which") or ""
        year, month = self.today.year, self.today.month
        if which.startswith("上"):
            raise self.refuse("that time has passed", "", past=True)
        if which:
            months_ahead = 2 if which.startswith("下下") else 1 if which.startswith("下") else 0
            year, month = _month_plus(year, month, months_ahead)
            return _Day(self.valid_date(year, month, day_number, found.group()))
        for _ in range(13):  # 31号 in a month with 30 days: the next month that has it
            if day_number <= calendar.monthrange(year, month)[1] and date(year, month, day_number) >= self.today:
                return _Day(date(year, month, day_number))
            year, month = _month_plus(year, month, 1)
        raise self.refuse(f"no such day {day_number}", found.group())  # pragma: no cover - every month has 1..28

    def read_day_word(self) -> _Day | None:
        if not (found := self.match(DAY_WORD)):
            return None
        offset = DAY_WORDS[found.group()]
        if offset < 0:
            raise self.refuse("that time has passed", "", past=True)
        day = self.today + timedelta(days=offset)
        return _Day(day, before_day=day, within_day=day + timedelta(days=1))  # 明天之前 / 明天之内

    def read_week(self) -> _Day | None:
        if not (found := self.match(WEEK)):
            return None
        which, weekday_text = found.group("which") or "", found.group("day")
        if found.group("or_day"):
            if weekday_text in (None, "末") or WEEKDAYS[found.group("or_day")[-1]] <= WEEKDAYS[weekday_text]:
                raise self.refuse("not a weekday", found.group())
            self.approximate = True  # 下周一二 / 周一到三: the first of them
        monday = self.today - timedelta(days=self.today.weekday())
        weeks_ahead = (2 if which.startswith("下下") else 1 if which.startswith("下") else
                       -2 if which.startswith("上上") else -1 if which.startswith("上") else 0)
        if weeks_ahead < 0:
            raise self.refuse("that time has passed", "", past=True)
        week_monday = monday + timedelta(days=7 * weeks_ahead)
        if weekday_text is None and (then := WEEK_THEN_DAY.match(self.text, self.pos)) and which:
            weekday_text, self.pos = then.group("day"), then.end()  # 下周的周三
        if weekday_text == "末":
            return self.weekend(week_monday, bool(which))
        if weekday_text is None:
            if not which:
                raise Unmatched  # 周 alone is no time
            if weeks_ahead == 0:  # 本周 / 这周: only as 本周内 / 本周之前
                if not WITHIN.match(self.text, self.pos) and not BEFORE.match(self.text, self.pos):
                    raise self.refuse("this week is not one time; say which day", found.group())
                return _Day(self.today, kind="period", within_day=week_monday + timedelta(days=7))
            self.default_day_used = True  # 下周: its first working day
            return _Day(workdays.workday_on_or_after(week_monday), kind="period", before_day=week_monday,
                        within_day=week_monday + timedelta(days=7))
        weekday = WEEKDAYS[weekday_text]
        if which:
            return _Day(week_monday + timedelta(days=weekday))
        return _Day(self.today + timedelta(days=(weekday - self.today.weekday()) % 7), kind="weekday")

    def weekend(self, week_monday: date, said_which: bool) -> _Day:
        """周末: its Saturday at 10:00; this weekend's Sunday once Saturday is over."""
        saturday = week_monday + timedelta(days=5)
        self.default_day_used = True
        if not said_which and saturday + timedelta(days=1) < self.today:
            saturday += timedelta(days=7)
        day = saturday
        if day < self.today or (day == self.today and self.now.time() >= WEEKEND_TIME):
            day = saturday + timedelta(days=1)
        if day < self.today or (day == self.today and self.now.time() >= WEEKEND_TIME and not said_which):
            day = saturday + timedelta(days=7)
        return _Day(day, kind="period", default_time=WEEKEND_TIME, before_day=saturday,
                    within_day=saturday + timedelta(days=2))

    def read_vague_days(self) -> _Day | None:
        if not (found := self.match(VAGUE_DAYS)):
            return None
        which = found.group("which")
        if which not in VAGUE_DAY_OFFSET:
            raise self.refuse("not a time we can set a reminder for", which)
        self.default_day_used = which.startswith(("这", "近"))
        return _Day(self.today + timedelta(days=VAGUE_DAY_OFFSET[which]), kind="period" if self.default_day_used else "offset")

    def read_month_part(self) -> _Day | None:
        if bare := re.compile(r"(?:当|本)?月(?=\s*(?:以内|之内|内))").match(self.text, self.pos):
            self.pos = bare.end()  # 月内: by the end of this month
            return _Day(self.today, kind="period", within_day=date(*_month_plus(self.today.year, self.today.month, 1), 1))
        found = MONTH_PART.match(self.text, self.pos)
        if not found:
            return None
        which, month_text, part = found.group("which") or "", found.group("month"), found.group("part") or ""
        if not which and not month_text and part not in ("月底", "月末", "月尾", "月初", "月中"):
            return None  # 底 / 初 alone, 明年 alone: not a month
        year = self.year_of(found)
        self.pos = found.end()
        if which.startswith("上"):
            raise self.refuse("that time has passed", "", past=True)
        if month_text:
            try:
                month = cn_number(month_text)
            except ValueError:
                raise self.refuse("not a month", found.group()) from None
            if not 1 <= month <= 12:
                raise self.refuse(f"no such month {month}", found.group())
            if year is None:
                year = self.today.year if month >= self.today.month else self.today.year + 1
        else:
            months_ahead = 2 if which.startswith("下下") else 1 if which.startswith("下") else 0
            year, month = _month_plus(self.today.year, self.today.month, months_ahead)
        self.default_day_used = True
        last = date(year, month, calendar.monthrange(year, month)[1])
        if not part or part in ("月底", "月末", "月尾", "底", "末", "尾"):
            if self.match(LAST_DAY):  # 下个月最后一天: exactly that day
                return _Day(last, kind="period", before_day=last + timedelta(days=1))
        if part in ("月底", "月末", "月尾", "底", "末", "尾"):  # its last working day (月底前: before the 1st)
            return _Day(max(workdays.workday_on_or_before(last), min(last, self.today)), kind="period",
                        before_day=date(*_month_plus(year, month, 1), 1))
        start = {"月初": 1, "初": 1, "上旬": 1, "": 1, "中旬": 15, "月中": 15, "中": 15, "下旬": 21}[part]
        if not which and not month_text and date(year, month, start) < self.today:  # 月初 said on the 5th
            year, month = _month_plus(year, month, 1)
        first, first_of_next = date(year, month, start), date(*_month_plus(year, month, 1), 1)
        if not part and (year, month) == (self.today.year, self.today.month):
            # 本月 / 3月 said in March: not one time, but 本月内 is a deadline
            if not WITHIN.match(self.text, self.pos) and not BEFORE.match(self.text, self.pos):
                raise self.refuse("this month is not one time; say which day", found.group())
            return _Day(self.today, kind="period", within_day=first_of_next)
        if first < self.today:
            raise self.refuse("that time has passed", "", past=True)
        return _Day(_workday_from(first, self.today), kind="period", before_day=first,
                    within_day=first_of_next if not part else None)

    def read_quarter(self) -> _Day | None:
        found = QUARTER.match(self.text, self.pos)
        if not found or not (found.group("part") or found.group("which") or found.group("nth")):
            return None
        self.pos = found.end()
        which, nth, part = found.group("which") or "", found.group("nth"), found.group("part") or ""
        if which.startswith(("上", "去")):
            raise self.refuse("that time has passed", "", past=True)
        year, quarter = self.today.year, (self.today.month - 1) // 3
        if nth:
            quarter = cn_number(nth) - 1
            if not part and not which:
                raise self.refuse("which year's quarter?", found.group())  # 一季度 said in November
            if which == "明年" or (which != "今年" and quarter < (self.today.month - 1) // 3):
                year += 1
        elif which == "明年":
            raise self.refuse("which quarter?", found.group())
        elif which.startswith("下"):
            year, quarter = (year + 1, 0) if quarter == 3 else (year, quarter + 1)
        elif not which and part == "初":
            year, quarter = (year + 1, 0) if quarter == 3 else (year, quarter + 1)
        first = date(year, quarter * 3 + 1, 1)
        last = date(year, quarter * 3 + 3, calendar.monthrange(year, quarter * 3 + 3)[1])
        self.default_day_used = True
        if part in ("末", "底"):
            return _Day(max(workdays.workday_on_or_before(last), min(last, self.today)), kind="period",
                        before_day=last + timedelta(days=1))
        if not part and not which.startswith("下") and not nth:
            raise self.refuse("a quarter is not one time; say 季度末 or a date", found.group())
        return _Day(_workday_from(first, self.today), kind="period", before_day=first,
                    within_day=last + timedelta(days=1))

    def read_year_part(self) -> _Day | None:
        found = YEAR_PART.match(self.text, self.pos)
        if not found:
            if (bare := re.compile(r"(今年|明年|年)(?=\s*(?:以内|之内|内))").match(self.text, self.pos)):
                self.pos = bare.end()  # 今年内 / 年内 / 明年之内: a deadline at the year's end
                year = self.today.year + (bare.group(1) == "明年")
                return _Day(self.today, kind="period", within_day=date(year + 1, 1, 1))
            return None
        self.pos = found.end()
        if found.group("which") in ("去年", "前年"):
            raise self.refuse("that time has passed", "", past=True)
        year = self.today.year + {"今年": 0, "明年": 1, "后年": 2, "": 0}[found.group("which") or ""]
        self.default_day_used = True
        if found.group("part") != "初":
            last = date(year, 12, 31)
            return _Day(max(workdays.workday_on_or_before(last), min(last, self.today)), kind="period",
                        before_day=date(year + 1, 1, 1))
        if not found.group("which"):
            year += 1  # 年初 said during a year: the coming one
        return _Day(_workday_from(date(year, 1, 1), self.today), kind="period", before_day=date(year, 1, 1))

    # --- the clock -----------------------------------------------------------------------------
    def read_clock(self, period: str | None) -> _Clock | None:
        short_of = self.match(SHORT_OF)  # 差一刻五点
        clock = self.read_clock_at(period)
        if clock is None and short_of:
            raise self.refuse("not a time", short_of.group())
        if clock is not None and (short_of or (short_of := self.match(SHORT_OF))):  # 五点差一刻
            quarter = short_of.group("quarter")
            try:
                minutes = (15 if quarter in "一1" else 45) if quarter else cn_number(short_of.group("minute"))
            except ValueError:
                raise self.refuse("not a time", short_of.group()) from None
            if clock.at.minute or not 0 < minutes < 60:
                raise self.refuse("not a time", self.text[self.start:self.pos])
            moment = datetime.combine(date(2000, 1, 2), clock.at) - timedelta(minutes=minutes)
            clock = _Clock(moment.time(), clock.next_day and moment.day == 2, None)
        return clock

    def read_clock_at(self, period: str | None) -> _Clock | None:
        if found := self.match(CLOCK_COLON):
            clock = self.to_clock(int(found.group("hour")), int(found.group("minute")), period, found.group())
        elif found := self.match(CLOCK_AMPM):
            hour = int(found.group("hour"))
            if not 1 <= hour <= 12:
                raise self.refuse(f"no such time {found.group()}", found.group())
            hour = hour % 12 + (12 if found.group("ampm").lower().startswith("p") else 0)
            clock = self.to_clock(hour, int(found.group("minute") or 0), None, found.group())
        elif found := self.match(CLOCK):
            clock = self.read_hour(found, period)
        else:
            return None
        if self.match(RANGE_TAIL):
            self.approximate = True  # 3点到5点: the range starts at 3
        return clock

    def read_hour(self, found: re.Match, period: str | None) -> _Clock:
        if found.group("hour_to"):
            self.approximate = True  # 3-4点: the start of the range
        try:
            hour, rough = spoken_count(found.group("hour"))  # 两三点: two or three o'clock, so two
        except ValueError:
            raise self.refuse("not a time", found.group()) from None
        self.approximate = self.approximate or rough
        minute = 0
        if found.group("hour_to"):
            pass  # 9~12点半: the minutes belong to the end of the range, which starts on the hour
        elif found.group("half"):
            minute = 30
        elif quarter := found.group("quarter"):
            minute = 15 if quarter in "一1" else 45
        elif minute_text := found.group("minute"):
            minute_text = minute_text.replace(" ", "")
            try:
                minute = cn_number(minute_text.removeprefix("零")) if minute_text != "零" else 0
            except ValueError:
                raise self.refuse("not a time", found.group()) from None
            if not found.group("fen") and not minute_text.startswith(("零", "0")) and minute < 10:
                raise self.refuse("minutes after 点 without 分 are ambiguous", found.group())  # 7点4: 7:04 or 7:40?
        if tail := found.group("tail"):
            if tail in ("多", "多钟", "左右", "前后", "许", "上下"):
                self.approximate = True
        return self.to_clock(hour, minute, period, found.group())

    def to_clock(self, hour: int, minute: int, period: str | None, said: str) -> _Clock:
        """The 24-hour time meant by `hour` said with `period` (or none: office hours, so 三点 is 15:00)."""
        if not 0 <= minute <= 59:
            raise self.refuse(f"no such time {hour}:{minute:02d}", said)
        next_day = False
        ok = True
        if period is None:
            if hour == 24:
                hour, next_day = 0, True
            elif 1 <= hour <= 6:
                hour += 12
            ok = 0 <= hour <= 23
        elif period == "凌晨":
            hour = 0 if hour == 12 else hour
            ok = 0 <= hour <= 7
        elif period == "早上":
            ok = 4 <= hour <= 11
        elif period == "上午":
            ok = 0 <= hour <= 12
        elif period == "中午":
            hour = hour + 12 if 1 <= hour <= 3 else hour
            ok = 11 <= hour <= 15
        elif period == "下午":
            hour = hour + 12 if 1 <= hour <= 11 else hour
            ok = 12 <= hour <= 23
        elif period == "傍晚":
            hour = hour + 12 if 4 <= hour <= 8 else hour
            ok = 16 <= hour <= 20
        elif period in ("晚上", "夜里"):
            if hour in (12, 24, 0):
                hour, next_day = 0, True
            elif 1 <= hour <= 4:
                next_day = True  # 半夜两点: the small hours after the evening named
            elif 5 <= hour <= 11:
                hour += 12
            ok = 0 <= hour <= 23 and (period == "夜里" or hour >= 17 or next_day)
        if not ok:
            raise self.refuse(f"no such time {said} in {period}", said)
        return _Clock(time(hour, minute), next_day, bare_hour=hour if period is None and 7 <= hour <= 12 else None)

    # --- resolving -----------------------------------------------------------------------------
    def resolve(self, day: _Day | None, period: str | None, clock: _Clock | None) -> tuple[datetime, time | None, bool]:
        """(when, the default time picked if any, whether a passed time moved to its next occurrence)."""
        if clock is not None:
            if day is None or (day.day == self.today and day.kind == "named"):
                when = self.at(self.today + timedelta(days=clock.next_day), clock.at)
                if when <= self.now and clock.bare_hour is not None and self.now.hour >= 18:
                    when = self.evening(clock)  # 11点 said at 22:30: 23:00 tonight
                if when <= self.now and day is None:
                    return when + timedelta(days=1), None, True
                return when, None, False
            when = self.at(day.day + timedelta(days=clock.next_day), clock.at)
            if when <= self.now and day.kind == "weekday":
                return when + timedelta(days=7), None, True
            return when, None, False
        if period is not None:
            default = PERIOD_DEFAULT[period]
            target = day.day if day is not None else self.today
            when = self.at(target, default)
            if when > self.now:
                return when, default, False
            if target == self.today and self.now.hour < PERIOD_ENDS[period] - 1:
                soon = self.next_full_hour()
                return soon, soon.time(), False  # 下午 said at 15:20: 16:00 today
            if day is None:
                return when + timedelta(days=1), default, True
            if day.kind == "weekday":
                return when + timedelta(days=7), default, True
            return when, default, False  # refused as past
        assert day is not None
        when = self.at(day.day, day.default_time)
        if day.day == self.today and when <= self.now:
            soon = self.next_full_hour()  # 今天 after 9:00: the next full hour
            if day.kind == "weekday" and soon.hour > _WORKDAY_ENDS:
                return when + timedelta(days=7), day.default_time, True  # 周三 said on Wednesday evening
            if soon.date() == self.today:
                return soon, soon.time(), False
        return when, day.default_time, False

    def evening(self, clock: _Clock) -> datetime:
        """A bare morning hour said in the evening, once it has passed. Within two hours of the same hour
        tonight it means tonight (11点 at 22:30 is 23:00); further ahead both tonight and tomorrow
        morning are likely (十点 at 18:00), and so is midnight or noon for 十二点: refused, not guessed."""
        assert clock.bare_hour is not None
        said = self.text[self.start:self.pos]
        if clock.bare_hour == 12:
            raise self.refuse("12点 said in the evening: midnight or noon?", said)
        tonight = self.at(self.today, clock.at.replace(hour=clock.bare_hour + 12))
        if tonight <= self.now:
            return self.at(self.today, clock.at)  # passed tonight too: tomorrow morning
        if tonight - self.now > timedelta(hours=2):
            raise self.refuse("tonight or tomorrow morning?", said)
        return tonight

    def deadline(self, day: _Day | None, clock: _Clock | None, period: str | None = None) -> When:
        if clock is not None:
            when, _, moved = self.resolve(day, None, clock)
            return self.clock_deadline(when, moved=moved)
        if period == "中午":  # 中午前: by noon
            when, _, moved = self.resolve(day, None, _Clock(time(12)))
            return self.clock_deadline(when, moved=moved)
        if period is not None:  # 下午之前: before the afternoon, or by its end? asked, not guessed
            raise self.refuse("before which part of the period?")
        if day is None:
            raise self.refuse("a deadline needs a day or a time")
        return self.day_deadline(day.before_day or day.day)

    def clock_deadline(self, deadline: datetime, *, moved: bool = False) -> When:
        """Due at a clock time: remind an hour ahead, or halfway there when that is sooner than now."""
        if deadline <= self.now:
            raise self.refuse("that time has passed", "", past=True)
        reminder = deadline - timedelta(hours=1)
        if reminder <= self.now:
            halfway = self.now + (deadline - self.now) / 2
            reminder = (halfway + timedelta(seconds=59)).replace(second=0, microsecond=0)
        return self.result(reminder, moved=moved, deadline=deadline)

    def day_deadline(self, before_day: date) -> When:
        """Due before `before_day` starts: remind at 09:00 on the last working day before it, or in
        the next full hour when that morning has passed."""
        deadline = self.at(before_day, time(0))
        if deadline <= self.now:
            raise self.refuse("that time has passed", "", past=True)
        last = workdays.workday_on_or_before(before_day - timedelta(days=1))
        reminder = self.at(last, DEFAULT_TIME)
        default_time: time | None = DEFAULT_TIME
        if reminder <= self.now:
            reminder = self.next_full_hour()
            default_time = reminder.time()
            if reminder >= deadline:
                raise self.refuse("too little time left before the deadline", "", past=True)
        return self.result(reminder, default_time=default_time, deadline=deadline)


def _month_plus(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def _add_months(day: date, months: int) -> date:
    year, month = _month_plus(day.year, day.month, months)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _workday_from(day: date, today: date) -> date:
    """A vague period's first day, moved to a working day (下个月初 on 1 October: the 8th)."""
    return workdays.workday_on_or_after(max(day, today))


def read_at(text: str, start: int, now: datetime) -> When:
    """The phrase starting at `start`; Unmatched when nothing time-like starts there."""
    return _Reader(text, start, now).read()
