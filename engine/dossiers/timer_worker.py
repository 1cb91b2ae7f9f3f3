"""The timer worker: sleeps until the sweep has something to do, wakes at once when a change makes
something due earlier, and stops cleanly between two batches.

    worker = TimerWorker(factory)
    worker.run()      # until worker.stop(): `motcua timers run` calls it on SIGTERM and SIGINT

A cycle: sweep (`timers.run_once` at the clock's now), read the earliest time anything is due next
(`timers.next_due`: a BPMN timer, an overdue dossier, a late step, an unanswered supplement request),
wait until then. On PostgreSQL the wait listens on the channel `motcua_timers`, to which migration
0011's triggers send the due time (epoch seconds) of every row made due earlier within the next few
minutes; a notice earlier than the planned wake-up moves it. The listening connection is a dedicated
autocommit psycopg connection opened (LISTEN) before the worker's first look at the tables, so a change
committed while the worker sweeps or reads cannot be missed: its notice waits on the connection. Without
notices (SQLite, or while the listening connection is down) the wait is a short poll (`POLL`).

Several workers, on one machine or several, share the work through the sweep's `FOR UPDATE SKIP
LOCKED` claims, each timer firing once. A timer whose process fails is left alone for `RETRY_FAILED`
seconds by this worker rather than retried in a loop.

Between sweeps the worker anchors the audit chains (engine/dossiers/anchors.py) every
MOTCUA_AUDIT_ANCHOR_SECONDS (config.audit_anchor_seconds; the first time one interval after it starts):
the wait ends for it, and several workers need no turns (one anchors, the others find the lock taken or
nothing new). A failure to anchor is logged and tried again after at most `ANCHOR_RETRY` seconds; it never
stops the sweep.

Stopping: `stop()` (thread-safe; safe from a signal handler) is seen before each batch of the sweep and
by the wait within `STOP_CHECK` seconds; the batch in hand is finished and committed first.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from engine import clock, config
from engine.dossiers import anchors, timers

log = logging.getLogger("motcua.timers")

CHANNEL = "motcua_timers"
MAX_SLEEP = 60.0    # longest wait on PostgreSQL without a notice; below migration 0011's 5-minute horizon
POLL = 1.0          # longest wait without notices (SQLite, or the listening connection down)
STOP_CHECK = 0.5    # a stop request is seen by the wait within this many seconds
BUSY_WAIT = 0.2     # something was due but another worker holds it: look again this soon
RETRY_FAILED = 60.0  # a timer whose process failed is tried again after this many seconds
RECONNECT = 5.0     # seconds between attempts to reopen the listening connection
MOMENT = timedelta(milliseconds=1)  # the flags are set strictly after a deadline
ANCHOR_RETRY = 60.0  # a failed anchoring is tried again after this many seconds (or the interval, if shorter)


class _Listener:
    """A dedicated autocommit connection LISTENing on CHANNEL, reopened when it breaks."""

    def __init__(self, url):
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = None
        self.next_attempt = 0.0

    def ensure(self) -> bool:
        """Open if closed (at most every RECONNECT seconds); True when listening."""
        if self.conn is not None:
            return True
        if time.monotonic() < self.next_attempt:
            return False
        import psycopg

        try:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
            self.conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot listen for timer notices (polling meanwhile): %s", exc)
            self.close()
            self.next_attempt = time.monotonic() + RECONNECT
            return False
        return True

    def wait(self, timeout: float) -> list[datetime | None]:
        """The due times announced within `timeout` seconds: returns as soon as one arrives, with any
        others already received. None stands for a notice that names no time (wake at once)."""
        import psycopg

        try:
            notes = list(self.conn.notifies(timeout=timeout, stop_after=1))
            if notes:
                notes += list(self.conn.notifies(timeout=0))
        except psycopg.Error as exc:
            log.warning("listening connection lost: %s", exc)
            self.close()
            return [None]  # notices may have been lost: sweep now
        return [_due_of(note.payload) for note in notes]

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


def _due_of(payload: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(payload), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None


class TimerWorker:
    """Runs the sweep whenever something is due, until `stop()`. `max_sleep`: the longest wait without a
    notice (default MAX_SLEEP on PostgreSQL, POLL elsewhere). `on_report(now, report)` is called after
    each sweep that did something. `anchor_every`: seconds between two anchorings of the audit chains
    (default config.audit_anchor_seconds(); 0: none), written to `anchor_dir` (default the configured one)."""

    def __init__(self, factory: sessionmaker, *, max_sleep: float | None = None,
                 on_report: Callable[[datetime, timers.SweepReport], None] | None = None,
                 anchor_every: float | None = None, anchor_dir: Path | None = None):
        self.factory = factory
        engine = factory.kw["bind"]
        self.listener = _Listener(engine.url) if engine.dialect.name == "postgresql" else None
        default = MAX_SLEEP if self.listener is not None else POLL
        self.max_sleep = default if max_sleep is None else max_sleep
        if not 0 < self.max_sleep <= MAX_SLEEP:
            raise ValueError(f"the longest wait must be between 0 and {MAX_SLEEP:g} seconds")
        self.on_report = on_report
        self.totals = timers.SweepReport()
        self.sweeps = 0
        # A plain flag, not a threading.Event: setting an Event from a signal handler can deadlock on the
        # lock the interrupted main thread holds inside Event.wait.
        self._stopping = False
        self._failed: dict[int, datetime] = {}  # dossier id → when its timer may be tried again
        self._known: dict[str, datetime | None] = {}  # timers.due_times as last read
        self._planned: datetime | None = None  # the wake-up those due times gave
        self._fresh = False  # whether _known may be used for the next sweep without reading it again
        self._errors = 0
        self.anchor_every = config.audit_anchor_seconds() if anchor_every is None else anchor_every
        self.anchor_dir = anchor_dir
        self.anchors_made = 0
        self._anchor_at = clock.now() + timedelta(seconds=self.anchor_every) if self.anchor_every else None
        self._anchoring: threading.Thread | None = None

    def stop(self) -> None:
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _pause(self, seconds: float) -> None:
        """Sleep, seeing a stop request within STOP_CHECK seconds."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, STOP_CHECK))

    def run(self) -> timers.SweepReport:
        """Sweep and wait until stopped; returns the totals of every sweep."""
        try:
            while not self.stopping:
                listening = self.listener is not None and self.listener.ensure()
                try:
                    wake = self._cycle()
                    self._errors = 0
                except DBAPIError as exc:
                    # The database went away or refused: keep the process, try again with back-off.
                    self._errors += 1
                    self._fresh = False
                    delay = min(30.0, 2.0 ** min(self._errors, 5))
                    log.warning("timer sweep failed (%s); retrying in %.0f s", exc.__class__.__name__, delay)
                    self._pause(delay)
                    continue
                self._anchor_if_due()
                if wake is not None:
                    if self._anchor_at is not None:
                        wake = min(wake, self._anchor_at)
                    self._wait_until(wake, listening)
                else:
                    self._fresh = False
        finally:
            if self.listener is not None:
                self.listener.close()
            if self._anchoring is not None:
                self._anchoring.join()  # an anchoring in hand ends (within anchors.SETTLE_SECONDS) before the worker
        return self.totals

    def _cycle(self) -> datetime | None:
        """One sweep of the kinds of work that are due, then when to sweep next (None: at once)."""
        now = clock.now()
        for dossier_id, retry_at in list(self._failed.items()):
            if retry_at <= now:
                del self._failed[dossier_id]
        if not self._fresh:
            self._known = self._due_times()
        kinds = [kind for kind, due in self._known.items() if due is not None and due < now]
        report = timers.run_once(self.factory, now, kinds=kinds, skip=set(self._failed),
                                 stop=lambda: self._stopping)
        self.sweeps += 1
        self._add(report)
        for dossier_id in report.failed_ids:
            self._failed[dossier_id] = now + timedelta(seconds=RETRY_FAILED)
        if report.did_something() and self.on_report is not None:
            self.on_report(now, report)
        if report.stopped:
            return None
        self._known = self._due_times()
        dues = [due + MOMENT for due in self._known.values() if due is not None]
        self._planned = min(dues, default=None)
        current = clock.now()
        wake = min(dues + list(self._failed.values()), default=current + timedelta(seconds=self.max_sleep))
        if wake <= now:
            # Due before this sweep began and still there: another worker holds it (SKIP LOCKED).
            return current + timedelta(seconds=BUSY_WAIT)
        if wake <= current:
            return None  # became due while sweeping
        return wake

    def _anchor_if_due(self) -> None:
        """Anchor the audit chains when the interval has passed, in a thread of its own: an anchoring waits
        for the transactions writing audit events (up to anchors.SETTLE_SECONDS), and the timers must not
        wait with it. One at a time."""
        if self._anchor_at is None or self._stopping or clock.now() < self._anchor_at:
            return
        if self._anchoring is not None and self._anchoring.is_alive():
            return
        self._anchor_at = clock.now() + timedelta(seconds=self.anchor_every)  # a failure sets its retry sooner
        self._anchoring = threading.Thread(target=self._anchor, name="audit-anchoring", daemon=True)
        self._anchoring.start()

    def _anchor(self) -> None:
        """One anchoring; a failure is logged, never raised. When it made no anchor, says so if events have
        waited more than three intervals to be sealed (another process holds the anchoring lock, or fails)."""
        if self._anchor_once() is not None:
            return
        try:
            with self.factory() as session:
                since = anchors.unsealed_since(session)
        except Exception:  # noqa: BLE001 — only a warning depends on it; the failure was logged above
            return
        if anchors.waited_too_long(since, clock.now(), self.anchor_every):
            log.warning("audit events written since %s wait to be sealed, more than three anchoring intervals: "
                        "another process holds the anchoring lock, or anchoring fails", since.isoformat())

    def _anchor_once(self):
        retry = timedelta(seconds=min(self.anchor_every, ANCHOR_RETRY))
        try:
            with self.factory() as session:
                made = anchors.anchor(session, directory=self.anchor_dir)
        except Exception as exc:  # noqa: BLE001 — whatever went wrong, the sweep goes on
            log.warning("anchoring the audit chains failed (%s: %s); trying again in %.0f s",
                        exc.__class__.__name__, exc, retry.total_seconds())
            self._anchor_at = clock.now() + retry
            return None
        if made is not None:
            self.anchors_made += 1
            log.info("audit anchor %d: %d dossiers, events up to %d", made.id, made.dossiers, made.up_to_event_id)
        self._anchor_at = clock.now() + timedelta(seconds=self.anchor_every)
        return made

    def _due_times(self) -> dict[str, datetime | None]:
        with self.factory() as session:
            try:
                return timers.due_times(session, skip=set(self._failed))
            finally:
                session.rollback()

    def _wait_until(self, wake: datetime, listening: bool) -> None:
        """Wait until `wake` (at most the longest wait), an earlier due time announced, or stop. What was
        read of the due times stays good for the next sweep only when the wait ends at the planned time."""
        longest = self.max_sleep if listening or self.listener is None else min(self.max_sleep, POLL)
        wake = min(wake, clock.now() + timedelta(seconds=longest))
        self._fresh = False
        while not self.stopping:
            remaining = (wake - clock.now()).total_seconds()
            if remaining <= 0:
                self._fresh = wake == self._planned
                return
            step = min(remaining, STOP_CHECK)
            if not listening:
                self._pause(step)
                continue
            for due in self.listener.wait(step):
                if due is None:
                    return
                wake = min(wake, due + MOMENT)

    def _add(self, report: timers.SweepReport) -> None:
        for f in fields(timers.SweepReport):
            value = getattr(report, f.name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self.totals, f.name, getattr(self.totals, f.name) + value)
        self.totals.failures += report.failures[: max(0, 100 - len(self.totals.failures))]
