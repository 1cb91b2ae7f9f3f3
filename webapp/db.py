"""One SQLAlchemy session per request, closed (and rolled back if still open) at teardown."""
from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session


def session() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["motcua.sessionmaker"]()
    return g.db


def init_app(app) -> None:
    @app.teardown_appcontext
    def _close(_exc):
        s = g.pop("db", None)
        if s is not None:
            s.close()
