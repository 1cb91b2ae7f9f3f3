"""Moving running dossiers to a newer version of their procedure's process (admin only): a dry run
that says, per dossier, whether it can move and why not, then the move — each dossier in its own
transaction under its row lock, logged in the audit trail, every open step keeping its deadline."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit, catalog, clock
from .access import require_system_role
from .actors import load_actor
from .db import begin_write
from .dossiers import _load_instance, _lock_dossier, _open_tasks, _spec_loader, _sync, _version_meta, calendar
from .errors import InvalidInput
from .models import OPEN_STATUSES, Dossier, HumanTask, ProcedureVersion


@dataclass
class Verdict:
    code: str
    from_version: int
    can_move: bool
    reasons: list[str] = field(default_factory=list)
    moved: bool = False


def migrate_dossiers(session: Session, *, actor_id: int, procedure_code: str, to_number: int,
                     codes: list[str] | None = None, dry_run: bool = True, now: datetime | None = None) -> list[Verdict]:
    now = now or clock.now()
    actor = load_actor(session, actor_id)
    require_system_role(actor, "admin", "migrate running dossiers")
    proc = catalog.get_procedure(session, procedure_code)
    target = catalog.get_version(session, procedure_code, to_number)
    if target.status != "published":
        raise InvalidInput("dossiers can only move to a published version", errors={"to_number": target.status})
    stmt = select(Dossier.code, Dossier.version_id).where(
        Dossier.procedure_id == proc.id, Dossier.status.in_(OPEN_STATUSES), Dossier.version_id != target.id)
    if codes is not None:
        stmt = stmt.where(Dossier.code.in_(codes))
    candidates = session.execute(stmt.order_by(Dossier.code)).all()
    numbers = dict(session.execute(select(ProcedureVersion.id, ProcedureVersion.number)
                                   .where(ProcedureVersion.procedure_id == proc.id)).all())
    session.rollback()
    verdicts = []
    for code, version_id in candidates:
        verdict = _one(session, actor, code, target, numbers[version_id], dry_run, now)
        verdicts.append(verdict)
    return verdicts


def _one(session: Session, actor, code: str, target: ProcedureVersion, from_number: int, dry_run: bool,
         now: datetime) -> Verdict:
    begin_write(session)
    dossier = _lock_dossier(session, code=code)
    cal = calendar(session)
    inst, _ = _load_instance(session, dossier, cal)
    reasons = inst.migration_blockers(target.spec_hash, _spec_loader(session))
    verdict = Verdict(code=code, from_version=from_number, can_move=not reasons, reasons=reasons)
    if dry_run or reasons:
        session.rollback()
        return verdict
    meta, _ = _version_meta(session, target.id)
    open_rows = _open_tasks(session, dossier)
    deadlines = {row.spec_name: (row.started_at, row.due_at) for row in open_rows.values()}
    with clock.frozen(now):
        inst.migrate(target.spec_hash, _spec_loader(session))
    previous = dossier.version_id
    dossier.version_id = target.id
    audit.append(session, dossier, "migrated", now, actor, from_version=from_number, to_version=target.number,
                 previous_version_id=previous)
    _sync(session, dossier, inst, meta, cal, now, actor, open_rows=open_rows, deadlines=deadlines)
    # Steps that stayed open under the same task id take the new version's role, name and decisions.
    for row in _open_tasks(session, dossier).values():
        step = meta["steps"].get(row.spec_name)
        if step:
            session.execute(update(HumanTask).where(HumanTask.id == row.id).values(
                role=step["role"], name=step["name"], decisions=step["decisions"]))
    session.commit()
    verdict.moved = True
    return verdict


