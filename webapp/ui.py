"""Staff and citizen screens: server-rendered, work without JavaScript, Vietnamese throughout."""
from __future__ import annotations

import functools
import io
from datetime import datetime, time, timedelta
from urllib.parse import urlparse

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from engine import audit, catalog, clock, dossiers, files, queries, ratelimit, tokens
from engine.access import can_view_dossier
from engine.actors import Actor, load_actor
from engine.errors import DomainError, InvalidInput, NotAllowed, NotFound
from engine.models import (
    Apology,
    Dossier,
    DossierFile,
    HumanTask,
    Procedure,
    ProcedureVersion,
    ServiceRating,
    SupplementRequest,
    Unit,
)

from . import db, i18n

bp = Blueprint("ui", __name__)


# --- plumbing ------------------------------------------------------------------------------------
def staff_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        user_id = session.get("user_id")
        actor = None
        if user_id:
            try:
                actor = load_actor(db.session(), user_id)
            except NotAllowed:
                session.clear()
        if actor is None:
            return redirect(url_for("ui.login", next=request.full_path))
        g.actor = actor
        return view(actor, *args, **kwargs)

    return wrapper


@bp.app_context_processor
def inject():
    actor = g.get("actor")
    counts = queries.queue_counts(db.session(), actor, clock.now()) if actor else None
    return {"i18n": i18n, "actor": actor, "counts": counts, "now": clock.now()}


def error_text(exc: DomainError) -> str:
    text = i18n.ERROR.get(exc.code, i18n.ERROR["invalid_input"] if isinstance(exc, InvalidInput) else exc.message)
    if exc.code == "missing_components" and exc.errors:
        text += " " + "; ".join(k.split(".", 1)[1] for k in exc.errors)
    return text


def field_errors(exc: DomainError) -> dict[str, str]:
    if not isinstance(exc, InvalidInput) or not isinstance(exc.errors, dict):
        return {}
    return {key: i18n.field_message(key, str(value)) for key, value in exc.errors.items()}


def rollback():
    db.session().rollback()


def visible(actor: Actor, code: str) -> Dossier:
    s = db.session()
    dossier = s.scalar(select(Dossier).where(Dossier.code == code))
    if dossier is None or not can_view_dossier(s, actor, dossier):
        abort(404)
    return dossier


def keeper() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="kept-upload")


def uploaded_components(prefix: str, known_codes: list[str]) -> tuple[list[dict], dict[str, str], dict[str, dict]]:
    """Files from the form; a valid file is stored at once and kept (signed) so a page re-shown after an
    error never asks for the scan again. Returns (components, per-field errors, kept tokens)."""
    comps, errors, kept = [], {}, {}
    for code in known_codes:
        upload = request.files.get(f"{prefix}{code}")
        token = request.form.get(f"kept_{code}")
        if upload is not None and upload.filename:
            content = upload.read()
            try:
                content_type = files.sniff(content, upload.filename)
            except files.FileRejected:
                errors[f"components.{code}"] = i18n.field_message(f"components.{code}", "")
                continue
            stored = files.store(content)
            info = {"key": stored.storage_key, "filename": upload.filename, "content_type": content_type}
            kept[code] = {"token": keeper().dumps(info), "filename": upload.filename}
            comps.append({"code": code, "filename": upload.filename, "content": content, "content_type": content_type})
        elif token:
            try:
                info = keeper().loads(token)
                content = files.open_file(info["key"])
            except (BadSignature, OSError, ValueError, KeyError):
                continue
            kept[code] = {"token": token, "filename": info["filename"]}
            comps.append({"code": code, "filename": info["filename"], "content": content,
                          "content_type": info["content_type"]})
    return comps, errors, kept


# --- login ---------------------------------------------------------------------------------------
def safe_next(target: str | None) -> str:
    if target and urlparse(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui.inbox")


@bp.route("/dang-nhap", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        s = db.session()
        client = request.remote_addr or "unknown"
        allowed, _ = ratelimit.hit(s, f"login:{client}", 20, timedelta(minutes=5))
        if not allowed:
            error = "Đăng nhập sai quá nhiều lần; vui lòng thử lại sau ít phút."
        else:
            try:
                user = tokens.authenticate(s, request.form.get("username", "").strip(), request.form.get("password", ""))
            except DomainError:
                rollback()
                error = "Tên đăng nhập hoặc mật khẩu không đúng."
            else:
                session.clear()
                session["user_id"] = user.id
                session.permanent = True
                return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", error=error, username=request.form.get("username", "")), (401 if error else 200)


@bp.post("/dang-xuat")
def logout():
    session.clear()
    return redirect(url_for("ui.login"))


# --- inbox ---------------------------------------------------------------------------------------
@bp.get("/")
def home():
    return redirect(url_for("ui.inbox"))


@bp.get("/hop-thu")
@staff_required
def inbox(actor):
    page = max(1, request.args.get("trang", 1, type=int) or 1)
    q, procedure_code, only = request.args.get("q", ""), request.args.get("thu-tuc", ""), request.args.get("loc", "")
    whole_unit = request.args.get("pham-vi") == "don-vi"
    now = clock.now()
    rows, total = queries.inbox_page(db.session(), actor, q=q, procedure_code=procedure_code, only=only,
                                     page=page, per_page=25, at=now, whole_unit=whole_unit)
    procs = catalog.list_procedures(db.session())
    return render_template("inbox.html", rows=rows, total=total, page=page, pages=max(1, -(-total // 25)), q=q,
                           procedure_code=procedure_code, only=only, procedures=procs, whole_unit=whole_unit)


# --- reception -----------------------------------------------------------------------------------
@bp.route("/tiep-nhan", methods=["GET", "POST"])
@staff_required
def reception(actor):
    if not actor.units_with("mot_cua"):
        abort(403)
    s = db.session()
    today = clock.local(clock.now()).date()
    offered = []
    for proc in catalog.list_procedures(s):
        try:
            offered.append((proc, catalog.version_in_force(s, proc, today)))
        except DomainError:
            continue
    code = request.values.get("thu-tuc", "")
    chosen = next((p for p, _ in offered if p.code == code), None)
    search = request.args.get("tim", "").strip()
    if search:
        from engine.text import fold

        offered = [(p, v) for p, v in offered if fold(search) in fold(f"{p.code} {p.name} {p.field}")]
        if len(offered) == 1 and chosen is None:
            chosen = offered[0][0]
    form = {k: request.form.get(k, "") for k in ("name", "id_number", "phone", "email", "address", "channel")}
    errors, kept, message = {}, {}, None
    cal = dossiers.calendar(s)
    if request.method == "POST" and chosen is not None:
        comps, errors, kept = uploaded_components("file_", [c["code"] for c in chosen.components])
        if not errors:
            try:
                dossier = dossiers.receive_dossier(
                    s, actor_id=actor.id, procedure_code=chosen.code, channel=form["channel"] or "counter",
                    applicant={k: form[k] for k in ("name", "id_number", "phone", "email", "address")},
                    components=comps, unit_code=request.form.get("unit_code") or None)
            except DomainError as exc:
                rollback()
                message, errors = error_text(exc), field_errors(exc)
            else:
                flash(f"Đã tiếp nhận hồ sơ {dossier.code}.", "success")
                return redirect(url_for("ui.receipt_done", code=dossier.code))
        else:
            message = i18n.ERROR["invalid_input"]
    preview = cal.appointment(clock.now(), chosen.statutory_days) if chosen else None
    units = [s.get(Unit, u) for u in actor.units_with("mot_cua")]
    status = 422 if message else 200
    return render_template("reception.html", offered=offered, chosen=chosen, form=form, errors=errors, kept=kept,
                           message=message, preview=preview, units=units, search=search), status


@bp.get("/ho-so/<code>/da-tiep-nhan")
@staff_required
def receipt_done(actor, code):
    dossier = visible(actor, code)
    return render_template("received.html", dossier=dossier, procedure=db.session().get(Procedure, dossier.procedure_id))


# --- task ----------------------------------------------------------------------------------------
@bp.route("/cong-viec/<task_id>", methods=["GET", "POST"])
@staff_required
def task(actor, task_id):
    s = db.session()
    row = s.get(HumanTask, task_id)
    if row is None:
        abort(404)
    dossier = visible(actor, s.get(Dossier, row.dossier_id).code)
    message, errors = None, {}
    if request.method == "POST":
        decision = request.form.get("decision", "")
        items = [line.strip() for line in request.form.get("items", "").splitlines() if line.strip()]
        data = {"decision": decision}
        if decision == "request_supplement":
            data["items"] = items
        try:
            result = dossiers.complete_task(s, actor_id=actor.id, task_id=task_id, data=data,
                                            note=request.form.get("reason", ""))
        except DomainError as exc:
            rollback()
            message, errors = error_text(exc), field_errors(exc)
        else:
            holders = ", ".join(sorted({i18n.ROLE.get(t.role, t.role) for t in result.next_tasks})) or \
                i18n.STATUS[result.dossier.status]
            flash(f"Đã {i18n.DECISION_DONE[decision].lower()} hồ sơ {dossier.code}. Hồ sơ hiện ở: {holders}.", "success")
            return redirect(url_for("ui.inbox"))
        s.expire_all()
        row = s.get(HumanTask, task_id)
    ctx = dossier_context(dossier)
    # Once used, the supplementation request is not offered again (the engine refuses it anyway).
    decisions = [d for d in row.decisions if not (d == "request_supplement" and ctx["supplement"] is not None)]
    return render_template("task.html", task=row, dossier=dossier, decisions=decisions, message=message,
                           errors=errors, form=request.form, **ctx), (422 if message else 200)


def dossier_context(dossier: Dossier) -> dict:
    s = db.session()
    return {
        "procedure": s.get(Procedure, dossier.procedure_id),
        "version": s.get(ProcedureVersion, dossier.version_id),
        "unit": s.get(Unit, dossier.unit_id),
        "files": s.scalars(select(DossierFile).where(DossierFile.dossier_id == dossier.id).order_by(DossierFile.id)).all(),
        "slip": audit.control_slip(s, dossier),
        "supplement": s.scalar(select(SupplementRequest).where(SupplementRequest.dossier_id == dossier.id)),
        "apology": s.scalar(select(Apology).where(Apology.dossier_id == dossier.id)),
        "open_tasks": s.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier.id,
                                                        HumanTask.completed_at.is_(None))).all(),
        "rating": s.scalar(select(ServiceRating).where(ServiceRating.dossier_id == dossier.id)),
    }


# --- dossier -------------------------------------------------------------------------------------
@bp.get("/ho-so/<code>")
@staff_required
def dossier_page(actor, code):
    dossier = visible(actor, code)
    ctx = dossier_context(dossier)
    markers = {"done": sorted({r.step for r in ctx["slip"] if r.finished_at}),
               "current": sorted({t.spec_name for t in ctx["open_tasks"]}),
               "late": sorted({r.step for r in ctx["slip"] if r.result == "late"}
                              | {t.spec_name for t in ctx["open_tasks"] if t.due_at < clock.now()})}
    return render_template("dossier.html", dossier=dossier, markers=markers, is_desk=actor.holds("mot_cua", dossier.unit_id),
                           message=None, errors={}, **ctx)


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
    visible(actor, s.get(Dossier, row.dossier_id).code)
    response = Response(files.open_file(row.storage_key), mimetype=row.content_type)
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{_quote(row.filename)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)


def dossier_action(code: str, action):
    """Run a one-stop-desk action; on a refusal re-show the dossier page with the reason in Vietnamese."""
    actor = g.actor
    dossier = visible(actor, code)
    try:
        action(dossier)
    except DomainError as exc:
        rollback()
        db.session().expire_all()
        dossier = visible(actor, code)
        ctx = dossier_context(dossier)
        return render_template("dossier.html", dossier=dossier, markers={"done": [], "current": [], "late": []},
                               is_desk=actor.holds("mot_cua", dossier.unit_id), message=error_text(exc),
                               errors=field_errors(exc), **ctx), 422
    return redirect(url_for("ui.dossier_page", code=code))


@bp.post("/ho-so/<code>/bo-sung")
@staff_required
def record_supplement(actor, code):
    def act(dossier):
        known = [c["code"] for c in db.session().get(ProcedureVersion, dossier.version_id).meta["components"]]
        comps, errors, _ = uploaded_components("file_", known)
        if errors:
            raise InvalidInput("bad files", errors=errors)
        dossiers.deliver_supplement(db.session(), actor_id=actor.id, dossier_code=code, components=comps,
                                    note=request.form.get("note", ""))
        flash("Đã nhận hồ sơ bổ sung; thời hạn giải quyết được tính lại từ hôm nay.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/xin-loi")
@staff_required
def record_apology(actor, code):
    def act(dossier):
        try:
            day = datetime.strptime(request.form.get("new_due", ""), "%Y-%m-%d").date()
        except ValueError:
            raise InvalidInput("bad date", errors={"new_due_at": "date"}) from None
        cal = dossiers.calendar(db.session())
        new_due = cal.end_of_working_day(day) if cal.is_working_day(day) else \
            datetime.combine(day, time(17, 0), tzinfo=clock.VN_TZ)
        dossiers.issue_apology(db.session(), actor_id=actor.id, dossier_code=code, reason=request.form.get("reason", ""),
                               new_due_at=new_due)
        flash("Đã ghi nhận văn bản xin lỗi và ngày hẹn trả mới.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/tra-ket-qua")
@staff_required
def record_return(actor, code):
    def act(dossier):
        dossiers.return_result(db.session(), actor_id=actor.id, dossier_code=code, note=request.form.get("note", ""))
        flash("Đã trả kết quả cho công dân.", "success")
    return dossier_action(code, act)


@bp.post("/ho-so/<code>/rut")
@staff_required
def record_withdrawal(actor, code):
    def act(dossier):
        dossiers.withdraw_dossier(db.session(), actor_id=actor.id, dossier_code=code,
                                  reason=request.form.get("reason", ""))
        flash("Đã dừng giải quyết hồ sơ theo đề nghị của công dân.", "success")
    return dossier_action(code, act)


# --- printable forms -----------------------------------------------------------------------------
FORMS = {"01": "Giấy tiếp nhận hồ sơ và hẹn trả kết quả", "02": "Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ",
         "03": "Phiếu từ chối tiếp nhận, giải quyết hồ sơ", "04": "Văn bản xin lỗi và hẹn lại ngày trả kết quả",
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
    ctx = dossier_context(dossier)
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
    units = sorted({u for u, _ in actor.grants})
    stmt = (select(Dossier, Procedure).join(Procedure, Procedure.id == Dossier.procedure_id)
            .where(Dossier.unit_id.in_(units),
                   Dossier.received_at >= datetime.combine(start, time.min, tzinfo=clock.VN_TZ),
                   Dossier.received_at < datetime.combine(end + timedelta(days=1), time.min, tzinfo=clock.VN_TZ))
            .order_by(Dossier.received_at))
    if field:
        stmt = stmt.where(Procedure.field == field)
    rows = s.execute(stmt).all()
    if request.args.get("xuat") in ("csv", "xlsx"):
        from .dashboard import table_response

        return table_response(request.args["xuat"], f"so-theo-doi-{start:%Y%m%d}-{end:%Y%m%d}",
                              f"Sổ theo dõi hồ sơ · {field or 'Tất cả lĩnh vực'} · {i18n.d(start)} – {i18n.d(end)}",
                              ["STT", "Mã hồ sơ", "Tên TTHC", "Tên cá nhân, tổ chức", "Địa chỉ, số điện thoại",
                               "Cơ quan chủ trì", "Nhận hồ sơ", "Hẹn trả", "Trả kết quả", "Phương thức"],
                              [[i, dz.code, p.name, dz.applicant.get("name", ""),
                                f"{dz.applicant.get('address', '')} {dz.applicant.get('phone', '')}".strip(),
                                s.get(Unit, dz.unit_id).name, i18n.dt(dz.received_at), i18n.dt(dz.due_at),
                                i18n.dt(dz.returned_at), i18n.CHANNEL[dz.channel]] for i, (dz, p) in enumerate(rows, 1)])
    fields = sorted({p.field for p in catalog.list_procedures(s)})
    return render_template("forms/f07.html", rows=rows, start=start, end=end, field=field, fields=fields,
                           title="Sổ theo dõi hồ sơ")


# --- citizens ------------------------------------------------------------------------------------
@bp.route("/tra-cuu", methods=["GET", "POST"])
def lookup():
    s = db.session()
    code = (request.values.get("ma") or "").strip()
    id_number = (request.values.get("so-dinh-danh") or "").strip()
    result = message = None
    history, rated = [], None
    if code and id_number:
        cfg = current_app.config
        allowed, reset = ratelimit.hit(s, f"public:{request.remote_addr or 'unknown'}", cfg["PUBLIC_LOOKUP_LIMIT"],
                                       timedelta(seconds=cfg["PUBLIC_LOOKUP_WINDOW_SECONDS"]))
        if not allowed:
            return render_template("lookup.html", code=code, message=f"Bạn tra cứu quá nhiều lần; vui lòng thử lại "
                                   f"sau {reset} giây.", result=None), 429
        try:
            if request.method == "POST":
                dossiers.rate_service(s, dossier_code=code, id_number=id_number, rating=request.form.get("rating", ""),
                                      comment=request.form.get("comment", ""))
                flash("Cảm ơn bạn đã đánh giá chất lượng phục vụ.", "success")
            result = queries.public_lookup(s, code, id_number)
        except DomainError as exc:
            rollback()
            if isinstance(exc, NotFound):
                message = "Không có hồ sơ nào được tìm thấy"
            else:
                message = error_text(exc)
                result = queries.public_lookup(s, code, id_number)
        if result:
            dossier = s.scalar(select(Dossier).where(Dossier.code == code))
            history = public_history(s, dossier)
            rated = s.scalar(select(ServiceRating).where(ServiceRating.dossier_id == dossier.id))
    return render_template("lookup.html", code=code, id_number=id_number if result else "", result=result,
                           message=message, history=history, rated=rated), (404 if message and not result else 200)


def public_history(s, dossier: Dossier) -> list[dict]:
    """Thời gian · Thao tác xử lý · Bộ phận: no staff names or notes go to the public page."""
    from engine.models import AuditEvent

    labels = {"received": "Tiếp nhận hồ sơ", "supplement_requested": "Yêu cầu bổ sung giấy tờ",
              "supplement_received": "Nhận hồ sơ bổ sung", "apology_issued": "Gửi văn bản xin lỗi, hẹn lại ngày trả",
              "finished": "Đã xử lý xong", "result_returned": "Trả kết quả", "refused": "Từ chối giải quyết",
              "withdrawn": "Dừng giải quyết theo đề nghị"}
    out, roles = [], {}
    for event in s.scalars(select(AuditEvent).where(AuditEvent.dossier_id == dossier.id).order_by(AuditEvent.seq)):
        if event.kind == "task_started":
            roles[event.data["task_id"]] = event.data.get("role", "")
        elif event.kind == "task_completed":
            out.append({"at": event.at, "what": "Hoàn thành bước xử lý",
                        "who": i18n.ROLE.get(roles.get(event.data["task_id"], ""), "")})
        elif event.kind in labels:
            out.append({"at": event.at, "what": labels[event.kind], "who": ""})
    return out
