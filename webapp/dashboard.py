"""Manager dashboard: headline figures, monthly trend, per-unit and per-procedure tables with
drill-down to the dossiers behind every number, today's overdue lists, CSV/XLSX export."""
from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select

from engine import clock
from engine.access import directory, policy
from engine.reporting import metrics, views
from engine.store.models import Procedure, Unit

from . import db, i18n
from .common import staff_required
from .exports import table_response

bp = Blueprint("dashboard", __name__)

KIND_LABELS = {
    "received": "Tiếp nhận", "received_online": "Tiếp nhận trực tuyến", "received_counter": "Tiếp nhận trực tiếp",
    "received_post": "Tiếp nhận qua bưu chính", "finished": "Đã giải quyết", "finished_early": "Giải quyết trước hạn",
    "finished_on_time": "Giải quyết đúng hạn", "finished_late": "Giải quyết quá hạn",
    "finished_late_apologized": "Quá hạn có văn bản xin lỗi", "in_progress": "Đang giải quyết",
    "in_progress_overdue": "Đang giải quyết quá hạn", "withdrawn": "Dừng giải quyết",
    "overdue_without_apology": "Quá hạn chưa xin lỗi", "supplemented": "Có yêu cầu bổ sung",
    "digitised": "Đã số hóa",
}
COLUMNS = [("received", "Tiếp nhận", lambda f: f["received"]["total"]),
           ("received_online", "Trực tuyến", lambda f: f["received"]["online"]),
           ("finished_early", "Trước hạn", lambda f: f["finished"]["early"]),
           ("finished_on_time", "Đúng hạn", lambda f: f["finished"]["on_time"]),
           ("finished_late", "Quá hạn", lambda f: f["finished"]["late"]),
           ("in_progress", "Đang giải quyết", lambda f: f["in_progress"]["in_time"]),
           ("in_progress_overdue", "Đang quá hạn", lambda f: f["in_progress"]["overdue"]),
           ("supplemented", "Yêu cầu bổ sung", lambda f: f["supplement_requests"]),
           ("overdue_without_apology", "Quá hạn chưa xin lỗi", lambda f: f["overdue_without_apology"])]


def _scope(actor):
    """The unit whose figures are shown (?don-vi=, default the first the user oversees) and the units
    offered: those where the user holds the reporting permission, each with the units below it."""
    s = db.session()
    allowed = policy.units_for(s, actor, "reports.view")
    if not allowed:
        abort(403)
    units = dict(s.execute(select(Unit.id, Unit.code).where(Unit.id.in_(allowed))).all())
    codes = sorted(units[u] for u in directory.top_units(s, allowed))
    unit_code = request.args.get("don-vi") or codes[0]
    if unit_code not in units.values():
        abort(403)
    return unit_code, codes


def _period():
    today = clock.local(clock.now()).date()
    try:
        start = date.fromisoformat(request.args.get("tu", ""))
    except ValueError:
        start = today.replace(day=1)
    try:
        end = date.fromisoformat(request.args.get("den", ""))
    except ValueError:
        end = today
    if end < start:
        start, end = end, start
    return start, min(end, start + timedelta(days=3 * 366))


def _personal(session, actor) -> set[int]:
    """The units whose dossiers the caller may open: only there are applicants named (an administrator
    overseeing the figures sees codes, not citizens)."""
    return set(policy.units_for(session, actor, "dossier.view"))


@bp.get("/bang-dieu-khien")
@staff_required
def dashboard(actor):
    unit_code, codes = _scope(actor)
    start, end = _period()
    s = db.session()
    procedure_code = request.args.get("thu-tuc") or None
    field = request.args.get("linh-vuc") or None
    head = metrics.summary(s, start, end, unit_code=unit_code, procedure_code=procedure_code, field=field)
    trend = metrics.monthly(s, max(start, end.replace(day=1) - timedelta(days=365)).replace(day=1), end,
                            unit_code=unit_code, procedure_code=procedure_code, field=field)
    unit_ids = metrics.units_under(s, unit_code)
    per_unit = [r for r in metrics.by_unit(s, start, end, procedure_code, field) if r["unit_id"] in unit_ids]
    per_procedure = metrics.by_procedure(s, start, end, unit_code, field)
    fields = sorted(set(s.scalars(select(Procedure.field))))
    names = dict(s.execute(select(Unit.code, Unit.name)).all())
    pnames = dict(s.execute(select(Procedure.code, Procedure.name)).all())
    today = metrics.due_soon(s, unit_ids, clock.now())
    late_opinions = views.late_consultations(s, unit_ids, clock.now())
    steps = metrics.steps_by_unit(s, start, end, unit_ids)
    peak = max([m["received"] for m in trend] + [1])
    return render_template("dashboard.html", personal=_personal(s, actor), head=head, trend=trend, peak=peak, per_unit=per_unit,
                           per_procedure=per_procedure, columns=COLUMNS, names=names, pnames=pnames, today=today,
                           start=start, end=end, unit_code=unit_code, codes=codes, procedure_code=procedure_code,
                           field=field, fields=fields, updated=clock.now(), late_opinions=late_opinions, steps=steps)


@bp.get("/bang-dieu-khien/danh-sach")
@staff_required
def drill_down(actor):
    unit_code, _ = _scope(actor)
    start, end = _period()
    kind = request.args.get("loai", "")
    if kind not in metrics.KINDS:
        abort(404)
    page = max(1, request.args.get("trang", 1, type=int) or 1)
    scope = dict(unit_code=unit_code, procedure_code=request.args.get("thu-tuc") or None,
                 field=request.args.get("linh-vuc") or None)
    fmt = request.args.get("xuat")
    personal = _personal(db.session(), actor)
    if fmt in ("csv", "xlsx"):
        rows, _ = metrics.dossier_list(db.session(), kind, start, end, limit=100_000, **scope)
        return table_response(fmt, f"{kind}-{unit_code}-{start:%Y%m%d}-{end:%Y%m%d}", KIND_LABELS[kind],
                              ["Mã hồ sơ", "Chủ hồ sơ", "Tiếp nhận", "Hẹn trả", "Giải quyết xong", "Kết quả", "Trạng thái"],
                              [[d.code, d.applicant.get("name", "") if d.unit_id in personal else "",
                                i18n.dt(d.received_at), i18n.dt(d.due_at),
                                i18n.dt(d.finished_at), i18n.RESULT[d.finish_result] if d.finish_result else "",
                                i18n.STATUS[d.status]] for d in rows])
    rows, total = metrics.dossier_list(db.session(), kind, start, end, limit=50, offset=(page - 1) * 50, **scope)
    return render_template("drilldown.html", personal=personal, rows=rows, total=total, kind=kind, label=KIND_LABELS[kind],
                           start=start, end=end, unit_code=unit_code, page=page, pages=max(1, -(-total // 50)))


@bp.get("/bang-dieu-khien/xuat.<fmt>")
@staff_required
def export(actor, fmt):
    if fmt not in ("csv", "xlsx"):
        abort(404)
    unit_code, _ = _scope(actor)
    start, end = _period()
    s = db.session()
    table = request.args.get("bang", "don-vi")
    procedure_code, field = request.args.get("thu-tuc") or None, request.args.get("linh-vuc") or None
    if table == "don-vi":
        unit_ids = metrics.units_under(s, unit_code)
        rows = [r for r in metrics.by_unit(s, start, end, procedure_code, field) if r["unit_id"] in unit_ids]
        first = "Đơn vị"
    elif table == "thu-tuc":
        rows, first = metrics.by_procedure(s, start, end, unit_code, field), "Thủ tục"
    else:
        abort(404)
    header = [first] + [label for _, label, _ in COLUMNS] + ["Tỷ lệ đúng hạn", "Chỉ số TT 01 (thang 18)", "Xếp loại"]
    data = [[r["key"]] + [get(r) for _, _, get in COLUMNS] +
            [r["on_time_rate"], r["tt01"]["scaled_to_18"], r["tt01"]["rating"]] for r in rows]
    return table_response(fmt, f"bao-cao-{table}-{unit_code}-{start:%Y%m%d}-{end:%Y%m%d}",
                          f"{i18n.d(start)} – {i18n.d(end)} · {unit_code}", header, data)
