"""A dossier's pages: the dossier with its diagram and control slip, its files, the desk's actions
(supplement received, apology, withdrawal, result handed over, the leader's refusal), the printable
forms 01–06 and the register (form 07)."""
from __future__ import annotations

import io
from datetime import datetime
from urllib.parse import quote

import segno
from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from engine import clock, dossiers
from engine.access import policy
from engine.catalog import list_procedures
from engine.dossiers import anchors, audit
from engine.errors import DomainError, InvalidInput
from engine.reporting import views
from engine.store import files
from engine.store.models import DossierFile, ProcedureVersion, SupplementRequest, Unit

from . import db, forms, i18n
from .admin import audit_problem_vi
from .common import bp, form_refusal, staff_required, uploaded_components, visible
from .exports import table_response


@bp.get("/ho-so/<code>")
@staff_required
def dossier_page(actor, code):
    dossier = visible(actor, code)
    return render_template("dossier.html", dossier=dossier, message=None, errors={},
                           audit_problem=audit_problem(dossier),
                           **views.dossier_page(db.session(), dossier, clock.now()))


def audit_problem(dossier) -> str | None:
    """What is wrong with the dossier's audit log (its first bad event), in Vietnamese; None when intact."""
    check = audit.check_chain(db.session(), dossier.id)
    return None if check.intact else audit_problem_vi(check)


@bp.get("/ho-so/<code>/quy-trinh.bpmn")
@staff_required
def dossier_bpmn(actor, code):
    dossier = visible(actor, code)
    version = db.session().get(ProcedureVersion, dossier.version_id)
    return Response(version.bpmn_xml, mimetype="application/xml")


@bp.get("/tep/<int:file_id>")
@staff_required
def file_view(actor, file_id):
    s = db.session()
    row = s.get(DossierFile, file_id)
    if row is None:
        abort(404)
    visible(actor, dossier_id=row.dossier_id)
    response = Response(files.open_file(row.storage_key), mimetype=row.content_type)
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(row.filename)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def dossier_action(code: str, action):
    """Run a desk action; on a refusal re-show the dossier page with the reason in Vietnamese."""
    actor = g.actor
    dossier = visible(actor, code)
    try:
        action(dossier)
    except DomainError as exc:
        message, errors = form_refusal(exc)
        db.session().expire_all()
        dossier = visible(actor, code)
        ctx = views.dossier_page(db.session(), dossier, clock.now())
        ctx["markers"] = {"done": [], "current": [], "late": []}
        return render_template("dossier.html", dossier=dossier, message=message, errors=errors,
                               audit_problem=audit_problem(dossier), **ctx), 422
    return redirect(url_for("ui.dossier_page", code=code))


@bp.post("/ho-so/<code>/bo-sung")
@staff_required
def record_supplement(actor, code):
    def act(dossier):
        known = [c["code"] for c in db.session().get(ProcedureVersion, dossier.version_id).meta["components"]]
        comps, errors, _ = uploaded_components("file_", known)
        if errors:
            raise InvalidInput("bad files", errors=errors)
        done = dossiers.deliver_supplement(db.session(), actor_id=actor.id, dossier_code=code, components=comps,
                                           note=forms.parse(forms.NoteForm, request.form)["note"])
        timely = db.session().scalar(select(SupplementRequest.within_window)
                                     .where(SupplementRequest.dossier_id == done.id))
        if timely:
            flash(f"Đã nhận hồ sơ bổ sung; thời hạn giải quyết được tính lại từ hôm nay, hẹn trả {i18n.dt(done.due_at)}.",
                  "success")
        else:
            flash("Đã nhận hồ sơ bổ sung. Yêu cầu bổ sung muộn nên thời hạn giải quyết không được tính lại.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/xin-loi")
@staff_required
def record_apology(actor, code):
    def act(dossier):
        try:
            form = forms.parse(forms.ApologyForm, request.form)
        except InvalidInput:
            raise InvalidInput("bad date", errors={"new_due_at": "date"}) from None
        dossiers.issue_apology(db.session(), actor_id=actor.id, dossier_code=code, reason=form["reason"],
                               new_due_at=form["new_due"], signed_by_id=form["signed_by_id"])
        flash("Đã ghi nhận văn bản xin lỗi và ngày hẹn trả mới.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/tra-ket-qua")
@staff_required
def record_return(actor, code):
    def act(dossier):
        form = forms.parse(forms.ReturnForm, request.form)
        dossiers.return_result(db.session(), actor_id=actor.id, dossier_code=code, note=form["note"], via=form["via"])
        flash("Đã trả kết quả cho công dân.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/rut")
@staff_required
def record_withdrawal(actor, code):
    def act(dossier):
        form = forms.parse(forms.WithdrawForm, request.form)
        dossiers.withdraw_dossier(db.session(), actor_id=actor.id, dossier_code=code, reason=form["reason"],
                                  requested_at=form["requested_on"])
        flash("Đã dừng giải quyết hồ sơ theo đề nghị của công dân.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/tu-choi")
@staff_required
def record_refusal(actor, code):
    def act(dossier):
        dossiers.refuse_dossier(db.session(), actor_id=actor.id, dossier_code=code,
                                reason=forms.parse(forms.ReasonForm, request.form)["reason"])
        flash("Đã từ chối giải quyết hồ sơ; in phiếu từ chối (mẫu 03) để gửi công dân.", "success")
    return dossier_action(code, act)


# --- printable forms -----------------------------------------------------------------------------
FORMS = {"01": "Giấy tiếp nhận hồ sơ và hẹn trả kết quả", "02": "Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ",
         "03": "Phiếu từ chối tiếp nhận, giải quyết hồ sơ", "04": "Văn bản xin lỗi và đề nghị gia hạn thời gian giải quyết",
         "05": "Thông báo dừng giải quyết hồ sơ", "06": "Phiếu kiểm soát quá trình giải quyết hồ sơ"}


def qr_svg(text: str) -> str:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=3, xmldecl=False, svgns=False, nl=False)
    return out.getvalue().decode()


@bp.get("/ho-so/<code>/in/<form>")
@staff_required
def print_form(actor, code, form):
    if form not in FORMS:
        abort(404)
    dossier = visible(actor, code)
    ctx = views.dossier_page(db.session(), dossier, clock.now())
    lookup = url_for("ui.lookup", ma=dossier.code, _external=True)
    return render_template(f"forms/f{form}.html", dossier=dossier, title=FORMS[form], qr=qr_svg(lookup), **ctx)


@bp.get("/so-theo-doi")
@staff_required
def register(actor):
    s = db.session()
    today = clock.local(clock.now()).date()
    try:
        start = datetime.strptime(request.args.get("tu", ""), "%Y-%m-%d").date()
    except ValueError:
        start = today.replace(day=1)
    try:
        end = datetime.strptime(request.args.get("den", ""), "%Y-%m-%d").date()
    except ValueError:
        end = today
    field = request.args.get("linh-vuc", "")
    rows = views.register(s, policy.units_for(s, actor, "register.view"), start, end, field)
    if request.args.get("xuat") in ("csv", "xlsx"):
        return table_response(request.args["xuat"], f"so-theo-doi-{start:%Y%m%d}-{end:%Y%m%d}",
                              f"Sổ theo dõi hồ sơ · {field or 'Tất cả lĩnh vực'} · {i18n.d(start)} – {i18n.d(end)}",
                              ["Số", "Mã hồ sơ", "Tên TTHC", "Tên cá nhân, tổ chức", "Địa chỉ, số điện thoại",
                               "Cơ quan chủ trì", "Nhận hồ sơ", "Hẹn trả", "Trả kết quả", "Trước/đúng/quá hạn",
                               "Phương thức nhận kết quả"],
                              [[dz.register_no or "", dz.code, p.name, dz.applicant.get("name", ""),
                                f"{dz.applicant.get('address', '')} {dz.applicant.get('phone', '')}".strip(),
                                u.name, i18n.dt(dz.received_at), i18n.dt(dz.due_at), i18n.dt(dz.returned_at),
                                i18n.RESULT[dz.finish_result] if dz.finish_result else "—",
                                i18n.RETURNED_VIA.get(dz.returned_via, "—")] for dz, p, u in rows])
    fields = sorted({p.field for p in list_procedures(s)})
    units = policy.units_for(s, actor, "register.view")
    unit = s.get(Unit, units[0]) if len(units) == 1 else None
    return render_template("forms/f07.html", rows=[(dz, p) for dz, p, _ in rows], start=start, end=end, field=field,
                           unit=unit, seal=anchors.latest(s),  # the audit logs' latest anchor, printed in the footer
                           fields=fields, title="Sổ theo dõi hồ sơ")
