"""API bearer tokens: random, shown once, stored as SHA-256, expiring."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine import clock
from engine.access.actors import Actor, actor_of
from engine.access.passwords import verify_password
from engine.errors import DomainError
from engine.store.db import Prepared, begin_write, connection, single_read
from engine.store.models import ApiToken, RoleGrant, User

TOKEN_TTL = timedelta(hours=12)


class BadCredentials(DomainError):
    code = "bad_credentials"
    http_status = 401


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authenticate(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    # Verify against a dummy hash for unknown users too, so timing does not reveal usernames.
    valid = verify_password(user.password_hash if user else _DUMMY_HASH, password or "")
    if user is None or not valid or not user.active:
        raise BadCredentials("wrong username or password")
    return user


def issue_token(session: Session, username: str, password: str, now: datetime | None = None) -> tuple[str, datetime]:
    now = now or clock.now()
    begin_write(session)
    user = authenticate(session, username, password)
    token = secrets.token_urlsafe(32)
    expires = now + TOKEN_TTL
    session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), created_at=now, expires_at=expires))
    session.commit()
    return token, expires


# The token, its user and the user's grants in one statement (every API request runs it), built once.
_TOKEN_ACTOR = Prepared(
    select(ApiToken.expires_at, ApiToken.revoked, User.id, User.username, User.full_name, User.active,
           RoleGrant.unit_id, RoleGrant.role)
    .outerjoin(User, User.id == ApiToken.user_id).outerjoin(RoleGrant, RoleGrant.user_id == User.id)
    .where(ApiToken.token_sha256 == bindparam("digest")))


def actor_for_token(session: Session, token: str, now: datetime | None = None) -> Actor | None:
    now = now or clock.now()
    own = single_read(session)  # outside a transaction when the session has none (an API request's first read)
    rows = _TOKEN_ACTOR.all(own or connection(session), {"digest": _digest(token)})
    if own is not None:
        session.rollback()
    if not rows or rows[0]["revoked"] or rows[0]["expires_at"] <= now:
        return None
    return actor_of(rows)


_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$ChhYVXde2Z/Wr55N4TjNWw$2eHeuzFUPueQulskUacF5POZT6ADi+lKkxOVqYqDwyw"
