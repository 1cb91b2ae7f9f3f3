"""Sending the queued notices: claim the due ones, send each, record what happened.

A notice is taken by one sender at a time: a short write transaction *claims* a batch with one
conditional UPDATE (still pending, due now → attempts + 1, next attempt pushed past the claim's
lease), so a second sender running at the same time — another thread, process or machine — finds
nothing due in them; on PostgreSQL a concurrent claim of the same rows waits for the first to commit
and then no longer matches. The sending itself happens with no transaction open (no lock held while
an SMTP server or a gateway answers, which matters on SQLite, where that would stall every use case),
and each outcome is written in its own short transaction right after the send:
- delivered: state `sent`, `sent_at`; never taken again;
- refused for good (a 5xx for the recipient, a 4xx from the gateway): state `failed`;
- anything else (timeout, refused connection, 4xx from the mail server, 5xx from the gateway): retried at
  now + backoff × 2^(attempts − 1) (capped), until `max_attempts`; then state `failed`.
A sender that dies between sending and recording leaves the notice claimed until its lease ends; it is
then sent again with the same uid (the e-mail's Message-ID, the gateway's idempotency key). A sender
stops taking notices from a batch once its lease is nearly over and hands the rest back.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from engine import clock
from engine.notify import messages
from engine.notify.errors import DeliveryError
from engine.notify.mail import SmtpMailer
from engine.notify.sms import HttpSmsGateway
from engine.store.db import write_transaction
from engine.store.models import Dossier, Notice, Procedure, Unit

NOTICES = Notice.__table__
PENDING, SENT, FAILED = "pending", "sent", "failed"
MAX_ATTEMPTS = 8                    # 1 + 2 + 4 + … + 64 minutes of back-off: about two hours
BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=6)
MIN_LEASE = timedelta(minutes=10)


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0     # failed this time, tried again later
    failed: int = 0       # given up: refused for good, or too many attempts
    errors: list[str] = field(default_factory=list)


@dataclass
class _Claimed:
    id: int
    uid: str
    kind: str
    channel: str
    recipient: str
    attempts: int
    facts: messages.Facts


def backoff_delay(attempts: int, base: timedelta = BACKOFF) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def send_pending(factory: sessionmaker, *, smtp_url: str | None, sender: str | None, sms_url: str | None,
                 public_url: str | None = None, now: datetime | None = None, batch: int = 50,
                 max_attempts: int = MAX_ATTEMPTS, backoff: timedelta = BACKOFF, timeout: float = 20.0,
                 mailer=None, sms_gateway=None) -> SendReport:
    """Send every notice due at `now` (default: the clock, read afresh for each batch) on the channels
    configured: e-mail when
    `smtp_url` (MOTCUA_SMTP_URL) and `sender` (MOTCUA_MAIL_FROM) are given, SMS when `sms_url`
    (MOTCUA_SMS_URL) is. Notices of a channel not configured wait. `public_url` (default
    MOTCUA_PUBLIC_URL) is the web app's address, for the look-up link. `mailer`/`sms_gateway` replace
    the built-in SMTP and HTTP adapters (objects with `send(...)` raising DeliveryError)."""
    fixed = clock.aware(now) if now is not None else None

    def moment() -> datetime:
        return fixed if fixed is not None else clock.now()

    public_url = public_url or os.environ.get("MOTCUA_PUBLIC_URL")
    if not public_url:
        raise ValueError("MOTCUA_PUBLIC_URL (the web app's address, for the look-up link) is not set")
    if mailer is None and smtp_url:
        mailer = SmtpMailer(smtp_url, sender or "", timeout=timeout)
    if sms_gateway is None and sms_url:
        sms_gateway = HttpSmsGateway(sms_url, timeout=timeout)
    channels = [c for c, adapter in (("email", mailer), ("sms", sms_gateway)) if adapter is not None]
    report = SendReport()
    if not channels:
        return report
    lease = max(MIN_LEASE, timedelta(seconds=2 * batch * timeout))
    lost_races = 0
    try:
        while True:
            at = moment()
            claimed = _claim(factory, at, channels, batch, lease)
            if not claimed:
                # Nothing due, or another sender claimed the rows this one picked (on PostgreSQL the
                # claim then matches nothing): look again with a fresh snapshot, a few times at most.
                if lost_races >= 3 or not _any_due(factory, at, channels):
                    return report
                lost_races += 1
                continue
            lost_races = 0
            started = time.monotonic()
            for i, notice in enumerate(claimed):
                if time.monotonic() - started > lease.total_seconds() - 2 * timeout:
                    _release(factory, claimed[i:], moment())  # our claim is ending: leave the rest to the next run
                    return report
                _send_one(factory, notice, moment, mailer, sms_gateway, public_url, max_attempts, backoff, report)
    finally:
        close = getattr(mailer, "close", None)
        if close is not None:
            close()


def _due(now: datetime, channels: Iterable[str]):
    n = NOTICES.c
    return n.state == PENDING, n.next_attempt_at <= now, n.channel.in_(list(channels))


def _any_due(factory: sessionmaker, now: datetime, channels: Iterable[str]) -> bool:
    with factory() as session:
        return session.connection().execute(select(NOTICES.c.id).where(*_due(now, channels)).limit(1)).first() is not None


def _claim(factory: sessionmaker, now: datetime, channels: Iterable[str], batch: int,
           lease: timedelta) -> list[_Claimed]:
    """Take up to `batch` due notices for this sender (one conditional UPDATE), with what they say."""
    n = NOTICES.c
    due = (select(n.id).where(*_due(now, channels)).order_by(n.next_attempt_at, n.id).limit(batch))
    with factory() as session, write_transaction(session):
        conn = session.connection()
        taken = conn.execute(
            update(NOTICES).where(n.id.in_(due.scalar_subquery()), n.state == PENDING, n.next_attempt_at <= now)
            .values(attempts=n.attempts + 1, next_attempt_at=now + lease)
            .returning(n.id, n.attempts)).all()
        if not taken:
            return []
        attempts = dict(taken)
        rows = conn.execute(
            select(n.id, n.uid, n.kind, n.channel, n.recipient, n.payload, Dossier.code, Procedure.name, Unit.name)
            .join(Dossier, Dossier.id == n.dossier_id).join(Procedure, Procedure.id == Dossier.procedure_id)
            .join(Unit, Unit.id == Dossier.unit_id).where(n.id.in_(list(attempts))).order_by(n.id)).all()
    return [_Claimed(r[0], r[1], r[2], r[3], r[4], attempts[r[0]],
                     messages.Facts(code=r[6], procedure=r[7], unit=r[8], payload=r[5] or {})) for r in rows]


def _send_one(factory, notice: _Claimed, moment, mailer, sms_gateway, public_url, max_attempts, backoff,
              report: SendReport) -> None:
    try:
        if notice.channel == "email":
            subject, body = messages.email(notice.kind, notice.facts, public_url)
            mailer.send(notice.recipient, subject, body, notice.uid)
        else:
            sms_gateway.send(notice.recipient, messages.sms(notice.kind, notice.facts, public_url), notice.uid)
    except DeliveryError as exc:
        error, permanent = str(exc), exc.permanent
    except (ValueError, KeyError, TypeError) as exc:  # a notice that cannot be written: trying again won't help
        error, permanent = f"{type(exc).__name__}: {exc}", True
    else:
        _record(factory, notice, state=SENT, sent_at=moment(), last_error=None)
        report.sent += 1
        return
    report.errors.append(f"{notice.facts.code} {notice.kind} {notice.channel}: {error}")
    if permanent or notice.attempts >= max_attempts:
        _record(factory, notice, state=FAILED, last_error=error[:1000])
        report.failed += 1
    else:
        _record(factory, notice, next_attempt_at=moment() + backoff_delay(notice.attempts, backoff),
                last_error=error[:1000])
        report.retrying += 1


def _record(factory: sessionmaker, notice: _Claimed, **values) -> None:
    """Write the outcome of our attempt (only while the notice is still ours: same attempt, pending)."""
    n = NOTICES.c
    with factory() as session, write_transaction(session):
        session.connection().execute(update(NOTICES).where(n.id == notice.id, n.attempts == notice.attempts,
                                                           n.state == PENDING).values(**values))


def _release(factory: sessionmaker, notices: list[_Claimed], now: datetime) -> None:
    """Hand back claimed notices that were not tried: due again now, the attempt not counted."""
    n = NOTICES.c
    with factory() as session, write_transaction(session):
        for notice in notices:
            session.connection().execute(update(NOTICES).where(n.id == notice.id, n.attempts == notice.attempts,
                                                               n.state == PENDING)
                                         .values(attempts=notice.attempts - 1, next_attempt_at=now))
