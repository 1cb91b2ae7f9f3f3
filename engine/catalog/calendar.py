"""The working calendar in force, as law data: days off, make-up working days and the dated transfer
cut-off, each with its source (the decision or official letter number), read from the database and
cached per process for a short while.

- The shipped data (vn_calendar.toml: 2025 and 2026 as officially announced, 2027 as the Labour Code
  default while it is not announced) is loaded by migration 0008 with `install_shipped_calendar`.
  From then on the database is the truth; admins change it with an audit trail (`calendar_changes`).
- A year listed in the `calendar_years` setting is complete: its days off are its `holiday` rows plus
  weekends, minus its `workday` rows. A year with no data falls back to the `holidays` package, with
  the rows of that year on top.
- `calendar_change_preview` lists the open dossiers whose dates a change of one day would move
  (read only); engine/dossiers/calendar_shift.py applies the change and moves them.
"""
from __future__ import annotations

import time as _time
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import load_actor
from engine.errors import InvalidInput
from engine.store.db import UTCDateTime, write_transaction
from engine.store.models import OPEN_STATUSES, CalendarChange, CalendarDay, Dossier, Setting, SupplementRequest
from engine.workflow.workcal import DEFAULT_OFFICE_HOURS, WorkingCalendar

CALENDAR_TTL_SECONDS = 30.0
SHIPPED_FILE = Path(__file__).with_name("vn_calendar.toml")

KINDS = ("holiday", "workday")
CHANGE_KINDS = (*KINDS, "clear")
YEARS_KEY = "calendar_years"
ANNOUNCED, LABOUR_CODE_DEFAULT = "announced", "labour_code_default"
YEAR_STATUSES = (ANNOUNCED, LABOUR_CODE_DEFAULT)
TRANSFER_CUTOFF, SAME_DAY_CUTOFF = "transfer_cutoff", "same_day_cutoff"
PARAMETERS = (TRANSFER_CUTOFF, SAME_DAY_CUTOFF)
BASES = ("law", "practice")


@dataclass(frozen=True)
class CalendarYear:
    """What the data of one year is: the official schedule (`announced`) or the Labour Code default
    while the Prime Minister's schedule is not announced (`labour_code_default`)."""

    year: int
    status: str
    sources: tuple[str, ...]
    note: str = ""

    @property
    def official(self) -> bool:
        return self.status == ANNOUNCED


@dataclass(frozen=True)
class LawParameter:
    """One dated value of a law parameter: in force from `effective_from` until the next one.
    `basis`: `law` (a legal text says so) or `practice` (provincial practice, no central text)."""

    key: str
    effective_from: date
    value: Any
    source: str
    basis: str
    verified: bool = False
    note: str = ""

    def as_json(self) -> dict:
        return {"effective_from": self.effective_from.isoformat(), "value": self.value, "source": self.source,
                "basis": self.basis, "verified": self.verified, "note": self.note}


@dataclass(frozen=True)
class AppointmentShift:
    """An open dossier whose appointment (`due_at`) and/or legal date (`legal_due_at`) a calendar
    change moves."""

    dossier_id: int
    code: str
    status: str
    due_at: datetime
    new_due_at: datetime
    legal_due_at: datetime
    new_legal_due_at: datetime

    @property
    def appointment_moves(self) -> bool:
        return self.new_due_at != self.due_at


# --- reading the calendar in force -----------------------------------------------------------------
@dataclass(frozen=True)
class _State:
    calendar: WorkingCalendar
    parameters: dict[str, tuple[LawParameter, ...]]


_CACHED: tuple[float, _State] | None = None


def _office_hours(session: Session):
    setting = session.get(Setting, "office_hours")
    if setting is None:
        return DEFAULT_OFFICE_HOURS
    return tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in setting.value)


def load_calendar(session: Session) -> WorkingCalendar:
    """The calendar in force, read now: the days of the database, the years they cover, office hours."""
    rows = session.execute(select(CalendarDay.day, CalendarDay.kind)).all()
    return WorkingCalendar(
        extra_holidays=frozenset(d for d, k in rows if k == "holiday"),
        extra_workdays=frozenset(d for d, k in rows if k == "workday"),
        office_hours=_office_hours(session),
        data_years=frozenset(calendar_years(session)),
    )


def _state(session: Session) -> _State:
    global _CACHED
    if _CACHED is None or _time.monotonic() - _CACHED[0] > CALENDAR_TTL_SECONDS:
        state = _State(load_calendar(session), {key: tuple(law_parameters(session, key)) for key in PARAMETERS})
        _CACHED = (_time.monotonic(), state)
    return _CACHED[1]


def working_calendar(session: Session) -> WorkingCalendar:
    """The working calendar, re-read from the database at most every CALENDAR_TTL_SECONDS."""
    return _state(session).calendar


def invalidate_calendar() -> None:
    global _CACHED
    _CACHED = None


def calendar_years(session: Session) -> dict[int, CalendarYear]:
    """The years the database holds a complete schedule for, by year."""
    setting = session.get(Setting, YEARS_KEY)
    out = {}
    for year, info in sorted(((setting.value if setting is not None else None) or {}).items()):
        out[int(year)] = CalendarYear(int(year), info.get("status", LABOUR_CODE_DEFAULT),
                                      tuple(info.get("sources") or ()), info.get("note", ""))
    return out


def calendar_days(session: Session, year: int) -> list[CalendarDay]:
    """The days of `year` in the database, in order."""
    return list(session.scalars(select(CalendarDay).where(CalendarDay.day >= date(year, 1, 1),
                                                          CalendarDay.day <= date(year, 12, 31))
                                .order_by(CalendarDay.day)))


def calendar_changes(session: Session, year: int | None = None, limit: int = 200) -> list[CalendarChange]:
    """The audit trail, newest first: for `year`, its days' changes and every year or parameter change."""
    stmt = select(CalendarChange).order_by(CalendarChange.changed_at.desc(), CalendarChange.id.desc())
    if year is not None:
        stmt = stmt.where(sa.or_(CalendarChange.day.is_(None),
                                 CalendarChange.day.between(date(year, 1, 1), date(year, 12, 31))))
    return list(session.scalars(stmt.limit(limit)))


def law_parameters(session: Session, key: str) -> list[LawParameter]:
    """Every dated value of `key`, oldest first."""
    setting = session.get(Setting, key)
    entries = (setting.value if setting is not None else None) or []
    return sorted((_parameter(key, e) for e in entries), key=lambda p: p.effective_from)


def _parameter(key: str, entry: dict) -> LawParameter:
    return LawParameter(key, date.fromisoformat(str(entry["effective_from"])), entry.get("value"),
                        entry.get("source", ""), entry.get("basis", "law"), bool(entry.get("verified", False)),
                        entry.get("note", ""))


def law_parameter(session: Session, key: str, on: date) -> LawParameter | None:
    """The value of `key` in force on `on` (cached like the calendar), or None before its first one."""
    found = None
    for parameter in _state(session).parameters[key] if key in PARAMETERS else law_parameters(session, key):
        if parameter.effective_from <= on:
            found = parameter
    return found


def _cutoff(session: Session, key: str, on: date) -> time | None:
    parameter = law_parameter(session, key, on)
    return time.fromisoformat(parameter.value) if parameter is not None and parameter.value else None


def transfer_cutoff(session: Session, on: date) -> time | None:
    """L7: a paper dossier received at or after this time on `on` is handed on at the start of the
    next working day (NĐ 61 Đ18 / NĐ 118 Đ18). None: no cut-off in force (hand on the same day)."""
    return _cutoff(session, TRANSFER_CUTOFF, on)


def same_day_cutoff(session: Session, on: date) -> time | None:
    """For a procedure due the day it is received (0 working days): a receipt at or after this time is
    due the next working day. Provincial practice, not law (LEGAL.md: UNVERIFIED). None: no cut-off."""
    return _cutoff(session, SAME_DAY_CUTOFF, on)


# --- changing it (admins, with an audit trail) -----------------------------------------------------
def _text(value, field: str, limit: int = 255) -> str:
    value = str(value or "").strip()
    if len(value) > limit:
        raise InvalidInput(f"{field} is too long", errors={field: f"at most {limit} characters"})
    return value


def _authorize(session: Session, actor_id: int | None, reason: str) -> None:
    if actor_id is not None:
        policy.require(load_actor(session, actor_id), "catalog.manage", session=session)
        if not reason:
            raise InvalidInput("a reason is required", errors={"reason": "required"})


def _day_value(row: CalendarDay | None) -> dict | None:
    return None if row is None else {"kind": row.kind, "note": row.note, "source": row.source or ""}


def set_calendar_day(session: Session, day: date, kind: str, note: str = "", *, actor_id: int | None = None,
                     source: str = "", reason: str = "", now: datetime | None = None) -> CalendarChange | None:
    """Make `day` a day off (`holiday`), a make-up working day (`workday`), or remove what the
    database says about it (`clear`: the day goes back to its year's default). An admin (`actor_id`)
    needs `catalog.manage` and a reason; the CLI passes no actor. Records the change (who, when, old →
    new, reason, source) and commits. Returns the log row, or None when nothing changed. This does not
    move any dossier's dates: engine/dossiers/calendar_shift.py does, after `calendar_change_preview`."""
    if kind not in CHANGE_KINDS:
        raise InvalidInput("kind must be holiday, workday or clear", errors={"kind": kind})
    if not isinstance(day, date) or isinstance(day, datetime):
        raise InvalidInput("a day is required", errors={"day": "a date"})
    note, source, reason = _text(note, "note"), _text(source, "source"), _text(reason, "reason", 2000)
    now = clock.aware(now) if now is not None else clock.now()
    with write_transaction(session):
        _authorize(session, actor_id, reason)
        row = session.get(CalendarDay, day)
        old = _day_value(row)
        if kind == "clear":
            new = None
            if row is not None:
                session.delete(row)
        else:
            new = {"kind": kind, "note": note, "source": source}
            if row is None:
                row = CalendarDay(day=day)
                session.add(row)
            row.kind, row.note, row.source = kind, note, source
            row.changed_by_id, row.changed_at = actor_id, now
        log = None
        if old != new:
            log = CalendarChange(changed_at=now, changed_by_id=actor_id, subject="day", day=day, old_value=old,
                                 new_value=new, reason=reason, source=source)
            session.add(log)
        session.flush()
    invalidate_calendar()
    return log


def set_calendar_year(session: Session, year: int, status: str | None, sources: list[str] | tuple[str, ...] = (),
                      note: str = "", *, actor_id: int | None = None, reason: str = "",
                      now: datetime | None = None) -> CalendarChange | None:
    """Mark `year` as officially announced (`announced`, with the announcing documents) or as the
    Labour Code default (`labour_code_default`); `None` removes the year's mark, so the `holidays`
    package is consulted again for it. Recorded and committed like `set_calendar_day`."""
    if status is not None and status not in YEAR_STATUSES:
        raise InvalidInput("unknown year status", errors={"status": f"one of {', '.join(YEAR_STATUSES)}"})
    if not 1990 <= int(year) <= 2100:
        raise InvalidInput("year out of range", errors={"year": "1990-2100"})
    sources = [s for s in (_text(s, "sources") for s in sources) if s]
    if status == ANNOUNCED and not sources:
        raise InvalidInput("an announced schedule names its document", errors={"sources": "required"})
    note, reason = _text(note, "note", 2000), _text(reason, "reason", 2000)
    now = clock.aware(now) if now is not None else clock.now()
    with write_transaction(session):
        _authorize(session, actor_id, reason)
        setting = session.get(Setting, YEARS_KEY)
        years = dict((setting.value if setting is not None else None) or {})
        old = years.get(str(year))
        new = None if status is None else {"status": status, "sources": sources, "note": note}
        if new is None:
            years.pop(str(year), None)
        else:
            years[str(year)] = new
        log = None
        if old != new:
            _save_setting(session, YEARS_KEY, years, actor_id, now)
            log = CalendarChange(changed_at=now, changed_by_id=actor_id, subject="year",
                                 old_value=None if old is None else {"year": int(year), **old},
                                 new_value=None if new is None else {"year": int(year), **new},
                                 reason=reason, source="; ".join(sources))
            session.add(log)
        session.flush()
    invalidate_calendar()
    return log


def set_law_parameter(session: Session, key: str, effective_from: date, value: str | None, *, source: str,
                      basis: str = "law", verified: bool = False, note: str = "", actor_id: int | None = None,
                      reason: str = "", now: datetime | None = None) -> CalendarChange | None:
    """Add (or replace, for the same `effective_from`) a dated value of a cut-off parameter: "HH:MM",
    or None for "no cut-off from that day". Earlier values stay in force for earlier days."""
    if key not in PARAMETERS:
        raise InvalidInput("unknown parameter", errors={"key": f"one of {', '.join(PARAMETERS)}"})
    if basis not in BASES:
        raise InvalidInput("unknown basis", errors={"basis": "law or practice"})
    if value is not None:
        try:
            value = time.fromisoformat(str(value).strip()).strftime("%H:%M")
        except ValueError:
            raise InvalidInput("a time of day is required", errors={"value": "HH:MM"}) from None
    source, note, reason = _text(source, "source"), _text(note, "note", 2000), _text(reason, "reason", 2000)
    if not source:
        raise InvalidInput("a source is required", errors={"source": "required"})
    now = clock.aware(now) if now is not None else clock.now()
    entry = LawParameter(key, effective_from, value, source, basis, bool(verified), note).as_json()
    with write_transaction(session):
        _authorize(session, actor_id, reason)
        setting = session.get(Setting, key)
        entries = [e for e in ((setting.value if setting is not None else None) or [])]
        old = next((e for e in entries if e.get("effective_from") == entry["effective_from"]), None)
        entries = sorted([e for e in entries if e is not old] + [entry], key=lambda e: e["effective_from"])
        log = None
        if old != entry:
            _save_setting(session, key, entries, actor_id, now)
            log = CalendarChange(changed_at=now, changed_by_id=actor_id, subject=f"parameter:{key}", old_value=old,
                                 new_value=entry, reason=reason, source=source)
            session.add(log)
        session.flush()
    invalidate_calendar()
    return log


def record_dossiers_moved(session: Session, change_id: int, moved: int) -> None:
    """Note on a day's log row how many open dossiers the change moved (calendar_shift). Commits."""
    with write_transaction(session):
        log = session.get(CalendarChange, change_id)
        if log is not None:
            log.dossiers_moved = moved


def _save_setting(session: Session, key: str, value, actor_id: int | None, now: datetime) -> None:
    setting = session.get(Setting, key)
    if setting is None:
        setting = Setting(key=key, value=value)
        session.add(setting)
    setting.value, setting.changed_by_id, setting.changed_at = value, actor_id, now


# --- what a change of one day does to open dossiers (read only) ------------------------------------
def clock_start(dossier, supplement: SupplementRequest | Any | None) -> datetime:
    """When the dossier's processing time last started: reception, or the arrival of the complete
    supplement of a timely request (the time restarts from zero then, L10)."""
    if supplement is not None and supplement.within_window and supplement.received_at is not None \
            and supplement.received_at > dossier.received_at:
        return supplement.received_at
    return dossier.received_at


def _shift(moment: datetime, start_day: date, day: date, old: WorkingCalendar, new: WorkingCalendar) -> datetime:
    """`moment` (a due date counted from `start_day`) under the `new` calendar: the same number of
    working days after `start_day`, at the same time of day. Unchanged unless `day` lies in the
    clock period (start_day <= day <= the due day)."""
    local = clock.local(moment)
    due_day = local.date()
    if not start_day <= day <= due_day:
        return moment
    counted = old.working_days_between(start_day, due_day)
    new_day = new.add_working_days(start_day, counted)
    if new_day == due_day:
        return moment
    return datetime.combine(new_day, local.time(), tzinfo=local.tzinfo).astimezone(timezone.utc)


def shifted_dates(dossier, started_at: datetime, day: date, old: WorkingCalendar,
                  new: WorkingCalendar) -> tuple[datetime, datetime] | None:
    """(new due_at, new legal_due_at) of an open dossier when the calendar goes from `old` to `new` by
    a change of `day`, or None when neither moves. A dossier whose clock is paused (the citizen holds
    it after a timely supplement request) does not move: its dates are set afresh when the supplement
    arrives."""
    if dossier.status not in OPEN_STATUSES or dossier.clock_paused:
        return None
    start_day = clock.local(started_at).date()
    due = _shift(dossier.due_at, start_day, day, old, new)
    legal = _shift(dossier.legal_due_at, start_day, day, old, new)
    if due == dossier.due_at and legal == dossier.legal_due_at:
        return None
    return due, legal


def dossiers_spanning(session: Session, day: date) -> list[tuple[Any, datetime]]:
    """Open dossiers with a running clock whose period may contain `day`, each with its clock start."""
    day_start = datetime.combine(day, time.min, tzinfo=clock.VN_TZ)
    day_end = datetime.combine(day, time.max, tzinfo=clock.VN_TZ)
    rows = session.execute(
        select(Dossier.id, Dossier.code, Dossier.status, Dossier.clock_paused, Dossier.received_at, Dossier.due_at,
               Dossier.legal_due_at, SupplementRequest.within_window, SupplementRequest.received_at.label("supplied_at"))
        .outerjoin(SupplementRequest, SupplementRequest.dossier_id == Dossier.id)
        .where(Dossier.status.in_(OPEN_STATUSES), Dossier.clock_paused.is_(False), Dossier.received_at <= day_end,
               sa.or_(Dossier.due_at >= day_start, Dossier.legal_due_at >= day_start))
        .order_by(Dossier.due_at, Dossier.id)).all()
    out = []
    for r in rows:
        supplement = _Supplement(r.within_window, r.supplied_at) if r.within_window is not None else None
        out.append((r, clock_start(r, supplement)))
    return out


@dataclass(frozen=True)
class _Supplement:
    within_window: bool
    received_at: datetime | None


def calendar_change_preview(session: Session, day: date, kind: str) -> list[AppointmentShift]:
    """The open dossiers whose appointment or legal date would move if `day` became a day off
    (`holiday`), a working day (`workday`), or went back to its year's default (`clear`), with the
    old and new dates. A new day off in a dossier's clock period (start <= day <= due day) pushes
    the due date one working day later; a new working day pulls it one earlier. Reads only."""
    if kind not in CHANGE_KINDS:
        raise InvalidInput("kind must be holiday, workday or clear", errors={"kind": kind})
    old = load_calendar(session)
    new = old.with_day(day, kind)
    if old.is_working_day(day) == new.is_working_day(day):
        return []
    out = []
    for row, started_at in dossiers_spanning(session, day):
        moved = shifted_dates(row, started_at, day, old, new)
        if moved is not None:
            out.append(AppointmentShift(row.id, row.code, row.status, row.due_at, moved[0], row.legal_due_at, moved[1]))
    return out


def day_effect(session: Session, day: date, kind: str) -> tuple[bool, bool]:
    """(is `day` a working day now, would it be one after the change)."""
    cal = load_calendar(session)
    return cal.is_working_day(day), cal.with_day(day, kind).is_working_day(day)


# --- the shipped data ------------------------------------------------------------------------------
def shipped_calendar(path: Path = SHIPPED_FILE) -> dict:
    """The law data shipped with the software: {"years": {...}, "days": [...], "parameters": [...]}."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    for row in data.get("days", []):
        if row["kind"] not in KINDS or not isinstance(row["day"], date):
            raise ValueError(f"bad calendar row in {path.name}: {row}")
    for year, info in data.get("years", {}).items():
        if info["status"] not in YEAR_STATUSES:
            raise ValueError(f"bad status of year {year} in {path.name}")
    return data


_DAYS = sa.table("calendar_days", sa.column("day", sa.Date), sa.column("kind", sa.String),
                 sa.column("note", sa.String), sa.column("source", sa.String),
                 sa.column("changed_by_id", sa.Integer), sa.column("changed_at", UTCDateTime))
_SETTINGS = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.JSON),
                     sa.column("changed_by_id", sa.Integer), sa.column("changed_at", UTCDateTime))
_CHANGES = sa.table("calendar_changes", sa.column("changed_at", UTCDateTime), sa.column("changed_by_id", sa.Integer),
                    sa.column("subject", sa.String), sa.column("day", sa.Date), sa.column("old_value", sa.JSON),
                    sa.column("new_value", sa.JSON), sa.column("reason", sa.String), sa.column("source", sa.String),
                    sa.column("dossiers_moved", sa.Integer))
SHIPPED_REASON = "Dữ liệu lịch phát hành kèm phần mềm"


def install_shipped_calendar(connection: Connection, now: datetime | None = None, path: Path = SHIPPED_FILE) -> dict:
    """Load the shipped law data into the database (migration 0008; also a database emptied by hand).
    Adds what is missing and never overwrites: a day an admin already set keeps the admin's kind, a
    year or parameter already set keeps its value. Each year and parameter added is logged. Core on
    `connection` (the caller commits). Returns how many days, years and parameters were added."""
    data = shipped_calendar(path)
    now = now or clock.now()
    existing = set(connection.execute(select(_DAYS.c.day)).scalars())
    years_row = connection.execute(select(_SETTINGS.c.value).where(_SETTINGS.c.key == YEARS_KEY)).first()
    years = dict((years_row[0] if years_row else None) or {})
    added = {"days": 0, "years": 0, "parameters": 0}
    logs = []
    new_days = [r for r in data.get("days", []) if r["day"] not in existing]
    if new_days:
        connection.execute(sa.insert(_DAYS), [
            {"day": r["day"], "kind": r["kind"], "note": r.get("note", ""), "source": r.get("source", ""),
             "changed_by_id": None, "changed_at": now} for r in new_days])
        added["days"] = len(new_days)
    for year, info in sorted(data.get("years", {}).items()):
        if str(year) in years:
            continue
        years[str(year)] = {"status": info["status"], "sources": list(info.get("sources", [])), "note": info.get("note", "")}
        count = sum(1 for r in new_days if r["day"].year == int(year))
        logs.append({"subject": "year", "day": None, "old_value": None,
                     "new_value": {"year": int(year), **years[str(year)], "days": count},
                     "source": "; ".join(info.get("sources", []))[:255]})
        added["years"] += 1
    if added["years"]:
        _upsert_setting(connection, YEARS_KEY, years, years_row is not None, now)
    by_key: dict[str, list[dict]] = {}
    for entry in data.get("parameters", []):
        parameter = LawParameter(entry["key"], entry["effective_from"], entry.get("value"), entry.get("source", ""),
                                 entry.get("basis", "law"), bool(entry.get("verified", False)), entry.get("note", ""))
        by_key.setdefault(parameter.key, []).append(parameter.as_json())
    for key, entries in by_key.items():
        if connection.execute(select(_SETTINGS.c.key).where(_SETTINGS.c.key == key)).first() is not None:
            continue
        entries.sort(key=lambda e: e["effective_from"])
        _upsert_setting(connection, key, entries, False, now)
        for entry in entries:
            logs.append({"subject": f"parameter:{key}", "day": None, "old_value": None, "new_value": entry,
                         "source": entry["source"][:255]})
        added["parameters"] += len(entries)
    if logs:
        connection.execute(sa.insert(_CHANGES), [{"changed_at": now, "changed_by_id": None, "reason": SHIPPED_REASON,
                                                  "dossiers_moved": None, **log} for log in logs])
    invalidate_calendar()
    return added


def _upsert_setting(connection: Connection, key: str, value, exists: bool, now: datetime) -> None:
    if exists:
        connection.execute(sa.update(_SETTINGS).where(_SETTINGS.c.key == key)
                           .values(value=value, changed_by_id=None, changed_at=now))
    else:
        connection.execute(sa.insert(_SETTINGS), [{"key": key, "value": value, "changed_by_id": None, "changed_at": now}])
