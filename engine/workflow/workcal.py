"""Working calendar: Vietnamese working days and office hours, in Asia/Ho_Chi_Minh.

Days off are law data (engine/catalog/calendar.py reads them from the database): for a year in
`data_years` the listed days are the whole truth besides weekends (the officially announced
schedule, or the Labour Code default while it is not announced). For any other year the public
holidays come from the `holidays` package (lunar Tết and Hùng Kings included, with substituted
days and make-up working Saturdays) and the listed days are applied on top of it.
Day counting follows Bộ luật Dân sự 2015 Đ147-148: the day of receipt is not counted and a
period ends at the end of its last working day.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

import holidays

from engine.clock import VN_TZ

DEFAULT_OFFICE_HOURS = ((time(7, 30), time(11, 30)), (time(13, 0), time(17, 0)))
# The longest period of working time the calendar adds: ten years of working days. Every addition walks
# the days one by one, so an unbounded count (a timer's working_days(1000000)) would run for seconds.
MAX_WORKING_DAYS = 3650
MAX_WORKING_HOURS = MAX_WORKING_DAYS * 8  # working_hours(): ten years of standard eight-hour days

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?)?$"
)


class InvalidDuration(ValueError):
    pass


@lru_cache(maxsize=64)
def _vn_holidays(year: int):
    return holidays.country_holidays("VN", years=[year])


def parse_duration(text: str, day_seconds: float) -> float:
    """ISO 8601 duration in *working* time → seconds. `P1D` is one office day; months/years are refused."""
    if not isinstance(text, str):
        raise InvalidDuration(f"duration must be a string like 'PT4H' or 'P1D', got {text!r}")
    m = _DURATION.match(text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise InvalidDuration(f"'{text}' is not an ISO 8601 working-time duration (use PnD, PTnH, PTnM, PnDTnH)")
    days = float(m.group("days") or 0)
    hours = float(m.group("hours") or 0)
    minutes = float(m.group("minutes") or 0)
    return days * day_seconds + hours * 3600 + minutes * 60


@dataclass
class WorkingCalendar:
    """Pure calendar arithmetic. Datetimes in and out are timezone-aware (returned in UTC)."""

    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    extra_workdays: frozenset[date] = field(default_factory=frozenset)
    office_hours: tuple[tuple[time, time], ...] = DEFAULT_OFFICE_HOURS
    tz: object = VN_TZ
    # Years whose days off are exactly `extra_holidays` (and make-up days `extra_workdays`) plus
    # weekends: the `holidays` package is not consulted for them.
    data_years: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self):
        self.data_years = frozenset(self.data_years)
        self.extra_holidays = frozenset(self.extra_holidays)
        self.extra_workdays = frozenset(self.extra_workdays) - self.extra_holidays
        hours = tuple(sorted(self.office_hours))
        if not hours or any(start >= end for start, end in hours):
            raise ValueError("office hours must be non-empty, increasing intervals")
        for (_, end), (start, _) in zip(hours, hours[1:]):
            if start < end:
                raise ValueError("office-hour intervals overlap")
        self.office_hours = hours

    # -- days ---------------------------------------------------------------------------
    @property
    def day_seconds(self) -> float:
        return sum(
            (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds()
            for start, end in self.office_hours
        )

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        if day.year in self.data_years:
            return day.weekday() < 5
        lib = _vn_holidays(day.year)
        if day in getattr(lib, "weekend_workdays", ()):
            return True
        if day in lib:
            return False
        return day.weekday() < 5

    def with_day(self, day: date, kind: str) -> WorkingCalendar:
        """This calendar with `day` made a day off (`holiday`), a working day (`workday`) or returned to
        the default of its year (`clear`: a weekday works, a weekend does not; the package's holidays
        for a year without data)."""
        holidays_, workdays = set(self.extra_holidays) - {day}, set(self.extra_workdays) - {day}
        if kind == "holiday":
            holidays_.add(day)
        elif kind == "workday":
            workdays.add(day)
        elif kind != "clear":
            raise ValueError(f"unknown kind {kind!r}")
        return WorkingCalendar(extra_holidays=frozenset(holidays_), extra_workdays=frozenset(workdays),
                               office_hours=self.office_hours, tz=self.tz, data_years=self.data_years)

    def non_working_weekdays(self, year: int) -> list[date]:
        """The weekdays of `year` that are days off (the holidays an office actually closes for)."""
        day, out = date(year, 1, 1), []
        while day.year == year:
            if day.weekday() < 5 and not self.is_working_day(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def working_weekend_days(self, year: int) -> list[date]:
        """The Saturdays and Sundays of `year` that are working days (make-up days)."""
        day, out = date(year, 1, 1), []
        while day.year == year:
            if day.weekday() >= 5 and self.is_working_day(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        day += timedelta(days=1)
        for _ in range(3700):
            if self.is_working_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError("no working day within ten years")

    def working_day_on_or_after(self, day: date) -> date:
        return day if self.is_working_day(day) else self.next_working_day(day)

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after `day` (`day` itself not counted); n=0 → first working day on/after."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n > MAX_WORKING_DAYS:
            raise ValueError(f"{n} working days is more than the limit of {MAX_WORKING_DAYS}")
        if n == 0:
            return self.working_day_on_or_after(day)
        for _ in range(n):
            day = self.next_working_day(day)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count

    # -- times --------------------------------------------------------------------------
    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment.astimezone(self.tz)

    def _intervals(self, day: date):
        for start, end in self.office_hours:
            yield (
                datetime.combine(day, start, tzinfo=self.tz),
                datetime.combine(day, end, tzinfo=self.tz),
            )

    def end_of_working_day(self, day: date) -> datetime:
        return datetime.combine(day, self.office_hours[-1][1], tzinfo=self.tz).astimezone(timezone.utc)

    def start_of_working_day(self, day: date) -> datetime:
        return datetime.combine(day, self.office_hours[0][0], tzinfo=self.tz).astimezone(timezone.utc)

    def appointment(self, received_at: datetime, days: int, same_day_cutoff: time | None = time(15, 0)) -> datetime:
        """Due time of a statutory period of `days` working days from receipt.

        For a same-day procedure (days == 0) a receipt after the cut-off is due the next working day.
        """
        local = self._local(received_at)
        if days == 0:
            day = local.date()
            if not self.is_working_day(day) or (same_day_cutoff and local.time() >= same_day_cutoff):
                day = self.next_working_day(day)
            return self.end_of_working_day(day)
        return self.end_of_working_day(self.add_working_days(local.date(), days))

    def handover_time(self, received_at: datetime, cutoff: time | None = time(15, 0)) -> datetime:
        """When a paper dossier is handed on: at once, or at the start of the next working day if
        received after the cut-off or outside office hours (NĐ 61 Đ18)."""
        local = self._local(received_at)
        day = local.date()
        if self.is_working_day(day) and (cutoff is None or local.time() < cutoff):
            return self.align_forward(received_at)
        return self.start_of_working_day(self.next_working_day(day))

    def align_forward(self, moment: datetime) -> datetime:
        """The first instant of working time at or after `moment`."""
        local = self._local(moment)
        day = local.date()
        while True:
            if self.is_working_day(day):
                for start, end in self._intervals(day):
                    if local < end:
                        return max(local, start).astimezone(timezone.utc)
            day = self.next_working_day(day)
            local = datetime.combine(day, time.min, tzinfo=self.tz)

    def add_working_time(self, moment: datetime, seconds: float) -> datetime:
        """`moment` plus `seconds` of office time. Ending exactly at a closing time stays there."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        if not seconds <= MAX_WORKING_DAYS * self.day_seconds:  # NaN too
            raise ValueError(f"{seconds:g} s of working time is more than the limit of {MAX_WORKING_DAYS} working days")
        if seconds == 0:
            return moment.astimezone(timezone.utc)
        remaining = timedelta(seconds=seconds)
        local = self._local(self.align_forward(moment))
        day = local.date()
        while True:
            if self.is_working_day(day):
                for start, end in self._intervals(day):
                    if local >= end:
                        continue
                    begin = max(local, start)
                    available = end - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(timezone.utc)
                    remaining -= available
            day = self.next_working_day(day)
            local = datetime.combine(day, time.min, tzinfo=self.tz)

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Office time in [a, b]; negative when b is before a."""
        if b < a:
            return -self.working_seconds_between(b, a)
        la, lb = self._local(a), self._local(b)
        total = 0.0
        day = la.date()
        while day <= lb.date():
            if self.is_working_day(day):
                for start, end in self._intervals(day):
                    lo, hi = max(start, la), min(end, lb)
                    if hi > lo:
                        total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add_duration(self, moment: datetime, duration: str) -> datetime:
        return self.add_working_time(moment, parse_duration(duration, self.day_seconds))
