"""Persistence of the dossier aggregate — the dossier row with its workflow state, its inbox rows
(human tasks) and its parts (files, the supplement request, the apology, the rating). The only
module that reads a dossier for change or writes one; SQLAlchemy Core on the session's connection
throughout (no ORM identity map to keep in step), one statement per step.

Locking: `lock` takes `SELECT … FOR UPDATE` on PostgreSQL; on SQLite the write transaction's
BEGIN IMMEDIATE (see engine.store.db) already serialises writers. `save` also checks the row's
version column, so a write that somehow bypassed the lock would be refused, never lost.
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, insert, select, update
from sqlalchemy.orm import Session

from engine.catalog import calendar as calendar_mod
from engine.errors import Conflict, NotFound
from engine.store.db import Prepared, connection
from engine.store.models import (
    Apology,
    Consultation,
    DailySequence,
    Dossier,
    DossierFile,
    HumanTask,
    IdempotencyKey,
    Procedure,
    ProcedureVersion,
    ProcessSpec,
    RegisterSequence,
    ServiceRating,
    SupplementRequest,
    Unit,
)
from engine.store.upsert import upsert

DOSSIERS = Dossier.__table__
TASKS = HumanTask.__table__
SUPPLEMENTS = SupplementRequest.__table__
PARTS = {m.__name__: m.__table__
         for m in (Apology, Consultation, DossierFile, IdempotencyKey, ServiceRating, SupplementRequest)}

# The hot path's statements are built once, with bind parameters (building a Core statement costs
# more than SQLite takes to run it, ≈ 0.15 ms against ≈ 0.05 ms), and run through `Prepared`.
_LOCK_BY = {
    "code": Prepared(select(DOSSIERS).where(DOSSIERS.c.code == bindparam("key")).with_for_update()),
    "task_id": Prepared(select(DOSSIERS).where(DOSSIERS.c.id == select(TASKS.c.dossier_id).where(
        TASKS.c.id == bindparam("key")).scalar_subquery()).with_for_update()),
    "dossier_id": Prepared(select(DOSSIERS).where(DOSSIERS.c.id == bindparam("key")).with_for_update()),
}
_OPEN_TASKS = Prepared(select(TASKS).where(TASKS.c.dossier_id == bindparam("dossier_id"),
                                           TASKS.c.completed_at.is_(None)))
# A task's dossier, locked, with its open tasks in the same statement (one row per open task; the lock
# is on the dossier row only): what completing a task reads first. `_seen_version` is the dossier's version
# in the statement's snapshot: on PostgreSQL (READ COMMITTED) a statement that waited for the lock returns
# the locked row as the other change committed it, but the rows joined to it as they were before.
_OWNER = TASKS.alias("owner")
_TASK_LABELS = [(c.name, f"task_{c.name}") for c in TASKS.c]
_CONSULTATIONS = PARTS["Consultation"]
_SEEN = DOSSIERS.alias("seen")
_LOCK_WITH_OPEN_TASKS = Prepared(
    select(DOSSIERS, *(TASKS.c[name].label(label) for name, label in _TASK_LABELS),
           exists().where(_CONSULTATIONS.c.dossier_id == DOSSIERS.c.id).label("_consulted"),
           select(_SEEN.c.lock_version).where(_SEEN.c.id == DOSSIERS.c.id).scalar_subquery().label("_seen_version"))
    .select_from(DOSSIERS.outerjoin(TASKS, and_(TASKS.c.dossier_id == DOSSIERS.c.id, TASKS.c.completed_at.is_(None))))
    .where(DOSSIERS.c.id == select(_OWNER.c.dossier_id).where(_OWNER.c.id == bindparam("task_id")).scalar_subquery())
    .with_for_update(of=DOSSIERS))
_INSERT_TASKS = Prepared(insert(TASKS))
_PARTS_OF = {name: Prepared(select(table).where(table.c.dossier_id == bindparam("dossier_id")).order_by(table.c.id))
             for name, table in PARTS.items() if "dossier_id" in table.c}
# UPDATE … WHERE id (and the version guard): SQLAlchemy writes the SET clause from the keys of the
# parameters given at execution and caches one compiled form per set of keys.
_UPDATE_BY_ID = {table.name: Prepared(update(table).where(table.c.id == bindparam("_id")))
                 for table in (TASKS, *PARTS.values())}
_UPDATE_DOSSIER = Prepared(update(DOSSIERS).where(DOSSIERS.c.id == bindparam("_id"),
                                                  DOSSIERS.c.lock_version == bindparam("_version")))


class Record:
    """A row read or written with Core: columns as attributes, `changes()` since it was read."""

    def __init__(self, mapping):
        self.__dict__.update(mapping)
        self.__dict__["_read"] = dict(mapping)

    def changes(self) -> dict:
        read = self._read
        return {k: v for k, v in self.__dict__.items() if k in read and read[k] != v}

    def values(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_read"}

    def saved(self) -> None:
        """What was just written is now what was read."""
        self.__dict__["_read"] = self.values()

    def __repr__(self) -> str:
        return f"Record({', '.join(f'{k}={v!r}' for k, v in self.values().items() if k != 'workflow_state')})"


# --- the dossier row -----------------------------------------------------------------------------
def lock(session: Session, *, code: str | None = None, dossier_id: int | None = None,
         task_id: str | None = None) -> Record:
    """The dossier, locked for this transaction: by its code, its id, or the id of one of its tasks."""
    if code is not None:
        by, key, missing = "code", code, f"no dossier {code}"
    elif task_id is not None:
        by, key, missing = "task_id", task_id, f"no task {task_id}"
    else:
        by, key, missing = "dossier_id", dossier_id, f"no dossier #{dossier_id}"
    rows = _LOCK_BY[by].all(connection(session), {"key": key})
    if not rows:
        raise NotFound(missing)
    return Record(rows[0])


def lock_with_open_tasks(session: Session, task_id: str) -> tuple[Record, dict[str, Record], bool]:
    """`lock(task_id=…)` and `open_tasks` of that dossier, in one statement; and whether the dossier has
    any consultation (a completion then reads them: consultations.require_answers; None: not known, read
    them). Safe when the statement waited for another change's lock: see `_seen_version`."""
    rows = _LOCK_WITH_OPEN_TASKS.all(connection(session), {"task_id": task_id})
    if not rows:
        raise NotFound(f"no task {task_id}")
    dossier = Record({c.name: rows[0][c.name] for c in DOSSIERS.c})
    if rows[0]["_seen_version"] != dossier.lock_version:
        # The dossier changed while this statement waited for its lock (every change to its tasks or
        # consultations bumps its version): what was joined to it is stale. Read it again, after the lock.
        return dossier, open_tasks(session, dossier.id), None
    tasks = {}
    for row in rows:
        if row["task_id"] is not None:
            tasks[row["task_id"]] = Record({name: row[label] for name, label in _TASK_LABELS})
    return dossier, tasks, bool(rows[0]["_consulted"])


def claim(session: Session, *conditions, order_by, limit: int, exclude: set[int] = frozenset()) -> list[Record]:
    """Up to `limit` dossiers matching `conditions`, locked, skipping those another worker holds
    (`FOR UPDATE SKIP LOCKED`): the timer sweep's way to share work between processes."""
    stmt = select(DOSSIERS).where(*conditions)
    if exclude:
        stmt = stmt.where(DOSSIERS.c.id.not_in(sorted(exclude)))
    rows = connection(session).execute(stmt.order_by(order_by).limit(limit).with_for_update(skip_locked=True))
    return [Record(r._mapping) for r in rows]


def insert_dossier(session: Session, values: dict) -> Record:
    row = connection(session).execute(insert(DOSSIERS).values(**values).returning(*DOSSIERS.c)).one()
    return Record(row._mapping)


def save(session: Session, dossier: Record) -> None:
    """Write what changed on the locked dossier, bumping its version."""
    save_many(session, [dossier])


def save_many(session: Session, dossiers: list[Record]) -> None:
    """Write what changed on each locked dossier, bumping its version: one UPDATE per set of changed
    columns (several rows: one batch, which psycopg sends in one pipeline; one row: a plain execute), under
    the version guard, checked on the total of rows written."""
    groups: dict[frozenset, list[tuple[Record, dict]]] = {}
    for dossier in dossiers:
        changes = dossier.changes()
        if changes:
            groups.setdefault(frozenset(changes), []).append((dossier, changes))
    conn = connection(session)
    for group in groups.values():
        rowcount = _UPDATE_DOSSIER.run(conn, [
            {**changes, "lock_version": d.lock_version + 1, "_id": d.id, "_version": d.lock_version}
            for d, changes in group])
        if rowcount != len(group):  # cannot happen under the row locks; refuse rather than overwrite
            raise Conflict(f"dossier {group[0][0].code} was changed concurrently; try again" if len(group) == 1
                           else f"{len(group) - rowcount} of {len(group)} dossiers were changed concurrently; try again")
        for d, _ in group:
            d.lock_version += 1
            d.saved()


def next_sequence(session: Session, unit_code: str, day) -> int:
    """Atomic per-agency daily counter for receipt codes."""
    return upsert(session, DailySequence, keys=[DailySequence.unit_code, DailySequence.day],
                  values={"unit_code": unit_code, "day": day, "value": 1},
                  set_={"value": DailySequence.value + 1}, returning=DailySequence.value)


def next_register_number(session: Session, unit_id: int, year: int) -> int:
    """Atomic running number of the unit's register for the year (form 01's register line, form 07)."""
    return upsert(session, RegisterSequence, keys=[RegisterSequence.unit_id, RegisterSequence.year],
                  values={"unit_id": unit_id, "year": year, "value": 1},
                  set_={"value": RegisterSequence.value + 1}, returning=RegisterSequence.value)


# --- inbox rows ----------------------------------------------------------------------------------
def open_tasks(session: Session, dossier_id: int) -> dict[str, Record]:
    return {r["id"]: Record(r) for r in _OPEN_TASKS.all(connection(session), {"dossier_id": dossier_id})}


def open_tasks_of(session: Session, dossier_ids: list[int]) -> dict[int, dict[str, Record]]:
    """`open_tasks` of several dossiers in one statement (every id is a key, with {} when none is open)."""
    found: dict[int, dict[str, Record]] = {i: {} for i in dossier_ids}
    rows = connection(session).execute(select(TASKS).where(TASKS.c.dossier_id.in_(dossier_ids),
                                                           TASKS.c.completed_at.is_(None)))
    for row in rows:
        found[row.dossier_id][row.id] = Record(row._mapping)
    return found


def insert_tasks(session: Session, tasks: list[Record]) -> None:
    if tasks:
        _INSERT_TASKS.run(connection(session), [t.values() for t in tasks])


def _save_row(session: Session, table, record: Record) -> None:
    changes = record.changes()
    if changes:
        _UPDATE_BY_ID[table.name].run(connection(session), {**changes, "_id": record.id})
        record.saved()


def save_task(session: Session, task: Record) -> None:
    _save_row(session, TASKS, task)


def cancel_tasks(session: Session, dossier_id: int, now, task_ids: list[str] | None = None) -> None:
    """Close open tasks without a decision (all of the dossier's, or those named)."""
    if task_ids is not None and not task_ids:
        return
    stmt = update(TASKS).where(TASKS.c.dossier_id == dossier_id, TASKS.c.completed_at.is_(None))
    if task_ids is not None:
        stmt = stmt.where(TASKS.c.id.in_(task_ids))
    connection(session).execute(stmt.values(completed_at=now, cancelled=True))


def last_step_unit(session: Session, dossier_id: int) -> int | None:
    """The unit of the dossier's most recently completed step."""
    return connection(session).execute(
        select(TASKS.c.unit_id).where(TASKS.c.dossier_id == dossier_id, TASKS.c.completed_at.is_not(None),
                                      TASKS.c.cancelled.is_(False))
        .order_by(TASKS.c.completed_at.desc()).limit(1)).scalar()


def late_open_tasks(session: Session, dossier_id: int, now) -> list[Record]:
    rows = connection(session).execute(select(TASKS).where(
        TASKS.c.dossier_id == dossier_id, TASKS.c.completed_at.is_(None), TASKS.c.late.is_(False), TASKS.c.due_at < now))
    return [Record(r._mapping) for r in rows]


def dossiers_with_late_tasks(now):
    """A condition on dossiers: some open task is past its deadline and not yet flagged."""
    return DOSSIERS.c.id.in_(select(TASKS.c.dossier_id).where(
        TASKS.c.completed_at.is_(None), TASKS.c.late.is_(False), TASKS.c.due_at < now))


def completed_step_deadlines(session: Session, dossier_id: int) -> list[tuple]:
    """(completed_at, due_at) of every step done with a decision."""
    return connection(session).execute(select(TASKS.c.completed_at, TASKS.c.due_at).where(
        TASKS.c.dossier_id == dossier_id, TASKS.c.completed_at.is_not(None), TASKS.c.cancelled.is_(False))).all()


# --- parts ---------------------------------------------------------------------------------------
def insert_part(session: Session, model, values: dict) -> Record:
    table = PARTS[model.__name__]
    row = connection(session).execute(insert(table).values(**values).returning(*table.c)).one()
    return Record(row._mapping)


def insert_parts(session: Session, model, rows: list[dict]) -> None:
    if rows:
        connection(session).execute(insert(PARTS[model.__name__]), rows)


def part(session: Session, model, dossier_id: int) -> Record | None:
    """The dossier's one row of `model` (supplement request, apology, rating), if any."""
    table = PARTS[model.__name__]
    row = connection(session).execute(select(table).where(table.c.dossier_id == dossier_id)).one_or_none()
    return Record(row._mapping) if row is not None else None


def part_dossier(session: Session, model, part_id: int) -> int | None:
    """The dossier a part row (by id) belongs to, read without a lock."""
    table = PARTS[model.__name__]
    return connection(session).execute(select(table.c.dossier_id).where(table.c.id == part_id)).scalar()


def parts(session: Session, model, dossier_id: int) -> list[Record]:
    """Every row of `model` of the dossier (consultations), by id."""
    return [Record(r) for r in _PARTS_OF[model.__name__].all(connection(session), {"dossier_id": dossier_id})]


def save_part(session: Session, model, record: Record) -> None:
    _save_row(session, PARTS[model.__name__], record)


# --- immutable things, cached per process --------------------------------------------------------
_VERSION_META: dict[int, tuple[dict, str]] = {}


def version_meta(session: Session, version_id: int) -> tuple[dict, str]:
    """A version's metadata and spec hash; published versions never change, so they are cached."""
    cached = _VERSION_META.get(version_id)
    if cached is None:
        meta, spec_hash, status = connection(session).execute(
            select(ProcedureVersion.meta, ProcedureVersion.spec_hash, ProcedureVersion.status)
            .where(ProcedureVersion.id == version_id)).one()
        cached = (meta, spec_hash)
        if status == "published":
            _VERSION_META[version_id] = cached
    return cached


_PROCEDURE_CODES: dict[int, str] = {}


def procedure_code(session: Session, procedure_id: int) -> str:
    """A procedure's code (its identity in the national database, never changed), cached."""
    code = _PROCEDURE_CODES.get(procedure_id)
    if code is None:
        code = connection(session).execute(select(Procedure.code).where(Procedure.id == procedure_id)).scalar_one()
        _PROCEDURE_CODES[procedure_id] = code
    return code


_UNIT_CODES: dict[int, str] = {}


def unit_code(session: Session, unit_id: int) -> str:
    """A unit's code (its identity: dossier codes carry it), cached."""
    code = _UNIT_CODES.get(unit_id)
    if code is None:
        code = connection(session).execute(select(Unit.code).where(Unit.id == unit_id)).scalar_one()
        _UNIT_CODES[unit_id] = code
    return code


def unit_id(session: Session, code: str) -> int | None:
    """The id of the unit with `code`, or None (not cached: units are added while the system runs)."""
    found = next((uid for uid, c in _UNIT_CODES.items() if c == code), None)
    if found is None:
        found = connection(session).execute(select(Unit.id).where(Unit.code == code)).scalar()
        if found is not None:
            _UNIT_CODES[found] = code
    return found


def spec_loader(session: Session):
    """Reads a serialized spec by hash (the runtime caches parsed specs itself)."""
    def load(spec_hash: str) -> str:
        return connection(session).execute(
            select(ProcessSpec.spec_json).where(ProcessSpec.hash == spec_hash)).scalar_one()
    return load


def reset_caches() -> None:
    """Forget every per-process cache (tests that rebuild the database between cases)."""
    _VERSION_META.clear()
    _PROCEDURE_CODES.clear()
    _UNIT_CODES.clear()
    calendar_mod.invalidate_calendar()
