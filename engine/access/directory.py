"""The directory: units, users and their role grants (administration use cases; each commits)."""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.access.passwords import hash_password
from engine.errors import Conflict, InvalidInput, NotFound
from engine.store.models import Role, RoleGrant, Unit, User


def _parents(session: Session) -> dict[int, int | None]:
    return dict(session.execute(select(Unit.id, Unit.parent_id)).all())


def unit_chain(session: Session, unit_id: int) -> list[int]:
    """The unit and its ancestors, nearest first (one query for the whole tree)."""
    parents = _parents(session)
    chain, current = [], unit_id
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain


def units_under(session: Session, unit_id: int) -> list[int]:
    """The unit and every unit below it (one query for the whole tree)."""
    children: dict[int | None, list[int]] = {}
    for unit, parent in _parents(session).items():
        children.setdefault(parent, []).append(unit)
    found, stack = [], [unit_id]
    while stack:
        unit = stack.pop()
        found.append(unit)
        stack.extend(children.get(unit, []))
    return found


def top_units(session: Session, unit_ids: list[int]) -> list[int]:
    """Those of `unit_ids` whose parent is not among them (the roots of what a user oversees)."""
    parents = _parents(session)
    held = set(unit_ids)
    return [u for u in unit_ids if parents.get(u) not in held]


UNIT_CODE_RE = re.compile(r"^[A-Za-z0-9.]{2,32}$")


def add_unit(session: Session, code: str, name: str, parent_code: str | None = None) -> Unit:
    if not UNIT_CODE_RE.match(code or ""):
        raise InvalidInput("unit code: 2-32 letters, digits or dots", errors={"code": code})
    if session.scalar(select(Unit).where(Unit.code == code)):
        raise Conflict(f"unit {code} already exists")
    parent = None
    if parent_code:
        parent = session.scalar(select(Unit).where(Unit.code == parent_code))
        if parent is None:
            raise NotFound(f"no unit {parent_code}")
    unit = Unit(code=code, name=name.strip(), parent_id=parent.id if parent else None)
    session.add(unit)
    session.commit()
    return unit


def add_user(session: Session, username: str, password: str, grants: list[tuple[str, str]], full_name: str = "") -> User:
    """grants: (unit code, role code) pairs."""
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username} already exists")
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise InvalidInput(str(exc), errors={"password": str(exc)}) from None
    user = User(username=username, full_name=full_name or username, password_hash=password_hash)
    for unit_code, role in grants:
        unit = session.scalar(select(Unit).where(Unit.code == unit_code))
        if unit is None:
            raise NotFound(f"no unit {unit_code}")
        if session.get(Role, role) is None:
            raise NotFound(f"no role {role}")
        user.grants.append(RoleGrant(unit_id=unit.id, role=role))
    session.add(user)
    session.commit()
    return user


def holders(session: Session, unit_id: int, role: str) -> list[tuple[int, str]]:
    """Active users holding `role` in the unit: (id, display name), by name."""
    from engine.store.models import RoleGrant, User
    rows = session.execute(select(User.id, User.full_name, User.username).join(RoleGrant, RoleGrant.user_id == User.id)
                           .where(RoleGrant.unit_id == unit_id, RoleGrant.role == role, User.active.is_(True))
                           .order_by(User.full_name, User.username)).all()
    return [(r.id, r.full_name or r.username) for r in rows]
