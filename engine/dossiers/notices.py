"""Notices to the applicant (e-mail, SMS), queued with the change that causes them.

`queue(session, dossier, kinds, previous_status, at)` is called by the unit of work
(engine/dossiers/change.py, `DossierChange.close`) in the change's transaction, so a notice exists
exactly when its change was committed. It writes one `notices` row per channel the applicant gave
(e-mail address, phone number) for each notice the change calls for:

    the change                                   the notice (engine/notify/messages.py)
    emitted "received"                           receipt, with the appointment (due_at)
    status became awaiting_supplement            supplement request: reason, items, answer-by date
    emitted "appointment_changed", by an apology apology: reason, previous and new appointment
      … by a change of the working calendar      new appointment: previous and new
    status became refused                        refusal, with the reason
    status became result_ready                   result ready, collect it at the desk
    status became withdrawn                      withdrawal (processing stopped)

Nothing for any other change (supplement delivered, overdue flags, result handed over …). It runs in
every use case's transaction, so it reads nothing when no notice is due and at most one row (the
supplement request or the apology) when one is. The rows are sent by engine.notify.send_pending.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine import clock
from engine.dossiers import aggregate
from engine.notify import messages
from engine.store.models import AWAITING_SUPPLEMENT, REFUSED, RESULT_READY, WITHDRAWN, Apology, Notice, SupplementRequest

NOTICES = Notice.__table__


def channels(applicant: dict | None) -> list[tuple[str, str]]:
    """(channel, recipient) for each way the applicant can be reached."""
    applicant = applicant or {}
    out = []
    email, phone = str(applicant.get("email") or "").strip(), str(applicant.get("phone") or "").strip()
    if email:
        out.append(("email", email))
    if phone:
        out.append(("sms", phone))
    return out


def _iso(value: datetime | None) -> str | None:
    return clock.local(value).isoformat() if value is not None else None


def due_notices(session: Session, dossier, kinds: list[str], previous_status: str | None,
                at: datetime) -> list[tuple[str, dict]]:
    """(kind, payload) of each notice the change calls for."""
    status = dossier.status
    moved = status != previous_status
    out: list[tuple[str, dict]] = []
    if "received" in kinds:
        out.append((messages.RECEIPT, {"received_at": _iso(dossier.received_at), "due_at": _iso(dossier.due_at)}))
    if moved and status == AWAITING_SUPPLEMENT:
        request = aggregate.part(session, SupplementRequest, dossier.id)
        if request is not None:
            out.append((messages.SUPPLEMENT_REQUEST, {
                "reason": request.reason, "items": request.items, "respond_by": _iso(request.respond_by),
                "within_window": bool(request.within_window), "requested_at": _iso(request.requested_at)}))
    if "appointment_changed" in kinds:
        apology = aggregate.part(session, Apology, dossier.id)
        if apology is not None and apology.issued_at == at:
            out.append((messages.APOLOGY, {"reason": apology.reason, "previous_due_at": _iso(apology.previous_due_at),
                                           "new_due_at": _iso(apology.new_due_at)}))
        else:  # the working calendar changed under the dossier (engine/dossiers/calendar_shift.py)
            before = getattr(dossier, "_read", {}).get("due_at")
            out.append((messages.NEW_APPOINTMENT, {"previous_due_at": _iso(before), "new_due_at": _iso(dossier.due_at),
                                                   "cause": "calendar"}))
    if "supplement_received" in kinds:
        # The complete supplement arrived: after a timely request the processing time restarted (L10),
        # and the applicant is told the new appointment.
        before = getattr(dossier, "_read", {}).get("due_at")
        if before is not None and before != dossier.due_at:
            out.append((messages.NEW_APPOINTMENT, {"previous_due_at": _iso(before), "new_due_at": _iso(dossier.due_at),
                                                   "cause": "supplement"}))
    if moved and status == REFUSED:
        out.append((messages.REFUSAL, {"reason": dossier.refusal_reason}))
    if moved and status == RESULT_READY:
        out.append((messages.RESULT_READY, {"finished_at": _iso(dossier.finished_at)}))
    if moved and status == WITHDRAWN:
        out.append((messages.WITHDRAWAL, {"finished_at": _iso(dossier.finished_at)}))
    return out


def queue(session: Session, dossier, kinds: list[str], previous_status: str | None, at: datetime) -> None:
    """Write the notices the change calls for, in its transaction (no commit)."""
    ways = channels(dossier.applicant)
    if not ways:
        return
    if not kinds and dossier.status == previous_status:
        return
    due = due_notices(session, dossier, kinds, previous_status, at)
    if not due:
        return
    name = str((dossier.applicant or {}).get("name") or "").strip()
    rows = [{"uid": str(uuid.uuid4()), "dossier_id": dossier.id, "kind": kind, "channel": channel,
             "recipient": recipient[:255], "payload": {"name": name, **payload}, "created_at": at,
             "state": "pending", "attempts": 0, "next_attempt_at": at}
            for kind, payload in due for channel, recipient in ways]
    session.connection().execute(insert(NOTICES), rows)
