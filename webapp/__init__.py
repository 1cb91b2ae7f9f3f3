"""Flask web app: the JSON API and the HTML screens, both built on engine/ use cases."""
from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from engine import config as engine_config
from engine.store.db import make_engine, make_sessionmaker

from . import db, errors

log = logging.getLogger("motcua.web")
csrf = CSRFProtect()


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("MOTCUA_SECRET_KEY"),
        DATABASE_URL=engine_config.database_url(),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,   # a whole request, base64 included
        MAX_FILE_BYTES=20 * 1024 * 1024,       # one decoded component file
        PUBLIC_LOOKUP_LIMIT=10,                # look-ups per client per window
        PUBLIC_LOOKUP_WINDOW_SECONDS=60,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=10),  # one working day; staff log in each morning
        SESSION_COOKIE_SECURE=os.environ.get("MOTCUA_INSECURE_COOKIES") != "1",
        JSON_SORT_KEYS=False,
    )
    app.config.update(config or {})
    # An empty path segment (/api/v1/dossiers//audit) is a missing resource (404), not a redirect to another URL.
    app.url_map.merge_slashes = False
    if not app.config["SECRET_KEY"]:
        log.warning("MOTCUA_SECRET_KEY is not set: sessions will not survive a restart")
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.json.ensure_ascii = False
    app.extensions["motcua.sessionmaker"] = make_sessionmaker(make_engine(app.config["DATABASE_URL"]))
    _clock_seam(app)
    db.init_app(app)
    errors.init_app(app)

    from .admin import bp as admin_bp
    from .api import bp as api_bp
    from .dashboard import bp as dashboard_bp
    from .designer import bp as designer_bp
    from .ui import bp as ui_bp

    csrf.init_app(app)
    csrf.exempt(api_bp)  # the API takes bearer tokens or JSON only, which a cross-site form cannot send
    app.register_blueprint(api_bp)
    app.register_blueprint(ui_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(designer_bp)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                    "style-src 'self' 'unsafe-inline'; frame-ancestors 'self'; form-action 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Pages behind a login and the citizen's look-up carry personal data: no cache may keep them.
        from flask import g, request
        if getattr(g, "actor", None) is not None or request.path.startswith(("/tra-cuu", "/api/")):
            response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _clock_seam(app: Flask) -> None:
    """With MOTCUA_NOW set (tests, rehearsals; never in production) every request runs at that time.
    Read per request, so a test can move it while the server runs."""
    from datetime import datetime

    from flask import g

    from engine import clock

    @app.before_request
    def _freeze():
        at = app.config.get("MOTCUA_NOW")
        if at:
            g.clock_token = clock.set_now(datetime.fromisoformat(at) if isinstance(at, str) else at)

    @app.teardown_request
    def _thaw(_exc):
        token = g.pop("clock_token", None)
        if token is not None:
            clock.reset(token)
