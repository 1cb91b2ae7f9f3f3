"""Working calendar: holidays from the `holidays` package, admin overrides, working-time laws."""
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import VN_TZ
from engine.workflow.workcal import InvalidDuration, WorkingCalendar, parse_duration

CAL = WorkingCalendar()


def vn(*a):
    return datetime(*a, tzinfo=VN_TZ)


def test_tet_2026_is_skipped_when_counting_days():
    # Friday 13/2/2026, 3 working days: 14-15 weekend, 16-20 Tết, 21-22 weekend → Mon 23, Tue 24, Wed 25.
    assert CAL.appointment(vn(2026, 2, 13, 9, 0), 3) == vn(2026, 2, 25, 17, 0)


def test_hung_kings_day_and_its_compensatory_day_off():
    # 10/3 lunar 2026 is Sunday 26/4; Monday 27/4 is the day off in lieu; 30/4 and 1/5 follow.
    assert not CAL.is_working_day(date(2026, 4, 27))
    assert CAL.add_working_days(date(2026, 4, 24), 1) == date(2026, 4, 28)
    assert CAL.add_working_days(date(2026, 4, 29), 1) == date(2026, 5, 4)


def test_make_up_saturday_is_a_working_day_and_swapped_monday_is_not():
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 8, 31))


def test_admin_overrides_win_over_the_library():
    cal = WorkingCalendar(extra_holidays={date(2026, 11, 3)}, extra_workdays={date(2026, 11, 7), date(2026, 2, 17)})
    assert not cal.is_working_day(date(2026, 11, 3))
    assert cal.is_working_day(date(2026, 11, 7))  # a Saturday made a working day
    assert cal.is_working_day(date(2026, 2, 17))  # a Tết day removed by the admin
    assert cal.add_working_days(date(2026, 11, 2), 2) == date(2026, 11, 5)


def test_receipt_day_not_counted_and_weekend_receipt():
    assert CAL.appointment(vn(2026, 11, 2, 16, 59), 1) == vn(2026, 11, 3, 17, 0)
    # Online dossier on Sunday: Monday is the first counted day.
    assert CAL.appointment(vn(2026, 11, 8, 10, 0), 1) == vn(2026, 11, 9, 17, 0)


def test_same_day_procedure_after_15h_rolls_to_next_working_day():
    assert CAL.appointment(vn(2026, 11, 2, 14, 59), 0) == vn(2026, 11, 2, 17, 0)
    assert CAL.appointment(vn(2026, 11, 2, 15, 0), 0) == vn(2026, 11, 3, 17, 0)
    assert CAL.appointment(vn(2026, 11, 6, 15, 30), 0) == vn(2026, 11, 9, 17, 0)


def test_paper_handover_after_15h_is_next_morning():
    assert CAL.handover_time(vn(2026, 11, 2, 14, 0)) == vn(2026, 11, 2, 14, 0)
    assert CAL.handover_time(vn(2026, 11, 2, 15, 10)) == vn(2026, 11, 3, 7, 30)
    assert CAL.handover_time(vn(2026, 11, 6, 16, 0)) == vn(2026, 11, 9, 7, 30)


def test_working_hours_skip_lunch_and_nights():
    assert CAL.add_duration(vn(2026, 11, 2, 11, 0), "PT1H") == vn(2026, 11, 2, 13, 30)
    assert CAL.add_duration(vn(2026, 11, 2, 16, 0), "PT2H") == vn(2026, 11, 3, 8, 30)
    assert CAL.add_duration(vn(2026, 11, 2, 7, 30), "P1D") == vn(2026, 11, 2, 17, 0)
    assert CAL.add_duration(vn(2026, 11, 2, 20, 0), "PT30M") == vn(2026, 11, 3, 8, 0)


@pytest.mark.parametrize("bad", ["P1M", "P1Y", "PT", "P", "4H", "", "P1DT", "PT-1H"])
def test_durations_that_are_not_working_time_are_refused(bad):
    with pytest.raises(InvalidDuration):
        parse_duration(bad, CAL.day_seconds)


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                       timezones=st.just(timezone.utc))
amounts = st.integers(min_value=0, max_value=40 * 8 * 3600)


@settings(max_examples=150, deadline=None)
@given(moments, amounts)
def test_adding_working_time_then_measuring_it_gives_it_back(start, seconds):
    end = CAL.add_working_time(start, seconds)
    assert end >= start
    assert CAL.working_seconds_between(start, end) == pytest.approx(seconds)


@settings(max_examples=150, deadline=None)
@given(moments, amounts, amounts)
def test_adding_working_time_is_associative_and_monotonic(start, a, b):
    assert CAL.add_working_time(start, a + b) == CAL.add_working_time(CAL.add_working_time(start, a), b)
    assert CAL.add_working_time(start, min(a, b)) <= CAL.add_working_time(start, max(a, b))


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 1)), st.integers(min_value=1, max_value=60))
def test_add_working_days_lands_on_the_nth_working_day(day, n):
    result = CAL.add_working_days(day, n)
    assert CAL.is_working_day(result)
    assert CAL.working_days_between(day, result) == n


@settings(max_examples=100, deadline=None)
@given(moments, st.integers(min_value=0, max_value=30))
def test_appointments_end_a_working_day_and_never_come_before_receipt(received, days):
    due = CAL.appointment(received, days)
    local = due.astimezone(VN_TZ)
    assert CAL.is_working_day(local.date()) and local.time() == time(17, 0)
    assert due > received or days == 0 and local.date() >= received.astimezone(VN_TZ).date()
    assert due - received < timedelta(days=days * 3 + 20)
