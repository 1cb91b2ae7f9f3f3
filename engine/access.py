"""Who may see what: unit-scoped visibility of dossiers (roles held in the unit or an ancestor)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .actors import Actor
from .errors import NotAllowed
from .models import Dossier, Unit

OVERSIGHT_ROLES = ("admin", "manager")


def unit_chain(session: Session, unit_id: int) -> list[int]:
    """The unit and its ancestors, nearest first."""
    chain, current, seen = [], unit_id, set()
    while current is not None and current not in seen:
        seen.add(current)
        chain.append(current)
        current = session.scalar(select(Unit.parent_id).where(Unit.id == current))
    return chain


def can_view_dossier(session: Session, actor: Actor, dossier: Dossier) -> bool:
    if any(unit == dossier.unit_id for unit, _ in actor.grants):
        return True
    ancestors = set(unit_chain(session, dossier.unit_id)[1:])
    return any(unit in ancestors and role in OVERSIGHT_ROLES for unit, role in actor.grants)


def require_view_dossier(session: Session, actor: Actor, dossier: Dossier) -> None:
    if not can_view_dossier(session, actor, dossier):
        # Same answer as a missing dossier: do not reveal that another unit's code exists.
        from .errors import NotFound

        raise NotFound(f"no dossier {dossier.code}")


def require_system_role(actor: Actor, role: str, action: str) -> None:
    if not any(r == role for _, r in actor.grants):
        raise NotAllowed(f"{action}: requires the {role} role")
