"""The inbox (hộp thư) and a step's page: what waits on me or my unit, and doing it."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import fields
from sqlalchemy import select

from engine import catalog, clock, dossiers
from engine.access import policy
from engine.catalog.calendar import same_day_cutoff, working_calendar
from engine.dossiers import results
from engine.errors import DomainError, InvalidInput
from engine.reporting import deadlines, views
from engine.store.models import Consultation, HumanTask, ProcedureVersion, Unit

from . import db, forms, i18n
from .common import bp, form_refusal, staff_required, uploaded_components, visible

RESULT_FILE_FIELD = "tep"  # the upload `ket-qua-tep` (kept across a re-shown form as `kept_tep`)


class ResultForm(forms.FormSchema):
    """The result document a step records when it approves (engine/dossiers/results.py): the number and
    the signing date as typed (the engine checks them), the PDF as an upload."""

    number = fields.String(load_default=None, data_key="so-van-ban")
    signed_on = fields.String(load_default=None, data_key="ngay-ky")


def decision_labels(step: dict, decisions: list[str]) -> dict[str, str]:
    """Each decision's button text: the name the diagram gives the flow it takes, else the usual verb."""
    named = step.get("labels") or {}
    return {d: named.get(d) or i18n.DECISION.get(d, d) for d in decisions}


def _result_input(needs: list[str]) -> tuple[dict, dict[str, str], dict | None]:
    """The step's result fields from the form: (result for the use case, upload errors, the kept upload)."""
    form = forms.parse(ResultForm, request.form)
    given: dict = {k: form[k] for k in ("number", "signed_on") if form[k] is not None}
    upload_errors, kept = {}, None
    if results.RESULT_FILE in needs:
        comps, bad, kept_files = uploaded_components("ket-qua-", [RESULT_FILE_FIELD])
        if bad:
            upload_errors["result.file"] = i18n.field_message("result.file", "not a PDF file")
        if comps:
            given["file"] = {"filename": comps[0]["filename"], "content": comps[0]["content"]}
        kept = kept_files.get(RESULT_FILE_FIELD)
    return given, upload_errors, kept


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
                           procedure_code=procedure_code, only=only, procedures=procs, whole_unit=whole_unit,
                           consultations=views.pending_consultations(db.session(), actor))


@bp.route("/cong-viec/<task_id>", methods=["GET", "POST"])
@staff_required
def task(actor, task_id):
    s = db.session()
    row = s.get(HumanTask, task_id)
    if row is None:
        abort(404)
    dossier = visible(actor, dossier_id=row.dossier_id)
    meta = s.get(ProcedureVersion, dossier.version_id).meta
    step = meta["steps"].get(row.spec_name) or {}
    labels = decision_labels(step, row.decisions)
    needs = results.required(meta, row.spec_name)
    message, errors, kept = None, {}, None
    if request.method == "POST":
        form = forms.parse(forms.TaskForm, request.form)
        decision = form["decision"]
        data = {"decision": decision}
        result, upload_errors = None, {}
        if decision == "request_supplement":
            data["items"] = forms.supplement_items(request.form, meta["components"])
            data["acknowledge_late"] = form["acknowledge_late"]
        elif decision == results.APPROVE and needs:
            result, upload_errors, kept = _result_input(needs)
        try:
            done = dossiers.complete_task(s, actor_id=actor.id, task_id=task_id, data=data, note=form["reason"],
                                          result=result)
        except DomainError as exc:
            message, errors = form_refusal(exc)
            errors.update(upload_errors)  # the upload's own reason, rather than "attach the file"
            item_errors = [v for k, v in errors.items() if k.startswith("items.")]
            if item_errors:
                errors.setdefault("items", " ".join(dict.fromkeys(item_errors)))
        else:
            holders = ", ".join(sorted({i18n.ROLE.get(t.role, t.role) for t in done.next_tasks})) or \
                i18n.STATUS[done.dossier.status]
            label = labels.get(decision) or i18n.DECISION_DONE.get(decision, decision)
            flash(f"Đã {label[:1].lower()}{label[1:]} hồ sơ {dossier.code}. Hồ sơ hiện ở: {holders}.", "success")
            return redirect(url_for("ui.inbox"))
        s.expire_all()
        row = s.get(HumanTask, task_id)
    ctx = views.dossier_page(s, dossier, clock.now())
    # Once used, the supplementation request is not offered again (the engine refuses it anyway).
    decisions = [d for d in row.decisions if not (d == "request_supplement" and ctx["supplement"] is not None)]
    # Only who may complete the step is offered its decisions (assigned: its assignee; else its role there).
    may_complete = row.completed_at is None and policy.can(actor, "task.complete", task=row)
    # The specialist is told before confirming that a request after the window is late (L10).
    window_end = deadlines.supplement_window_end(
        working_calendar(s), dossier.received_at, ctx["version"].meta.get("supplement_window_days", 3),
        same_day_cutoff(s, clock.local(dossier.received_at).date()))
    units = s.execute(select(Unit.code, Unit.name).where(Unit.active.is_(True), Unit.id != row.unit_id)
                      .order_by(Unit.name)).all()
    return render_template("task.html", task=row, dossier=dossier, decisions=decisions, labels=labels,
                           result_needs=needs, kept_result=kept, may_complete=may_complete, message=message,
                           errors=errors, form=request.form, window_end=window_end, units=units,
                           late_request=clock.now() > window_end, outside_rows=forms.OUTSIDE_ROWS,
                           **ctx), (422 if message else 200)


@bp.post("/cong-viec/<task_id>/xin-y-kien")
@staff_required
def ask_opinion(actor, task_id):
    """The step asks other units for their opinion (L8); it continues when all answered or time is up."""
    s = db.session()
    row = s.get(HumanTask, task_id)
    if row is None:
        abort(404)
    visible(actor, dossier_id=row.dossier_id)
    try:
        form = forms.parse(forms.ConsultForm, request.form)
        done = dossiers.ask_opinions(s, actor_id=actor.id, task_id=task_id, unit_codes=request.form.getlist("don-vi"),
                                     content=form["content"], days=form["days"])
    except DomainError as exc:
        message, errors = form_refusal(exc)
        flash(" ".join(["Chưa gửi được yêu cầu xin ý kiến.", *dict.fromkeys(errors.values())] if errors
                       else ["Chưa gửi được yêu cầu xin ý kiến:", message]), "error")
    else:
        flash(f"Đã gửi yêu cầu xin ý kiến tới {len(done)} đơn vị; bước này chờ các đơn vị trả lời "
              f"(hạn {i18n.dt(done[0].due_at)}).", "success")
    return redirect(url_for("ui.task", task_id=task_id))


@bp.route("/xin-y-kien/<int:consultation_id>", methods=["GET", "POST"])
@staff_required
def consultation(actor, consultation_id):
    """A consulted unit reads the request (and the dossier) and answers it."""
    s = db.session()
    row = s.get(Consultation, consultation_id)
    if row is None or not policy.can(actor, "consultation.answer", row.unit_id, session=s):
        abort(404)
    dossier = visible(actor, dossier_id=row.dossier_id)
    message, errors = None, {}
    if request.method == "POST":
        try:
            attached, file_errors, _ = uploaded_components("tep-", ["y-kien"])
            if file_errors:
                raise InvalidInput("bad file", errors={"file": next(iter(file_errors.values()))})
            dossiers.answer_opinion(s, actor_id=actor.id, consultation_id=consultation_id,
                                    answer=forms.parse(forms.AnswerForm, request.form)["answer"],
                                    files=[{k: f[k] for k in ("filename", "content", "content_type")} for f in attached])
        except DomainError as exc:
            message, errors = form_refusal(exc)
        else:
            flash(f"Đã gửi ý kiến về hồ sơ {dossier.code}.", "success")
            return redirect(url_for("ui.inbox"))
        s.expire_all()
        row = s.get(Consultation, consultation_id)
    ctx = views.dossier_page(s, dossier, clock.now())
    return render_template("consultation.html", consultation=row, dossier=dossier, message=message, errors=errors,
                           asked_unit=s.get(Unit, row.unit_id), **ctx), (422 if message else 200)
