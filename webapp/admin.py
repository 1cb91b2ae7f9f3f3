"""Catalog administration screens: procedures and their versions, legal bases and their expiry,
export and import of the catalog as JSON; the working calendar (days off, make-up days, cut-offs)."""
from __future__ import annotations

import json
import time
from datetime import date

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from engine import catalog, clock
from engine.access import policy
from engine.catalog import calendar as law_calendar
from engine.dossiers import anchors, audit
from engine.errors import DomainError
from engine.store.models import CalendarDay, User

from . import db, i18n
from .common import error_text, staff_required
from .errors import RefusedInput

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
    try:   # the app's bounded parser: nesting, NUL, lone surrogates and huge numbers are refused, not crashed on
        data = current_app.json.loads(upload.read().decode("utf-8")) if upload and upload.filename else None
    except (UnicodeDecodeError, json.JSONDecodeError, RefusedInput):
        data = None
    if data is None:
        flash("Tệp danh mục phải là JSON (UTF-8) xuất từ hệ thống.", "error")
        return redirect(url_for("admin.procedures"))
    try:
        done = catalog.import_catalog(db.session(), actor_id=actor.id, data=data)
    except DomainError as exc:
        db.session().rollback()
        flash(f"Không nhập được: {error_text(exc)} Danh mục không thay đổi.", "error")
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


# --- the working calendar: days off, make-up working days and cut-offs as law data -----------------
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
CALENDAR_KINDS = {"holiday": "Ngày nghỉ", "workday": "Ngày làm việc (làm bù)",
                  "clear": "Bỏ khai báo (trở về mặc định của năm)"}
YEAR_STATUS = {"announced": "Đã công bố chính thức",
               "labour_code_default": "Chưa công bố chính thức — áp dụng mặc định Bộ luật Lao động"}
CUTOFF_LABELS = {
    "transfer_cutoff": "Giờ chuyển hồ sơ giấy: tiếp nhận từ giờ này trở đi thì chuyển vào đầu giờ ngày làm việc tiếp theo",
    "same_day_cutoff": "Hồ sơ giải quyết trong ngày: tiếp nhận từ giờ này trở đi thì hẹn trả ngày làm việc tiếp theo",
}
BASIS_LABELS = {"law": "Quy định pháp luật", "practice": "Thực tiễn địa phương (chưa có văn bản trung ương)"}


def _calendar_form() -> tuple[dict, dict[str, str]]:
    """The day-change form as sent: values kept for re-showing, and errors by field."""
    form = {k: (request.form.get(k) or "").strip() for k in ("day", "kind", "note", "source", "reason")}
    errors = {}
    try:
        form["date"] = date.fromisoformat(form["day"])
    except ValueError:
        form["date"] = None
        errors["day"] = "Chọn ngày cần thay đổi."
    if form["kind"] not in CALENDAR_KINDS:
        errors["kind"] = "Chọn loại thay đổi: ngày nghỉ, ngày làm việc hoặc bỏ khai báo."
    if not form["reason"]:
        errors["reason"] = "Nêu lý do thay đổi (được ghi vào nhật ký)."
    for key in ("note", "source"):
        if len(form[key]) > 255:
            errors[key] = "Tối đa 255 ký tự."
    return form, errors


def _describe_change(change) -> str:
    """One line of the calendar's audit trail, in Vietnamese."""
    def day_state(value):
        if not value:
            return "mặc định của năm"
        return CALENDAR_KINDS.get(value.get("kind"), value.get("kind", "")).lower() + \
            (f" ({value['note']})" if value.get("note") else "")

    if change.subject == "day":
        return f"Ngày {i18n.d(change.day)}: {day_state(change.old_value)} → {day_state(change.new_value)}"
    if change.subject == "year":
        value = change.new_value or change.old_value or {}
        status = YEAR_STATUS.get((change.new_value or {}).get("status"), "không còn dữ liệu riêng (dùng thư viện holidays)")
        return f"Lịch năm {value.get('year', '')}: {status}"
    key = change.subject.removeprefix("parameter:")
    value = change.new_value or {}
    effective = date.fromisoformat(value["effective_from"]) if value.get("effective_from") else None
    return f"{CUTOFF_LABELS.get(key, key)}: {value.get('value') or 'không áp dụng'} từ {i18n.d(effective)}"


def _calendar_page(year: int, status: int = 200, **extra):
    s = db.session()
    today = clock.local(clock.now()).date()
    years = law_calendar.calendar_years(s)
    cal = law_calendar.load_calendar(s)
    rows = law_calendar.calendar_days(s, year)
    listed = {r.day for r in rows}
    library_days = [] if year in years else [d for d in cal.non_working_weekdays(year) if d not in listed]
    changes = law_calendar.calendar_changes(s, year, limit=100)
    user_ids = {c.changed_by_id for c in changes} | {r.changed_by_id for r in rows}
    names = {u.id: u.full_name or u.username for u in s.execute(
        select(User.id, User.full_name, User.username).where(User.id.in_(user_ids - {None})))} if user_ids - {None} else {}
    cutoffs = {key: law_calendar.law_parameters(s, key) for key in law_calendar.PARAMETERS}
    in_force = {key: law_calendar.law_parameter(s, key, today) for key in law_calendar.PARAMETERS}
    shown_years = sorted(set(years) | {today.year - 1, today.year, today.year + 1, today.year + 2, year})
    body = render_template(
        "admin_calendar.html", year=year, years=years, year_info=years.get(year), shown_years=shown_years, rows=rows,
        library_days=library_days, non_working=cal.non_working_weekdays(year), working_weekends=cal.working_weekend_days(year),
        changes=changes, names=names, cutoffs=cutoffs, in_force=in_force, today=today, weekdays=WEEKDAYS,
        kinds=CALENDAR_KINDS, year_status=YEAR_STATUS, cutoff_labels=CUTOFF_LABELS, basis_labels=BASIS_LABELS,
        describe=_describe_change, **extra)
    return body, status


@bp.get("/lich")
@staff_required
def calendar_page(actor):
    """The working calendar of one year: its days off and make-up days with their sources, whether
    the schedule is official, the cut-offs in force and the audit trail."""
    require_admin(actor)
    year = request.args.get("nam", type=int) or clock.local(clock.now()).year
    if not 1990 <= year <= 2100:
        abort(404)
    return _calendar_page(year, form={"day": "", "kind": "holiday", "note": "", "source": "", "reason": ""})


@bp.post("/lich/xem-truoc")
@staff_required
def calendar_preview(actor):
    """Step 1 of a change: the open dossiers whose appointment it would move; nothing is saved."""
    require_admin(actor)
    form, errors = _calendar_form()
    year = form["date"].year if form["date"] else clock.local(clock.now()).year
    if errors:
        return _calendar_page(year, 400, form=form, errors=errors,
                              message="Chưa xem trước được thay đổi: kiểm tra các trường được đánh dấu.")
    s = db.session()
    shifts = law_calendar.calendar_change_preview(s, form["date"], form["kind"])
    was_working, will_work = law_calendar.day_effect(s, form["date"], form["kind"])
    current = s.get(CalendarDay, form["date"])
    s.rollback()
    return _calendar_page(year, form=form, preview={"shifts": shifts, "was_working": was_working,
                                                    "will_work": will_work, "current": current})


@bp.post("/lich/ap-dung")
@staff_required
def calendar_apply(actor):
    """Step 2: save the day (logged with the reason and the source) and move the appointments it
    moves; the applicants are told through the portal events (no form 04 for a declared day off)."""
    policy.require(actor, "calendar.apply")
    from engine.dossiers.calendar_shift import apply_calendar_change

    form, errors = _calendar_form()
    year = form["date"].year if form["date"] else clock.local(clock.now()).year
    if errors:
        return _calendar_page(year, 400, form=form, errors=errors,
                              message="Chưa lưu được thay đổi: kiểm tra các trường được đánh dấu.")
    try:
        done = apply_calendar_change(db.session(), actor_id=actor.id, day=form["date"], kind=form["kind"],
                                     reason=form["reason"], source=form["source"], note=form["note"])
    except DomainError as exc:
        db.session().rollback()
        flash(error_text(exc) if exc.code != "invalid_input" else exc.message, "error")
        return redirect(url_for("admin.calendar_page", nam=year))
    what = CALENDAR_KINDS[form["kind"]].lower()
    if done.change_id is None:
        flash(f"Ngày {i18n.d(form['date'])} đã là {what} với cùng ghi chú và căn cứ: không có gì thay đổi.", "success")
    else:
        flash(f"Đã lưu ngày {i18n.d(form['date'])}: {what}. Đã dời ngày hẹn của {done.moved} hồ sơ đang giải quyết"
              f"{f' ({done.appointments_moved} người nộp được thông báo ngày hẹn mới)' if done.moved else ''}.", "success")
    return redirect(url_for("admin.calendar_page", nam=year))


@bp.post("/lich/nam")
@staff_required
def calendar_year(actor):
    """Mark a year's schedule as officially announced (with its documents) or as the Labour Code default."""
    require_admin(actor)
    year = request.form.get("year", type=int)
    status = request.form.get("status") or None
    sources = [line.strip() for line in (request.form.get("sources") or "").splitlines() if line.strip()]
    if year is None or not 1990 <= year <= 2100:
        abort(400)
    try:
        law_calendar.set_calendar_year(db.session(), year, status if status != "none" else None, sources,
                                       request.form.get("note", ""), actor_id=actor.id,
                                       reason=request.form.get("reason", ""))
    except DomainError as exc:
        db.session().rollback()
        fields = {"reason": "nêu lý do", "sources": "ghi số văn bản công bố lịch", "status": "chọn tình trạng"}
        flash("Chưa cập nhật được tình trạng lịch năm: "
              + "; ".join(fields.get(k, k) for k in (exc.errors or {})) + ".", "error")
    else:
        flash(f"Đã cập nhật tình trạng lịch năm {year}.", "success")
    return redirect(url_for("admin.calendar_page", nam=year))


# --- the dossiers' audit logs ----------------------------------------------------------------------
AUDIT_BATCH = 500            # dossiers verified per query
AUDIT_BUDGET_SECONDS = 2.0   # one page runs batches until this much time has passed…
AUDIT_MAX_BATCHES = 20       # …or this many (10 000 dossiers); the page links to the next ones
AUDIT_SHOWN = 200            # broken logs listed on one page at most
AUDIT_ROOTS_CHECKED = 12     # anchors the page checks (the newest: an hour at the default pace; all: the CLI)

AUDIT_REASON_VI = {
    audit.GAP: "thiếu sự kiện ở giữa nhật ký",
    audit.HASH_MISMATCH: "sự kiện đã bị sửa sau khi ghi (mã kiểm tra không khớp)",
    audit.FORGED_NAME: "tên người thực hiện đã bị sửa",
    audit.MISSING_TAIL: "các sự kiện cuối của nhật ký đã bị xóa",
    audit.HEAD_MISMATCH: "nhật ký không kết thúc ở sự kiện cuối được ghi nhận trên hồ sơ",
    audit.TRUNCATED_AFTER_ANCHOR: "các sự kiện đã được niêm phong đã bị xóa (nhật ký bị cắt ngắn cùng với sự kiện "
                                  "cuối ghi trên hồ sơ)",
}
ANCHOR_REASON_VI = {
    anchors.TRUNCATED: "các sự kiện đã được niêm phong ở mốc này đã bị xóa (nhật ký bị cắt ngắn, hoặc hồ sơ bị xóa)",
    anchors.ANCHOR_MISSING: "tệp mốc niêm phong ghi một mốc mà cơ sở dữ liệu không còn",
    anchors.ANCHOR_MISMATCH: "mốc trong cơ sở dữ liệu khác với mốc đã ghi trong tệp mốc niêm phong",
    anchors.ANCHOR_BROKEN: "chuỗi mốc niêm phong bị đứt: một mốc đã bị sửa, chèn thêm hoặc xóa",
    anchors.ROOT_MISMATCH: "các sự kiện cuối đã niêm phong ở mốc này không khớp mã tổng của mốc: đã bị sửa, thêm "
                           "hoặc xóa",
    anchors.FILE_INVALID: "một dòng của tệp mốc niêm phong không đọc được hoặc đã bị sửa",
}
AUDIT_KIND_VI = {
    "received": "tiếp nhận", "task_started": "bắt đầu bước", "task_completed": "hoàn thành bước",
    "task_assigned": "phân công", "handed_off": "chuyển đơn vị", "finished": "kết thúc xử lý",
    "supplement_requested": "yêu cầu bổ sung", "supplement_received": "nhận bổ sung",
    "supplement_expired": "quá hạn bổ sung", "apology_issued": "xin lỗi, hẹn lại", "refused": "từ chối",
    "withdrawn": "dừng xử lý", "result_returned": "trả kết quả", "timer_fired": "hẹn giờ", "overdue": "quá hạn",
    "step_late": "bước chậm", "consultation_requested": "xin ý kiến", "consultation_answered": "trả lời ý kiến",
    "consultation_expired": "quá hạn trả lời ý kiến", "migrated": "chuyển phiên bản quy trình",
    "calendar_shift": "dời lịch", "result_attached": "đính kèm kết quả", "result_registered": "vào sổ kết quả",
}


def audit_problem_vi(check: audit.ChainCheck) -> str:
    """What is wrong with a dossier's audit log, in Vietnamese, naming its first bad event."""
    event, seq = check.bad_event, check.first_bad_seq
    if check.reason == audit.TRUNCATED_AFTER_ANCHOR:
        return (f"từ sự kiện số {seq}: các sự kiện đã được niêm phong ở mốc số {check.anchor_id} đã bị xóa "
                "(nhật ký bị cắt ngắn cùng với sự kiện cuối ghi trên hồ sơ)")
    if check.reason == audit.FORGED_NAME:
        return (f"sự kiện số {seq} ({AUDIT_KIND_VI.get(event['kind'], event['kind'])}, {i18n.dt(event['at'])}) "
                f"ghi người thực hiện “{event['actor_name']}” nhưng được ghi nhận cho “{check.real_name}”")
    if event is not None:
        return (f"sự kiện số {seq} ({AUDIT_KIND_VI.get(event['kind'], event['kind'])}, {i18n.dt(event['at'])}, "
                f"{event['actor_name']}): {AUDIT_REASON_VI[check.reason]}")
    return f"từ sự kiện số {seq}: {AUDIT_REASON_VI[check.reason]}"


@bp.get("/nhat-ky")
@staff_required
def audit_page(actor):
    """Verify the audit logs of the dossiers of the units the admin oversees, a bounded run of batches
    a page (a province has millions of dossiers): the broken ones, and a link to go on from there."""
    s = db.session()
    units = policy.units_for(s, actor, "audit.verify")
    if not units:
        policy.require(actor, "audit.verify")
    after = request.args.get("sau", "0")
    if not (after.isdigit() and len(after) <= 18):
        return render_template("admin_audit.html", run=None, errors={},
                               message="Vị trí tiếp tục kiểm tra không hợp lệ; hãy kiểm tra lại từ đầu."), 400
    run = {"checked": 0, "events": 0, "failures": [], "first_code": None, "last_code": None, "last_id": int(after),
           "done": False}
    started = time.monotonic()
    for _ in range(AUDIT_MAX_BATCHES):
        batch = audit.check_batch(s, after_id=run["last_id"], limit=AUDIT_BATCH, unit_ids=units)
        s.rollback()  # each batch its own short read
        if batch.last_id is None:
            run["done"] = True
            break
        run["checked"] += batch.checked
        run["events"] += batch.events
        run["failures"] += [(check, audit_problem_vi(check)) for check in batch.failures]
        run["first_code"] = run["first_code"] or batch.first_code
        run["last_code"], run["last_id"] = batch.last_code, batch.last_id
        if batch.checked < AUDIT_BATCH:
            run["done"] = True
            break
        if time.monotonic() - started > AUDIT_BUDGET_SECONDS or len(run["failures"]) >= AUDIT_SHOWN:
            break
    return render_template("admin_audit.html", run=run, message=None, errors={},
                           seals=anchor_status(s) if int(after) == 0 else None)


def anchor_status(s):
    """The anchors of the audit logs, on the check's first page: the latest, and whether the newest ones (their
    chain, roots and lines in the two newest anchor files) verify, in the same time after years of anchors
    (the dossiers' anchored heads are checked with their logs above; every anchor, every file and a dossier
    removed altogether, by `motcua audit verify`)."""
    directory = anchors.directory_for(s)
    verdict = anchors.verify(s, directory=directory, heads=False, recent=AUDIT_ROOTS_CHECKED)
    s.rollback()
    return {"verdict": verdict, "directory": directory, "overdue": verdict.overdue(clock.now()),
            "failures": [(f, ANCHOR_REASON_VI[f.reason]) for f in verdict.failures[:AUDIT_SHOWN]]}
