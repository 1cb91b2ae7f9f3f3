"""The desk's lists and the search: the header's counters are links to the dossiers behind them, each
list sortable, filterable by procedure and channel, exportable, with the action of that list on each
row; the search box on every staff page finds any dossier of the caller's units."""
from __future__ import annotations

from flask import abort, render_template, request

from engine import catalog, clock
from engine.reporting import lists

from . import db, i18n
from .common import bp, staff_required
from .exports import table_response

PER_PAGE = 50


@bp.get("/danh-sach/<slug>")
@staff_required
def desk_list(actor, slug):
    if slug not in lists.LISTS:
        abort(404)
    s, now = db.session(), clock.now()
    procedure_code, channel = request.args.get("thu-tuc", ""), request.args.get("kenh", "")
    sort = request.args.get("sap-xep", "")
    page = min(max(1, request.args.get("trang", 1, type=int) or 1), 10_000)
    export = request.args.get("xuat")
    per_page = 5000 if export in ("csv", "xlsx") else PER_PAGE
    rows, total = lists.desk_list(s, actor, slug, now, procedure_code=procedure_code, channel=channel, sort=sort,
                                  page=1 if export else page, per_page=per_page)
    desk = lists.LISTS[slug]
    if export in ("csv", "xlsx"):
        return table_response(export, f"{slug}-{clock.local(now):%Y%m%d}", desk.title,
                              ["Mã hồ sơ", "Thủ tục", "Chủ hồ sơ", "Số điện thoại", "Hình thức nộp", "Ngày tiếp nhận",
                               "Hạn giải quyết", "Hẹn trả", "Trạng thái"],
                              [[d.code, name, d.applicant.get("name", ""), d.applicant.get("phone", ""),
                                i18n.CHANNEL[d.channel], i18n.dt(d.received_at), i18n.dt(d.legal_due_at),
                                i18n.dt(d.due_at), i18n.STATUS[d.status]] for d, _, name in rows])
    return render_template("lists.html", desk=desk, rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PER_PAGE)), procedures=catalog.list_procedures(s),
                           procedure_code=procedure_code, channel=channel, sort=sort, lists=lists.LISTS)


@bp.get("/tim-kiem")
@staff_required
def search(actor):
    q = request.args.get("q", "")
    rows = lists.search(db.session(), actor, q)
    return render_template("search.html", q=q, rows=rows)
