"""Assignment (phân công): who of a step's role works an open step. A head of the step's unit assigns it
to one holder of the step's role there, or reassigns it; a holder of the role claims an unassigned step
(nhận việc); the assignee, or a head, hands it back to the unit (trả việc). Once assigned, only the
assignee may complete the step (policy TASK scope). Every change of hands is audited as `task_assigned`
with `from` and `to` (user ids; None: nobody) — the audit trail is the record of who held a step."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access import policy
from engine.access.actors import Actor, load_actor
from engine.dossiers import aggregate
from engine.dossiers.aggregate import Record
from engine.dossiers.change import DossierChange, dossier_change
from engine.errors import Conflict, DossierClosed, InvalidInput, NotAllowed, TaskNotReady
from engine.store.models import OPEN_STATUSES, HumanTask


class TaskTaken(Conflict):
    """The step is already assigned to someone else: only a head of its unit can reassign it."""

    code = "task_taken"


@dataclass
class Assignment:
    """What an assignment changed: the dossier, the step (its row as now stored) and its unit's code,
    who holds it now (None: the unit, nobody in particular), who held it before, and whether anything
    changed."""

    dossier: Record
    task: Record
    unit_code: str
    assignee: Actor | None
    previous_id: int | None
    changed: bool

    @property
    def assignee_name(self) -> str | None:
        return self.assignee.display_name if self.assignee is not None else None


def assign_task(session: Session, *, actor_id: int, task_id: str, assignee_id: int,
                now: datetime | None = None) -> Assignment:
    """A head of the step's unit gives the open step to `assignee_id`, who must hold the step's role in
    the step's unit; reassigning a step someone already holds is allowed and audited."""
    with dossier_change(session, actor_id=actor_id, permission=None, task_id=task_id, now=now) as change:
        task = _authorized_task(change, task_id, "task.assign")
        assignee = _eligible(change, task, assignee_id)
        return _hand(change, task, assignee, how="assign")


def claim_task(session: Session, *, actor_id: int, task_id: str, now: datetime | None = None) -> Assignment:
    """A holder of the step's role in its unit takes the open step for themselves; a step already
    assigned to someone else is theirs (TaskTaken, 409). Claiming one's own step again changes nothing."""
    with dossier_change(session, actor_id=actor_id, permission=None, task_id=task_id, now=now) as change:
        task = _authorized_task(change, task_id, "task.claim")
        if task.assignee_id is not None and task.assignee_id != change.actor.id:
            raise TaskTaken(f"step '{task.name}' is already assigned to another user; "
                            "a head of the unit can reassign it")
        return _hand(change, task, change.actor, how="claim")


def release_task(session: Session, *, actor_id: int, task_id: str, now: datetime | None = None) -> Assignment:
    """The step goes back to its unit, unassigned: done by its assignee, or by a head of the unit."""
    with dossier_change(session, actor_id=actor_id, permission=None, task_id=task_id, now=now) as change:
        row = _task_row(change, task_id)
        actor = change.actor
        if not (row.assignee_id is not None and row.assignee_id == actor.id) and \
                not policy.can(actor, "task.assign", row.unit_id, session=session):
            _deny(change, "task.assign", row.unit_id)
        task = _open(change, row)
        return _hand(change, task, None, how="release")


# --- helpers (they only flush) -------------------------------------------------------------------
def _task_row(change: DossierChange, task_id: str) -> Record:
    """The step, open or not (its unit and role decide who may act on it, before its state is looked at)."""
    task = change.open_tasks.get(task_id)
    if task is None:
        row = change.session.connection().execute(
            select(HumanTask.__table__).where(HumanTask.__table__.c.id == task_id)).one()
        task = Record(row._mapping)
    return task


def _deny(change: DossierChange, permission: str, unit_id: int | None = None, task: Record | None = None) -> NoReturn:
    """A dossier the actor may not see answers "not found"; one they see, "not allowed"."""
    policy.require_view(change.session, change.actor, change.dossier)
    policy.require(change.actor, permission, unit_id, session=change.session, task=task)
    raise NotAllowed(f"{permission}: not allowed")  # require refused already; never reached


def _authorized_task(change: DossierChange, task_id: str, permission: str) -> Record:
    task = _task_row(change, task_id)
    if permission == "task.claim":
        if not policy.can(change.actor, permission, task=task):
            _deny(change, permission, task=task)
    elif not policy.can(change.actor, permission, task.unit_id, session=change.session):
        _deny(change, permission, task.unit_id)
    return _open(change, task)


def _open(change: DossierChange, task: Record) -> Record:
    if change.dossier.status not in OPEN_STATUSES:
        raise DossierClosed(f"dossier {change.dossier.code} is {change.dossier.status}; its steps are closed")
    if task.id not in change.open_tasks:
        raise TaskNotReady("this step was already completed or is no longer open")
    return task


def _eligible(change: DossierChange, task: Record, assignee_id) -> Actor:
    """The assignee must be an active user who may claim the step: its role, held in its unit."""
    try:
        user_id = int(assignee_id)
        assignee = load_actor(change.session, user_id) if 0 < user_id < 2**31 else None
    except (NotAllowed, TypeError, ValueError):
        assignee = None
    if assignee is None or not policy.can(assignee, "task.claim", task=task):
        raise InvalidInput(f"the assignee must hold role {task.role} in the step's unit",
                           errors={"assignee_id": f"not a {task.role} of the step's unit"})
    return assignee


def _hand(change: DossierChange, task: Record, to: Actor | None, *, how: str) -> Assignment:
    previous = task.assignee_id
    new = to.id if to is not None else None
    unit = aggregate.unit_code(change.session, task.unit_id)
    if previous == new:
        return Assignment(change.dossier, task, unit, to, previous, False)
    task.assignee_id = new
    aggregate.save_task(change.session, task)
    change.audit("task_assigned", step=task.spec_name, task_id=task.id, name=task.name, how=how,
                 **{"from": previous, "to": new, "to_name": to.display_name if to is not None else None})
    return Assignment(change.dossier, task, unit, to, previous, True)
