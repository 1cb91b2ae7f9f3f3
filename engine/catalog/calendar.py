"""The working calendar in force: Vietnamese holidays plus the admin's overrides and office hours,
read from the database and cached per process for a short while."""
from __future__ import annotations

import time as _time
from datetime import date, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput
from engine.store.models import CalendarDay, Setting
from engine.workflow.workcal import DEFAULT_OFFICE_HOURS, WorkingCalendar

CALENDAR_TTL_SECONDS = 30.0
_CACHED: tuple[float, WorkingCalendar] | None = None


def load_calendar(session: Session) -> WorkingCalendar:
    """The calendar with the admin's overrides and office-hour setting, read now."""
    rows = session.execute(select(CalendarDay.day, CalendarDay.kind)).all()
    hours_setting = session.get(Setting, "office_hours")
    hours = DEFAULT_OFFICE_HOURS
    if hours_setting is not None:
        hours = tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in hours_setting.value)
    return WorkingCalendar(
        extra_holidays=frozenset(d for d, k in rows if k == "holiday"),
        extra_workdays=frozenset(d for d, k in rows if k == "workday"),
        office_hours=hours,
    )


def working_calendar(session: Session) -> WorkingCalendar:
    """The working calendar, re-read from the database at most every CALENDAR_TTL_SECONDS."""
    global _CACHED
    if _CACHED is None or _time.monotonic() - _CACHED[0] > CALENDAR_TTL_SECONDS:
        _CACHED = (_time.monotonic(), load_calendar(session))
    return _CACHED[1]


def invalidate_calendar() -> None:
    global _CACHED
    _CACHED = None


def set_calendar_day(session: Session, day: date, kind: str, note: str = "") -> None:
    """Admin override: `holiday` (extra day off), `workday` (make-up working day) or `clear`. Commits."""
    row = session.get(CalendarDay, day)
    if kind == "clear":
        if row is not None:
            session.delete(row)
    elif kind in ("holiday", "workday"):
        if row is None:
            session.add(CalendarDay(day=day, kind=kind, note=note))
        else:
            row.kind, row.note = kind, note
    else:
        raise InvalidInput("kind must be holiday, workday or clear", errors={"kind": kind})
    session.commit()
    invalidate_calendar()
