"""Moving running dossiers to a newer version of their procedure's process (admin only): a dry run
that says, per dossier, whether it can move and why not, then the move — each dossier in its own
unit of work under its row lock, logged in the audit trail, every open step keeping its deadline."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import load_actor
from engine.catalog import procedures as catalog
from engine.dossiers import aggregate
from engine.dossiers.change import dossier_change
from engine.errors import InvalidInput, WorkflowError
from engine.store.models import OPEN_STATUSES, Dossier, ProcedureVersion


@dataclass
class Verdict:
    code: str
    from_version: int
    can_move: bool
    reasons: list[str] = field(default_factory=list)
    moved: bool = False


class _DryRun(Exception):
    """Leaves a dossier's unit of work without writing anything."""


def migrate_dossiers(session: Session, *, actor_id: int, procedure_code: str, to_number: int,
                     codes: list[str] | None = None, dry_run: bool = True, now: datetime | None = None) -> list[Verdict]:
    now = now or clock.now()
    actor = load_actor(session, actor_id)
    policy.require(actor, "dossier.migrate", session=session)
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
    target_id, target_number, target_hash = target.id, target.number, target.spec_hash
    session.rollback()
    return [_one(session, actor_id, code, (target_id, target_number, target_hash), numbers[version_id], dry_run, now)
            for code, version_id in candidates]


def _one(session: Session, actor_id: int, code: str, target: tuple[int, int, str], from_number: int, dry_run: bool,
         now: datetime) -> Verdict:
    target_id, target_number, target_hash = target
    verdict = Verdict(code=code, from_version=from_number, can_move=False)
    try:
        with dossier_change(session, actor_id=actor_id, permission="dossier.migrate", code=code, now=now) as change:
            loader = aggregate.spec_loader(session)
            verdict.reasons = change.instance().migration_blockers(target_hash, loader)
            # A dossier keeps the rules it was received under (LEGAL.md: "What is in force"): its legal
            # processing time and supplement window are read from its version, so they must not change.
            new_meta, _ = aggregate.version_meta(session, target_id)
            for task in change.open_tasks.values():  # an open step keeps its unit (liên thông)
                step = new_meta["steps"].get(task.spec_name) or {}
                try:
                    moved_to = change.step_unit(step.get("unit"), task.name)
                except WorkflowError as exc:
                    verdict.reasons.append(str(exc))
                    continue
                if moved_to != task.unit_id:
                    verdict.reasons.append(
                        f"open step '{task.name}' would move from unit {aggregate.unit_code(session, task.unit_id)} to "
                        f"{aggregate.unit_code(session, moved_to)}: finish it first")
            for key, label in (("statutory_days", "processing time"), ("supplement_window_days", "supplement window")):
                if new_meta.get(key) != change.meta.get(key):
                    verdict.reasons.append(f"the {label} differs ({change.meta.get(key)} → {new_meta.get(key)} "
                                           "working days): a dossier keeps the time it was received under")
            verdict.can_move = not verdict.reasons
            if dry_run or verdict.reasons:
                raise _DryRun
            dossier = change.dossier
            deadlines = {row.spec_name: (row.started_at, row.due_at) for row in change.open_tasks.values()}
            change.run(lambda inst: inst.migrate(target_hash, loader), "the process could not move")
            previous = dossier.version_id
            dossier.version_id = target_id
            change.audit("migrated", from_version=from_number, to_version=target_number, previous_version_id=previous)
            change.sync(deadlines=deadlines)
            # Steps that stayed open under the same task id take the new version's role, name and decisions.
            for task in change.open_tasks.values():
                step = change.meta["steps"].get(task.spec_name)
                if step:
                    task.role, task.name, task.decisions = step["role"], step["name"], step["decisions"]
                    aggregate.save_task(session, task)
    except _DryRun:
        return verdict
    verdict.moved = True
    return verdict
