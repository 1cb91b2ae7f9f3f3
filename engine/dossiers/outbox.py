"""Outbox for the national public-service portal: one event row per dossier state change, written
in the same transaction as the change, pushed in order with retries (at-least-once, stable ids)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from engine import clock
from engine.store.db import Prepared, begin_write
from engine.store.models import Dossier, OutboxEvent, Procedure


def row(session: Session, dossier: Dossier, kind: str, at: datetime, procedure_code: str | None = None) -> dict:
    """The outbox row for one event of `dossier` (its payload is what the portal receives)."""
    if procedure_code is None:
        procedure_code = session.execute(select(Procedure.code).where(Procedure.id == dossier.procedure_id)).scalar_one()
    payload = {
        "dossier_code": dossier.code,
        "procedure_code": procedure_code,
        "status": dossier.status,
        "overdue": bool(dossier.overdue),
        "apologized": bool(dossier.apologized),
        "received_at": clock.local(dossier.received_at).isoformat(),
        "due_at": clock.local(dossier.due_at).isoformat(),
        "finished_at": clock.local(dossier.finished_at).isoformat() if dossier.finished_at else None,
        "returned_at": clock.local(dossier.returned_at).isoformat() if dossier.returned_at else None,
        "occurred_at": clock.local(at).isoformat(),
    }
    event_id = str(uuid.uuid4())
    payload["event_id"], payload["event"] = event_id, kind
    return {"event_id": event_id, "dossier_id": dossier.id, "kind": kind, "payload": payload, "occurred_at": at}


_INSERT = Prepared(insert(OutboxEvent.__table__))  # built once: every use case writes here


def write(session: Session, rows: list[dict]) -> None:
    """Insert outbox rows (one multi-row INSERT, in the current transaction)."""
    if rows:
        _INSERT.run(session.connection(), rows)


def record(session: Session, dossier: Dossier, kind: str, at: datetime) -> None:
    write(session, [row(session, dossier, kind, at)])


@dataclass
class PushReport:
    sent: int = 0
    failed: int = 0
    last_error: str | None = None


def push(factory: sessionmaker, url: str, *, batch: int = 100, timeout: float = 10.0, max_batches: int | None = None,
         token: str | None = None) -> PushReport:
    """POST each unsent event (JSON) to `url`, oldest first; stop at the first failure so order holds.
    The receiver must treat `event_id` as the idempotency key: a crash after delivery and before
    marking resends the event."""
    report = PushReport()
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with factory() as session:
            begin_write(session)
            events = session.scalars(select(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
                                     .order_by(OutboxEvent.id).limit(batch).with_for_update(skip_locked=True)).all()
            if not events:
                return report
            for event in events:
                event.attempts += 1
                try:
                    _post(url, event.payload, timeout, token)
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    event.last_error = str(exc)[:500]
                    report.failed += 1
                    report.last_error = event.last_error
                    session.commit()
                    return report
                event.sent_at, event.last_error = clock.now(), None
                report.sent += 1
            session.commit()
    return report


def _post(url: str, payload: dict, timeout: float, token: str | None) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "Idempotency-Key": payload["event_id"]}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (URL is the operator's)
        if resp.status >= 300:
            raise ValueError(f"receiver answered HTTP {resp.status}")


def push_with_retries(factory: sessionmaker, url: str, *, attempts: int = 5, backoff: float = 1.0, **kwargs) -> PushReport:
    """Push until the outbox is empty or `attempts` consecutive failures, backing off exponentially."""
    total = PushReport()
    failures = 0
    while True:
        report = push(factory, url, **kwargs)
        total.sent += report.sent
        total.failed += report.failed
        total.last_error = report.last_error or total.last_error
        if report.failed == 0:
            return total
        failures += 1
        if failures >= attempts:
            return total
        time.sleep(backoff * 2 ** (failures - 1))
