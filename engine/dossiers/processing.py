"""Processing: completing the steps of the process, and the one supplementation the law allows —
requested from a step (form 02), delivered at the desk (the processing time restarts)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from engine import clock
from engine.dossiers.aggregate import Record
from engine.dossiers.change import DossierChange, dossier_change
from engine.dossiers.reception import PAPER_CUTOFF, run_once, store_files, validate_components
from engine.errors import (
    InvalidInput,
    SupplementAlreadyRequested,
    SupplementNotRequested,
    TaskNotReady,
    WorkflowError,
)
from engine.store.models import AWAITING_SUPPLEMENT, PROCESSING, RECEIVED, SupplementRequest

REQUEST_SUPPLEMENT, REFUSE, SEND_BACK = "request_supplement", "refuse", "return"
SUPPLEMENT_MESSAGE = "supplement_received"
FORM_FIELDS = frozenset({"decision", "reason", "items"})


@dataclass
class Completion:
    """What a completion changed: the dossier row, the completed task and the tasks now open."""

    dossier: Record
    task: Record
    next_tasks: list[Record]


def complete_task(session: Session, *, actor_id: int, task_id: str, data: dict | None = None, note: str = "",
                  now: datetime | None = None) -> Completion:
    """Complete an open step with one of its diagram's decisions."""
    data = dict(data or {})
    with dossier_change(session, actor_id=actor_id, permission="task.complete", task_id=task_id, now=now) as change:
        dossier, task = change.dossier, change.task
        if dossier.status not in (RECEIVED, PROCESSING):
            raise TaskNotReady(f"dossier {dossier.code} is {dossier.status}; no step can be completed now")
        unknown = sorted(set(data) - FORM_FIELDS)
        if unknown:
            raise InvalidInput("unexpected form fields", errors={k: "not a field of this step" for k in unknown})
        decision = data.get("decision") or (task.decisions[0] if len(task.decisions) == 1 else None)
        if decision not in task.decisions:
            raise InvalidInput(f"decision must be one of: {', '.join(task.decisions)}",
                               errors={"decision": f"one of {', '.join(task.decisions)}"})
        note = str(note or data.get("reason") or "").strip()
        supplement = _supplement_request(change, data, note) if decision == REQUEST_SUPPLEMENT else None
        if decision in (REFUSE, SEND_BACK) and not note:
            raise InvalidInput("a reason is required", errors={"reason": "required"})

        change.run(lambda inst: inst.complete(task_id, {"decision": decision}), f"the process failed after '{task.name}'")
        change.complete_task(task, completed_at=change.now, completed_by_id=change.actor.id, decision=decision,
                             note=note, late=task.late or change.now > task.due_at)
        change.audit("task_completed", step=task.spec_name, task_id=task.id, decision=decision, note=note,
                     on_time=change.now <= task.due_at)
        if dossier.status == RECEIVED:
            dossier.status = PROCESSING
        if supplement is not None:
            _open_supplement(change, task, supplement)
        if decision == REFUSE:
            dossier.refusal_reason = note
        created = change.sync(refused=decision == REFUSE)
    return Completion(dossier, task, created)


def _supplement_request(change: DossierChange, data: dict, note: str) -> dict:
    # Counted from history (a stored request, or the catch event ever reached), never from task data.
    if change.has_part(SupplementRequest) or change.instance().reached_count(set(change.meta.get("supplement_events", []))):
        raise SupplementAlreadyRequested(
            "supplementation was already requested once for this dossier; the law allows only one request "
            "(NĐ 118/2025 Đ11(2)). Refuse the dossier or continue processing instead.")
    items = data.get("items") or []
    if isinstance(items, str):
        items = [line.strip() for line in items.splitlines() if line.strip()]
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items) or not items:
        raise InvalidInput("list every document to supplement, completely, in one request",
                           errors={"items": "at least one item"})
    if not note:
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    return {"reason": note, "items": [i.strip() for i in items]}


def _open_supplement(change: DossierChange, task: Record, request: dict) -> None:
    dossier, cal = change.dossier, change.calendar
    if not change.instance().waiting_for_message(SUPPLEMENT_MESSAGE):
        raise WorkflowError("the diagram's request_supplement path does not wait for 'supplement_received'")
    # Asked within the window the procedure allows after reception (NĐ 61 Đ9): later requests are
    # recorded, and reported, as late.
    window_end = cal.end_of_working_day(
        cal.add_working_days(clock.local(dossier.received_at).date(), change.meta.get("supplement_window_days", 3)))
    within_window = change.now <= window_end
    change.on_duplicate = SupplementAlreadyRequested("supplementation was already requested once for this dossier")
    change.add(SupplementRequest, requested_at=change.now, requested_by_id=change.actor.id, step=task.spec_name,
               previous_due_at=dossier.due_at, within_window=within_window, **request)
    dossier.status = AWAITING_SUPPLEMENT
    dossier.supplemented = True
    change.audit("supplement_requested", step=task.spec_name, reason=request["reason"], items=request["items"],
                 within_window=within_window)


def request_supplement(session: Session, *, actor_id: int, task_id: str, reason: str, items: list[str],
                       now: datetime | None = None) -> Completion:
    """Form 02: the step's request_supplement decision, allowed once per dossier."""
    return complete_task(session, actor_id=actor_id, task_id=task_id,
                         data={"decision": REQUEST_SUPPLEMENT, "items": items}, note=reason, now=now)


def deliver_supplement(session: Session, *, actor_id: int, dossier_code: str, components: list[dict],
                       note: str = "", now: datetime | None = None, idempotency: tuple[str, str] | None = None) -> Record:
    """The citizen's complete supplement arrives: the processing time restarts from zero (L10)."""
    with dossier_change(session, actor_id=actor_id, permission="supplement.deliver", code=dossier_code, now=now) as change:
        dossier, now = change.dossier, change.now
        request = change.part(SupplementRequest)
        if dossier.status != AWAITING_SUPPLEMENT or request is None or request.received_at is not None:
            raise SupplementNotRequested(f"dossier {dossier.code} is not waiting for a supplement")
        comps = validate_components(change.meta["components"], components, require_all=False)
        if not comps:
            raise InvalidInput("attach the supplemented documents", errors={"components": "at least one file"})
        try:
            change.run(lambda inst: inst.deliver_message(SUPPLEMENT_MESSAGE, {"note": note}),
                       "the process failed after the supplement")
        except TaskNotReady:
            raise SupplementNotRequested(f"dossier {dossier.code} is not waiting for a supplement") from None
        stored = store_files(change, comps, "supplement")
        cal = change.calendar
        new_due = cal.appointment(now, change.meta["statutory_days"], PAPER_CUTOFF)
        request.received_at, request.received_by_id, request.received_note = now, change.actor.id, note
        request.new_due_at = new_due
        change.save_part(SupplementRequest, request)
        previous = dossier.due_at
        dossier.due_at = new_due
        dossier.handed_on_at = cal.handover_time(now, PAPER_CUTOFF) if dossier.channel != "online" else cal.align_forward(now)
        dossier.status = PROCESSING
        dossier.overdue = False
        change.audit("supplement_received", previous_due_at=previous.isoformat(), due_at=new_due.isoformat(), note=note,
                     files=stored)
        change.sync()
        change.emit("supplement_received")
        change.remember_request("deliver_supplement", idempotency)
    return dossier


def deliver_supplement_once(session: Session, *, key: str, digest: str, **kwargs) -> tuple[Record, bool]:
    return run_once(session, kwargs["actor_id"], key, digest, "deliver_supplement",
                    lambda idem: deliver_supplement(session, idempotency=idem, **kwargs))
