"""Catalog administration screens: procedures and their versions, legal bases and their expiry,
export and import of the catalog as JSON."""
from __future__ import annotations

import json
from datetime import date

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from engine import catalog, clock
from engine.access import policy
from engine.errors import DomainError

from . import db, i18n
from .common import error_text, staff_required

bp = Blueprint("admin", __name__, url_prefix="/quan-tri")


def require_admin(actor):
    policy.require(actor, "catalog.manage")


@bp.get("/thu-tuc")
@staff_required
def procedures(actor):
    require_admin(actor)
    s = db.session()
    today = clock.local(clock.now()).date()
    rows = []
    for proc in catalog.list_procedures(s):
        try:
            in_force, reason = catalog.version_in_force(s, proc, today), None
        except DomainError as exc:  # the reason it accepts no dossiers is shown beside it
            in_force, reason = None, exc.message
        rows.append({"procedure": proc, "in_force": in_force, "reason": reason})
    return render_template("admin_procedures.html", rows=rows, warnings=catalog.basis_warnings(s, today), today=today)


@bp.get("/thu-tuc/<code>")
@staff_required
def procedure(actor, code):
    require_admin(actor)
    proc = catalog.get_procedure(db.session(), code)
    return render_template("admin_procedure.html", procedure=proc, today=clock.local(clock.now()).date())


def _act(code, action, done: str):
    try:
        action()
    except DomainError as exc:
        db.session().rollback()
        flash(error_text(exc) if exc.code not in ("version_immutable", "invalid_input") else exc.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for("admin.procedure", code=code))


@bp.post("/thu-tuc/<code>/phien-ban/<int:number>/cong-bo")
@staff_required
def publish(actor, code, number):
    require_admin(actor)
    try:
        effective = date.fromisoformat(request.form.get("effective_from", ""))
    except ValueError:
        flash("Chọn ngày có hiệu lực.", "error")
        return redirect(url_for("admin.procedure", code=code))
    return _act(code, lambda: catalog.publish_version(db.session(), actor_id=actor.id, procedure_code=code, number=number,
                                                  effective_from=effective),
                f"Đã công bố phiên bản {number}, có hiệu lực từ {i18n.d(effective)}.")


@bp.post("/thu-tuc/<code>/phien-ban/<int:number>/ngung")
@staff_required
def retire(actor, code, number):
    require_admin(actor)
    return _act(code, lambda: catalog.retire_version(db.session(), actor_id=actor.id, procedure_code=code, number=number),
                f"Đã ngừng áp dụng phiên bản {number} cho hồ sơ mới; hồ sơ đang xử lý giữ phiên bản của mình.")


@bp.post("/thu-tuc/<code>/can-cu")
@staff_required
def legal_basis(actor, code):
    require_admin(actor)
    raw = request.form.get("expires_on", "")
    try:
        expires = date.fromisoformat(raw) if raw else None
    except ValueError:
        flash("Ngày hết hiệu lực không hợp lệ.", "error")
        return redirect(url_for("admin.procedure", code=code))
    number = request.form.get("number", "")
    return _act(code, lambda: catalog.update_legal_document(db.session(), actor_id=actor.id, number=number,
                                                          expires_on=expires),
                f"Đã cập nhật hiệu lực của văn bản {number}.")


@bp.get("/thu-tuc.json")
@staff_required
def export(actor):
    require_admin(actor)
    body = json.dumps(catalog.export_catalog(db.session()), ensure_ascii=False, indent=2)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": "attachment; filename=danh-muc-thu-tuc.json"})


@bp.post("/thu-tuc/nhap")
@staff_required
def import_(actor):
    require_admin(actor)
    upload = request.files.get("catalog")
    try:
        data = json.loads(upload.read().decode("utf-8")) if upload and upload.filename else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if data is None:
        flash("Tệp danh mục phải là JSON (UTF-8) xuất từ hệ thống.", "error")
        return redirect(url_for("admin.procedures"))
    try:
        done = catalog.import_catalog(db.session(), actor_id=actor.id, data=data)
    except DomainError as exc:
        db.session().rollback()
        flash("Không nhập được: " + "; ".join(f"{k}: {v}" for k, v in (exc.errors or {}).items())
              + ". Danh mục không thay đổi.", "error")
    else:
        flash(f"Đã nhập {len(done)} thủ tục.", "success")
    return redirect(url_for("admin.procedures"))


@bp.route("/thu-tuc/<code>/chuyen-phien-ban/<int:number>", methods=["GET", "POST"])
@staff_required
def migrate(actor, code, number):
    """Dry run first (GET), then the move of the dossiers that can move (POST)."""
    require_admin(actor)
    from engine.dossiers.migration import migrate_dossiers

    s = db.session()
    chosen = request.form.getlist("ma") if request.method == "POST" else None
    try:
        verdicts = migrate_dossiers(s, actor_id=actor.id, procedure_code=code, to_number=number, codes=chosen,
                                    dry_run=request.method != "POST")
    except DomainError as exc:
        s.rollback()
        flash(error_text(exc) if exc.code != "invalid_input" else "Chỉ chuyển được sang phiên bản đã công bố.", "error")
        return redirect(url_for("admin.procedure", code=code))
    if request.method == "POST":
        moved = sum(1 for v in verdicts if v.moved)
        flash(f"Đã chuyển {moved} hồ sơ sang phiên bản {number}; thời hạn của bước đang xử lý được giữ nguyên.",
              "success")
    return render_template("admin_migrate.html", procedure=catalog.get_procedure(s, code), number=number,
                           verdicts=verdicts, applied=request.method == "POST")


@bp.get("/thu-tuc/<code>/so-sanh")
@staff_required
def compare(actor, code):
    require_admin(actor)
    a, b = request.args.get("a", type=int), request.args.get("b", type=int)
    if a is None or b is None:
        abort(404)
    diff = catalog.diff_versions(db.session(), code, a, b)
    changed = [c["step"] for c in diff["changed"]]
    markers_a = {"changed": changed, "removed": [s["step"] for s in diff["removed"]]}
    markers_b = {"changed": changed, "added": [s["step"] for s in diff["added"]]}
    return render_template("admin_diff.html", procedure=catalog.get_procedure(db.session(), code), a=a, b=b, diff=diff,
                           markers_a=markers_a, markers_b=markers_b)


@bp.get("/thu-tuc/<code>/phien-ban/<int:number>.bpmn")
@staff_required
def version_bpmn(actor, code, number):
    require_admin(actor)
    return Response(catalog.get_version(db.session(), code, number).bpmn_xml, mimetype="application/xml")
