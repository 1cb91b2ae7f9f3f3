"""Timer sweep: fires due BPMN timers and flags dossiers and steps that passed their deadline.

Safe in several processes at once on PostgreSQL: dossiers are claimed in batches with
`FOR UPDATE SKIP LOCKED` and every change is guarded by a condition re-checked under the lock, so
each timer fires and each flag is set exactly once. Each dossier's change is its own savepoint in
the batch's transaction, written by the same unit of work as every use case.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists
from sqlalchemy.orm import sessionmaker

from engine import clock
from engine.dossiers import aggregate
from engine.dossiers.aggregate import DOSSIERS, SUPPLEMENTS
from engine.dossiers.change import BatchSink, claimed_change
from engine.errors import WorkflowError
from engine.reporting import deadlines
from engine.store.db import begin_write
from engine.store.models import AWAITING_SUPPLEMENT, OPEN_STATUSES, SupplementRequest
from engine.workflow import runtime

BATCH = 50


@dataclass
class SweepReport:
    timers_fired: int = 0
    dossiers_overdue: int = 0
    steps_late: int = 0
    supplements_expired: int = 0
    failures: list[str] = field(default_factory=list)


def run_once(factory: sessionmaker, now: datetime | None = None) -> SweepReport:
    now = now or clock.now()
    report = SweepReport()
    _fire_timers(factory, now, report)
    _flag_overdue(factory, now, report)
    _flag_late_steps(factory, now, report)
    _flag_unanswered_supplements(factory, now, report)
    return report


def _batches(factory, *conditions, order_by, exclude=frozenset()):
    """Claimed batches, each in its own transaction, committed after the caller's loop body."""
    while True:
        with factory() as session:
            begin_write(session)
            batch = aggregate.claim(session, *conditions, order_by=order_by, limit=BATCH, exclude=exclude)
            if not batch:
                session.rollback()
                return
            yield session, batch
            session.commit()


def _fire_timers(factory, now, report) -> None:
    failed: set[int] = set()
    for session, batch in _batches(factory, DOSSIERS.c.timer_due_at <= now, DOSSIERS.c.status.in_(OPEN_STATUSES),
                                   order_by=DOSSIERS.c.timer_due_at, exclude=failed):
        for dossier in batch:
            try:
                with claimed_change(session, dossier, now) as change:
                    due = dossier.timer_due_at
                    change.run(lambda inst: inst.fire_timers(), "a timer failed")
                    change.audit("timer_fired", due=due.isoformat())
                    change.sync()
                report.timers_fired += 1
            except (runtime.ProcessFailed, WorkflowError) as exc:
                failed.add(dossier.id)
                report.failures.append(f"{dossier.code}: {exc}")


def _flag_overdue(factory, now, report) -> None:
    # One definition of overdue (engine/reporting/deadlines.py): not while the citizen holds the dossier.
    for session, batch in _batches(factory, deadlines.overdue(now, DOSSIERS.c), DOSSIERS.c.overdue.is_(False),
                                   order_by=DOSSIERS.c.legal_due_at):
        sink = BatchSink()
        for dossier in batch:
            with claimed_change(session, dossier, now, sink) as change:
                dossier.overdue = True
                dossier.overdue_flagged_at = now
                dossier.late_without_apology = not dossier.apologized
                change.audit("overdue", due_at=dossier.legal_due_at.isoformat(), apologized=dossier.apologized)
                change.emit("overdue")
            report.dossiers_overdue += 1
        sink.flush(session)


def _flag_late_steps(factory, now, report) -> None:
    for session, batch in _batches(factory, aggregate.dossiers_with_late_tasks(now), order_by=DOSSIERS.c.id):
        sink = BatchSink()
        for dossier in batch:
            with claimed_change(session, dossier, now, sink) as change:
                for task in change.flag_late_steps():
                    change.audit("step_late", step=task.spec_name, task_id=task.id, due_at=task.due_at.isoformat())
                    report.steps_late += 1
        sink.flush(session)


def _flag_unanswered_supplements(factory, now, report) -> None:
    """A supplement request past the date the citizen was asked to answer by: the desk is told (the
    dossier shows it, the outbox carries it); closing the dossier stays a decision (form 03)."""
    unanswered = exists().where(SUPPLEMENTS.c.dossier_id == DOSSIERS.c.id, SUPPLEMENTS.c.received_at.is_(None),
                                SUPPLEMENTS.c.expired_at.is_(None), SUPPLEMENTS.c.respond_by < now)
    for session, batch in _batches(factory, DOSSIERS.c.status == AWAITING_SUPPLEMENT, unanswered,
                                   order_by=DOSSIERS.c.id):
        sink = BatchSink()
        for dossier in batch:
            with claimed_change(session, dossier, now, sink) as change:
                request = change.part(SupplementRequest)
                request.expired_at = now
                change.save_part(SupplementRequest, request)
                change.audit("supplement_expired", respond_by=request.respond_by.isoformat())
                change.emit("supplement_expired")
            report.supplements_expired += 1
        sink.flush(session)
