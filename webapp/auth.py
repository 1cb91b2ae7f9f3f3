"""Authentication for the API (Bearer token) and the UI (session cookie)."""
from __future__ import annotations

import functools

from flask import g, request, session

from engine.access import tokens
from engine.access.actors import Actor, load_actor, remember_actor
from engine.errors import DomainError, NotAllowed

from . import db


class Unauthenticated(DomainError):
    code = "unauthenticated"
    http_status = 401


def current_actor() -> Actor | None:
    if "actor" in g:
        return g.actor
    actor = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        actor = tokens.actor_for_token(db.session(), header[7:].strip())
        if actor is None:
            raise Unauthenticated("the token is invalid or expired; request a new one at /api/v1/auth/token")
    elif session.get("user_id"):
        try:
            actor = load_actor(db.session(), session["user_id"])
        except NotAllowed:
            session.clear()
    if actor is not None:
        remember_actor(db.session(), actor)  # the use case the request runs next need not read it again
    g.actor = actor
    return actor


def login_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        actor = current_actor()
        if actor is None:
            raise Unauthenticated("log in or send 'Authorization: Bearer <token>'")
        return view(actor, *args, **kwargs)

    return wrapper
