"""Dossier use cases. Each function is one transaction under a row lock on the dossier: it checks,
acts, and commits once; on any domain error nothing has changed (the caller's session is rolled back).
"""
from __future__ import annotations

import re
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from . import audit, catalog, clock, files, outbox, reportfacts, runtime
from .actors import Actor, load_actor
from .db import begin_write
from .errors import (
    Conflict,
    DossierClosed,
    DueDateAlreadyReset,
    InvalidInput,
    MissingComponents,
    NotAllowed,
    NotFound,
    SupplementAlreadyRequested,
    SupplementNotRequested,
    TaskNotReady,
    WorkflowError,
)
from .models import (
    AWAITING_SUPPLEMENT,
    CHANNELS,
    OPEN_STATUSES,
    PROCESSING,
    RECEIVED,
    REFUSED,
    RESULT_READY,
    RETURNED,
    WITHDRAWN,
    Apology,
    DailySequence,
    Dossier,
    DossierFile,
    HumanTask,
    IdempotencyKey,
    ProcedureVersion,
    ProcessSpec,
    ServiceRating,
    SupplementRequest,
)
from .text import fold
from .workcal import WorkingCalendar, load_calendar

MOT_CUA = "mot_cua"
LEADER = "lanh_dao"
REQUEST_SUPPLEMENT, REFUSE = "request_supplement", "refuse"
SUPPLEMENT_MESSAGE = "supplement_received"
ID_NUMBER_RE = re.compile(r"^[0-9A-Za-z\-]{6,20}$")
FORM_FIELDS = frozenset({"decision", "reason", "items"})
PAPER_CUTOFF = time(15, 0)


# --- helpers -----------------------------------------------------------------------------------
def _actor(session: Session, actor_id: int) -> Actor:
    return load_actor(session, actor_id)


def _require_role(user: Actor, roles: tuple[str, ...] | str, unit_id: int, action: str) -> None:
    roles = (roles,) if isinstance(roles, str) else roles
    if not any(user.holds(role, unit_id) for role in roles):
        raise NotAllowed(f"{action}: requires role {' or '.join(roles)} in the dossier's unit")


def _lock_dossier(session: Session, *, code: str | None = None, dossier_id=None, what: str | None = None) -> Dossier:
    """SELECT … FOR UPDATE (PostgreSQL); SQLite's BEGIN IMMEDIATE already serialises writers."""
    stmt = select(Dossier).options(undefer(Dossier.workflow_state)).with_for_update(of=Dossier)
    stmt = stmt.where(Dossier.code == code) if code is not None else stmt.where(Dossier.id == dossier_id)
    dossier = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    if dossier is None:
        raise NotFound(f"no {what or 'dossier ' + str(code or dossier_id)}")
    return dossier


class Row:
    """A row read with Core on the hot path: columns as attributes, `changes()` since the read.
    Cheaper than an ORM object for a row that is locked, changed once and written back."""

    def __init__(self, mapping):
        self.__dict__.update(mapping)
        self.__dict__["_read"] = dict(mapping)

    def changes(self) -> dict:
        read = self._read
        return {k: v for k, v in self.__dict__.items() if k in read and read[k] != v}


_DOSSIERS = Dossier.__table__
_TASKS = HumanTask.__table__


def _lock_dossier_row(session: Session, dossier_id, what: str) -> Row:
    row = session.connection().execute(
        select(_DOSSIERS).where(_DOSSIERS.c.id == dossier_id).with_for_update()).one_or_none()
    if row is None:
        raise NotFound(f"no {what}")
    return Row(row._mapping)


def _save_dossier_row(session: Session, dossier: Row) -> None:
    changes = dossier.changes()
    if not changes:
        return
    result = session.connection().execute(
        update(_DOSSIERS).where(_DOSSIERS.c.id == dossier.id, _DOSSIERS.c.lock_version == dossier.lock_version)
        .values(**changes, lock_version=dossier.lock_version + 1))
    if result.rowcount != 1:  # cannot happen under the row lock; refuse rather than overwrite
        raise Conflict(f"dossier {dossier.code} was changed concurrently; try again")
    dossier.lock_version += 1


def _open_tasks(session: Session, dossier) -> dict[str, Row]:
    rows = session.connection().execute(
        select(_TASKS).where(_TASKS.c.dossier_id == dossier.id, _TASKS.c.completed_at.is_(None)))
    return {r.id: Row(r._mapping) for r in rows}


_VERSION_META: dict[int, tuple[dict, str]] = {}


def _version_meta(session: Session, version_id: int) -> tuple[dict, str]:
    """Published versions are immutable, so their metadata is cached per process."""
    cached = _VERSION_META.get(version_id)
    if cached is None:
        meta, spec_hash, status = session.execute(
            select(ProcedureVersion.meta, ProcedureVersion.spec_hash, ProcedureVersion.status)
            .where(ProcedureVersion.id == version_id)).one()
        cached = (meta, spec_hash)
        if status == "published":
            _VERSION_META[version_id] = cached
    return cached


def _spec_loader(session: Session):
    def load(spec_hash: str) -> str:
        return session.execute(select(ProcessSpec.spec_json).where(ProcessSpec.hash == spec_hash)).scalar_one()
    return load


_CALENDAR: tuple[float, WorkingCalendar] | None = None
CALENDAR_TTL_SECONDS = 30.0


def calendar(session: Session) -> WorkingCalendar:
    """The working calendar, re-read from the database at most every CALENDAR_TTL_SECONDS."""
    global _CALENDAR
    if _CALENDAR is None or _time.monotonic() - _CALENDAR[0] > CALENDAR_TTL_SECONDS:
        _CALENDAR = (_time.monotonic(), load_calendar(session))
    return _CALENDAR[1]


def invalidate_calendar() -> None:
    global _CALENDAR
    _CALENDAR = None


def _load_instance(session: Session, dossier: Dossier, cal: WorkingCalendar) -> tuple[runtime.Instance, dict]:
    meta, spec_hash = _version_meta(session, dossier.version_id)
    inst = runtime.Instance.load(dossier.workflow_state, spec_hash, _spec_loader(session), cal)
    return inst, meta


def _validate_components(meta_components: list[dict], given: list[dict], *, require_all: bool) -> list[dict]:
    known = {c["code"]: c for c in meta_components}
    errors: dict[str, str] = {}
    clean: list[dict] = []
    for i, comp in enumerate(given or []):
        code = str(comp.get("code", "")).strip()
        content = comp.get("content")
        filename = str(comp.get("filename", "")).strip()
        if code not in known:
            # The law forbids asking for documents the procedure does not list (NĐ 61 Đ5(1)(đ)).
            errors[f"components.{i}.code"] = f"'{code}' is not a component of this procedure"
        elif not isinstance(content, (bytes, bytearray)) or not content:
            errors[f"components.{i}.content"] = f"file for {code} is empty"
        elif len(content) > files.MAX_FILE_BYTES:
            errors[f"components.{i}.content"] = f"file for {code} is larger than {files.MAX_FILE_BYTES // 1048576} MB"
        elif not filename or "/" in filename or "\\" in filename or len(filename) > 255:
            errors[f"components.{i}.filename"] = "a plain file name is required"
        else:
            clean.append({"code": code, "filename": filename, "content": bytes(content),
                          "content_type": str(comp.get("content_type") or "application/octet-stream")})
    if errors:
        raise InvalidInput("some components are not valid", errors=errors)
    if require_all:
        present = {c["code"] for c in clean}
        missing = [c for c in meta_components if c["required"] and c["code"] not in present]
        if missing:
            raise MissingComponents(
                "required components are missing: " + "; ".join(f"{c['code']} ({c['name']})" for c in missing),
                errors={f"components.{c['code']}": f"missing required component: {c['name']}" for c in missing},
            )
    return clean


def _store_files(session: Session, dossier: Dossier, comps: list[dict], purpose: str, now: datetime) -> list[DossierFile]:
    rows = []
    for comp in comps:
        stored = files.store(comp["content"])
        row = DossierFile(
            dossier_id=dossier.id, component_code=comp["code"], filename=comp["filename"],
            content_type=comp["content_type"], size=stored.size, sha256=stored.sha256,
            storage_key=stored.storage_key, purpose=purpose, uploaded_at=now,
        )
        session.add(row)
        rows.append(row)
    return rows


def _next_sequence(session: Session, unit_code: str, day: date) -> int:
    """Atomic per-agency daily counter (INSERT … ON CONFLICT DO UPDATE … RETURNING)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DailySequence).values(unit_code=unit_code, day=day, value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[DailySequence.unit_code, DailySequence.day],
        set_={"value": DailySequence.value + 1},
    ).returning(DailySequence.value)
    return session.execute(stmt).scalar_one()


def _sync(session: Session, dossier, inst: runtime.Instance, meta: dict, cal: WorkingCalendar,
          now: datetime, actor: Actor | None, refused: bool = False,
          open_rows: dict[str, Row] | None = None,
          deadlines: dict[str, tuple[datetime, datetime]] | None = None) -> list[Row]:
    """Bring the inbox rows, timers, status and the stored state in line with the instance.
    `dossier`: the locked ORM object or Row; `open_rows`: its open tasks as read under the lock
    (read here if not given), minus any the caller has just completed; `deadlines`: start and due
    times to keep for steps by spec name (a migration keeps each step's deadline as it was)."""
    if open_rows is None:
        open_rows = _open_tasks(session, dossier)
    open_rows = {k: v for k, v in open_rows.items() if v.completed_at is None}
    ready = inst.ready_user_tasks()
    start = max(now, dossier.handed_on_at)
    created = []
    for info in ready:
        if info.id in open_rows:
            continue
        step = meta["steps"].get(info.spec_name, {})
        started, due = (deadlines or {}).get(info.spec_name) or (start, cal.add_duration(start, step.get("duration") or "PT0H"))
        created.append(Row({
            "id": info.id, "dossier_id": dossier.id, "unit_id": dossier.unit_id, "role": step.get("role") or "",
            "spec_name": info.spec_name, "name": step.get("name") or info.name,
            "decisions": step.get("decisions") or ["approve"], "started_at": started, "due_at": due,
            "note": "", "late": False, "cancelled": False,
        }))
        audit.append(session, dossier, "task_started", now, actor, step=info.spec_name, task_id=info.id,
                     name=created[-1].name, role=created[-1].role, started_at=started.isoformat(), due_at=due.isoformat())
    if created:
        session.connection().execute(insert(_TASKS), [{k: v for k, v in r.__dict__.items() if k != "_read"}
                                                      for r in created])
    ready_ids = {i.id for i in ready}
    gone = [task_id for task_id in open_rows if task_id not in ready_ids]
    if gone:
        session.connection().execute(update(_TASKS).where(_TASKS.c.id.in_(gone)).values(completed_at=now, cancelled=True))
    dossier.timer_due_at = inst.next_timer_due()
    if inst.completed and dossier.status in OPEN_STATUSES:
        _finish(session, dossier, REFUSED if refused else RESULT_READY, now)
        audit.append(session, dossier, "finished", now, actor, outcome=dossier.status,
                     on_time=now <= dossier.due_at)
    dossier.workflow_state = inst.dump()
    return created


_RANK = {"early": 0, "on_time": 1, "late": 2}


def _finish(session: Session, dossier, status: str, now: datetime) -> None:
    """Close a dossier and record, once, the facts the reports aggregate."""
    dossier.status, dossier.finished_at = status, now
    dossier.finished_on = clock.local(now).date()
    if status == WITHDRAWN:
        return
    due = dossier.due_at
    if dossier.apologized:
        # An apology moves the appointment but the dossier still counts against the one it missed.
        due = session.execute(select(Apology.previous_due_at).where(Apology.dossier_id == dossier.id)).scalar() or due
    dossier.finish_result = audit.classify(now, due, clock.VN_TZ)
    steps = session.execute(select(_TASKS.c.completed_at, _TASKS.c.due_at).where(
        _TASKS.c.dossier_id == dossier.id, _TASKS.c.completed_at.is_not(None), _TASKS.c.cancelled.is_(False))).all()
    results = [audit.classify(done, step_due, clock.VN_TZ) for done, step_due in steps]
    dossier.steps_result = max(results, key=_RANK.__getitem__) if results else None


# --- receive -------------------------------------------------------------------------------------
def receive_dossier(session: Session, *, actor_id: int, procedure_code: str, channel: str, applicant: dict,
                    components: list[dict], unit_code: str | None = None, now: datetime | None = None,
                    idempotency: tuple[str, str] | None = None) -> Dossier:
    """Receive a dossier (form 01). `idempotency`: (key, request digest) recorded in the same
    transaction, see `receive_dossier_once`."""
    now = now or clock.now()
    begin_write(session)
    actor = _actor(session, actor_id)
    units = actor.units_with(MOT_CUA)
    if unit_code is not None:
        from .models import Unit
        unit = session.scalar(select(Unit).where(Unit.code == unit_code))
        if unit is None or unit.id not in units:
            raise NotAllowed(f"receive dossier: requires role {MOT_CUA} in unit {unit_code}")
        unit_id = unit.id
    elif len(units) == 1:
        unit_id = units[0]
    elif not units:
        raise NotAllowed(f"receive dossier: requires role {MOT_CUA}")
    else:
        raise InvalidInput("you work at several desks: name the receiving unit", errors={"unit_code": "required"})
    if channel not in CHANNELS:
        raise InvalidInput("unknown channel", errors={"channel": f"one of {', '.join(CHANNELS)}"})
    errors = {}
    name = str((applicant or {}).get("name", "")).strip()
    id_number = str((applicant or {}).get("id_number", "")).strip()
    if not name:
        errors["applicant.name"] = "required"
    if not ID_NUMBER_RE.match(id_number):
        errors["applicant.id_number"] = "an ID number (CCCD/số định danh or tax code) of 6-20 letters or digits"
    if errors:
        raise InvalidInput("applicant details are not valid", errors=errors)
    applicant = {k: str(applicant.get(k, "") or "").strip() for k in ("name", "id_number", "phone", "email", "address")}

    proc = catalog.get_procedure(session, procedure_code)
    local_now = clock.local(now)
    version = catalog.version_in_force(session, proc, local_now.date())
    meta, spec_hash = _version_meta(session, version.id)
    comps = _validate_components(meta["components"], components, require_all=True)

    cal = calendar(session)
    from .models import Unit
    unit = session.get(Unit, unit_id)
    seq = _next_sequence(session, unit.code, local_now.date())
    code = f"{unit.code}-{local_now:%y%m%d}-{seq:04d}"
    due = cal.appointment(now, meta["statutory_days"], PAPER_CUTOFF)
    handed_on = cal.align_forward(now) if channel == "online" else cal.handover_time(now, PAPER_CUTOFF)
    dossier = Dossier(
        code=code, procedure_id=proc.id, version_id=version.id, unit_id=unit_id, channel=channel,
        applicant=applicant, applicant_id_number=id_number, status=RECEIVED, received_at=now,
        received_by_id=actor.id, handed_on_at=handed_on, due_at=due, original_due_at=due,
        received_on=local_now.date(),
        serializer_version=runtime.SERIALIZER_VERSION, workflow_state="",
        search_text=fold(" ".join([code, applicant["name"], applicant["phone"], id_number])),
    )
    session.add(dossier)
    session.flush()
    stored = _store_files(session, dossier, comps, "reception", now)
    dossier.digitised = bool(stored)
    audit.append(session, dossier, "received", now, actor, procedure=proc.code, version=version.number,
                 channel=channel, due_at=due.isoformat(),
                 files=[{"code": c["code"], "sha256": f.sha256} for c, f in zip(comps, stored)])
    try:
        with clock.frozen(now):
            inst = runtime.Instance.start(spec_hash, _spec_loader(session), cal,
                                          {"procedure_code": proc.code, "channel": channel})
    except runtime.ProcessFailed as exc:
        raise WorkflowError(f"the process of {proc.code} failed to start: {exc}") from None
    _sync(session, dossier, inst, meta, cal, now, actor)
    reportfacts.apply(session, reportfacts.Counter(), dossier)
    outbox.record(session, dossier, "received", now)
    if idempotency is not None:
        session.add(IdempotencyKey(user_id=actor.id, key=idempotency[0], operation="receive_dossier",
                                   request_sha256=idempotency[1], dossier_code=dossier.code, created_at=now))
    session.commit()
    return dossier


class IdempotencyMismatch(Conflict):
    code = "idempotency_key_reused"


def _prior(session: Session, actor_id: int, key: str, operation: str, digest: str) -> Dossier | None:
    prior = session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == actor_id, IdempotencyKey.key == key))
    if prior is None:
        return None
    if prior.operation != operation or prior.request_sha256 != digest:
        raise IdempotencyMismatch("this Idempotency-Key was already used for a different request")
    return get_dossier(session, prior.dossier_code)


def _once(session: Session, actor_id: int, key: str, digest: str, operation: str, run) -> tuple[Dossier, bool]:
    """Run a use case at most once per (user, key): a retry returns the first result, replayed=True."""
    prior = _prior(session, actor_id, key, operation, digest)
    if prior is not None:
        return prior, True
    try:
        return run((key, digest)), False
    except IntegrityError:
        # A concurrent request with the same key won the race; answer with its result.
        session.rollback()
        prior = _prior(session, actor_id, key, operation, digest)
        if prior is None:
            raise
        return prior, True


def receive_dossier_once(session: Session, *, key: str, digest: str, **kwargs) -> tuple[Dossier, bool]:
    return _once(session, kwargs["actor_id"], key, digest, "receive_dossier",
                 lambda idem: receive_dossier(session, idempotency=idem, **kwargs))


def deliver_supplement_once(session: Session, *, key: str, digest: str, **kwargs) -> tuple[Dossier, bool]:
    return _once(session, kwargs["actor_id"], key, digest, "deliver_supplement",
                 lambda idem: deliver_supplement(session, idempotency=idem, **kwargs))


# --- tasks ---------------------------------------------------------------------------------------
@dataclass
class Completion:
    """What a completion changed: the dossier row, the completed task and the tasks now open."""

    dossier: Row
    task: Row
    next_tasks: list[Row]


def complete_task(session: Session, *, actor_id: int, task_id: str, data: dict | None = None, note: str = "",
                  now: datetime | None = None) -> Completion:
    now = now or clock.now()
    begin_write(session)
    data = dict(data or {})
    actor = _actor(session, actor_id)
    # One statement finds and locks the task's dossier; then its open tasks are read under the lock.
    owner = select(HumanTask.dossier_id).where(HumanTask.id == task_id).scalar_subquery()
    dossier = _lock_dossier_row(session, owner, what=f"task {task_id}")
    open_rows = _open_tasks(session, dossier)
    previous_status = dossier.status
    facts = reportfacts.facts_of(dossier)
    task = open_rows.get(task_id)
    if task is None:
        raise TaskNotReady("this step was already completed by someone else or is no longer open")
    _require_role(actor, task.role, task.unit_id, f"complete step '{task.name}'")
    if task.assignee_id is not None and task.assignee_id != actor.id:
        raise NotAllowed(f"step '{task.name}' is assigned to another user")
    if dossier.status not in (RECEIVED, PROCESSING):
        raise TaskNotReady(f"dossier {dossier.code} is {dossier.status}; no step can be completed now")

    unknown = sorted(set(data) - FORM_FIELDS)
    if unknown:
        raise InvalidInput("unexpected form fields", errors={k: "not a field of this step" for k in unknown})
    decision = data.get("decision") or (task.decisions[0] if len(task.decisions) == 1 else None)
    if decision not in task.decisions:
        raise InvalidInput(f"decision must be one of: {', '.join(task.decisions)}",
                           errors={"decision": f"one of {', '.join(task.decisions)}"})
    note = str(note or data.get("reason") or "").strip()

    cal = calendar(session)
    inst, meta = _load_instance(session, dossier, cal)
    supplement = None
    if decision == REQUEST_SUPPLEMENT:
        supplement = _check_supplement_allowed(session, dossier, inst, meta, data, note)
    if decision in (REFUSE, "return") and not note:
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    try:
        with clock.frozen(now):
            inst.complete(task_id, {"decision": decision})
    except runtime.NotWaiting:
        raise TaskNotReady("this step is not open in the process") from None
    except runtime.ProcessFailed as exc:
        raise WorkflowError(f"the process failed after '{task.name}': {exc}") from None

    task.completed_at, task.completed_by_id, task.decision, task.note = now, actor.id, decision, note
    task.late = task.late or now > task.due_at
    session.connection().execute(update(_TASKS).where(_TASKS.c.id == task.id).values(**task.changes()))
    audit.append(session, dossier, "task_completed", now, actor, step=task.spec_name, task_id=task.id,
                 decision=decision, note=note, on_time=now <= task.due_at)
    if dossier.status == RECEIVED:
        dossier.status = PROCESSING
    if supplement is not None:
        if not inst.waiting_for_message(SUPPLEMENT_MESSAGE):
            raise WorkflowError("the diagram's request_supplement path does not wait for 'supplement_received'")
        supplement.dossier_id, supplement.requested_at, supplement.requested_by_id = dossier.id, now, actor.id
        supplement.step, supplement.previous_due_at = task.spec_name, dossier.due_at
        window_end = cal.end_of_working_day(
            cal.add_working_days(clock.local(dossier.received_at).date(), meta.get("supplement_window_days", 3)))
        supplement.within_window = now <= window_end
        session.add(supplement)
        dossier.status = AWAITING_SUPPLEMENT
        dossier.supplemented = True
        audit.append(session, dossier, "supplement_requested", now, actor, step=task.spec_name,
                     reason=supplement.reason, items=supplement.items, within_window=supplement.within_window)
    if decision == REFUSE:
        dossier.refusal_reason = note
    created = _sync(session, dossier, inst, meta, cal, now, actor, refused=decision == REFUSE, open_rows=open_rows)
    if dossier.status != previous_status:
        outbox.record(session, dossier, "status_changed", now)
    reportfacts.apply(session, facts, dossier)
    _save_dossier_row(session, dossier)
    _commit(session, "a second supplementation request" if supplement else None)
    return Completion(dossier, task, created)


def _check_supplement_allowed(session, dossier, inst, meta, data, note) -> SupplementRequest:
    # Counted from history (a stored request, or the catch event ever reached), never from task data.
    already = session.scalar(select(func.count()).select_from(SupplementRequest)
                             .where(SupplementRequest.dossier_id == dossier.id))
    if already or inst.reached_count(set(meta.get("supplement_events", []))):
        raise SupplementAlreadyRequested(
            "supplementation was already requested once for this dossier; the law allows only one request "
            "(NĐ 118/2025 Đ11(2)). Refuse the dossier or continue processing instead.")
    items = data.get("items") or []
    if isinstance(items, str):
        items = [line.strip() for line in items.splitlines() if line.strip()]
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items) or not items:
        raise InvalidInput("list every document to supplement, completely, in one request",
                           errors={"items": "at least one item"})
    if not note:
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    return SupplementRequest(reason=note, items=[i.strip() for i in items])


def _commit(session: Session, unique_hint: str | None) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if unique_hint:
            raise SupplementAlreadyRequested("supplementation was already requested once for this dossier") from None
        raise


def request_supplement(session: Session, *, actor_id: int, task_id: str, reason: str, items: list[str],
                       now: datetime | None = None) -> Completion:
    """Form 02: the step's request_supplement decision, allowed once per dossier."""
    return complete_task(session, actor_id=actor_id, task_id=task_id,
                         data={"decision": REQUEST_SUPPLEMENT, "items": items}, note=reason, now=now)


def deliver_supplement(session: Session, *, actor_id: int, dossier_code: str, components: list[dict],
                       note: str = "", now: datetime | None = None, idempotency: tuple[str, str] | None = None) -> Dossier:
    """The citizen's complete supplement arrives: the processing time restarts from zero (L10)."""
    now = now or clock.now()
    begin_write(session)
    actor = _actor(session, actor_id)
    dossier = _lock_dossier(session, code=dossier_code)
    _require_role(actor, MOT_CUA, dossier.unit_id, "record a supplement")
    facts = reportfacts.facts_of(dossier)
    request = session.scalar(select(SupplementRequest).where(SupplementRequest.dossier_id == dossier.id))
    if dossier.status != AWAITING_SUPPLEMENT or request is None or request.received_at is not None:
        raise SupplementNotRequested(f"dossier {dossier.code} is not waiting for a supplement")
    cal = calendar(session)
    inst, meta = _load_instance(session, dossier, cal)
    comps = _validate_components(meta["components"], components, require_all=False)
    if not comps:
        raise InvalidInput("attach the supplemented documents", errors={"components": "at least one file"})
    try:
        with clock.frozen(now):
            inst.deliver_message(SUPPLEMENT_MESSAGE, {"note": note})
    except runtime.NotWaiting:
        raise SupplementNotRequested(f"dossier {dossier.code} is not waiting for a supplement") from None
    except runtime.ProcessFailed as exc:
        raise WorkflowError(f"the process failed after the supplement: {exc}") from None
    stored = _store_files(session, dossier, comps, "supplement", now)
    new_due = cal.appointment(now, meta["statutory_days"], PAPER_CUTOFF)
    request.received_at, request.received_by_id, request.received_note = now, actor.id, note
    request.new_due_at = new_due
    previous = dossier.due_at
    dossier.due_at = new_due
    dossier.handed_on_at = cal.handover_time(now, PAPER_CUTOFF) if dossier.channel != "online" else cal.align_forward(now)
    dossier.status = PROCESSING
    dossier.overdue = False
    audit.append(session, dossier, "supplement_received", now, actor, previous_due_at=previous.isoformat(),
                 due_at=new_due.isoformat(), note=note,
                 files=[{"code": c["code"], "sha256": f.sha256} for c, f in zip(comps, stored)])
    _sync(session, dossier, inst, meta, cal, now, actor)
    reportfacts.apply(session, facts, dossier)
    outbox.record(session, dossier, "supplement_received", now)
    if idempotency is not None:
        session.add(IdempotencyKey(user_id=actor.id, key=idempotency[0], operation="deliver_supplement",
                                   request_sha256=idempotency[1], dossier_code=dossier.code, created_at=now))
    session.commit()
    return dossier


# --- apology, refusal, withdrawal, result --------------------------------------------------------
def issue_apology(session: Session, *, actor_id: int, dossier_code: str, reason: str, new_due_at: datetime,
                  now: datetime | None = None) -> Apology:
    """Form 04: apology with a new appointment. The due date may be reset only once (L12)."""
    now = now or clock.now()
    begin_write(session)
    actor = _actor(session, actor_id)
    dossier = _lock_dossier(session, code=dossier_code)
    _require_role(actor, (MOT_CUA, LEADER), dossier.unit_id, "issue an apology")
    facts = reportfacts.facts_of(dossier)
    if dossier.status not in OPEN_STATUSES:
        raise DossierClosed(f"dossier {dossier.code} is {dossier.status}; no apology can be issued")
    if session.scalar(select(func.count()).select_from(Apology).where(Apology.dossier_id == dossier.id)):
        raise DueDateAlreadyReset("the appointment was already reset once with an apology; it cannot be reset again")
    if not str(reason or "").strip():
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    cal = calendar(session)
    new_due_at = clock.aware(new_due_at)
    if not cal.is_working_day(clock.local(new_due_at).date()):
        raise InvalidInput("the new appointment must fall on a working day", errors={"new_due_at": "not a working day"})
    if new_due_at <= dossier.due_at:
        raise InvalidInput("the new appointment must be later than the current one",
                           errors={"new_due_at": f"after {clock.local(dossier.due_at):%H:%M %d/%m/%Y}"})
    # No later than 1 (working) day before the due date; later ones are recorded but count as late.
    due_day = clock.local(dossier.due_at).date()
    day_before = due_day - timedelta(days=1)
    while not cal.is_working_day(day_before):
        day_before -= timedelta(days=1)
    late = now > cal.end_of_working_day(day_before)
    apology = Apology(dossier_id=dossier.id, issued_at=now, issued_by_id=actor.id, reason=reason.strip(),
                      previous_due_at=dossier.due_at, new_due_at=new_due_at, late=late)
    session.add(apology)
    audit.append(session, dossier, "apology_issued", now, actor, reason=reason.strip(),
                 previous_due_at=dossier.due_at.isoformat(), new_due_at=new_due_at.isoformat(), late=late)
    dossier.due_at = new_due_at
    dossier.apologized = True
    dossier.late_without_apology = False
    dossier.overdue = now > new_due_at
    reportfacts.apply(session, facts, dossier)
    outbox.record(session, dossier, "appointment_changed", now)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise DueDateAlreadyReset("the appointment was already reset once with an apology") from None
    return apology


def _cancel_open_tasks(session: Session, dossier: Dossier, now: datetime) -> None:
    session.execute(update(HumanTask).where(HumanTask.dossier_id == dossier.id, HumanTask.completed_at.is_(None))
                    .values(completed_at=now, cancelled=True))
    dossier.timer_due_at = None


def refuse_dossier(session: Session, *, actor_id: int, dossier_code: str, reason: str,
                   now: datetime | None = None) -> Dossier:
    """Form 03 after appraisal, by the agency's leader: ends the process with reasons (L11)."""
    now = now or clock.now()
    begin_write(session)
    actor = _actor(session, actor_id)
    dossier = _lock_dossier(session, code=dossier_code)
    _require_role(actor, LEADER, dossier.unit_id, "refuse a dossier")
    facts = reportfacts.facts_of(dossier)
    if dossier.status not in OPEN_STATUSES:
        raise DossierClosed(f"dossier {dossier.code} is {dossier.status}; it cannot be refused")
    if not str(reason or "").strip():
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    _cancel_open_tasks(session, dossier, now)
    _finish(session, dossier, REFUSED, now)
    dossier.refusal_reason = reason.strip()
    audit.append(session, dossier, "refused", now, actor, reason=reason.strip(), within_time=now <= dossier.due_at)
    reportfacts.apply(session, facts, dossier)
    outbox.record(session, dossier, "status_changed", now)
    session.commit()
    return dossier


def withdraw_dossier(session: Session, *, actor_id: int, dossier_code: str, reason: str = "",
                     now: datetime | None = None) -> Dossier:
    """Form 05: the applicant withdraws before any decision was issued (L14)."""
    now = now or clock.now()
    begin_write(session)
    actor = _actor(session, actor_id)
    dossier = _lock_dossier(session, code=dossier_code)
    _require_role(actor, MOT_CUA, dossier.unit_id, "record a withdrawal")
    facts = reportfacts.facts_of(dossier)
    if dossier.status not in OPEN_STATUSES:
        raise DossierClosed(f"dossier {dossier.code} is {dossier.status}: a decision was already issued")
    _cancel_open_tasks(session, dossier, now)
    _finish(session, dossier, WITHDRAWN, now)
    audit.append(session, dossier, "withdrawn", now, actor, reason=str(reason or "").strip())
    reportfacts.apply(session, facts, dossier)
    outbox.record(session, dossier, "status_changed", now)
    session.commit()
    return dossier


def return_result(session: Session, *, actor_id: int, dossier_code: str, note: str = "",
                  now: datetime | None = None) -> Dossier:
    now = now or clock.now()
    begin_write(session)
    actor = _actor(session, actor_id)
    dossier = _lock_dossier(session, code=dossier_code)
    _require_role(actor, MOT_CUA, dossier.unit_id, "hand over the result")
    if dossier.status != RESULT_READY:
        raise DossierClosed(f"dossier {dossier.code} is {dossier.status}; only a finished result can be handed over")
    dossier.status, dossier.returned_at = RETURNED, now
    audit.append(session, dossier, "result_returned", now, actor, note=str(note or "").strip(),
                 on_time=(dossier.finished_at or now) <= dossier.due_at)
    outbox.record(session, dossier, "status_changed", now)
    session.commit()
    return dossier


def get_dossier(session: Session, code: str) -> Dossier:
    dossier = session.scalar(select(Dossier).where(Dossier.code == code))
    if dossier is None:
        raise NotFound(f"no dossier {code}")
    return dossier




RATINGS = ("very_satisfied", "satisfied", "not_satisfied")


def rate_service(session: Session, *, dossier_code: str, id_number: str, rating: str, comment: str = "",
                 now: datetime | None = None) -> ServiceRating:
    """The citizen rates the service once, after the result was handed over (NĐ 61 Đ29)."""
    import hmac

    now = now or clock.now()
    begin_write(session)
    dossier = session.scalar(select(Dossier).where(Dossier.code == dossier_code))
    if dossier is None or not hmac.compare_digest(dossier.applicant_id_number.encode(), (id_number or "").encode()):
        raise NotFound("Không có hồ sơ nào được tìm thấy")
    if rating not in RATINGS:
        raise InvalidInput("choose a rating", errors={"rating": f"one of {', '.join(RATINGS)}"})
    if dossier.status != RETURNED:
        raise DossierClosed("the service can be rated once the result has been handed over")
    if session.scalar(select(func.count()).select_from(ServiceRating).where(ServiceRating.dossier_id == dossier.id)):
        raise AlreadyRated("this dossier has already been rated")
    row = ServiceRating(dossier_id=dossier.id, rating=rating, comment=str(comment or "").strip()[:2000], created_at=now)
    session.add(row)
    facts = reportfacts.facts_of(dossier)
    dossier.rating = rating
    reportfacts.apply(session, facts, dossier)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyRated("this dossier has already been rated") from None
    return row


class AlreadyRated(Conflict):
    code = "already_rated"
