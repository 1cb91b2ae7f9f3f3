"""Timer sweep: fires due BPMN timers and flags dossiers and steps that passed their deadline.

Safe in several processes at once on PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED and
every change is guarded by a condition re-checked under the lock, so each timer fires and each
flag is set exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import audit, clock, outbox, reportfacts, runtime
from .db import begin_write
from .dossiers import _load_instance, _sync, calendar
from .errors import WorkflowError
from .models import AWAITING_SUPPLEMENT, OPEN_STATUSES, Dossier, HumanTask

BATCH = 50


@dataclass
class SweepReport:
    timers_fired: int = 0
    dossiers_overdue: int = 0
    steps_late: int = 0
    failures: list[str] = field(default_factory=list)


def _claim(session: Session, stmt):
    return list(session.scalars(stmt.with_for_update(skip_locked=True, of=Dossier).limit(BATCH)))


def run_once(factory: sessionmaker, now: datetime | None = None) -> SweepReport:
    now = now or clock.now()
    report = SweepReport()
    _fire_timers(factory, now, report)
    _flag_overdue(factory, now, report)
    _flag_late_steps(factory, now, report)
    return report


def _fire_timers(factory, now, report) -> None:
    failed: set[int] = set()
    while True:
        with factory() as session:
            begin_write(session)
            batch = _claim(session, select(Dossier).where(
                Dossier.timer_due_at <= now, Dossier.status.in_(OPEN_STATUSES), Dossier.id.not_in(failed or {0}))
                .order_by(Dossier.timer_due_at))
            if not batch:
                return
            cal = calendar(session)
            for dossier in batch:
                try:
                    with session.begin_nested():
                        previous_status = dossier.status
                        facts = reportfacts.facts_of(dossier)
                        inst, meta = _load_instance(session, dossier, cal)
                        with clock.frozen(now):
                            inst.fire_timers()
                        audit.append(session, dossier, "timer_fired", now, None, due=dossier.timer_due_at.isoformat())
                        _sync(session, dossier, inst, meta, cal, now, None)
                        if dossier.status != previous_status:
                            outbox.record(session, dossier, "status_changed", now)
                        reportfacts.apply(session, facts, dossier)
                        audit.flush(session)  # inside the savepoint: a later failure must not drop these
                    report.timers_fired += 1
                except (runtime.ProcessFailed, WorkflowError) as exc:
                    audit.discard(session)
                    failed.add(dossier.id)
                    report.failures.append(f"{dossier.code}: {exc}")
            session.commit()


def _flag_overdue(factory, now, report) -> None:
    while True:
        with factory() as session:
            begin_write(session)
            # The clock is paused while the citizen owes a supplement.
            batch = _claim(session, select(Dossier).where(
                Dossier.status.in_([s for s in OPEN_STATUSES if s != AWAITING_SUPPLEMENT]),
                Dossier.due_at < now, Dossier.overdue.is_(False)).order_by(Dossier.due_at))
            if not batch:
                return
            for dossier in batch:
                dossier.overdue = True
                dossier.overdue_flagged_at = now
                dossier.late_without_apology = not dossier.apologized
                audit.append(session, dossier, "overdue", now, None, due_at=dossier.due_at.isoformat(),
                             apologized=dossier.apologized)
                outbox.record(session, dossier, "overdue", now)
                report.dossiers_overdue += 1
            session.commit()


def _flag_late_steps(factory, now, report) -> None:
    while True:
        with factory() as session:
            begin_write(session)
            dossier_ids = select(HumanTask.dossier_id).where(
                HumanTask.completed_at.is_(None), HumanTask.late.is_(False), HumanTask.due_at < now)
            batch = _claim(session, select(Dossier).where(Dossier.id.in_(dossier_ids)).order_by(Dossier.id))
            if not batch:
                return
            for dossier in batch:
                tasks = session.scalars(select(HumanTask).where(
                    HumanTask.dossier_id == dossier.id, HumanTask.completed_at.is_(None),
                    HumanTask.late.is_(False), HumanTask.due_at < now)).all()
                for task in tasks:
                    task.late = True
                    audit.append(session, dossier, "step_late", now, None, step=task.spec_name, task_id=task.id,
                                 due_at=task.due_at.isoformat())
                    report.steps_late += 1
            session.commit()
