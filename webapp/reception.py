"""The reception desk (tiếp nhận): find the procedure as you type, type the applicant's details, scan the
components; then receive the dossier (and pass on the desk's own step in the same action), or — when it
is incomplete or cannot be accepted — give guidance (form 02) or a refusal (form 03) without receiving
it. The pages after: the receipt (form 01) or the counter notice, ready to print."""
from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from engine import catalog, clock, dossiers
from engine.access import policy
from engine.dossiers import applicant as applicant_rules
from engine.dossiers import counter
from engine.dossiers.reception import validate_components
from engine.errors import DomainError, InvalidInput, NotFound
from engine.store.models import HumanTask, Procedure, Unit
from engine.text import fold

from . import db, forms, i18n
from .common import bp, error_text, field_errors, form_refusal, staff_required, uploaded_components, visible
from .dossier import FORMS

NOTICE_ACTIONS = {"huong-dan": counter.GUIDANCE, "tu-choi": counter.REFUSAL}
TEXT_FIELDS = (*applicant_rules.FIELDS, "channel", "reason", "unit_code")


def _matches(search: str, offered: list) -> list:
    """The procedures whose code, name or field hold every word typed, diacritics ignored."""
    words = fold(search).split()
    return [(p, v) for p, v in offered if all(w in fold(f"{p.code} {p.name} {p.field}") for w in words)]


def _components(version) -> list[dict]:
    return version.meta.get("components") or []


def _details(s, proc, version) -> dict:
    """What the form shows of a chosen procedure, ready to display (the page and its JSON agree)."""
    preview = catalog.working_calendar(s).appointment(clock.now(), proc.statutory_days)
    return {
        "code": proc.code, "name": proc.name, "field": proc.field,
        "statutory": f"{proc.statutory_days} ngày làm việc" if proc.statutory_days else "Trong ngày làm việc",
        "fee": proc.fee or "Không", "received": i18n.dt(clock.now()), "preview": i18n.dt(preview),
        "components": [{"code": c["code"], "name": c["name"], "required": bool(c.get("required")),
                        "copies": c.get("copies") or 1} for c in _components(version)],
    }


def _desks(actor) -> list[int]:
    desks = policy.units_for(db.session(), actor, "dossier.receive")
    if not desks:
        abort(403)
    return desks


@bp.route("/tiep-nhan", methods=["GET", "POST"])
@staff_required
def reception(actor):
    s = db.session()
    desks = _desks(actor)
    today = clock.local(clock.now()).date()
    offered = catalog.procedures_accepting(s, today)
    code = request.values.get("thu-tuc", "")
    chosen = next(((p, v) for p, v in offered if p.code == code), None)
    search = request.args.get("tim", "").strip()
    listed = offered
    if search:
        listed = _matches(search, offered)
        if len(listed) == 1 and chosen is None:
            chosen = listed[0]
    form = {k: request.form.get(k, "") for k in TEXT_FIELDS}
    form["id_type"] = form["id_type"] or "cccd"
    errors, kept, message, previous, status = {}, {}, None, None, 200
    if request.method == "POST" and chosen is not None:
        posted_unit = request.form.get("unit_code", "")
        if posted_unit and s.scalar(select(Unit.id).where(Unit.code == posted_unit)) not in desks:
            abort(403)   # another unit's desk: refused before the form is read, as the use case would
        proc, version = chosen
        result = _act(actor, proc, version, form)
        if not isinstance(result, tuple):
            return result
        message, errors, kept, previous, status = result
    notices = counter.notices_of_day(s, policy.units_for(s, actor, "counter_notice.issue"), today)
    return render_template(
        "reception.html", offered=offered, listed=listed, chosen=chosen[0] if chosen else None,
        details=_details(s, *chosen) if chosen else None, form=form, errors=errors, kept=kept, message=message,
        previous=previous, units=[s.get(Unit, u) for u in desks], search=search, notices=notices,
        ticked=set(request.form.getlist("thanh-phan")), id_types=applicant_rules.ID_TYPES,
        phone_hint=applicant_rules.PHONE_HINT, limits=applicant_rules), status


def _act(actor, proc, version, form: dict):
    """Do what the button pressed says; a redirect when it was done, else what the page shows:
    (message, errors, kept uploads, the earlier guidance, status)."""
    s = db.session()
    comps, file_errors, kept = uploaded_components("file_", [c["code"] for c in _components(version)])
    action = request.form.get("action", "tiep-nhan")
    try:
        data = forms.parse(forms.ReceptionForm, request.form)
    except InvalidInput as exc:
        if action in NOTICE_ACTIONS:
            return i18n.ERROR["invalid_input"], dict(exc.errors), kept, None, 422
        # Every problem at once: the applicant's fields, the files, and the required scans still missing.
        message, errors = _missing_scans(version, comps)
        return message, {**exc.errors, **file_errors, **errors}, kept, None, 422
    if action not in NOTICE_ACTIONS and file_errors:
        return i18n.ERROR["invalid_input"], file_errors, kept, None, 422
    try:
        if action in NOTICE_ACTIONS:
            notice = counter.issue_counter_notice(
                s, actor_id=actor.id, kind=NOTICE_ACTIONS[action], procedure_code=proc.code,
                applicant=forms.ReceptionForm.applicant(data), items=forms.supplement_items(request.form, _components(version)),
                reason=data["reason"], unit_code=data["unit_code"], acknowledge_repeat=data["acknowledge_repeat"])
            return redirect(url_for("ui.counter_notice_done", notice_id=notice.id))
        dossier = dossiers.receive_dossier(
            s, actor_id=actor.id, procedure_code=proc.code, channel=data["channel"],
            applicant=forms.ReceptionForm.applicant(data), components=comps, unit_code=data["unit_code"],
            forward=action == "chuyen-xu-ly")
    except counter.GuidanceAlreadyGiven as exc:
        form_refusal(exc)
        return i18n.ERROR[exc.code], {}, kept, counter.visible_notice(s, actor, exc.previous.id), 409
    except DomainError as exc:
        message, errors = form_refusal(exc)
        errors.update(exc.details.get("messages_vi") or {})
        return message, _item_rows(errors, _components(version)), kept, None, exc.http_status
    if action == "chuyen-xu-ly":
        flash(f"Đã tiếp nhận hồ sơ {dossier.code} và chuyển xử lý.", "success")
    else:
        flash(f"Đã tiếp nhận hồ sơ {dossier.code}.", "success")
    return redirect(url_for("ui.receipt_done", code=dossier.code))


def _missing_scans(version, comps: list[dict]) -> tuple[str, dict]:
    """The required components without a scan, as the use case would name them (with the page's message)."""
    try:
        validate_components(_components(version), comps, require_all=True)
    except InvalidInput as exc:
        return error_text(exc), field_errors(exc)
    return i18n.ERROR["invalid_input"], {}


def _item_rows(errors: dict, components: list[dict]) -> dict:
    """Errors of the listed items (`items.3.problem`, in the order forms.supplement_items lists them) moved
    to the row of the form they came from: a component's row (`thieu.CODE`) or a document outside the
    list (`ngoai.N`), so each message stands next to what it is about."""
    rows = [f"thieu.{c['code']}" for c in components if c["code"] in request.form.getlist("thanh-phan")]
    rows += [f"ngoai.{i}" for i in range(1, forms.OUTSIDE_ROWS + 1) if request.form.get(f"ngoai-ten-{i}", "").strip()]
    out: dict[str, str] = {}
    for key, text in errors.items():
        parts = key.split(".")
        if parts[0] == "items" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(rows):
            row = rows[int(parts[1])]
            out[row] = f"{out[row]} {text}" if row in out else text
        else:
            out[key] = text
    return out


@bp.get("/tiep-nhan/thu-tuc.json")
@staff_required
def reception_procedures(actor):
    """The procedures accepting dossiers today, for the type-ahead: code, name, field and the folded text
    it matches typed words against (diacritics ignored)."""
    _desks(actor)
    offered = catalog.procedures_accepting(db.session(), clock.local(clock.now()).date())
    return jsonify([{"code": p.code, "name": p.name, "field": p.field, "key": fold(f"{p.code} {p.name} {p.field}")}
                    for p, _ in offered])


@bp.get("/tiep-nhan/thu-tuc/<code>.json")
@staff_required
def reception_procedure(actor, code):
    """A procedure accepting dossiers today, as the desk's form shows it (the type-ahead fills the form
    with it, without reloading the page)."""
    _desks(actor)
    s = db.session()
    offered = catalog.procedures_accepting(s, clock.local(clock.now()).date())
    chosen = next(((p, v) for p, v in offered if p.code == code), None)
    if chosen is None:
        abort(404)
    return jsonify(_details(s, *chosen))


@bp.get("/ho-so/<code>/da-tiep-nhan")
@staff_required
def receipt_done(actor, code):
    dossier = visible(actor, code)
    s = db.session()
    # Who holds the dossier now: its open steps with their units.
    holders = s.execute(select(HumanTask, Unit).join(Unit, Unit.id == HumanTask.unit_id).where(
        HumanTask.dossier_id == dossier.id, HumanTask.completed_at.is_(None)).order_by(HumanTask.started_at)).all()
    return render_template("received.html", dossier=dossier, procedure=s.get(Procedure, dossier.procedure_id),
                           holders=holders, notice=None)


def _notice(actor, notice_id: int):
    try:
        return counter.visible_notice(db.session(), actor, notice_id)
    except NotFound:
        abort(404)


@bp.get("/tiep-nhan/phieu/<int:notice_id>")
@staff_required
def counter_notice_done(actor, notice_id):
    """The counter notice just issued (or found again): its number, what happens next, the form to print."""
    view = _notice(actor, notice_id)
    return render_template("received.html", dossier=None, notice=view)


@bp.get("/tiep-nhan/phieu/<int:notice_id>/in")
@staff_required
def print_counter_notice(actor, notice_id):
    """Form 02 or 03 of a counter notice, laid out as the dossier's forms."""
    view = _notice(actor, notice_id)
    form = "02" if view.notice.kind == counter.GUIDANCE else "03"
    return render_template(f"forms/f{form}.html", notice=view.notice, notice_number=view.number,
                           officer=view.officer, unit=view.unit, procedure=view.procedure,
                           title=FORMS[form])
