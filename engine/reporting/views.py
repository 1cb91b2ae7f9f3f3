"""Read models for the API and the screens: a dossier's full view and page, the inbox and its
queue counts, the register (form 07), the public look-up with its history."""
from __future__ import annotations

import hmac
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.access import directory, policy
from engine.access.actors import Actor
from engine.clock import VN_TZ
from engine.errors import NotFound
from engine.reporting import deadlines
from engine.reporting.slip import control_slip
from engine.store.models import (
    RESULT_PURPOSE,
    Apology,
    AuditEvent,
    Consultation,
    Dossier,
    DossierFile,
    HumanTask,
    Notice,
    Procedure,
    ProcedureVersion,
    ServiceRating,
    SupplementRequest,
    Unit,
    User,
)


def is_overdue(dossier, now) -> bool:
    """Quá hạn (engine/reporting/deadlines.py): open and past the legal date with the clock running,
    or finished late."""
    return deadlines.is_overdue(dossier, now)


def find_dossier(session: Session, code: str) -> Dossier:
    dossier = session.scalar(select(Dossier).where(Dossier.code == code))
    if dossier is None:
        raise NotFound(f"no dossier {code}")
    return dossier


def dossier_view(session: Session, code: str) -> dict:
    """The API's dossier (DESIGN.md: GET /api/v1/dossiers/{code})."""
    dossier = find_dossier(session, code)
    procedure = session.get(Procedure, dossier.procedure_id)
    version = session.get(ProcedureVersion, dossier.version_id)
    open_tasks = session.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier.id,
                                                         HumanTask.completed_at.is_(None))).all()
    supplements = session.scalars(select(SupplementRequest).where(SupplementRequest.dossier_id == dossier.id)).all()
    apologies = session.scalars(select(Apology).where(Apology.dossier_id == dossier.id)).all()
    assignees = {t.assignee_id for t in open_tasks if t.assignee_id is not None}
    names = dict(session.execute(select(User.id, User.full_name).where(User.id.in_(assignees))).all()) if assignees else {}
    units = dict(session.execute(select(Unit.id, Unit.code).where(
        Unit.id.in_({t.unit_id for t in open_tasks}))).all()) if open_tasks else {}
    return {
        "code": dossier.code,
        "status": dossier.status,
        "overdue": deadlines.is_overdue(dossier, clock.now()),
        "apologized": dossier.apologized,
        "clock_paused": dossier.clock_paused,
        "legal_due_at": dossier.legal_due_at,
        "finish_result": dossier.finish_result,
        "channel": dossier.channel,
        "unit_code": dossier.unit.code,
        "applicant": dossier.applicant,
        "received_at": dossier.received_at,
        "due_at": dossier.due_at,
        "original_due_at": dossier.original_due_at,
        "finished_at": dossier.finished_at,
        "returned_at": dossier.returned_at,
        "procedure_code": procedure.code,
        "procedure_name": procedure.name,
        "version": version.number,
        "refusal_reason": dossier.refusal_reason,
        "result": _result_out(result_document(session, dossier)),
        "open_tasks": [
            {"id": t.id, "name": t.name, "role": t.role, "unit_code": units.get(t.unit_id), "started_at": t.started_at,
             "due_at": t.due_at,
             "decisions": t.decisions, "assignee": names.get(t.assignee_id)} for t in open_tasks
        ],
        "supplements": [
            {"requested_at": s.requested_at, "reason": s.reason, "items": s.items, "within_window": s.within_window,
             "respond_by": s.respond_by, "expired_at": s.expired_at, "received_at": s.received_at,
             "new_due_at": s.new_due_at} for s in supplements
        ],
        "apologies": [
            {"issued_at": a.issued_at, "reason": a.reason, "previous_due_at": a.previous_due_at,
             "new_due_at": a.new_due_at, "late": a.late} for a in apologies
        ],
        "timeline": [
            {"step": r.step, "name": r.step_name, "role": r.role, "unit_code": r.unit, "user": r.receiver,
             "started": r.clock_from,
             "due": r.due_at, "finished": r.finished_at, "decision": r.decision, "note": r.note,
             "on_time": None if r.result is None else r.result != "late", "result": r.result}
            for r in control_slip(session, dossier.id)
        ],
    }


def inbox(session: Session, actor: Actor, limit: int = 200) -> list[dict]:
    """The actor's open tasks for the API ("Việc của tôi": assigned to them, or unassigned of their
    roles): the inbox screen's query, first page, with each step's assignee."""
    rows, _ = inbox_page(session, actor, per_page=limit)
    codes = dict(session.execute(select(Unit.id, Unit.code).where(
        Unit.id.in_({r["task"].unit_id for r in rows}))).all()) if rows else {}
    metas = _metas(session, [r["dossier"].version_id for r in rows])
    return [{"id": r["task"].id, "dossier_code": r["dossier"].code, "name": r["task"].name, "role": r["task"].role,
             "unit_code": codes.get(r["task"].unit_id), "started_at": r["task"].started_at, "due_at": r["task"].due_at,
             "decisions": r["task"].decisions, "assignee_id": r["task"].assignee_id, "assignee": r["assignee"],
             "labels": _labels(metas.get(r["dossier"].version_id), r["task"].spec_name, r["task"].decisions)}
            for r in rows]


def _metas(session: Session, version_ids) -> dict[int, dict]:
    ids = set(version_ids)
    return dict(session.execute(select(ProcedureVersion.id, ProcedureVersion.meta)
                                .where(ProcedureVersion.id.in_(ids))).all()) if ids else {}


def _labels(meta: dict | None, spec_name: str, decisions) -> dict[str, str]:
    labels = ((meta or {}).get("steps", {}).get(spec_name) or {}).get("labels") or {}
    return {d: labels[d] for d in decisions or () if labels.get(d)}


def decision_labels(session: Session, version_id: int, spec_name: str, decisions) -> dict[str, str]:
    """The button text of each of a step's decisions, as the diagram names the flow it takes (the step page
    shows the same); a decision whose flow has no name is left out."""
    return _labels(_metas(session, [version_id]).get(version_id), spec_name, decisions)


PUBLIC_LABELS = {
    "received": "Tiếp nhận hồ sơ", "supplement_requested": "Yêu cầu bổ sung giấy tờ",
    "supplement_received": "Nhận hồ sơ bổ sung",
    "apology_issued": "Gửi văn bản xin lỗi và đề nghị gia hạn thời gian giải quyết",
    "calendar_shift": "Đổi ngày hẹn trả do thay đổi lịch nghỉ",
    "finished": "Đã xử lý xong", "result_returned": "Trả kết quả", "refused": "Từ chối giải quyết",
    "withdrawn": "Dừng giải quyết theo đề nghị",
}


def public_lookup(session: Session, code: str, id_number: str) -> dict:
    """Status, dates and the public history, only when the code and the owner's ID number match.
    The history says when, what and which role (`role` code) — no staff names, no notes."""
    dossier = session.scalar(select(Dossier).where(Dossier.code == code))
    if dossier is None or not hmac.compare_digest(dossier.applicant_id_number.encode(), (id_number or "").encode()):
        raise NotFound("Không có hồ sơ nào được tìm thấy")
    procedure = session.get(Procedure, dossier.procedure_id)
    return {
        "code": dossier.code, "procedure_code": procedure.code, "procedure_name": procedure.name,
        "status": dossier.status, "overdue": deadlines.is_overdue(dossier, clock.now()), "received_at": dossier.received_at,
        "due_at": dossier.due_at, "finished_at": dossier.finished_at, "returned_at": dossier.returned_at,
        "history": _public_history(session, dossier.id),
        "rating": session.scalar(select(ServiceRating).where(ServiceRating.dossier_id == dossier.id)),
    }


def _public_history(session: Session, dossier_id: int) -> list[dict]:
    out, roles = [], {}
    for event in session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == dossier_id).order_by(AuditEvent.seq)):
        if event.kind == "task_started":
            roles[event.data["task_id"]] = event.data.get("role", "")
        elif event.kind == "task_completed":
            out.append({"at": event.at, "what": "Hoàn thành bước xử lý", "role": roles.get(event.data["task_id"], "")})
        elif event.kind in PUBLIC_LABELS:
            out.append({"at": event.at, "what": PUBLIC_LABELS[event.kind], "role": ""})
    return out


def dossier_page(session: Session, dossier: Dossier, now) -> dict:
    """Everything the dossier, task and form pages show about one dossier."""
    slip = control_slip(session, dossier.id)
    steps = [r for r in slip if not r.task_id.startswith("consultation-")]
    apology = session.scalar(select(Apology).where(Apology.dossier_id == dossier.id))
    signer = session.get(User, apology.signed_by_id) if apology is not None and apology.signed_by_id else None
    open_tasks = session.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier.id,
                                                         HumanTask.completed_at.is_(None))).all()
    return {
        "procedure": session.get(Procedure, dossier.procedure_id),
        "version": session.get(ProcedureVersion, dossier.version_id),
        "unit": session.get(Unit, dossier.unit_id),
        "files": session.scalars(select(DossierFile).where(DossierFile.dossier_id == dossier.id,
                                                           DossierFile.purpose != RESULT_PURPOSE)
                                 .order_by(DossierFile.id)).all(),
        "result": result_document(session, dossier),
        "slip": slip,
        "supplement": session.scalar(select(SupplementRequest).where(SupplementRequest.dossier_id == dossier.id)),
        "apology": apology,
        "apology_signer": (signer.full_name or signer.username) if signer is not None else None,
        "open_tasks": open_tasks,
        "rating": session.scalar(select(ServiceRating).where(ServiceRating.dossier_id == dossier.id)),
        # Leaders who may sign form 04 when the desk records it; the withdrawal request for form 05.
        "signers": sorted({h for unit in policy.holding_units(session, dossier)
                           for h in directory.holders(session, unit, "lanh_dao")}, key=lambda h: h[1]),
        "withdrawal": _withdrawal(session, dossier.id),
        # Notices to the applicant (e-mail, SMS) and where each stands (engine/notify).
        "notices": session.scalars(select(Notice).where(Notice.dossier_id == dossier.id).order_by(Notice.id)).all(),
        "consultations": consultations_of(session, dossier.id),
        "markers": {"done": sorted({r.step for r in steps if r.finished_at}),
                    "current": sorted({t.spec_name for t in open_tasks}),
                    "late": sorted({r.step for r in steps if r.result == "late"}
                                   | {t.spec_name for t in open_tasks if t.due_at < now})},
    }


def result_document(session: Session, dossier: Dossier) -> dict | None:
    """The dossier's result document (engine/dossiers/results.py): its number and signing date and the
    signed PDF (the latest one attached); None while nothing of it is recorded."""
    file = session.scalar(select(DossierFile).where(DossierFile.dossier_id == dossier.id,
                                                    DossierFile.purpose == RESULT_PURPOSE)
                          .order_by(DossierFile.id.desc()).limit(1))
    if file is None and dossier.result_number is None:
        return None
    return {"number": dossier.result_number, "signed_on": dossier.result_signed_on, "file": file}


def _result_out(result: dict | None) -> dict | None:
    if result is None:
        return None
    f = result["file"]
    return {"number": result["number"], "signed_on": result["signed_on"],
            "file": None if f is None else {"id": f.id, "filename": f.filename, "size": f.size, "sha256": f.sha256,
                                            "uploaded_at": f.uploaded_at}}


def _withdrawal(session: Session, dossier_id: int) -> dict | None:
    event = session.scalar(select(AuditEvent).where(AuditEvent.dossier_id == dossier_id, AuditEvent.kind == "withdrawn"))
    if event is None:
        return None
    asked = event.data.get("requested_at")
    return {"requested_at": datetime.fromisoformat(asked) if asked else event.at, "reason": event.data.get("reason", ""),
            "decided_at": event.at}


def register(session: Session, unit_ids: list[int], start, end, field: str = "") -> list[tuple]:
    """Sổ theo dõi (form 07): dossiers received at `unit_ids` from `start` to `end` (local days,
    inclusive), with their procedure and unit, in one query."""
    stmt = (select(Dossier, Procedure, Unit).join(Procedure, Procedure.id == Dossier.procedure_id)
            .join(Unit, Unit.id == Dossier.unit_id)
            .where(Dossier.unit_id.in_(unit_ids),
                   Dossier.received_at >= datetime.combine(start, time.min, tzinfo=VN_TZ),
                   Dossier.received_at < datetime.combine(end + timedelta(days=1), time.min, tzinfo=VN_TZ))
            .order_by(Dossier.received_at))
    if field:
        stmt = stmt.where(Procedure.field == field)
    return session.execute(stmt).all()


def inbox_page(session: Session, actor: Actor, *, q: str = "", procedure_code: str = "", only: str = "",
               page: int = 1, per_page: int = 25, at=None, whole_unit: bool = False) -> tuple[list[dict], int]:
    """The inbox screen. "Việc của tôi": the open tasks of the actor's roles in their units that are
    assigned to them or to nobody (a step is assigned only to a holder of its role there, so this is
    every task assigned to them); with `whole_unit`, "Việc của đơn vị": every open task of the actor's
    units, whoever holds it. Overdue first, then by due time, filtered (`only`: "qua-han" late steps,
    "chua-phan-cong" unassigned, "da-nhan" assigned to the actor); each row names the assignee."""
    from sqlalchemy import func, or_, tuple_

    from engine.text import fold

    pairs = sorted(actor.grants)
    if not pairs:
        return [], 0
    scope = (HumanTask.unit_id.in_(sorted({u for u, _ in pairs})) if whole_unit
             else tuple_(HumanTask.unit_id, HumanTask.role).in_(pairs) &
             or_(HumanTask.assignee_id.is_(None), HumanTask.assignee_id == actor.id))
    assignee = func.coalesce(func.nullif(User.full_name, ""), User.username)
    stmt = (select(HumanTask, Dossier, Procedure.code, Procedure.name, assignee)
            .join(Dossier, Dossier.id == HumanTask.dossier_id).join(Procedure, Procedure.id == Dossier.procedure_id)
            .outerjoin(User, User.id == HumanTask.assignee_id)
            .where(HumanTask.completed_at.is_(None), scope))
    if q.strip():
        stmt = stmt.where(Dossier.search_text.contains(fold(q), autoescape=True))
    if procedure_code:
        stmt = stmt.where(Procedure.code == procedure_code)
    if only == "qua-han" and at is not None:
        stmt = stmt.where(HumanTask.due_at < at)
    elif only == "chua-phan-cong":
        stmt = stmt.where(HumanTask.assignee_id.is_(None))
    elif only == "da-nhan":
        stmt = stmt.where(HumanTask.assignee_id == actor.id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.execute(stmt.order_by(HumanTask.due_at, HumanTask.started_at)
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return [{"task": t, "dossier": dz, "procedure_code": pc, "procedure_name": pn, "assignee": name}
            for t, dz, pc, pn, name in rows], total


# --- consultations (xin ý kiến) ---------------------------------------------------------------------
def _consultation_rows(session: Session, *where) -> list[dict]:
    stmt = (select(Consultation, Dossier.code, Unit.code, Unit.name)
            .join(Dossier, Dossier.id == Consultation.dossier_id).join(Unit, Unit.id == Consultation.unit_id)
            .where(*where).order_by(Consultation.due_at, Consultation.id))
    rows = session.execute(stmt).all()
    codes = {f"YKIEN-{c.id}": c.id for c, *_ in rows}
    attached: dict[int, list] = {}
    if codes:
        for f in session.scalars(select(DossierFile).where(DossierFile.component_code.in_(codes),
                                                           DossierFile.purpose == "consultation")):
            attached.setdefault(codes[f.component_code], []).append(f)
    return [{"id": c.id, "consultation": c, "dossier_code": code, "unit_code": ucode, "unit_name": uname,
             "files": attached.get(c.id, []),
             "step": c.step, "content": c.content, "asked_at": c.asked_at, "due_at": c.due_at,
             "answered_at": c.answered_at, "answer": c.answer, "late": c.late}
            for c, code, ucode, uname in rows]


def consultations_out(session: Session, ids: list[int]) -> list[dict]:
    """The API's view of consultations by id."""
    return _consultation_rows(session, Consultation.id.in_(ids)) if ids else []


def consultations_of(session: Session, dossier_id: int) -> list[dict]:
    return _consultation_rows(session, Consultation.dossier_id == dossier_id)


def pending_consultations(session: Session, actor: Actor) -> list[dict]:
    """Requests for an opinion waiting on the units where `actor` may answer them (their inbox)."""
    units = policy.units_for(session, actor, "consultation.answer")
    if not units:
        return []
    from engine.store.models import OPEN_STATUSES
    return _consultation_rows(session, Consultation.unit_id.in_(units), Consultation.answered_at.is_(None),
                              Dossier.status.in_(OPEN_STATUSES))


def late_consultations(session: Session, unit_ids: list[int], at) -> list[dict]:
    """Consulted units that answered late or have not answered past the deadline, on dossiers received
    at `unit_ids` (NĐ 61 Đ19(5): reported to the head of the one-stop desk)."""
    if not unit_ids:
        return []
    from sqlalchemy import and_, or_

    from engine.store.models import OPEN_STATUSES
    # Late: answered late, or let the deadline pass while the step waited (marked when the step went
    # on); silent past the deadline on a dossier still open. A dossier withdrawn or refused before the
    # deadline closes its requests without blame.
    return _consultation_rows(session, Dossier.unit_id.in_(unit_ids),
                              or_(Consultation.late.is_(True),
                                  and_(Consultation.answered_at.is_(None), Consultation.due_at < at,
                                       Dossier.status.in_(OPEN_STATUSES))))
