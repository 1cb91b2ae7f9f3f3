"""The reception desk (tiếp nhận): choose the procedure, type the applicant's details, scan the
components, receive — and the receipt page with form 01."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from engine import catalog, clock, dossiers
from engine.access import policy
from engine.errors import DomainError
from engine.store.models import Procedure, Unit
from engine.text import fold

from . import db, forms, i18n
from .common import bp, form_refusal, staff_required, uploaded_components, visible


@bp.route("/tiep-nhan", methods=["GET", "POST"])
@staff_required
def reception(actor):
    s = db.session()
    desks = policy.units_for(s, actor, "dossier.receive")
    if not desks:
        abort(403)
    offered = catalog.procedures_accepting(s, clock.local(clock.now()).date())
    code = request.values.get("thu-tuc", "")
    chosen = next((p for p, _ in offered if p.code == code), None)
    search = request.args.get("tim", "").strip()
    if search:
        offered = [(p, v) for p, v in offered if fold(search) in fold(f"{p.code} {p.name} {p.field}")]
        if len(offered) == 1 and chosen is None:
            chosen = offered[0][0]
    form = {k: request.form.get(k, "") for k in ("name", "id_number", "phone", "email", "address", "channel")}
    errors, kept, message = {}, {}, None
    if request.method == "POST" and chosen is not None:
        comps, errors, kept = uploaded_components("file_", [c["code"] for c in chosen.components])
        if not errors:
            try:
                data = forms.parse(forms.ReceptionForm, request.form)
                dossier = dossiers.receive_dossier(
                    s, actor_id=actor.id, procedure_code=chosen.code, channel=data["channel"],
                    applicant={k: data[k] for k in ("name", "id_number", "phone", "email", "address")},
                    components=comps, unit_code=data["unit_code"])
            except DomainError as exc:
                message, errors = form_refusal(exc)
            else:
                flash(f"Đã tiếp nhận hồ sơ {dossier.code}.", "success")
                return redirect(url_for("ui.receipt_done", code=dossier.code))
        else:
            message = i18n.ERROR["invalid_input"]
    preview = catalog.working_calendar(s).appointment(clock.now(), chosen.statutory_days) if chosen else None
    units = [s.get(Unit, u) for u in desks]
    status = 422 if message else 200
    return render_template("reception.html", offered=offered, chosen=chosen, form=form, errors=errors, kept=kept,
                           message=message, preview=preview, units=units, search=search), status


@bp.get("/ho-so/<code>/da-tiep-nhan")
@staff_required
def receipt_done(actor, code):
    dossier = visible(actor, code)
    return render_template("received.html", dossier=dossier, procedure=db.session().get(Procedure, dossier.procedure_id))
