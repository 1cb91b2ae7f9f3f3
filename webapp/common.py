"""What every staff and citizen screen shares: the `ui` blueprint, the logged-in staff member, the
menu's permissions and queue counts, errors in Vietnamese, uploads kept across a re-shown form."""
from __future__ import annotations

import functools

from flask import Blueprint, abort, current_app, g, redirect, request, session, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from engine import clock
from engine.access import policy
from engine.access.actors import Actor, load_actor
from engine.errors import DomainError, InvalidInput, NotAllowed, NotFound
from engine.reporting import lists, views
from engine.store import files
from engine.store.models import Dossier

from . import db, i18n

bp = Blueprint("ui", __name__)


def staff_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        user_id = session.get("user_id")
        actor = None
        if user_id:
            try:
                actor = load_actor(db.session(), user_id)
            except NotAllowed:
                session.clear()
        if actor is None:
            return redirect(url_for("ui.login", next=request.full_path))
        g.actor = actor
        return view(actor, *args, **kwargs)

    return wrapper


@bp.app_context_processor
def inject():
    actor = g.get("actor")
    now = clock.now()
    counts = lists.counts(db.session(), actor, now) if actor else None

    def can(permission: str, unit_id: int | None = None, dossier=None) -> bool:
        """For templates: may the current user do `permission` (in `unit_id` — on `dossier` for the rules
        that follow who holds it — or somewhere)?"""
        if unit_id is None:
            return policy.can_somewhere(actor, permission)
        return policy.can(actor, permission, unit_id, session=db.session(), dossier=dossier)

    return {"i18n": i18n, "actor": actor, "counts": counts, "now": now, "can": can,
            "can_complete": lambda task: policy.can(actor, "task.complete", task=task),
            "overdue": lambda d: views.is_overdue(d, now)}


def error_text(exc: DomainError) -> str:
    """The Vietnamese sentence for a refusal: never the engine's English message, never a code (each
    component in question is marked next to its own field)."""
    text = i18n.ERROR.get(exc.code, i18n.ERROR["invalid_input"] if isinstance(exc, InvalidInput)
                          else i18n.ERROR["domain_error"])
    if exc.code == "missing_components" and exc.errors:
        text += f" Còn thiếu {len(exc.errors)} thành phần, đánh dấu bên dưới."
    return text


def field_errors(exc: DomainError) -> dict[str, str]:
    if not isinstance(exc, InvalidInput) or not isinstance(exc.errors, dict):
        return {}
    return {key: i18n.field_message(key, str(value)) for key, value in exc.errors.items()}


def rollback():
    db.session().rollback()


def form_refusal(exc: DomainError) -> tuple[str, dict[str, str]]:
    """What to show on the form the user sent when a use case refused it. A missing permission is no
    form error: it goes on to the error handler, which answers with the 403 page."""
    rollback()
    if isinstance(exc, NotAllowed):
        raise exc
    return error_text(exc), field_errors(exc)


def visible(actor: Actor, code: str | None = None, *, dossier_id: int | None = None) -> Dossier:
    """The dossier (by code or id) if the actor may see it; otherwise 404, as if it did not exist."""
    s = db.session()
    try:
        dossier = views.find_dossier(s, code) if code is not None else s.get(Dossier, dossier_id)
        if dossier is None:
            raise NotFound(f"no dossier #{dossier_id}")
        policy.require_view(s, actor, dossier)
    except NotFound:
        abort(404)
    return dossier


def keeper() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="kept-upload")


def uploaded_components(prefix: str, known_codes: list[str]) -> tuple[list[dict], dict[str, str], dict[str, dict]]:
    """Files from the form; a valid file is stored at once and kept (signed) so a page re-shown after an
    error never asks for the scan again. Returns (components, per-field errors, kept tokens)."""
    comps, errors, kept = [], {}, {}
    for code in known_codes:
        upload = request.files.get(f"{prefix}{code}")
        token = request.form.get(f"kept_{code}")
        if upload is not None and upload.filename:
            content = upload.read()
            try:
                content_type = files.sniff(content, upload.filename)
            except files.FileRejected:
                errors[f"components.{code}"] = i18n.field_message(f"components.{code}", "")
                continue
            stored = files.store(content)
            info = {"key": stored.storage_key, "filename": upload.filename, "content_type": content_type}
            kept[code] = {"token": keeper().dumps(info), "filename": upload.filename}
            comps.append({"code": code, "filename": upload.filename, "content": content, "content_type": content_type})
        elif token:
            try:
                info = keeper().loads(token)
                content = files.open_file(info["key"])
            except (BadSignature, OSError, ValueError, KeyError):
                continue
            kept[code] = {"token": token, "filename": info["filename"]}
            comps.append({"code": code, "filename": info["filename"], "content": content,
                          "content_type": info["content_type"]})
    return comps, errors, kept
