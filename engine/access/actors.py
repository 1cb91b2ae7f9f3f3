"""Who is acting: a user's id, name and role grants, read in one query per use case."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotAllowed
from engine.store.models import RoleGrant, User


@dataclass(frozen=True)
class Actor:
    id: int
    username: str
    full_name: str
    grants: frozenset[tuple[int, str]]  # (unit id, role)

    @property
    def display_name(self) -> str:
        return self.full_name or self.username

    def holds(self, role: str, unit_id: int) -> bool:
        return (unit_id, role) in self.grants

    def units_with(self, role: str) -> list[int]:
        return sorted(unit for unit, r in self.grants if r == role)


def load_actor(session: Session, user_id: int) -> Actor:
    # Core on the session's connection: a plain row read, without ORM result processing.
    rows = session.connection().execute(
        select(User.id, User.username, User.full_name, User.active, RoleGrant.unit_id, RoleGrant.role)
        .outerjoin(RoleGrant, RoleGrant.user_id == User.id).where(User.id == user_id)
    ).all()
    if not rows or not rows[0].active:
        raise NotAllowed("unknown or inactive user")
    first = rows[0]
    grants = frozenset((r.unit_id, r.role) for r in rows if r.role is not None)
    return Actor(first.id, first.username, first.full_name, grants)
