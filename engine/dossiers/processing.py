"""Processing: completing the steps of the process, and the one supplementation the law allows —
requested from a step (form 02), delivered at the desk (the processing time restarts)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engine import clock
from engine.catalog import calendar as calendar_mod
from engine.dossiers import consultations, results
from engine.dossiers.aggregate import Record
from engine.dossiers.change import DossierChange, dossier_change
from engine.dossiers.reception import handed_on, run_once, store_files, validate_components
from engine.errors import (
    InvalidInput,
    LateSupplementRequest,
    SupplementAlreadyRequested,
    SupplementNotRequested,
    TaskNotReady,
    WorkflowError,
)
from engine.reporting import deadlines
from engine.store.models import AWAITING_SUPPLEMENT, PROCESSING, RECEIVED, SupplementRequest

REQUEST_SUPPLEMENT, REFUSE, SEND_BACK = "request_supplement", "refuse", "return"
SUPPLEMENT_MESSAGE = "supplement_received"
FORM_FIELDS = frozenset({"decision", "reason", "items", "acknowledge_late"})
# How long the citizen is asked to answer a supplement request, in calendar days (the unit specialised
# law uses, e.g. business registration), unless the procedure says otherwise
# (`supplement_response_days`). NĐ 118/2025 sets no general limit: see docs/legal-rules.md, L10.
SUPPLEMENT_RESPONSE_DAYS = 30


@dataclass
class Completion:
    """What a completion changed: the dossier row, the completed task and the tasks now open."""

    dossier: Record
    task: Record
    next_tasks: list[Record]


def complete_task(session: Session, *, actor_id: int, task_id: str, data: dict | None = None, note: str = "",
                  result: dict | None = None, now: datetime | None = None) -> Completion:
    """Complete an open step with one of its diagram's decisions. `result`: the result document the step
    records when it approves, if its diagram says so ({file: {filename, content}, number, signed_on};
    engine/dossiers/results.py)."""
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
        consultations.require_answers(change, task)
        entry = results.check(change, task, decision, result)
        supplement = _supplement_request(change, data, note) if decision == REQUEST_SUPPLEMENT else None
        if decision in (REFUSE, SEND_BACK) and not note:
            raise InvalidInput("a reason is required", errors={"reason": "required"})

        change.record_decision(task, decision, note, late=task.late or change.now > task.due_at,
                               on_time=change.now <= task.due_at)
        if entry is not None:
            results.record(change, task, entry)
        if supplement is not None:
            _open_supplement(change, task, supplement)
        if decision == REFUSE:
            # A proposal until the process ends: the steps after it (the leader signing form 03, the
            # desk handing it over) carry it; sending the dossier back withdraws it.
            dossier.refusal_reason = note
        elif decision == SEND_BACK:
            dossier.refusal_reason = None
        created = change.sync(refused=dossier.refusal_reason is not None)
    return Completion(dossier, task, created)


def _supplement_request(change: DossierChange, data: dict, note: str) -> dict:
    # Counted from history (a stored request, or the catch event ever reached), never from task data.
    if change.has_part(SupplementRequest) or change.instance().reached_count(set(change.meta.get("supplement_events", []))):
        raise SupplementAlreadyRequested(
            "supplementation was already requested once for this dossier; the law allows only one request "
            "(NĐ 118/2025 Đ11(2)). Refuse the dossier or continue processing instead.")
    items = supplement_items(change.meta.get("components", []), data.get("items"))
    if not note:
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    within_window = change.now <= supplement_window_end(change)
    if not within_window and data.get("acknowledge_late") not in (True, "true", "1", "on", 1):
        raise LateSupplementRequest(
            "the window for a supplement request (3 working days after reception, L10) has passed: the request "
            "will be recorded as late and the processing time will not restart. Confirm with acknowledge_late.")
    return {"reason": note, "items": items, "within_window": within_window}


def supplement_window_end(change: DossierChange) -> datetime:
    """The end of the window after reception in which a supplement request pauses and restarts the
    processing time (NĐ 61 Đ19(4), L10)."""
    received = change.dossier.received_at
    return deadlines.supplement_window_end(change.calendar, received, change.meta.get("supplement_window_days", 3),
                                           calendar_mod.same_day_cutoff(change.session, clock.local(received).date()))


ITEM_TEXT_MAX = 2000
ITEMS_MAX = 100


def supplement_items(components: list[dict], items) -> list[dict]:
    """Each requested item names a component of the procedure and what is wrong with it, or is a
    document the procedure does not list ("ngoài danh mục"), with the reason it is needed (L1)."""
    if not isinstance(items, list) or not items:
        raise InvalidInput("list every document to supplement, completely, in one request",
                           errors={"items": "at least one item"})
    if len(items) > ITEMS_MAX:
        raise InvalidInput("too many items in one request", errors={"items": f"at most {ITEMS_MAX} items"})
    by_code = {c["code"]: c for c in components}
    out, errors = [], {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items.{i}"] = "an object {component, problem} naming one of: " + ", ".join(by_code)
            continue
        code = item.get("component") or None
        problem = str(item.get("problem") or "").strip()
        if not problem:
            errors[f"items.{i}.problem"] = "say what is missing or wrong"
        for key in ("problem", "name", "reason"):   # the same bounds as the API's schema, for every caller
            if len(str(item.get(key) or "")) > ITEM_TEXT_MAX:
                errors[f"items.{i}.{key}"] = f"at most {ITEM_TEXT_MAX} characters"
        if code is not None:
            if code not in by_code:
                errors[f"items.{i}.component"] = "not a component of this procedure: " + ", ".join(by_code)
                continue
            out.append({"component": code, "name": by_code[code]["name"], "problem": problem})
        else:
            name, reason = str(item.get("name") or "").strip(), str(item.get("reason") or "").strip()
            if not name:
                errors[f"items.{i}.name"] = "name the document"
            if not reason:
                errors[f"items.{i}.reason"] = "a document the procedure does not list needs a reason"
            out.append({"component": None, "name": name, "problem": problem, "reason": reason})
    if errors:
        raise InvalidInput("each item names a component of the procedure and what is wrong with it", errors=errors)
    return out


def _open_supplement(change: DossierChange, task: Record, request: dict) -> None:
    dossier, cal = change.dossier, change.calendar
    if not change.instance().waiting_for_message(SUPPLEMENT_MESSAGE):
        raise WorkflowError("the diagram's request_supplement path does not wait for 'supplement_received'")
    within_window = request["within_window"]
    respond_days = change.meta.get("supplement_response_days") or SUPPLEMENT_RESPONSE_DAYS
    respond_by = cal.end_of_working_day(
        cal.working_day_on_or_after(clock.local(change.now).date() + timedelta(days=respond_days)))
    change.on_duplicate = SupplementAlreadyRequested("supplementation was already requested once for this dossier")
    change.add(SupplementRequest, requested_at=change.now, requested_by_id=change.actor.id, step=task.spec_name,
               previous_due_at=dossier.legal_due_at, respond_by=respond_by, **request)
    dossier.status = AWAITING_SUPPLEMENT
    dossier.supplemented = True
    dossier.supplement_late = not within_window
    # A timely request pauses the processing time while the citizen holds the dossier; a late one does
    # not: the agency bears the delay.
    dossier.clock_paused = within_window
    if within_window:
        dossier.overdue = False
    change.audit("supplement_requested", step=task.spec_name, reason=request["reason"], items=request["items"],
                 within_window=within_window, respond_by=respond_by.isoformat())


def request_supplement(session: Session, *, actor_id: int, task_id: str, reason: str, items: list[dict],
                       acknowledge_late: bool = False, now: datetime | None = None) -> Completion:
    """Form 02: the step's request_supplement decision, allowed once per dossier."""
    return complete_task(session, actor_id=actor_id, task_id=task_id,
                         data={"decision": REQUEST_SUPPLEMENT, "items": items, "acknowledge_late": acknowledge_late},
                         note=reason, now=now)


def deliver_supplement(session: Session, *, actor_id: int, dossier_code: str, components: list[dict],
                       note: str = "", now: datetime | None = None, idempotency: tuple[str, str] | None = None) -> Record:
    """The citizen's complete supplement arrives: after a timely request the processing time restarts
    from zero and a new appointment is set (L10); after a late one the dates in force stay."""
    with dossier_change(session, actor_id=actor_id, permission="supplement.deliver", code=dossier_code, now=now) as change:
        dossier, now = change.dossier, change.now
        request = change.part(SupplementRequest)
        if dossier.status != AWAITING_SUPPLEMENT or request is None or request.received_at is not None:
            raise SupplementNotRequested(f"dossier {dossier.code} is not waiting for a supplement")
        comps = validate_components(change.meta["components"], components, require_all=False)
        if not comps:
            raise InvalidInput("attach the supplemented documents", errors={"components": "at least one file"})
        change.sender_unit = dossier.unit_id  # the desk hands the supplement on
        try:
            change.run(lambda inst: inst.deliver_message(SUPPLEMENT_MESSAGE, {"note": note}),
                       "the process failed after the supplement")
        except TaskNotReady:
            raise SupplementNotRequested(f"dossier {dossier.code} is not waiting for a supplement") from None
        stored = store_files(change, comps, "supplement")
        cal = change.calendar
        previous = dossier.due_at
        if request.within_window:
            new_due = cal.appointment(now, change.meta["statutory_days"],
                                      calendar_mod.same_day_cutoff(change.session, clock.local(now).date()))
            dossier.due_at = dossier.legal_due_at = new_due
            dossier.overdue = False
            # A new processing period: an earlier apology covered the old date, not this one.
            dossier.apologized = dossier.late_without_apology = False
        else:
            new_due = dossier.due_at
        request.received_at, request.received_by_id, request.received_note = now, change.actor.id, note
        request.new_due_at = new_due
        change.save_part(SupplementRequest, request)
        dossier.handed_on_at = handed_on(change.session, cal, dossier.channel, now)
        dossier.status = PROCESSING
        dossier.clock_paused = False
        change.audit("supplement_received", previous_due_at=previous.isoformat(), due_at=new_due.isoformat(), note=note,
                     files=stored, restarted=bool(request.within_window))
        change.sync()
        change.emit("supplement_received")
        change.remember_request("deliver_supplement", idempotency)
    return dossier


def deliver_supplement_once(session: Session, *, key: str, digest: str, **kwargs) -> tuple[Record, bool]:
    return run_once(session, kwargs["actor_id"], key, digest, "deliver_supplement",
                    lambda idem: deliver_supplement(session, idempotency=idem, **kwargs))
