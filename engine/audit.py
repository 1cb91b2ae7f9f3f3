"""Append-only, hash-chained audit log per dossier, and the control slip (form 06) derived from it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .models import AuditEvent, Dossier

GENESIS = "0" * 64


def _digest(prev_hash: str, seq: int, at: datetime, actor_id: int | None, kind: str, step: str | None, data: dict) -> str:
    payload = json.dumps(
        {"prev": prev_hash, "seq": seq, "at": at.isoformat(), "actor": actor_id, "kind": kind, "step": step, "data": data},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_BUFFER = "motcua.audit_events"


def append(session: Session, dossier: Dossier, kind: str, at: datetime, actor=None,
           step: str | None = None, **data) -> None:
    """Append one event (`actor`: an engine.actors.Actor or None for the system). The caller holds
    the dossier's row lock, so seq and head are stable. Events are buffered on the session and
    written with one Core INSERT just before the transaction commits (see `flush`)."""
    seq = dossier.audit_seq + 1
    # UTC, millisecond precision: exactly what both databases give back, so the hash re-verifies.
    at = at.astimezone(timezone.utc).replace(microsecond=(at.microsecond // 1000) * 1000)
    prev = dossier.audit_head
    actor_id = actor.id if actor is not None else None
    digest = _digest(prev, seq, at, actor_id, kind, step, data)
    session.info.setdefault(_BUFFER, []).append({
        "dossier_id": dossier.id, "seq": seq, "at": at, "actor_id": actor_id,
        "actor_name": actor.display_name if actor is not None else "hệ thống",
        "kind": kind, "step": step, "data": data, "prev_hash": prev, "hash": digest,
    })
    dossier.audit_seq, dossier.audit_head = seq, digest


def flush(session: Session) -> None:
    """Write the buffered events (one multi-row INSERT, in the current transaction)."""
    rows = session.info.pop(_BUFFER, None)
    if rows:
        session.connection().execute(insert(AuditEvent), rows)


def discard(session: Session) -> None:
    """Drop buffered events of work that was rolled back (e.g. a failed savepoint)."""
    session.info.pop(_BUFFER, None)


@sa_event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    flush(session)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    discard(session)


def verify_chain(session: Session, dossier_id: int) -> int | None:
    """None if the chain is intact, else the seq of the first event that does not match."""
    prev = GENESIS
    events = session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == dossier_id).order_by(AuditEvent.seq))
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq or event.prev_hash != prev:
            return event.seq
        if _digest(prev, event.seq, event.at, event.actor_id, event.kind, event.step, event.data) != event.hash:
            return event.seq
        prev = event.hash
    return None


@dataclass
class SlipRow:
    """One hand-over on the control slip (form 06)."""

    task_id: str
    step: str
    step_name: str
    role: str
    handed_at: datetime
    giver: str
    receiver: str | None
    due_at: datetime
    finished_at: datetime | None
    decision: str | None
    note: str
    result: str | None  # early | on_time | late (None while open)


def classify(finished: datetime, due: datetime, tz) -> str:
    """Trước hạn / đúng hạn / quá hạn: early when finished on an earlier day than the due day."""
    if finished > due:
        return "late"
    return "early" if finished.astimezone(tz).date() < due.astimezone(tz).date() else "on_time"


def control_slip(session: Session, dossier: Dossier) -> list[SlipRow]:
    from .clock import VN_TZ

    events = session.scalars(
        select(AuditEvent).where(AuditEvent.dossier_id == dossier.id).order_by(AuditEvent.seq)
    ).all()
    rows: dict[str, SlipRow] = {}
    last_actor = "Một cửa"
    for event in events:
        if event.kind == "received":
            last_actor = event.actor_name
        elif event.kind == "task_started":
            d = event.data
            # A step started again while its earlier row is still open was re-created (a migration to
            # a new version keeps its deadline): the new row replaces the old one.
            rows = {k: r for k, r in rows.items() if r.finished_at is not None or r.step != event.step}
            rows[d["task_id"]] = SlipRow(
                task_id=d["task_id"], step=event.step or "", step_name=d["name"], role=d["role"],
                handed_at=datetime.fromisoformat(d["started_at"]), giver=last_actor, receiver=None,
                due_at=datetime.fromisoformat(d["due_at"]), finished_at=None, decision=None, note="", result=None,
            )
        elif event.kind == "task_completed":
            row = rows.get(event.data["task_id"])
            if row is not None:
                row.receiver = event.actor_name
                row.finished_at = event.at
                row.decision = event.data.get("decision")
                row.note = event.data.get("note", "")
                row.result = classify(event.at, row.due_at, VN_TZ)
            last_actor = event.actor_name
        elif event.kind in ("supplement_received",):
            last_actor = event.actor_name

    return list(rows.values())
