"""The unit of work of every dossier use case.

    with dossier_change(session, actor_id=..., permission="dossier.refuse", code=code, now=now) as change:
        ...check and act on change.dossier, change.instance(), change.audit(...), change.emit(...)

On entry: the use case's own write transaction begins, the actor is loaded, the dossier is locked and
the actor's permission is checked against the policy (a dossier the actor may not even see answers
like a missing one). On a normal exit, in this order and always: the report counters take the
difference the change made to the dossier's reported facts; the audit events are written (one
INSERT); the outbox gets the events the use case emitted — or `status_changed` when the status
moved and it emitted none; the dossier row is saved under its version guard; one commit. On any
exception nothing is written: the transaction is rolled back and the error goes to the caller (a
unique-constraint clash becomes the use case's declared `on_duplicate` error, if it declared one).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import Actor, load_actor
from engine.access.directory import unit_chain
from engine.catalog.calendar import working_calendar
from engine.dossiers import aggregate, audit, notices, outbox
from engine.dossiers.aggregate import Record
from engine.errors import DomainError, InvalidInput, TaskNotReady, WorkflowError
from engine.reporting import counters, deadlines
from engine.store.db import write_transaction
from engine.store.models import (
    OPEN_STATUSES,
    PROCESSING,
    RECEIVED,
    REFUSED,
    RESULT_READY,
    WITHDRAWN,
    IdempotencyKey,
    SupplementRequest,
    Unit,
)
from engine.workflow import runtime
from engine.workflow.workcal import WorkingCalendar


class DossierChange:
    """One use case's change to one dossier: the locked record, lazily its process instance, open
    tasks, calendar and version metadata, and what to write when the change closes."""

    def __init__(self, session: Session, actor: Actor | None, now: datetime, dossier: Record | None = None,
                 unit_id: int | None = None, sink: BatchSink | None = None):
        self.session, self.actor, self.now = session, actor, now
        self.sink = sink  # the timer sweep's batch: new inbox rows and the dossier row are written with it
        self.dossier = dossier
        self.unit_id = unit_id if dossier is None else dossier.unit_id
        self.task: Record | None = None
        self.sender_unit: int | None = None  # set when the work comes from a unit other than a step's
        self.on_duplicate: DomainError | None = None
        self._facts = counters.facts_of(dossier) if dossier is not None else Counter()
        self._status = dossier.status if dossier is not None else None
        self._events: list[dict] = []
        self._emitted: list[str] = []
        self._open: dict[str, Record] | None = None
        self.consulted: bool | None = None  # whether the dossier has consultations (None: not read yet)
        self._instance: runtime.Instance | None = None

    # --- what the use case reads -----------------------------------------------------------------
    @property
    def calendar(self) -> WorkingCalendar:
        return working_calendar(self.session)

    @property
    def meta(self) -> dict:
        return aggregate.version_meta(self.session, self.dossier.version_id)[0]

    @property
    def open_tasks(self) -> dict[str, Record]:
        if self._open is None:
            self._open = aggregate.open_tasks(self.session, self.dossier.id)
        return self._open

    def instance(self) -> runtime.Instance:
        if self._instance is None:
            _, spec_hash = aggregate.version_meta(self.session, self.dossier.version_id)
            self._instance = runtime.Instance.load(self.dossier.workflow_state, spec_hash,
                                                   aggregate.spec_loader(self.session), self.calendar)
        return self._instance

    def part(self, model) -> Record | None:
        return aggregate.part(self.session, model, self.dossier.id)

    def has_part(self, model) -> bool:
        return self.part(model) is not None

    # --- what the use case does ------------------------------------------------------------------
    def create(self, values: dict, instance: runtime.Instance) -> Record:
        """Insert the new dossier this change receives, running `instance`."""
        self.dossier = aggregate.insert_dossier(self.session, values)
        self._open, self._instance = {}, instance
        return self.dossier

    def audit(self, kind: str, step: str | None = None, **data) -> None:
        self._events.append(audit.chain(self.dossier, kind, self.now, self.actor, step, **data))

    def emit(self, kind: str) -> None:
        """Queue an event for the national portal (written with the change)."""
        self._emitted.append(kind)

    def add(self, model, **values) -> Record:
        return aggregate.insert_part(self.session, model, {"dossier_id": self.dossier.id, **values})

    def add_many(self, model, rows: list[dict]) -> None:
        aggregate.insert_parts(self.session, model, [{"dossier_id": self.dossier.id, **r} for r in rows])

    def remember_request(self, operation: str, idempotency: tuple[str, str] | None) -> None:
        """Record the Idempotency-Key (key, request digest) this change answers, in its transaction."""
        if idempotency is not None:
            aggregate.insert_part(self.session, IdempotencyKey, {
                "user_id": self.actor.id, "key": idempotency[0], "operation": operation,
                "request_sha256": idempotency[1], "dossier_code": self.dossier.code, "created_at": self.now})

    def save_part(self, model, record: Record) -> None:
        aggregate.save_part(self.session, model, record)

    def complete_task(self, task: Record, **values) -> None:
        for key, value in values.items():
            setattr(task, key, value)
        aggregate.save_task(self.session, task)
        self.open_tasks.pop(task.id, None)

    def record_decision(self, task: Record, decision: str, note: str, *, late: bool, on_time: bool) -> None:
        """What completing a step does, whoever completes it (`processing.complete_task`, the reception's
        forward): the process moves on with `decision`, the step is closed by the change's actor and
        audited, and a dossier just received is now being processed. `sync` then brings the rest in line."""
        self.run(lambda inst: inst.complete(task.id, {"decision": decision}), f"the process failed after '{task.name}'")
        self.complete_task(task, completed_at=self.now, completed_by_id=self.actor.id, decision=decision, note=note,
                           late=late)
        self.audit("task_completed", step=task.spec_name, task_id=task.id, decision=decision, note=note, on_time=on_time)
        if self.dossier.status == RECEIVED:
            self.dossier.status = PROCESSING

    def flag_late_steps(self) -> list[Record]:
        late = aggregate.late_open_tasks(self.session, self.dossier.id, self.now)
        for task in late:
            task.late = True
            aggregate.save_task(self.session, task)
        return late

    def run(self, action, failure: str) -> None:
        """Advance the process instance with `action(instance)` at the change's time."""
        try:
            with clock.frozen(self.now):
                action(self.instance())
        except runtime.NotWaiting:
            raise TaskNotReady("this step is not open in the process") from None
        except runtime.ProcessFailed as exc:
            raise WorkflowError(f"{failure}: {exc}") from None

    def sync(self, *, refused: bool = False, deadlines: dict[str, tuple[datetime, datetime]] | None = None) -> list[Record]:
        """Bring the inbox rows, the next timer, the status and the stored state in line with the
        instance. `deadlines`: start and due times to keep for steps by spec name (a migration keeps
        each step's deadline as it was). Returns the tasks it opened."""
        d, inst, cal, meta = self.dossier, self.instance(), self.calendar, self.meta
        open_rows = self.open_tasks
        ready = inst.ready_user_tasks()
        start = max(self.now, d.handed_on_at)
        created = []
        handed_from = self._handed_from(open_rows)
        for info in ready:
            if info.id in open_rows:
                continue
            step = meta["steps"].get(info.spec_name, {})
            started, due = (deadlines or {}).get(info.spec_name) or \
                (start, cal.add_duration(start, step.get("duration") or "PT0H"))
            unit_id = self.step_unit(step.get("unit"), step.get("name") or info.name)
            if unit_id != handed_from:
                # Liên thông: the process moves to a lane of another unit; the dossier is handed over (L9).
                self.audit("handed_off", step=info.spec_name, from_unit=aggregate.unit_code(self.session, handed_from),
                           to_unit=aggregate.unit_code(self.session, unit_id), due_at=due.isoformat())
            task = Record({
                "id": info.id, "dossier_id": d.id, "unit_id": unit_id, "role": step.get("role") or "",
                "spec_name": info.spec_name, "name": step.get("name") or info.name,
                "decisions": step.get("decisions") or ["approve"], "started_at": started, "due_at": due,
                "note": "", "late": False, "cancelled": False,
            })
            created.append(task)
            self.audit("task_started", step=info.spec_name, task_id=info.id, name=task.name, role=task.role,
                       unit=aggregate.unit_code(self.session, unit_id), started_at=started.isoformat(),
                       due_at=due.isoformat())
        if self.sink is not None:
            self.sink.tasks.extend(created)
        else:
            aggregate.insert_tasks(self.session, created)
        ready_ids = {i.id for i in ready}
        gone = [task_id for task_id in open_rows if task_id not in ready_ids]
        aggregate.cancel_tasks(self.session, d.id, self.now, gone)
        self._open = {**{k: v for k, v in open_rows.items() if k in ready_ids}, **{t.id: t for t in created}}
        d.timer_due_at = inst.next_timer_due()
        if not ready and d.status in OPEN_STATUSES and inst.completed:  # a step still ready: not completed
            self.finish(REFUSED if refused else RESULT_READY)
            self.audit("finished", outcome=d.status, on_time=d.finish_result != "late")
        d.workflow_state = inst.dump()
        return created

    def _handed_from(self, open_rows: dict) -> int:
        """The unit the work comes from: the step just completed, else (a timer, a migration) the unit of
        a step still open or the last one done; a supplement arrives from the receiving desk."""
        if self.sender_unit is not None:
            return self.sender_unit
        if self.task is not None:
            return self.task.unit_id
        if open_rows:
            return next(iter(open_rows.values())).unit_id
        return aggregate.last_step_unit(self.session, self.dossier.id) or self.dossier.unit_id

    def step_unit(self, where: str | None, step_name: str) -> int:
        """The unit a step's lane names (DESIGN.md): the receiving unit, its parent, or a unit by code."""
        d = self.dossier
        if not where or where == "@receiving":
            return d.unit_id
        if where == "@parent":
            chain = unit_chain(self.session, d.unit_id)
            if len(chain) < 2:
                raise WorkflowError(f"step '{step_name}' belongs to the parent of the receiving unit, which has none")
            return chain[1]
        unit_id = aggregate.unit_id(self.session, where)
        if unit_id is None:
            raise WorkflowError(f"step '{step_name}' belongs to unit {where}, which does not exist")
        return unit_id

    def cancel_open_tasks(self) -> None:
        aggregate.cancel_tasks(self.session, self.dossier.id, self.now)
        self._open = {}
        self.dossier.timer_due_at = None

    def finish(self, status: str) -> None:
        """Close the dossier and record, once, the facts the reports aggregate."""
        d, now = self.dossier, self.now
        d.status, d.finished_at = status, now
        d.finished_on = clock.local(now).date()
        paused, d.clock_paused = d.clock_paused, False
        if status == WITHDRAWN:
            return
        # Judged on the legal date in force (an apology moves only the appointment); a dossier that
        # ends while the citizen holds it is judged at the moment the agency's clock stopped.
        request = self.part(SupplementRequest) if paused else None
        d.finish_result = deadlines.finish_result(d, now, request.requested_at if request is not None else None)
        d.steps_result = counters.worst([counters.classify(done, step_due) for done, step_due
                                         in aggregate.completed_step_deadlines(self.session, d.id)])

    # --- closing ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Write what the change did (counters, audit, outbox, the dossier row). No commit. With a
        sink (the timer sweep), the new inbox rows, the audit and outbox rows and the dossier row are
        collected for a few statements per batch (`BatchSink.flush`)."""
        d, sink = self.dossier, self.sink
        if d is None:
            raise RuntimeError("a dossier change closed without a dossier")
        counters.apply(self.session, self._facts, d)
        kinds = self._emitted or (["status_changed"] if d.status != self._status else [])
        code = aggregate.procedure_code(self.session, d.procedure_id) if kinds else None
        events = [outbox.row(self.session, d, kind, self.now, code) for kind in kinds]
        notices.queue(self.session, d, kinds, self._status, self.now)
        if sink is not None:
            sink.audit.extend(self._events)
            sink.outbox.extend(events)
            sink.dossiers.append(d)
        else:
            audit.write(self.session, self._events)
            outbox.write(self.session, events)
            aggregate.save(self.session, d)


class BatchSink:
    """What several changes in one transaction write, written together by `flush` before the commit:
    the new inbox rows in one INSERT, the dossier rows in one batched UPDATE per set of changed columns
    (each under its version guard), the audit and outbox rows in one INSERT each. Nothing a later change
    of the batch reads is deferred: each dossier is claimed once per batch, and its own rows are read
    before its change begins."""

    def __init__(self):
        self.tasks: list[Record] = []
        self.dossiers: list[Record] = []
        self.audit: list[dict] = []
        self.outbox: list[dict] = []

    def flush(self, session: Session) -> None:
        aggregate.insert_tasks(session, self.tasks)
        aggregate.save_many(session, self.dossiers)
        audit.write(session, self.audit)
        outbox.write(session, self.outbox)
        self.tasks, self.dossiers, self.audit, self.outbox = [], [], [], []


@contextmanager
def _transaction(session: Session, change_holder: list):
    """The use case's write transaction; a unique clash becomes the change's `on_duplicate`, if declared."""
    try:
        with write_transaction(session):
            yield
    except IntegrityError:
        duplicate = change_holder[0].on_duplicate if change_holder else None
        if duplicate is not None:
            raise duplicate from None
        raise


@contextmanager
def dossier_change(session: Session, *, actor_id: int | None, permission: str | None, code: str | None = None,
                   task_id: str | None = None, dossier_id: int | None = None, now: datetime | None = None):
    """Lock one existing dossier (by code, task id or id) and authorize `permission` on it; write and
    commit on exit. `permission=None` is for changes made by the system or by a citizen who proved
    who they are (the use case checks that itself)."""
    now = now or clock.now()
    holder: list[DossierChange] = []
    with _transaction(session, holder):
        actor = load_actor(session, actor_id) if actor_id is not None else None
        consulted = None
        if task_id is not None:  # every change to a task reads its dossier's open tasks: in the same statement
            dossier, open_rows, consulted = aggregate.lock_with_open_tasks(session, task_id)
        else:
            dossier, open_rows = aggregate.lock(session, code=code, dossier_id=dossier_id), None
        change = DossierChange(session, actor, now, dossier)
        change._open, change.consulted = open_rows, consulted
        holder.append(change)
        if permission == "task.complete":
            change.task = change.open_tasks.get(task_id)
            if change.task is None:
                raise TaskNotReady("this step was already completed by someone else or is no longer open")
            policy.require(actor, permission, task=change.task)
        elif permission is not None and not policy.can(actor, permission, dossier.unit_id, session=session,
                                                       dossier=dossier):
            policy.require_view(session, actor, dossier)  # one the actor may not see is "not found"
            policy.require(actor, permission, dossier.unit_id, session=session, dossier=dossier)
        yield change
        change.close()


@contextmanager
def new_dossier(session: Session, *, actor_id: int, unit_code: str | None = None, now: datetime | None = None):
    """Authorize receiving a dossier at the actor's desk (`unit_code` when they work at several);
    the use case then calls `change.create(...)`. Writes and commits on exit like `dossier_change`."""
    now = now or clock.now()
    holder: list[DossierChange] = []
    with _transaction(session, holder):
        actor = load_actor(session, actor_id)
        if unit_code is not None:
            unit_id = session.execute(select(Unit.id).where(Unit.code == unit_code)).scalar()
        else:
            desks = policy.units_for(session, actor, "dossier.receive")
            if len(desks) > 1:
                raise InvalidInput("you work at several desks: name the receiving unit", errors={"unit_code": "required"})
            unit_id = desks[0] if desks else None
        policy.require(actor, "dossier.receive", unit_id, session=session)
        change = DossierChange(session, actor, now, unit_id=unit_id)
        holder.append(change)
        yield change
        change.close()


@contextmanager
def claimed_change(session: Session, dossier: Record, now: datetime, sink: BatchSink | None = None,
                   open_tasks: dict[str, Record] | None = None):
    """A change by the system to a dossier the timer sweep has claimed (locked) in its own
    transaction. Without a `sink`: written inside a savepoint, so one dossier's failure (a process
    that fails) leaves the batch's others. With one: no savepoint, and the new inbox rows, the dossier
    row, the audit and outbox rows wait for the batch's `sink.flush` (a failure must roll the batch
    back). `open_tasks`: the dossier's open inbox rows when the caller read them for the whole batch."""
    change = DossierChange(session, None, now, dossier, sink=sink)
    change._open = open_tasks
    if sink is not None:
        yield change
        change.close()
        return
    with session.begin_nested():
        yield change
        change.close()
