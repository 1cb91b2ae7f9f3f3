"""Process designer screens: the bpmn-js modeler with motcua's properties, server validation, saving
drafts, and plain upload of a .bpmn file made in another tool."""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from engine import catalog
from engine.access import policy
from engine.catalog.calendar import load_calendar
from engine.errors import BpmnInvalid, DomainError
from engine.store.models import Unit
from engine.workflow import validation

from . import db
from .common import error_text, staff_required

bp = Blueprint("designer", __name__, url_prefix="/thiet-ke")


def require_designer(actor):
    policy.require(actor, "process.design")


@bp.get("")
@staff_required
def index(actor):
    require_designer(actor)
    return render_template("designer_index.html", procedures=catalog.list_procedures(db.session()))


@bp.get("/<code>")
@staff_required
def modeler(actor, code):
    require_designer(actor)
    s = db.session()
    proc = catalog.get_procedure(s, code)
    units = [[code, f"{code} · {name}"] for code, name in s.execute(
        select(Unit.code, Unit.name).where(Unit.active.is_(True)).order_by(Unit.code)).all()]
    return render_template("designer.html", procedure=proc, roles=sorted(catalog.known_roles(s)), units=units)


@bp.get("/<code>/quy-trinh.bpmn")
@staff_required
def latest_bpmn(actor, code):
    require_designer(actor)
    proc = catalog.get_procedure(db.session(), code)
    if not proc.versions:
        abort(404)
    return Response(proc.versions[-1].bpmn_xml, mimetype="application/xml")


def _bpmn_from_json() -> str:
    data = request.get_json(silent=True) or {}
    bpmn = data.get("bpmn")
    if not isinstance(bpmn, str) or not bpmn.strip():
        abort(400)
    return bpmn


@bp.post("/<code>/kiem-tra")
@staff_required
def check(actor, code):
    require_designer(actor)
    s = db.session()
    proc = catalog.get_procedure(s, code)
    result = validation.validate(_bpmn_from_json(), proc.statutory_days, catalog.known_roles(s), load_calendar(s),
                                 catalog.known_units(s))
    return jsonify({"valid": result.valid, "problems": [p.as_dict() for p in result.problems]})


@bp.post("/<code>/luu")
@staff_required
def save(actor, code):
    require_designer(actor)
    data = request.get_json(silent=True) or {}
    try:
        version, problems = catalog.submit_version(db.session(), actor_id=actor.id, procedure_code=code,
                                                   bpmn=_bpmn_from_json(), notes=str(data.get("notes", ""))[:4000])
    except BpmnInvalid as exc:
        db.session().rollback()
        return jsonify({"detail": "Quy trình chưa chạy được; sửa các lỗi được đánh dấu rồi lưu lại.",
                        "errors": exc.problems}), 422
    return jsonify({"number": version.number, "problems": problems}), 201


@bp.post("/<code>/tai-len")
@staff_required
def upload(actor, code):
    require_designer(actor)
    file = request.files.get("bpmn")
    if file is None or not file.filename:
        flash("Chọn tệp .bpmn cần tải lên.", "error")
        return redirect(url_for("designer.modeler", code=code))
    try:
        version, _ = catalog.submit_version(db.session(), actor_id=actor.id, procedure_code=code, bpmn=file.read(),
                                            notes=request.form.get("notes", ""))
    except BpmnInvalid as exc:
        db.session().rollback()
        flash("Tệp chưa chạy được: " + "; ".join(f"{p['element_id'] or ''} {p['message_vi']}".strip()
                                                  for p in exc.problems[:10]), "error")
    except DomainError as exc:
        db.session().rollback()
        flash(error_text(exc), "error")
    else:
        flash(f"Đã lưu bản nháp phiên bản {version.number}.", "success")
    return redirect(url_for("designer.modeler", code=code))
