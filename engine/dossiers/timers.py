"""Timer sweep: fires due BPMN timers and flags dossiers and steps that passed their deadline.

Four kinds of work, each a phase of the sweep: BPMN timers (`dossiers.timer_due_at`), overdue dossiers
(`legal_due_at`, engine/reporting/deadlines.py), late steps (`human_tasks.due_at`) and supplement
requests the citizen left unanswered (`supplement_requests.respond_by`).

Safe in several processes at once on PostgreSQL: dossiers are claimed in batches with
`FOR UPDATE SKIP LOCKED` and every change is guarded by a condition re-checked under the lock, so
each timer fires and each flag is set exactly once. Every dossier's change is made by the same
unit of work as every use case (`claimed_change`); what the batch's changes write (new inbox rows,
dossier rows, audit and outbox rows) is collected and written in a few statements per batch
(`change.BatchSink`), the batch's open inbox rows read in one. A batch is one transaction, so a sweep
stopped between batches (`stop`) leaves nothing half-written.

`due_times` says when each kind next has something to do: the timer worker
(engine/dossiers/timer_worker.py) sleeps until the earliest and sweeps only the kinds that are due.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import exists, func, select
from sqlalchemy.orm import sessionmaker

from engine import clock
from engine.dossiers import aggregate
from engine.dossiers.aggregate import DOSSIERS, SUPPLEMENTS, TASKS
from engine.dossiers.change import BatchSink, claimed_change
from engine.errors import WorkflowError
from engine.reporting import deadlines
from engine.store.db import begin_write
from engine.store.models import AWAITING_SUPPLEMENT, OPEN_STATUSES, SupplementRequest
from engine.workflow import runtime

BATCH = 100
TIMERS, OVERDUE, LATE_STEPS, SUPPLEMENTS_DUE = "timers", "overdue", "late_steps", "supplements"
KINDS = (TIMERS, OVERDUE, LATE_STEPS, SUPPLEMENTS_DUE)


@dataclass
class SweepReport:
    timers_fired: int = 0
    dossiers_overdue: int = 0
    steps_late: int = 0
    supplements_expired: int = 0
    failures: list[str] = field(default_factory=list)
    failed_ids: set[int] = field(default_factory=set)  # dossiers whose timer failed to fire
    stopped: bool = False  # `stop` answered true: the sweep ended after a whole batch, work may remain

    def did_something(self) -> bool:
        return bool(self.timers_fired or self.dossiers_overdue or self.steps_late or self.supplements_expired
                    or self.failures)


def run_once(factory: sessionmaker, now: datetime | None = None, *, kinds: Collection[str] = KINDS,
             skip: Collection[int] = (), stop: Callable[[], bool] = lambda: False) -> SweepReport:
    """Fire every timer and set every flag due at `now`, for the `kinds` of work asked (all by default).
    `skip`: dossiers whose timer is not to be tried (the worker's recent failures). `stop` is asked
    before each batch: when it answers true the sweep ends there, every batch it took committed."""
    now = now or clock.now()
    report = SweepReport()
    for kind, phase in ((TIMERS, _fire_timers), (OVERDUE, _flag_overdue), (LATE_STEPS, _flag_late_steps),
                        (SUPPLEMENTS_DUE, _flag_unanswered_supplements)):
        if kind in kinds:
            phase(factory, now, report, stop, skip)
        if report.stopped:
            break
    return report


def due_times(session, *, skip: Collection[int] = ()) -> dict[str, datetime | None]:
    """For each kind of work, the earliest time a sweep will find some (in the past when some is due
    already; None when none is pending), read in one statement over the partial indexes of migration
    0011. Timers fire and flags are set strictly after their time: the caller adds a moment."""
    timer = select(func.min(DOSSIERS.c.timer_due_at)).where(DOSSIERS.c.status.in_(OPEN_STATUSES))
    if skip:
        timer = timer.where(DOSSIERS.c.id.not_in(sorted(skip)))
    overdue = select(func.min(DOSSIERS.c.legal_due_at)).where(*_running_not_flagged())
    late = select(func.min(TASKS.c.due_at)).where(TASKS.c.completed_at.is_(None), TASKS.c.late.is_(False))
    unanswered = select(func.min(SUPPLEMENTS.c.respond_by)).where(
        SUPPLEMENTS.c.received_at.is_(None), SUPPLEMENTS.c.expired_at.is_(None),
        SUPPLEMENTS.c.dossier_id.in_(select(DOSSIERS.c.id).where(DOSSIERS.c.status == AWAITING_SUPPLEMENT)))
    row = session.execute(select(*(q.scalar_subquery() for q in (timer, overdue, late, unanswered)))).one()
    return {kind: _as_datetime(value) for kind, value in zip(KINDS, row)}


def next_due(session, *, skip: Collection[int] = ()) -> datetime | None:
    """The earliest of `due_times`."""
    return min((t for t in due_times(session, skip=skip).values() if t is not None), default=None)


def _as_datetime(value) -> datetime | None:
    # SQLite hands min() of a datetime column back as text.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _running_not_flagged():
    # `finished_on IS NULL` follows from an open status; said again so PostgreSQL and SQLite can use the
    # partial index ix_dossiers_legal_due_running (migration 0011).
    return (deadlines.running(DOSSIERS.c), DOSSIERS.c.overdue.is_(False), DOSSIERS.c.finished_on.is_(None))


class _Batch:
    """Claimed dossiers and their transaction; `redo()` rolls it back to be claimed again."""

    def __init__(self, session, dossiers):
        self.session, self.dossiers, self.redone = session, dossiers, False

    def redo(self) -> None:
        self.session.rollback()
        self.redone = True


def _batches(factory, *conditions, order_by, stop, report, exclude=frozenset()):
    """Claimed batches, each in its own transaction, committed after the caller's loop body. `stop` is
    asked before each claim. A batch short of BATCH took everything due that no other worker holds: the
    next claim would find nothing."""
    while True:
        if stop():
            report.stopped = True
            return
        with factory() as session:
            begin_write(session)
            batch = _Batch(session, aggregate.claim(session, *conditions, order_by=order_by, limit=BATCH,
                                                    exclude=exclude))
            if not batch.dossiers:
                session.rollback()
                return
            yield batch
            if batch.redone:
                continue
            session.commit()
            if len(batch.dossiers) < BATCH:
                return


def _fire_timers(factory, now, report, stop, skip) -> None:
    """A process that fails rolls the whole batch back, since its change may have written part of itself:
    the batch is claimed again without that dossier, which is reported. Failures are rare; a savepoint per
    dossier would cost two round trips on every timer."""
    failed: set[int] = set(skip)
    # Strictly past, as SpiffWorkflow fires a timer (`due < now`): at its very instant it would not fire.
    for batch in _batches(factory, DOSSIERS.c.timer_due_at < now, DOSSIERS.c.status.in_(OPEN_STATUSES),
                          order_by=DOSSIERS.c.timer_due_at, stop=stop, report=report, exclude=failed):
        session, sink = batch.session, BatchSink()
        ids = [d.id for d in batch.dossiers]
        last_units, open_rows = _last_step_units(session, ids), aggregate.open_tasks_of(session, ids)
        for dossier in batch.dossiers:
            try:
                with claimed_change(session, dossier, now, sink, open_rows[dossier.id]) as change:
                    due = dossier.timer_due_at
                    change.run(lambda inst: inst.fire_timers(), "a timer failed")
                    change.audit("timer_fired", due=due.isoformat())
                    if not change.open_tasks:
                        # Where the work comes from (a hand-over is audited when the next step is in another
                        # unit): the unit of the last step done, as the change would read it for this dossier.
                        change.sender_unit = last_units.get(dossier.id, dossier.unit_id)
                    change.sync()
            except (runtime.ProcessFailed, WorkflowError) as exc:
                batch.redo()
                failed.add(dossier.id)
                report.failed_ids.add(dossier.id)
                report.failures.append(f"{dossier.code}: {exc}")
                break
        else:
            sink.flush(session)
            report.timers_fired += len(batch.dossiers)


def _last_step_units(session, dossier_ids: list[int]) -> dict[int, int]:
    """The unit of each dossier's most recently completed step (`aggregate.last_step_unit`), in one
    query for the batch instead of one per dossier."""
    latest = func.row_number().over(partition_by=TASKS.c.dossier_id, order_by=TASKS.c.completed_at.desc())
    ranked = select(TASKS.c.dossier_id, TASKS.c.unit_id, latest.label("n")).where(
        TASKS.c.dossier_id.in_(dossier_ids), TASKS.c.completed_at.is_not(None), TASKS.c.cancelled.is_(False)).subquery()
    return dict(session.connection().execute(select(ranked.c.dossier_id, ranked.c.unit_id).where(ranked.c.n == 1)).all())


def _flag_overdue(factory, now, report, stop, skip) -> None:
    # One definition of overdue (engine/reporting/deadlines.py): not while the citizen holds the dossier.
    for batch in _batches(factory, deadlines.overdue(now, DOSSIERS.c), *_running_not_flagged(),
                          order_by=DOSSIERS.c.legal_due_at, stop=stop, report=report):
        sink = BatchSink()
        for dossier in batch.dossiers:
            with claimed_change(batch.session, dossier, now, sink) as change:
                dossier.overdue = True
                dossier.overdue_flagged_at = now
                dossier.late_without_apology = not dossier.apologized
                change.audit("overdue", due_at=dossier.legal_due_at.isoformat(), apologized=dossier.apologized)
                change.emit("overdue")
            report.dossiers_overdue += 1
        sink.flush(batch.session)


def _flag_late_steps(factory, now, report, stop, skip) -> None:
    for batch in _batches(factory, aggregate.dossiers_with_late_tasks(now), order_by=DOSSIERS.c.id,
                          stop=stop, report=report):
        sink = BatchSink()
        for dossier in batch.dossiers:
            with claimed_change(batch.session, dossier, now, sink) as change:
                for task in change.flag_late_steps():
                    change.audit("step_late", step=task.spec_name, task_id=task.id, due_at=task.due_at.isoformat())
                    report.steps_late += 1
        sink.flush(batch.session)


def _flag_unanswered_supplements(factory, now, report, stop, skip) -> None:
    """A supplement request past the date the citizen was asked to answer by: the desk is told (the
    dossier shows it, the outbox carries it); closing the dossier stays a decision (form 03)."""
    unanswered = exists().where(SUPPLEMENTS.c.dossier_id == DOSSIERS.c.id, SUPPLEMENTS.c.received_at.is_(None),
                                SUPPLEMENTS.c.expired_at.is_(None), SUPPLEMENTS.c.respond_by < now)
    for batch in _batches(factory, DOSSIERS.c.status == AWAITING_SUPPLEMENT, unanswered,
                          order_by=DOSSIERS.c.id, stop=stop, report=report):
        sink = BatchSink()
        for dossier in batch.dossiers:
            with claimed_change(batch.session, dossier, now, sink) as change:
                request = change.part(SupplementRequest)
                request.expired_at = now
                change.save_part(SupplementRequest, request)
                change.audit("supplement_expired", respond_by=request.respond_by.isoformat())
                change.emit("supplement_expired")
            report.supplements_expired += 1
        sink.flush(batch.session)
