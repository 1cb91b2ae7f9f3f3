"""A day off or a make-up working day declared after dossiers were received: save the day, then move
the appointments it moves.

A government-declared day off is no lateness of the agency: no apology (form 04) is issued and the
one-reset rule of L12 is not used up. Each moved dossier gets a `calendar_shift` audit event and an
`appointment_changed` event for the national portal, so the applicant is told the new date.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.orm import Session

from engine import clock
from engine.catalog import calendar
from engine.dossiers.change import dossier_change
from engine.store.models import SupplementRequest

# Until the policy has a permission of its own for this (e.g. "calendar.apply"), moving the dates of
# running dossiers is the administrator's, like moving them to a new procedure version.
PERMISSION = "calendar.apply"


@dataclass(frozen=True)
class CalendarShift:
    """What `apply_calendar_change` did: the log row of the day's change, the dossiers it moved
    (their codes), how many of those had their appointment moved (the applicant is told)."""

    day: date
    kind: str
    change_id: int | None
    moved: int = 0
    appointments_moved: int = 0
    codes: tuple[str, ...] = field(default_factory=tuple)


class _Unchanged(Exception):
    """The dossier no longer moves (it changed since the preview): write nothing for it."""


def apply_calendar_change(session: Session, *, actor_id: int | None, day: date, kind: str, reason: str,
                          source: str = "", note: str = "", now: datetime | None = None) -> CalendarShift:
    """Make `day` a day off (`holiday`), a working day (`workday`) or its year's default (`clear`),
    recorded with the reason and the source document; then move the due dates of the open dossiers
    whose clock period contains the day, each in its own change (the unit of work: audit event,
    outbox event, counters). Dossiers are re-read under their lock, so one that changed since the
    preview is judged as it is now. Commits (the day first, then each dossier)."""
    now = clock.aware(now) if now is not None else clock.now()
    old = calendar.load_calendar(session)
    log = calendar.set_calendar_day(session, day, kind, note, actor_id=actor_id, source=source, reason=reason, now=now)
    new = calendar.load_calendar(session)
    candidates = [row.id for row, _ in calendar.dossiers_spanning(session, day)] \
        if old.is_working_day(day) != new.is_working_day(day) else []
    permission = PERMISSION if actor_id is not None else None  # None: the operator at the command line
    codes, told = [], 0
    for dossier_id in candidates:
        try:
            with dossier_change(session, actor_id=actor_id, permission=permission, dossier_id=dossier_id,
                                now=now) as change:
                d = change.dossier
                moved = calendar.shifted_dates(d, calendar.clock_start(d, change.part(SupplementRequest)), day, old, new)
                if moved is None:
                    raise _Unchanged
                due, legal = moved
                change.audit("calendar_shift", day=day.isoformat(), change=kind, reason=reason, source=source,
                             previous_due_at=d.due_at.isoformat(), due_at=due.isoformat(),
                             previous_legal_due_at=d.legal_due_at.isoformat(), legal_due_at=legal.isoformat())
                if due != d.due_at:
                    change.emit("appointment_changed")
                    told += 1
                d.due_at, d.legal_due_at = due, legal
                if d.overdue and legal >= now:  # no longer past the legal date: the sweep judges it again
                    d.overdue = False
                    d.late_without_apology = False
        except _Unchanged:
            continue
        codes.append(d.code)
    if log is not None and candidates:
        calendar.record_dossiers_moved(session, log.id, len(codes))
    return CalendarShift(day, kind, log.id if log is not None else None, len(codes), told, tuple(codes))
