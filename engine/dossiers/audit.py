"""Append-only, hash-chained audit log per dossier: chaining new events and verifying a chain."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.store.models import AuditEvent

GENESIS = "0" * 64


def _digest(prev_hash: str, seq: int, at: datetime, actor_id: int | None, kind: str, step: str | None, data: dict) -> str:
    payload = json.dumps(
        {"prev": prev_hash, "seq": seq, "at": at.isoformat(), "actor": actor_id, "kind": kind, "step": step, "data": data},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chain(dossier, kind: str, at: datetime, actor=None, step: str | None = None, **data) -> dict:
    """The next event of `dossier`'s chain as a row to insert (`actor`: an Actor, or None for the
    system); advances the chain head on the dossier record. The caller holds the dossier's row lock,
    so seq and head are stable; the unit of work writes the rows in one INSERT before it commits."""
    seq = dossier.audit_seq + 1
    # UTC, millisecond precision: exactly what both databases give back, so the hash re-verifies.
    at = at.astimezone(timezone.utc).replace(microsecond=(at.microsecond // 1000) * 1000)
    prev = dossier.audit_head
    actor_id = actor.id if actor is not None else None
    digest = _digest(prev, seq, at, actor_id, kind, step, data)
    dossier.audit_seq, dossier.audit_head = seq, digest
    return {"dossier_id": dossier.id, "seq": seq, "at": at, "actor_id": actor_id,
            "actor_name": actor.display_name if actor is not None else "hệ thống",
            "kind": kind, "step": step, "data": data, "prev_hash": prev, "hash": digest}


def write(session: Session, rows: list[dict]) -> None:
    """Insert chained events (one multi-row INSERT, in the current transaction)."""
    if rows:
        session.connection().execute(insert(AuditEvent), rows)


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
