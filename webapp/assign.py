"""Phân công: a head of a step's unit assigns (or reassigns) an open step to a holder of its role there; a
holder of the role takes an unassigned step (nhận việc); the assignee, or a head, hands it back to the unit
(trả việc). HTML form POSTs with CSRF, answered by a redirect with the outcome in Vietnamese. Templates
ask `assignment(task)` what to show about a step's assignee and which of these forms to offer."""
from __future__ import annotations

from flask import abort, flash, g, redirect, url_for
from flask import request as http_request
from marshmallow import fields

from engine import dossiers
from engine.access import directory, policy
from engine.errors import DomainError, InvalidInput, NotAllowed, NotFound
from engine.store.models import HumanTask, User

from . import db, forms, i18n
from .common import bp, error_text, rollback, staff_required

BACK = {"hop-thu": ("ui.inbox", {}), "don-vi": ("ui.inbox", {"pham-vi": "don-vi"})}  # else: the step's page


class AssignForm(forms.FormSchema):
    assignee_id = fields.Integer(load_default=None, allow_none=True, data_key="nguoi-nhan")


def _back(task_id: str):
    target, args = BACK.get(http_request.form.get("tro-ve", ""), ("ui.task", {"task_id": task_id}))
    return redirect(url_for(target, **args), 303)


def _refused(exc: DomainError, role: str) -> None:
    """The reason a use case gave, in Vietnamese, as a message on the page the user goes back to. A missing
    permission is no message: it goes on to the error handler (403 page); an unseen dossier is a 404."""
    rollback()
    if isinstance(exc, NotFound):
        abort(404)
    if isinstance(exc, NotAllowed):
        raise exc
    if exc.code == "task_taken":
        text = "Công việc này đã được giao cho người khác; chỉ lãnh đạo đơn vị mới phân công lại được."
    elif isinstance(exc, InvalidInput):
        text = f"Hãy chọn một người giữ vai trò {i18n.ROLE.get(role, role)} tại đơn vị xử lý bước này."
    else:
        text = error_text(exc)
    flash(text, "error")


def _act(task_id: str, use_case, done):
    """Run the use case for the step; flash the outcome (`done(result)`) or the refusal; go back."""
    s = db.session()
    row = s.get(HumanTask, task_id)
    if row is None:
        abort(404)
    role = row.role
    try:
        result = use_case(s)
    except DomainError as exc:
        _refused(exc, role)
    else:
        flash(done(result), "success")
    return _back(task_id)


def _step(result) -> str:
    return f"bước “{result.task.name}” của hồ sơ {result.dossier.code}"


def _name(user_id: int | None) -> str | None:
    user = db.session().get(User, user_id) if user_id is not None else None
    return (user.full_name or user.username) if user is not None else None


@bp.post("/cong-viec/<task_id>/nhan-viec")
@staff_required
def claim(actor, task_id):
    def done(result):
        return f"Bạn đã nhận {_step(result)}; từ nay chỉ bạn xử lý được bước này."
    return _act(task_id, lambda s: dossiers.claim_task(s, actor_id=actor.id, task_id=task_id), done)


@bp.post("/cong-viec/<task_id>/phan-cong")
@staff_required
def assign(actor, task_id):
    try:
        assignee_id = forms.parse(AssignForm, http_request.form)["assignee_id"]
    except InvalidInput:
        assignee_id = None

    def act(s):  # no one chosen: still the use case's refusal, after it checked the caller may assign
        return dossiers.assign_task(s, actor_id=actor.id, task_id=task_id, assignee_id=assignee_id)

    def done(result):
        if not result.changed:
            return f"{_step(result).capitalize()} đã được giao cho {result.assignee_name} từ trước."
        before = _name(result.previous_id)
        return (f"Đã phân công {_step(result)} cho {result.assignee_name}"
                + (f" (trước đây: {before})." if before else "."))
    return _act(task_id, act, done)


@bp.post("/cong-viec/<task_id>/tra-viec")
@staff_required
def release(actor, task_id):
    def done(result):
        return f"Đã trả {_step(result)} về đơn vị; người giữ vai trò {i18n.ROLE.get(result.task.role, result.task.role)} " \
               f"có thể nhận việc."
    return _act(task_id, lambda s: dossiers.release_task(s, actor_id=actor.id, task_id=task_id), done)


# --- for templates -------------------------------------------------------------------------------
@bp.app_context_processor
def _assignment_helper():
    return {"assignment": assignment}


def assignment(task, assignee_name: str | None = None) -> dict:
    """What a screen shows about an open step's assignee, and which assignment forms it offers the
    current user: `claim` (unassigned, and they hold its role in its unit), `assign` with `candidates`
    (they head its unit), `release` (it is theirs, or they head its unit)."""
    actor = g.get("actor")
    s = db.session()
    name = assignee_name if assignee_name is not None else _name(task.assignee_id)
    open_ = task.completed_at is None
    heads = open_ and policy.can(actor, "task.assign", task.unit_id, session=s)
    cache = g.setdefault("assign_candidates", {})
    key = (task.unit_id, task.role)
    if heads and key not in cache:
        cache[key] = directory.holders(s, task.unit_id, task.role)
    mine = actor is not None and task.assignee_id == actor.id
    return {
        "assignee": name, "mine": mine,
        "claim": open_ and task.assignee_id is None and policy.can(actor, "task.claim", task=task),
        "assign": heads, "candidates": cache.get(key, []) if heads else [],
        "release": open_ and task.assignee_id is not None and (mine or heads),
    }
