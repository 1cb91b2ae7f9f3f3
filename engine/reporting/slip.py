"""The control slip (phiếu kiểm soát, form 06): every hand-over of a dossier, derived from its audit log."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.reporting.counters import classify
from engine.store.models import AuditEvent, Unit

LATE_REQUEST = "Yêu cầu bổ sung muộn (sau 03 ngày làm việc kể từ ngày tiếp nhận)"


@dataclass
class SlipRow:
    """One hand-over on the control slip (form 06)."""

    task_id: str
    step: str
    step_name: str
    role: str
    unit: str | None         # the code of the unit whose lane holds the step (liên thông); None in old logs
    handed_at: datetime      # the real time of the hand-over
    clock_from: datetime     # when the step's working-time clock started (after a 15:00 cut-off: next morning)
    giver: str
    receiver: str | None
    due_at: datetime
    finished_at: datetime | None
    decision: str | None
    note: str
    result: str | None  # early | on_time | late (None while open)
    unit_name: str | None = None
    from_unit: str | None = None   # liên thông: the unit that handed the dossier over to this step's unit
    from_unit_name: str | None = None
    # The result document this step recorded (engine/dossiers/results.py): the signed PDF's file name,
    # the number and the signing date entered in the register.
    result_file: str | None = None
    result_number: str | None = None
    result_signed_on: date | None = None


def control_slip(session: Session, dossier_id: int) -> list[SlipRow]:
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.dossier_id == dossier_id).order_by(AuditEvent.seq)).all()
    rows: dict[str, SlipRow] = {}
    last_actor, last_done = "Một cửa", None
    handed: dict[str, str] = {}  # step → the unit it was handed over from (the handed_off event before it)
    for event in events:
        if event.kind == "handed_off":
            handed[event.step or ""] = event.data.get("from_unit")
        elif event.kind == "received":
            last_actor = event.actor_name
        elif event.kind == "task_started":
            d = event.data
            # A step started again while its earlier row is still open was re-created (a migration to
            # a new version keeps its deadline): the new row replaces the old one.
            rows = {k: r for k, r in rows.items() if r.finished_at is not None or r.step != event.step}
            rows[d["task_id"]] = SlipRow(
                task_id=d["task_id"], step=event.step or "", step_name=d["name"], role=d["role"], unit=d.get("unit"),
                handed_at=event.at, clock_from=datetime.fromisoformat(d["started_at"]), giver=last_actor,
                from_unit=handed.pop(event.step or "", None), receiver=None,
                due_at=datetime.fromisoformat(d["due_at"]), finished_at=None, decision=None, note="", result=None,
            )
        elif event.kind == "task_completed":
            row = rows.get(event.data["task_id"])
            if row is not None:
                row.receiver = event.actor_name
                row.finished_at = event.at
                row.decision = event.data.get("decision")
                row.note = event.data.get("note", "")
                row.result = classify(event.at, row.due_at)
                last_done = row
            last_actor = event.actor_name
        elif event.kind in ("result_attached", "result_registered"):
            row = rows.get(event.data.get("task_id"))
            if row is not None and event.kind == "result_attached":
                row.result_file = event.data.get("filename")
            elif row is not None:
                signed = event.data.get("signed_on")
                row.result_number = event.data.get("number")
                row.result_signed_on = date.fromisoformat(signed) if signed else None
        elif event.kind == "consultation_requested":
            # L8: a request for another unit's opinion is a hand-over with its own deadline.
            d = event.data
            rows[f"consultation-{d['consultation_id']}"] = SlipRow(
                task_id=f"consultation-{d['consultation_id']}", step=event.step or "",
                step_name=f"Cho ý kiến: {d.get('content', '')}", role="", unit=d.get("unit"), handed_at=event.at,
                clock_from=event.at, giver=event.actor_name, receiver=None,
                due_at=datetime.fromisoformat(d["due_at"]), finished_at=None, decision=None, note="", result=None)
        elif event.kind == "consultation_answered":
            row = rows.get(f"consultation-{event.data['consultation_id']}")
            if row is not None:
                row.receiver, row.finished_at = event.actor_name, event.at
                row.result = classify(event.at, row.due_at)
        elif event.kind == "supplement_requested" and event.data.get("within_window") is False and last_done:
            # L10: a request after the window is marked on the slip (the processing time did not restart).
            last_done.note = (last_done.note + " — " if last_done.note else "") + LATE_REQUEST
        elif event.kind == "supplement_received":
            last_actor = event.actor_name
    out = list(rows.values())
    codes = {r.unit for r in out if r.unit} | {r.from_unit for r in out if r.from_unit}
    if codes:
        names = dict(session.execute(select(Unit.code, Unit.name).where(Unit.code.in_(codes))).all())
        for r in out:
            r.unit_name, r.from_unit_name = names.get(r.unit), names.get(r.from_unit)
    return out
