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
from engine.workflow import bpmn_xml, validation

from . import db, i18n
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
    roles = [[role, i18n.ROLE.get(role, role)] for role in sorted(catalog.known_roles(s))]
    decisions = [[value, label] for value, label in i18n.DECISION.items()]
    # Hours in a working day: the panel shows a step of P1DT4H as hours of this length.
    day_hours = load_calendar(s).day_seconds / 3600
    return render_template("designer.html", procedure=proc, roles=roles, units=units, day_hours=day_hours,
                           decisions=decisions)


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
    data = file.read()
    try:
        version, _ = catalog.submit_version(db.session(), actor_id=actor.id, procedure_code=code, bpmn=data,
                                            notes=request.form.get("notes", ""))
    except BpmnInvalid as exc:
        db.session().rollback()
        labels = element_labels(data)
        flash("Tệp chưa chạy được: " + "; ".join(problem_text(p, labels) for p in exc.problems[:10]), "error")
    except DomainError as exc:
        db.session().rollback()
        flash(error_text(exc), "error")
    else:
        flash(f"Đã lưu bản nháp phiên bản {version.number}.", "success")
    return redirect(url_for("designer.modeler", code=code))


# What a person calls each kind of element (static/modeler.js names them the same way).
_KIND_VI = {
    "lane": "Làn", "sequenceFlow": "Nhánh", "participant": "Vùng quy trình", "process": "Quy trình",
    "exclusiveGateway": "Cổng rẽ", "parallelGateway": "Cổng rẽ", "inclusiveGateway": "Cổng rẽ",
    "eventBasedGateway": "Cổng rẽ", "complexGateway": "Cổng rẽ", "subProcess": "Bước", "callActivity": "Bước",
}


def _kind_vi(tag: str) -> str | None:
    if tag in _KIND_VI:
        return _KIND_VI[tag]
    if tag == "task" or tag.endswith("Task"):
        return "Bước"
    if tag.endswith("Event"):
        return "Sự kiện"
    return None


def element_labels(xml: bytes | str) -> dict[str, str]:
    """Element id → how a person names it: 'Bước «Thẩm định hồ sơ»', 'Nhánh «A» → «B»'. An unnamed
    element keeps its id (the only handle a person has on it in the tool that drew the file)."""
    try:
        _, root = bpmn_xml.read_safely(xml)
    except bpmn_xml.UnsafeXml:
        return {}
    elements = [el for el in root.iter() if isinstance(el.tag, str) and el.get("id")
                and el.tag.startswith(f"{{{bpmn_xml.BPMN_NS}}}")]
    names = {el.get("id"): (el.get("name") or "").strip() for el in elements}
    labels = {}
    for el in elements:
        kind = _kind_vi(bpmn_xml.local(el.tag))
        if kind is None:
            continue
        eid, name = el.get("id"), names[el.get("id")]
        source, target = names.get(el.get("sourceRef") or ""), names.get(el.get("targetRef") or "")
        if name and kind == "Nhánh" and source:  # branch names repeat ("Trả lại"): say where it leaves from
            labels[eid] = f"{kind} «{name}» sau «{source}»"
        elif name:
            labels[eid] = f"{kind} «{name}»"
        elif kind == "Nhánh" and source and target:
            labels[eid] = f"{kind} «{source}» → «{target}»"
        else:
            labels[eid] = f"{kind} chưa đặt tên (mã {eid})"
    return labels


def problem_text(problem: dict, labels: dict[str, str]) -> str:
    """'Bước «Thẩm định hồ sơ»: Bước chưa có thời hạn xử lý…' (a problem of the whole file: the message)."""
    eid = problem.get("element_id")
    label = labels.get(eid) if eid else None
    if eid and label is None:
        label = f"Phần tử {eid}"
    return f"{label}: {problem['message_vi']}" if label else problem["message_vi"]
