"""Who is acting: a user's id, name and role grants, read in one query per use case."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine.errors import NotAllowed
from engine.store.db import Prepared, connection
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


# Built once (every use case and every API request runs it): see engine/dossiers/aggregate.py.
_ACTOR = Prepared(select(User.id, User.username, User.full_name, User.active, RoleGrant.unit_id, RoleGrant.role)
                  .outerjoin(RoleGrant, RoleGrant.user_id == User.id).where(User.id == bindparam("user_id")))


_JUST_READ = "motcua.actor_just_read"


def remember_actor(session: Session, actor: Actor) -> None:
    """The actor this request has just read (its token or login): the next `load_actor` of the same user
    on this session takes it instead of reading the same rows again, once. Once only, so a request that
    changes users or grants and then acts reads the actor afresh."""
    session.info[_JUST_READ] = actor


def load_actor(session: Session, user_id: int) -> Actor:
    just_read = session.info.pop(_JUST_READ, None)
    if just_read is not None and just_read.id == user_id:
        return just_read
    # Core on the session's connection: a plain row read, without ORM result processing.
    return actor_of(_ACTOR.all(connection(session), {"user_id": user_id}))


def actor_of(rows) -> Actor:
    """The actor from rows (dicts) of id, username, full_name, active, unit_id, role: one per grant."""
    if not rows or rows[0]["id"] is None or not rows[0]["active"]:
        raise NotAllowed("unknown or inactive user")
    first = rows[0]
    grants = frozenset((r["unit_id"], r["role"]) for r in rows if r["role"] is not None)
    return Actor(first["id"], first["username"], first["full_name"], grants)
