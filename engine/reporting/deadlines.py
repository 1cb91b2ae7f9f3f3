"""When a dossier is late: the one definition the sweep, the counters, the dashboard, the drill-downs,
the API, the exports and the screens all use.

A dossier has three dates (engine/store/models.py, `Dossier`):

- `legal_due_at`, the date the law holds the agency to: the statutory time from reception, set afresh
  from zero when the complete supplement of a *timely* request arrives (L10). An apology never moves it.
- `due_at`, the appointment the citizen holds: the legal date, or the new date of an apology (form 04,
  L12). The citizen is told this one; lateness is not judged on it.
- `clock_paused`: while the citizen holds the dossier after a timely supplement request, the
  processing time is not running; nothing about the dossier can be late and no figure counts it late.
  A request made after the window (L10) does not pause the clock: the agency bears that delay.

Overdue now: open, clock running, and past `legal_due_at` (strictly; a dossier due at 17:00 today is
not overdue at 16:59). Finished: early / on time / late by `finish_result`: the time the agency's clock
stopped (the finish, or the supplement request when the dossier ends while the citizen holds it)
against the legal date in force then.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_

from engine.reporting.counters import classify
from engine.store.models import OPEN_STATUSES, Dossier


def running(table=Dossier):
    """SQL: open with the processing time running."""
    return and_(table.status.in_(OPEN_STATUSES), table.clock_paused.is_(False))


def overdue(at: datetime, table=Dossier):
    """SQL: overdue at `at` (see the module's docstring)."""
    return and_(running(table), table.legal_due_at < at)


def due_between(start: datetime, end: datetime, table=Dossier):
    """SQL: running and due in [start, end): the due-soon list (never overlaps `overdue(start)`)."""
    return and_(running(table), table.legal_due_at >= start, table.legal_due_at < end)


def supplement_window_end(calendar, received_at: datetime, days: int, same_day_cutoff=None) -> datetime:
    """The end of the window after reception in which a supplement request pauses the processing time
    and restarts it from zero (NĐ 61 Đ19(4), L10): the end of the `days`-th working day after it,
    counted like an appointment — a 0-day window after the cut-off ends with the next working day, so
    it never closes before the dossier reaches the specialist."""
    return calendar.appointment(received_at, days, same_day_cutoff)


def is_running(dossier) -> bool:
    return dossier.status in OPEN_STATUSES and not dossier.clock_paused


def is_overdue(dossier, at: datetime) -> bool:
    """Open: overdue now. Finished: it was finished late."""
    if dossier.status in OPEN_STATUSES:
        return is_running(dossier) and dossier.legal_due_at < at
    return dossier.finish_result == "late"


def finish_result(dossier, finished_at: datetime, clock_stopped_at: datetime | None = None) -> str:
    """Early / on time / late for a dossier finished at `finished_at`; `clock_stopped_at` when it ends
    while the citizen holds it after a timely request (the agency's time stopped when it asked)."""
    return classify(clock_stopped_at or finished_at, dossier.legal_due_at)


def working_time_left(calendar, due: datetime, at: datetime) -> tuple[int, int, float]:
    """Working time from `at` to `due` on the calendar: (sign, whole working days, hours beyond them);
    sign -1 when `due` has passed. Overdue and remaining time are told in working days (L: BLDS Đ147)."""
    sign = 1 if due >= at else -1
    seconds = calendar.working_seconds_between(*((at, due) if sign > 0 else (due, at)))
    days, rest = divmod(seconds, calendar.day_seconds)
    return sign, int(days), rest / 3600
