"""Thin routes: a schema parses, one use case acts, a schema dumps."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime, time, timedelta

from flask import current_app, jsonify, request
from sqlalchemy import select

from engine import catalog, clock, dossiers
from engine.access import directory, policy, ratelimit, tokens
from engine.catalog.calendar import load_calendar
from engine.dossiers import audit, counter
from engine.errors import DomainError, InvalidInput, NotFound
from engine.reporting import metrics, views
from engine.store.files import FileRejected, sniff
from engine.store.models import Unit
from engine.workflow import validation

from .. import db
from ..auth import login_required
from ..errors import problem
from . import bp
from . import schemas as s

_SCHEMAS: dict = {}


def _schema(cls, many: bool = False):
    """One instance per schema class (building one deep-copies its fields; load and dump keep no state)."""
    key = (cls, many)
    if key not in _SCHEMAS:
        _SCHEMAS[key] = cls(many=many)
    return _SCHEMAS[key]


def body(schema):
    return _schema(schema).load(request.get_json())


def answer(schema, data, status=200, many=False):
    response = jsonify(_schema(schema, many).dump(data))
    response.status_code = status
    return response


def decode_files(items: list[dict], where: str) -> list[dict]:
    out, errors = [], {}
    limit = current_app.config["MAX_FILE_BYTES"]
    for i, item in enumerate(items):
        try:
            content = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            errors[f"{where}.{i}.content_base64"] = "not valid base64"
            continue
        if len(content) > limit:
            errors[f"{where}.{i}.content_base64"] = f"larger than {limit // (1024 * 1024)} MB"
            continue
        try:
            content_type = sniff(content, item["filename"])
        except FileRejected as exc:
            errors[f"{where}.{i}"] = str(exc)
            continue
        out.append({"code": item["code"], "filename": item["filename"], "content": content, "content_type": content_type})
    if errors:
        raise InvalidInput("some files were not accepted", errors=errors)
    return out


def request_digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise InvalidInput("Idempotency-Key must be 1-255 printable characters", errors={"Idempotency-Key": key[:50]})
    return key


# --- auth ----------------------------------------------------------------------------------------
@bp.post("/auth/token")
def create_token():
    data = body(s.TokenRequest)
    session, client = db.session(), request.remote_addr or "unknown"
    wait = ratelimit.login_blocked(session, data["username"], client)
    if wait:
        return problem(429, "rate_limited", "Too many failed logins for this account or address; try again later.",
                       headers={"Retry-After": str(wait)})
    try:
        token, expires = tokens.issue_token(session, data["username"], data["password"])
    except DomainError:
        session.rollback()
        ratelimit.login_failed(session, data["username"], client)
        raise
    return answer(s.TokenResponse, {"token": token, "expires_at": expires})


# --- catalog -------------------------------------------------------------------------------------
def procedure_dump(proc) -> dict:
    return {
        "code": proc.code, "name": proc.name, "field": proc.field, "level": proc.level,
        "statutory_days": proc.statutory_days, "fee": proc.fee, "online_level": proc.online_level,
        "supplement_window_days": proc.supplement_window_days, "components": proc.components,
        "legal_bases": [{"number": b.number, "title": b.title, "effective_from": b.effective_from,
                         "expires_on": b.expires_on} for b in proc.legal_bases],
        "versions": [{"number": v.number, "status": v.status, "effective_from": v.effective_from, "notes": v.notes}
                     for v in proc.versions],
    }


@bp.get("/procedures")
def list_procedures():
    accepting = catalog.procedures_accepting(db.session(), clock.local(clock.now()).date())
    return answer(s.ProcedureOut, [procedure_dump(proc) for proc, _ in accepting], many=True)


@bp.get("/procedures/<code>")
def get_procedure(code):
    return answer(s.ProcedureOut, procedure_dump(catalog.get_procedure(db.session(), code)))


@bp.post("/procedures")
@login_required
def create_procedure(actor):
    policy.require(actor, "catalog.manage")
    data = body(s.ProcedureIn)
    proc = catalog.create_procedure(db.session(), actor_id=actor.id, data=data)
    return answer(s.ProcedureOut, procedure_dump(proc), 201)


@bp.post("/procedures/<code>/versions")
@login_required
def create_version(actor, code):
    policy.require(actor, "process.design")
    data = body(s.VersionIn)
    version, problems = catalog.submit_version(db.session(), actor_id=actor.id, procedure_code=code, bpmn=data["bpmn"],
                                               notes=data["notes"])
    return answer(s.VersionCreated, {"number": version.number, "problems": problems}, 201)


@bp.post("/procedures/<code>/versions/<int:number>/publish")
@login_required
def publish_version(actor, code, number):
    policy.require(actor, "catalog.manage")
    data = body(s.PublishIn)
    version = catalog.publish_version(db.session(), actor_id=actor.id, procedure_code=code, number=number,
                                      effective_from=data["effective_from"])
    return answer(s.VersionOut, {"number": version.number, "status": version.status,
                                 "effective_from": version.effective_from, "notes": version.notes})


@bp.post("/bpmn/validate")
@login_required
def validate_bpmn(actor):
    policy.require(actor, "bpmn.validate")
    data = body(s.ValidateIn)
    session = db.session()
    result = validation.validate(data["bpmn"], None, catalog.known_roles(session), load_calendar(session),
                                 catalog.known_units(session))
    return answer(s.ValidateOut, {"valid": result.valid, "problems": [p.as_dict() for p in result.problems]})


# --- dossiers ------------------------------------------------------------------------------------
@bp.post("/dossiers")
@login_required
def receive(actor):
    raw = request.get_json()
    data = s.DossierIn().load(raw)
    files = decode_files(data["components"], "components")
    kwargs = dict(actor_id=actor.id, procedure_code=data["procedure_code"], channel=data["channel"],
                  applicant=data["applicant"], components=files, unit_code=data["unit_code"], forward=data["forward"])
    key = idempotency_key()
    session = db.session()
    if key:
        dossier, replayed = dossiers.receive_dossier_once(session, key=key, digest=request_digest(raw), **kwargs)
    else:
        dossier, replayed = dossiers.receive_dossier(session, **kwargs), False
    response = answer(s.DossierCreated, {"code": dossier.code, "status": dossier.status,
                                         "received_at": dossier.received_at, "due_at": dossier.due_at}, 201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/api/v1/dossiers/{dossier.code}"
    return response


def visible_dossier(actor, code):
    session = db.session()
    dossier = views.find_dossier(session, code)
    policy.require_view(session, actor, dossier)
    return dossier


@bp.get("/dossiers/<code>")
@login_required
def get_dossier(actor, code):
    visible_dossier(actor, code)
    return answer(s.DossierOut, views.dossier_view(db.session(), code))


@bp.get("/dossiers/<code>/audit")
@login_required
def dossier_audit(actor, code):
    """The dossier's audit log and whether its hash chain is intact: for whoever may see its timeline."""
    dossier = visible_dossier(actor, code)
    check, events = audit.audit_log(db.session(), dossier.id)
    return answer(s.AuditOut, {"code": dossier.code, "intact": check.intact, "first_bad_seq": check.first_bad_seq,
                               "reason": check.reason, "detail": check.detail or None,
                               "events": [e._mapping for e in events]})


@bp.get("/tasks")
@login_required
def my_tasks(actor):
    return answer(s.TaskOut, views.inbox(db.session(), actor), many=True)


def decode_result(given: dict | None) -> dict | None:
    """The result document of a completion, its file decoded from base64 (the engine checks it is a PDF)."""
    if given is None:
        return None
    out = {k: given[k] for k in ("number", "signed_on") if given.get(k) is not None}
    if given.get("file") is not None:
        try:
            content = base64.b64decode(given["file"]["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("the result file is not valid base64",
                               errors={"result.file.content_base64": "not valid base64"}) from None
        out["file"] = {"filename": given["file"]["filename"], "content": content}
    return out


@bp.post("/tasks/<task_id>/complete")
@login_required
def complete(actor, task_id):
    data = body(s.CompleteIn)
    result = dossiers.complete_task(db.session(), actor_id=actor.id, task_id=task_id, data=data["data"],
                                    note=data["note"], result=decode_result(data["result"]))
    return answer(s.CompleteOut, {
        "dossier_code": result.dossier.code, "status": result.dossier.status,
        "next_tasks": [{"id": t.id, "name": t.name, "role": t.role, "started_at": t.started_at, "due_at": t.due_at,
                        "decisions": t.decisions, "assignee": None} for t in result.next_tasks],
    })


def assignment_dump(result) -> dict:
    t = result.task
    return {"id": t.id, "dossier_code": result.dossier.code, "name": t.name, "role": t.role,
            "unit_code": result.unit_code,
            "started_at": t.started_at, "due_at": t.due_at, "decisions": t.decisions,
            "assignee_id": t.assignee_id, "assignee": result.assignee_name,
            "labels": views.decision_labels(db.session(), result.dossier.version_id, t.spec_name, t.decisions)}


@bp.post("/tasks/<task_id>/assign")
@login_required
def assign(actor, task_id):
    """A head of the step's unit assigns (or reassigns) the open step to a holder of its role there."""
    data = body(s.AssignIn)
    return answer(s.TaskOut, assignment_dump(dossiers.assign_task(db.session(), actor_id=actor.id, task_id=task_id,
                                                                   assignee_id=data["assignee_id"])))


@bp.post("/tasks/<task_id>/claim")
@login_required
def claim(actor, task_id):
    """The caller takes an open step of their role: from now on only they may complete it."""
    return answer(s.TaskOut, assignment_dump(dossiers.claim_task(db.session(), actor_id=actor.id, task_id=task_id)))


@bp.post("/tasks/<task_id>/release")
@login_required
def release(actor, task_id):
    """The assignee (or a head of the unit) hands the step back to its unit, unassigned."""
    return answer(s.TaskOut, assignment_dump(dossiers.release_task(db.session(), actor_id=actor.id, task_id=task_id)))


@bp.post("/tasks/<task_id>/consultations")
@login_required
def consult(actor, task_id):
    data = body(s.ConsultIn)
    rows = dossiers.ask_opinions(db.session(), actor_id=actor.id, task_id=task_id, unit_codes=data["units"],
                                 content=data["content"], days=data["days"])
    return answer(s.ConsultationOut, views.consultations_out(db.session(), [r.id for r in rows]), 201, many=True)


@bp.get("/consultations")
@login_required
def my_consultations(actor):
    """Requests for an opinion waiting on the caller's units (those where they may answer)."""
    rows = views.pending_consultations(db.session(), actor)
    return answer(s.ConsultationOut, views.consultations_out(db.session(), [r["id"] for r in rows]), many=True)


@bp.post("/consultations/<int:consultation_id>/answer")
@login_required
def answer_consultation(actor, consultation_id):
    data = body(s.AnswerIn)
    attached = decode_files([{**f, "code": "y-kien"} for f in data["files"]], "files")
    row = dossiers.answer_opinion(db.session(), actor_id=actor.id, consultation_id=consultation_id,
                                  answer=data["answer"],
                                  files=[{k: f[k] for k in ("filename", "content", "content_type")} for f in attached])
    return answer(s.ConsultationOut, views.consultations_out(db.session(), [row.id])[0])


@bp.post("/dossiers/<code>/supplements")
@login_required
def supplement(actor, code):
    raw = request.get_json()
    data = s.SupplementIn().load(raw)
    visible_dossier(actor, code)
    files = decode_files(data["components"], "components")
    kwargs = dict(actor_id=actor.id, dossier_code=code, components=files, note=data["note"])
    key = idempotency_key()
    session = db.session()
    if key:
        dossier, replayed = dossiers.deliver_supplement_once(session, key=key, digest=request_digest(raw), **kwargs)
    else:
        dossier, replayed = dossiers.deliver_supplement(session, **kwargs), False
    response = answer(s.DossierOut, views.dossier_view(session, dossier.code))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/dossiers/<code>/apologies")
@login_required
def apology(actor, code):
    data = body(s.ApologyIn)
    visible_dossier(actor, code)
    ap = dossiers.issue_apology(db.session(), actor_id=actor.id, dossier_code=code, reason=data["reason"],
                                new_due_at=data["new_due_at"], signed_by_id=data["signed_by_id"])
    return answer(s.ApologyOut, {"issued_at": ap.issued_at, "reason": ap.reason, "previous_due_at": ap.previous_due_at,
                                 "new_due_at": ap.new_due_at, "late": ap.late}, 201)


@bp.post("/dossiers/<code>/withdraw")
@login_required
def withdraw(actor, code):
    data = body(s.WithdrawIn) if request.content_length else {"reason": "", "requested_at": None}
    visible_dossier(actor, code)
    d = dossiers.withdraw_dossier(db.session(), actor_id=actor.id, dossier_code=code, reason=data["reason"],
                                  requested_at=data["requested_at"])
    return answer(s.StatusOut, {"code": d.code, "status": d.status})


@bp.post("/dossiers/<code>/return-result")
@login_required
def return_result(actor, code):
    data = body(s.ReturnIn) if request.content_length else {"note": "", "via": "counter"}
    visible_dossier(actor, code)
    d = dossiers.return_result(db.session(), actor_id=actor.id, dossier_code=code, note=data["note"], via=data["via"])
    return answer(s.StatusOut, {"code": d.code, "status": d.status})


# --- at the counter, without a dossier (L3) ---------------------------------------------------------
def counter_notice_dump(view) -> dict:
    n = view.notice
    return {"id": n.id, "number": view.number, "kind": n.kind, "unit_code": view.unit.code,
            "procedure_code": view.procedure.code, "applicant": n.applicant, "items": n.items, "reason": n.reason,
            "repeated": n.repeated, "issued_at": n.issued_at, "issued_by": view.officer}


@bp.post("/counter-notices")
@login_required
def issue_counter_notice(actor):
    """Guidance (form 02) or a refusal (form 03) given at the counter; no dossier is received."""
    data = body(s.CounterNoticeIn)
    session = db.session()
    notice = counter.issue_counter_notice(
        session, actor_id=actor.id, kind=data["kind"], procedure_code=data["procedure_code"],
        applicant=data["applicant"], items=data["items"], reason=data["reason"], unit_code=data["unit_code"],
        acknowledge_repeat=data["acknowledge_repeat"])
    response = answer(s.CounterNoticeOut, counter_notice_dump(counter.visible_notice(session, actor, notice.id)), 201)
    response.headers["Location"] = f"/api/v1/counter-notices/{notice.id}"
    return response


@bp.get("/counter-notices/<int:notice_id>")
@login_required
def get_counter_notice(actor, notice_id):
    return answer(s.CounterNoticeOut, counter_notice_dump(counter.visible_notice(db.session(), actor, notice_id)))


# --- public --------------------------------------------------------------------------------------
@bp.get("/public/dossiers/<code>")
def public_dossier(code):
    cfg = current_app.config
    client = request.remote_addr or "unknown"
    allowed, reset = ratelimit.hit(db.session(), f"public:{client}", cfg["PUBLIC_LOOKUP_LIMIT"],
                                   timedelta(seconds=cfg["PUBLIC_LOOKUP_WINDOW_SECONDS"]))
    if not allowed:
        return problem(429, "rate_limited", "Bạn tra cứu quá nhiều lần; vui lòng thử lại sau ít phút.",
                       headers={"Retry-After": str(reset)})
    query = s.PublicQuery().load(request.args.to_dict())
    try:
        return answer(s.PublicDossier, views.public_lookup(db.session(), code, query["id_number"]))
    except NotFound:
        return problem(404, "not_found", "Không có hồ sơ nào được tìm thấy")


@bp.get("/metrics")
@login_required
def get_metrics(actor):
    query = s.MetricsQuery().load(request.args.to_dict())
    session = db.session()
    allowed = policy.units_for(session, actor, "reports.view")
    if not allowed:
        policy.require(actor, "reports.view")
    if query["unit"] is not None:
        unit_id = session.scalar(select(Unit.id).where(Unit.code == query["unit"]))
        if unit_id is None:
            raise InvalidInput(f"no unit {query['unit']}", errors={"unit": "no such unit"})
        policy.require(actor, "reports.view", unit_id, session=session)
        unit_code = query["unit"]
    else:  # the unit the caller oversees, with the units below it
        top = directory.top_units(session, allowed)
        tops = sorted(session.scalars(select(Unit.code).where(Unit.id.in_(top))))
        if len(tops) != 1:
            raise InvalidInput("you oversee several units: name one", errors={"unit": f"one of {', '.join(tops)}"})
        unit_code = tops[0]
    today = clock.local(clock.now()).date()
    start_day = query["from_"] or today.replace(day=1)
    end_day = query["to"] or today
    if end_day < start_day:
        raise InvalidInput("'to' is before 'from'", errors={"to": "must not be before from"})
    start = datetime.combine(start_day, time.min, tzinfo=clock.VN_TZ)
    end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=clock.VN_TZ)
    figures = metrics.summary(session, start, end, unit_code, query["procedure"], query["field"])
    return answer(s.MetricsOut, figures)


@bp.get("/openapi.json")
def openapi():
    from .openapi import spec

    return jsonify(spec())


