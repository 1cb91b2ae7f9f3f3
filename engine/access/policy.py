"""Who may do what, and where: the one table of permissions. Every use case asks `require`; the
web layer and the templates only ask `can` / `units_for` to decide what to show.

A rule grants a permission to holders of some roles within a scope:
- OWN: a role held in the unit the thing belongs to (the dossier's unit, the receiving desk);
- OVERSIGHT: a role held in that unit or in any unit above it (a province's managers see its communes);
- ANYWHERE: a role held in any unit (catalog and process administration are not per unit);
- TASK: the task's own role in the task's own unit — and, once assigned, only its assignee;
- STEP: the task's own role in the task's own unit, whoever it is assigned to (who may claim a step, or be
  assigned it);
- INVOLVED: any role held in a unit that holds or held a step of the dossier (liên thông: a department
  deciding a dossier a commune received sees that dossier, never the commune's others);
- HOLDING: a role held in the unit that holds the dossier now — the unit of an open step, or the
  receiving unit when no step is open (the deciding agency's leader signs forms 03 and 04).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from engine.access.actors import Actor
from engine.access.directory import unit_chain, units_under
from engine.errors import NotAllowed, NotFound

OWN, OVERSIGHT, ANYWHERE, TASK, INVOLVED, STEP = "own", "oversight", "anywhere", "task", "involved", "step"
HOLDING = "holding"
ANY_ROLE = None

MOT_CUA, CHUYEN_VIEN, LANH_DAO_PHONG, LANH_DAO, VAN_THU = "mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"
ADMIN, DESIGNER, MANAGER = "admin", "designer", "manager"
# The roles that work dossiers. Citizens' personal data (names, ID numbers, phones, addresses) is seen by
# these and by managers overseeing them; a designer or administrator holding no such role never sees it.
DESK_ROLES = (MOT_CUA, CHUYEN_VIEN, LANH_DAO_PHONG, LANH_DAO, VAN_THU)


@dataclass(frozen=True)
class Rule:
    roles: tuple[str, ...] | None  # None: any role
    scope: str


# permission → the rules that grant it (any one suffices)
POLICY: dict[str, tuple[Rule, ...]] = {
    # dossiers: the one-stop desk, the steps of the process, the agency's leader
    "dossier.receive": (Rule((MOT_CUA,), OWN),),
    "dossier.view": (Rule(DESK_ROLES, OWN), Rule((MANAGER,), OVERSIGHT), Rule(DESK_ROLES, INVOLVED)),
    "task.complete": (Rule(ANY_ROLE, TASK),),
    # phân công: a head of the step's unit assigns (or reassigns) a step; a holder of its role claims it
    "task.assign": (Rule((LANH_DAO_PHONG, LANH_DAO), OWN),),
    "task.claim": (Rule(ANY_ROLE, STEP),),
    "supplement.deliver": (Rule((MOT_CUA,), OWN),),
    # an incomplete dossier at the counter: guidance (form 02) or refusal (form 03), no dossier received (L3)
    "counter_notice.issue": (Rule((MOT_CUA,), OWN),),
    "apology.issue": (Rule((MOT_CUA,), OWN), Rule((LANH_DAO,), HOLDING)),   # the desk records one a leader signed
    "apology.sign": (Rule((LANH_DAO,), HOLDING),),
    "dossier.refuse": (Rule((LANH_DAO,), HOLDING),),
    # the consulted unit's specialists and leaders answer a request for their opinion (L8)
    "consultation.answer": (Rule((CHUYEN_VIEN, LANH_DAO_PHONG, LANH_DAO), OWN),),
    "dossier.withdraw": (Rule((MOT_CUA,), OWN),),
    "result.return": (Rule((MOT_CUA,), OWN),),
    "register.view": (Rule(DESK_ROLES + (MANAGER,), OWN),),
    # oversight
    "reports.view": (Rule((MANAGER, ADMIN, LANH_DAO), OVERSIGHT),),
    # checking the audit logs of every dossier of the units an admin oversees (a dossier's own log: dossier.view)
    "audit.verify": (Rule((ADMIN,), OVERSIGHT),),
    # administration
    "dossier.migrate": (Rule((ADMIN,), ANYWHERE),),
    "calendar.apply": (Rule((ADMIN,), ANYWHERE),),   # a change of the working calendar moves appointments
    "catalog.manage": (Rule((ADMIN,), ANYWHERE),),
    "process.design": (Rule((DESIGNER, ADMIN), ANYWHERE),),
    "bpmn.validate": (Rule(ANY_ROLE, ANYWHERE),),
}

_ACTIONS = {  # what the refusal says was attempted
    "dossier.receive": "receive a dossier", "dossier.view": "see this dossier", "task.complete": "complete this step",
    "task.assign": "assign a step", "task.claim": "claim this step",
    "supplement.deliver": "record a supplement", "counter_notice.issue": "issue a guidance or refusal notice at the counter",
    "apology.issue": "issue an apology",
    "apology.sign": "sign an apology", "dossier.refuse": "refuse a dossier",
    "consultation.answer": "answer a request for an opinion",
    "dossier.withdraw": "record a withdrawal", "result.return": "hand over the result", "register.view": "see the register",
    "reports.view": "see the reports", "audit.verify": "check the audit logs", "dossier.migrate": "migrate running dossiers",
    "calendar.apply": "change the working calendar", "catalog.manage": "manage the catalog",
    "process.design": "design processes", "bpmn.validate": "validate BPMN",
}


# --- questions -----------------------------------------------------------------------------------
def _role_ok(rule: Rule, role: str) -> bool:
    return rule.roles is None or role in rule.roles


def can(actor: Actor | None, permission: str, unit_id: int | None = None, *, session: Session | None = None,
        task=None, dossier=None) -> bool:
    """May `actor` do `permission` on a thing of `unit_id` (or on `task`, for TASK rules; on `dossier`,
    for INVOLVED rules)?"""
    if actor is None:
        return False
    for rule in POLICY[permission]:
        if rule.scope == ANYWHERE:
            if any(_role_ok(rule, role) for _, role in actor.grants):
                return True
        elif rule.scope in (TASK, STEP):
            if task is not None and actor.holds(task.role, task.unit_id) and \
                    (rule.scope == STEP or task.assignee_id is None or task.assignee_id == actor.id):
                return True
        elif rule.scope == HOLDING:
            if dossier is not None and session is not None:
                held = {unit for unit, role in actor.grants if _role_ok(rule, role)}
                if held and held & holding_units(session, dossier):
                    return True
        elif rule.scope == INVOLVED:
            if dossier is not None and session is not None:
                held = {unit for unit, role in actor.grants if _role_ok(rule, role)}
                if held and held & involved_units(session, dossier.id):
                    return True
        elif unit_id is None:
            continue
        elif rule.scope == OWN:
            if any(unit == unit_id and _role_ok(rule, role) for unit, role in actor.grants):
                return True
        elif rule.scope == OVERSIGHT:
            chain = set(unit_chain(session, unit_id)) if session is not None else {unit_id}
            if any(unit in chain and _role_ok(rule, role) for unit, role in actor.grants):
                return True
    return False


def require(actor: Actor | None, permission: str, unit_id: int | None = None, *, session: Session | None = None,
            task=None, dossier=None) -> None:
    if not can(actor, permission, unit_id, session=session, task=task, dossier=dossier):
        raise NotAllowed(_refusal(actor, permission, task))


def _refusal(actor, permission: str, task) -> str:
    if permission == "task.complete" and task is not None:
        if actor is not None and task.assignee_id is not None and actor.holds(task.role, task.unit_id):
            return f"step '{task.name}' is assigned to another user"
        return f"complete step '{task.name}': requires role {task.role} in the step's unit"
    if permission == "task.claim" and task is not None:
        return f"claim step '{task.name}': requires role {task.role} in the step's unit"
    roles = sorted({r for rule in POLICY[permission] if rule.roles for r in rule.roles})
    where = {OWN: "in the unit", OVERSIGHT: "in the unit or above it", ANYWHERE: "",
             HOLDING: "in the unit that holds the dossier"}
    scope = next((where.get(rule.scope, "") for rule in POLICY[permission]), "")
    return f"{_ACTIONS[permission]}: requires role {' or '.join(roles) or 'any'} {scope}".strip()


def holding_units(session: Session, dossier) -> set[int]:
    """The units of the dossier's open steps, or its receiving unit when none is open."""
    from sqlalchemy import select

    from engine.store.models import HumanTask
    units = set(session.scalars(select(HumanTask.unit_id).where(
        HumanTask.dossier_id == dossier.id, HumanTask.completed_at.is_(None)).distinct()))
    return units or {dossier.unit_id}


def involved_units(session: Session, dossier_id: int) -> set[int]:
    """The units that hold or held a step of the dossier, or were asked for their opinion on it."""
    from sqlalchemy import select

    from engine.store.models import Consultation, HumanTask
    return set(session.scalars(select(HumanTask.unit_id).where(HumanTask.dossier_id == dossier_id).distinct())) | \
        set(session.scalars(select(Consultation.unit_id).where(Consultation.dossier_id == dossier_id).distinct()))


def require_view(session: Session, actor: Actor | None, dossier) -> None:
    """A dossier the actor may not see answers like a missing one: its code's existence is not revealed."""
    if not can(actor, "dossier.view", dossier.unit_id, session=session, dossier=dossier):
        raise NotFound(f"no dossier {dossier.code}")


def units_for(session: Session, actor: Actor | None, permission: str) -> list[int]:
    """Every unit where `actor` holds `permission` through an OWN or OVERSIGHT rule, sorted."""
    if actor is None:
        return []
    out: set[int] = set()
    for rule in POLICY[permission]:
        held = {unit for unit, role in actor.grants if _role_ok(rule, role)}
        if rule.scope == OWN:
            out |= held
        elif rule.scope == OVERSIGHT:
            for unit in held:
                out.update(units_under(session, unit))
    return sorted(out)


def can_somewhere(actor: Actor | None, permission: str) -> bool:
    """Whether any grant of `actor` could give `permission` (for menus: show the way in)."""
    if actor is None:
        return False
    return any(rule.scope in (ANYWHERE, OWN, OVERSIGHT) and any(_role_ok(rule, role) for _, role in actor.grants)
               for rule in POLICY[permission]) or (permission == "task.complete" and bool(actor.grants))
