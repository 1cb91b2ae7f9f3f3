"""The inbox (hộp thư) and a step's page: what waits on me or my unit, and doing it."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from engine import catalog, clock, dossiers
from engine.catalog.calendar import working_calendar
from engine.errors import DomainError
from engine.reporting import deadlines, views
from engine.store.models import HumanTask, ProcedureVersion

from . import db, forms, i18n
from .common import bp, form_refusal, staff_required, visible


@bp.get("/hop-thu")
@staff_required
def inbox(actor):
    page = max(1, request.args.get("trang", 1, type=int) or 1)
    q, procedure_code, only = request.args.get("q", ""), request.args.get("thu-tuc", ""), request.args.get("loc", "")
    whole_unit = request.args.get("pham-vi") == "don-vi"
    rows, total = views.inbox_page(db.session(), actor, q=q, procedure_code=procedure_code, only=only,
                                   page=page, per_page=25, at=clock.now(), whole_unit=whole_unit)
    procs = catalog.list_procedures(db.session())
    return render_template("inbox.html", rows=rows, total=total, page=page, pages=max(1, -(-total // 25)), q=q,
                           procedure_code=procedure_code, only=only, procedures=procs, whole_unit=whole_unit)


@bp.route("/cong-viec/<task_id>", methods=["GET", "POST"])
@staff_required
def task(actor, task_id):
    s = db.session()
    row = s.get(HumanTask, task_id)
    if row is None:
        abort(404)
    dossier = visible(actor, dossier_id=row.dossier_id)
    message, errors = None, {}
    if request.method == "POST":
        form = forms.parse(forms.TaskForm, request.form)
        decision = form["decision"]
        data = {"decision": decision}
        if decision == "request_supplement":
            version = s.get(ProcedureVersion, dossier.version_id)
            data["items"] = forms.supplement_items(request.form, version.meta["components"])
            data["acknowledge_late"] = form["acknowledge_late"]
        try:
            result = dossiers.complete_task(s, actor_id=actor.id, task_id=task_id, data=data, note=form["reason"])
        except DomainError as exc:
            message, errors = form_refusal(exc)
        else:
            holders = ", ".join(sorted({i18n.ROLE.get(t.role, t.role) for t in result.next_tasks})) or \
                i18n.STATUS[result.dossier.status]
            flash(f"Đã {i18n.DECISION_DONE[decision].lower()} hồ sơ {dossier.code}. Hồ sơ hiện ở: {holders}.", "success")
            return redirect(url_for("ui.inbox"))
        s.expire_all()
        row = s.get(HumanTask, task_id)
    ctx = views.dossier_page(s, dossier, clock.now())
    # Once used, the supplementation request is not offered again (the engine refuses it anyway).
    decisions = [d for d in row.decisions if not (d == "request_supplement" and ctx["supplement"] is not None)]
    # The specialist is told before confirming that a request after the window is late (L10).
    window_end = deadlines.supplement_window_end(working_calendar(s), dossier.received_at,
                                                 ctx["version"].meta.get("supplement_window_days", 3))
    return render_template("task.html", task=row, dossier=dossier, decisions=decisions, message=message,
                           errors=errors, form=request.form, window_end=window_end,
                           late_request=clock.now() > window_end, outside_rows=forms.OUTSIDE_ROWS,
                           **ctx), (422 if message else 200)
