"""The timer worker on the real clock: sleeps until the next due time, wakes on a PostgreSQL notice,
stops cleanly on SIGTERM, shares the work with another worker (each timer fires once)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest
from bpmn_fixtures import Node, linear_with
from conftest import APPLICANT, ROOT, as_orm, open_task, pdf, receive, vn
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from test_timers import timer_procedure

from engine import catalog, dossiers
from engine.dossiers import timers
from engine.dossiers.timer_worker import CHANNEL, TimerWorker
from engine.store.models import AuditEvent, Dossier, HumanTask, OutboxEvent

COMPONENTS = [{"code": "DON", "filename": "d.pdf", "content": pdf()}]


def start_timer(session, office, delay: str) -> tuple[int, datetime]:
    """A dossier of the timer procedure, its first step done now: its timer waits `delay` from now."""
    d = dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code="1.999001", channel="counter",
                                 applicant=APPLICANT, components=COMPONENTS)
    task = session.scalar(select(HumanTask.id).where(HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None)))
    session.rollback()
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task)
    due = session.scalar(select(Dossier.timer_due_at).where(Dossier.id == d.id))
    session.rollback()
    return d.id, due


def fired_at(session, dossier_id: int, within: float) -> datetime | None:
    """The `at` of the dossier's timer_fired event, waiting up to `within` seconds for it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        at = session.scalar(select(AuditEvent.at).where(AuditEvent.dossier_id == dossier_id,
                                                        AuditEvent.kind == "timer_fired"))
        session.rollback()
        if at is not None:
            return at
        time.sleep(0.05)
    return None


class Running:
    """A TimerWorker in a thread (stopped and joined on exit)."""

    def __init__(self, factory, **kwargs):
        self.worker = TimerWorker(factory, **kwargs)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.worker.sweeps == 0 and time.monotonic() < deadline:  # first sweep done: now it waits
            time.sleep(0.02)
        return self.worker

    def __exit__(self, *exc):
        self.worker.stop()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the worker did not stop"


def test_the_worker_sleeps_until_the_next_due_time(session, factory, office):
    timer_procedure(session, '"PT1.5S"')
    dossier_id, due = start_timer(session, office, "PT1.5S")
    assert due - datetime.now(timezone.utc) <= timedelta(seconds=1.5)
    # Thirty seconds without a notice or a poll: only the due time read from the database wakes it.
    with Running(factory, max_sleep=30) as worker:
        assert worker.totals.timers_fired == 0  # not due at its first sweep
        at = fired_at(session, dossier_id, within=6)
        seen = datetime.now(timezone.utc)
    assert at is not None, "the timer did not fire"
    assert due < at <= due + timedelta(seconds=1)
    assert seen - due < timedelta(seconds=2.5)  # committed and visible soon after, too
    assert session.get(Dossier, dossier_id).timer_due_at is None


@pytest.mark.postgres_only
def test_a_notice_wakes_the_sleeping_worker_for_an_earlier_timer(session, factory, office):
    timer_procedure(session, '"PT1S"')
    with Running(factory) as worker:  # nothing due: it would sleep a whole minute
        time.sleep(0.3)
        assert worker.sweeps == 1
        dossier_id, due = start_timer(session, office, "PT1S")
        at = fired_at(session, dossier_id, within=8)
    assert at is not None, "the notice did not wake the worker"
    assert due < at <= due + timedelta(seconds=1)


@pytest.mark.sqlite_only
def test_on_sqlite_the_worker_polls_briefly(session, factory, office):
    timer_procedure(session, '"PT1S"')
    with Running(factory) as worker:
        assert worker.listener is None and worker.max_sleep == 1.0
        time.sleep(0.3)
        dossier_id, due = start_timer(session, office, "PT1S")
        at = fired_at(session, dossier_id, within=8)
    assert at is not None and due < at <= due + timedelta(seconds=1.2)


@pytest.mark.postgres_only
def test_the_triggers_announce_a_due_time_only_when_it_comes_earlier_and_soon(session, factory, office, db_url):
    d = receive(session, office)
    timers.run_once(factory, vn(2026, 11, 10, 8, 0))  # overdue and its step late: nothing pending
    listen = psycopg.connect(make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False),
                             autocommit=True)
    listen.execute(f"LISTEN {CHANNEL}")

    def notices():
        return [float(n.payload) for n in listen.notifies(timeout=0.3)]

    def set_timer(when):
        session.execute(text("UPDATE dossiers SET timer_due_at = :t WHERE id = :i"), {"t": when, "i": d.id})
        session.commit()

    try:
        soon = datetime.now(timezone.utc) + timedelta(minutes=2)
        set_timer(soon)
        assert notices() == [pytest.approx(soon.timestamp(), abs=1e-3)]
        set_timer(soon + timedelta(seconds=30))  # later: nothing to wake for
        assert notices() == []
        set_timer(soon - timedelta(seconds=30))  # earlier again
        assert notices() == [pytest.approx((soon - timedelta(seconds=30)).timestamp(), abs=1e-3)]
        set_timer(soon + timedelta(hours=1))
        set_timer(soon + timedelta(minutes=50))  # earlier, but beyond the horizon: the minute's re-read finds it
        assert notices() == []
        session.execute(text("UPDATE dossiers SET timer_due_at = NULL, legal_due_at = :t WHERE id = :i"),
                        {"t": soon, "i": d.id})
        session.commit()
        assert notices() == []  # already flagged overdue: its deadline is no longer pending
        session.execute(text("UPDATE dossiers SET overdue = false WHERE id = :i"), {"i": d.id})
        session.commit()
        assert notices() == [pytest.approx(soon.timestamp(), abs=1e-3)]
        # A step's deadline and a supplement request's answer date, on their own tables.
        session.execute(text("UPDATE human_tasks SET due_at = :t, late = false "
                             "WHERE dossier_id = :i AND completed_at IS NULL"),
                        {"t": soon - timedelta(seconds=5), "i": d.id})
        session.commit()
        assert notices() == [pytest.approx((soon - timedelta(seconds=5)).timestamp(), abs=1e-3)]
    finally:
        listen.close()


def test_next_due_is_the_earliest_pending_time_of_the_four_kinds(session, factory, office):
    d = receive(session, office, at=vn(2026, 11, 2, 9, 0))  # legal due Thu 5/11 17:00; first step due Mon 11:00
    session.rollback()
    assert timers.next_due(session) == vn(2026, 11, 2, 11, 0)
    session.rollback()
    timers.run_once(factory, vn(2026, 11, 2, 12, 0))  # flags the late step
    assert timers.next_due(session) == vn(2026, 11, 5, 17, 0)
    session.rollback()
    timers.run_once(factory, vn(2026, 11, 6, 8, 0))  # flags the dossier overdue
    assert timers.next_due(session) is None
    session.rollback()
    session.expire_all()
    assert session.get(Dossier, d.id).overdue


def broken_timer_procedure(session, delay='"PT2H"'):
    """1.999002: after its timer, a script that fails: firing the timer fails."""
    catalog.create_procedure(session, actor_id=None, data={
        "code": "1.999002", "name": "Thủ tục thử nghiệm hẹn giờ lỗi", "field": "Thử nghiệm", "level": "xa",
        "statutory_days": 1, "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}]})
    xml = linear_with([Node("Timer", "intermediateCatchEvent", "Chờ", "Lane_mc", 2, timer=("timeDuration", delay)),
                       Node("Script", "scriptTask", "Tính", "Lane_mc", 3, script="x = missing_name + 1")])
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.999002", bpmn=xml)
    catalog.publish_version(session, actor_id=None, procedure_code="1.999002", number=version.number,
                            effective_from=date(2026, 1, 1))
    session.commit()


def waiting_at_timer(session, office, code, at=None):
    """A dossier of `code` whose first step is done (at 9:30 on 2/11/2026 unless `at` is given)."""
    d = as_orm(session, dossiers.receive_dossier(
        session, actor_id=office["mot_cua"], procedure_code=code, channel="counter", applicant=APPLICANT,
        components=COMPONENTS, now=None if at is None else vn(2026, 11, 2, 9, 0)))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id,
                           now=None if at is None else at)
    session.rollback()
    return session.get(Dossier, d.id)


def timer_events(session, dossier_id) -> int:
    session.rollback()  # a fresh snapshot (SQLite)
    return session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.dossier_id == dossier_id, AuditEvent.kind == "timer_fired"))


def test_a_timer_fires_strictly_after_its_time(session, factory, office):
    timer_procedure(session)
    d = waiting_at_timer(session, office, "1.999001", at=vn(2026, 11, 2, 9, 30))
    due = d.timer_due_at
    assert due == vn(2026, 11, 2, 11, 30)
    assert timers.run_once(factory, due, kinds=[timers.TIMERS]).timers_fired == 0  # SpiffWorkflow: due < now
    assert timer_events(session, d.id) == 0
    assert timers.run_once(factory, due + timedelta(milliseconds=1), kinds=[timers.TIMERS]).timers_fired == 1
    assert timer_events(session, d.id) == 1


def test_a_failing_process_is_reported_and_left_untouched_while_the_batch_fires(session, factory, office):
    timer_procedure(session)
    broken_timer_procedure(session)
    at = vn(2026, 11, 2, 9, 30)
    good = [waiting_at_timer(session, office, "1.999001", at) for _ in range(2)]
    broken = waiting_at_timer(session, office, "1.999002", at)
    before = (broken.lock_version, broken.timer_due_at, broken.audit_seq)
    report = timers.run_once(factory, vn(2026, 11, 2, 11, 31))
    assert report.timers_fired == 2 and report.failed_ids == {broken.id} and len(report.failures) == 1
    assert broken.code in report.failures[0]
    session.rollback()
    session.expire_all()
    again = session.get(Dossier, broken.id)
    assert (again.lock_version, again.timer_due_at, again.audit_seq) == before
    assert [timer_events(session, d.id) for d in good] == [1, 1] and timer_events(session, broken.id) == 0


def test_the_worker_leaves_a_failing_timer_alone_for_a_while(session, factory, office):
    broken_timer_procedure(session, '"PT0.5S"')
    broken = waiting_at_timer(session, office, "1.999002")
    with Running(factory, max_sleep=1) as worker:
        time.sleep(2.5)
        assert len(worker.totals.failures) == 1, worker.totals.failures  # tried once, not in a loop
        assert worker.sweeps <= 6
    assert timer_events(session, broken.id) == 0


def worker_process(db_url, *extra) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.Popen([sys.executable, "-m", "motcua.cli", "timers", "run", *extra], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_started(proc) -> None:
    line = proc.stderr.readline()
    assert "timer worker started" in line, line + proc.stderr.read()


def test_sigterm_stops_an_idle_worker_at_once(db_url, office):
    proc = worker_process(db_url)
    try:
        wait_started(proc)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 2
    assert "stopped after" in out and "SIGTERM" in err


@pytest.mark.postgres_only
def test_sigterm_mid_sweep_finishes_the_batch_in_hand_and_exits_0(session, office, db_url, engine_):
    count = timers.BATCH + 10
    for i in range(count):
        receive(session, office, at=vn(2026, 11, 2, 8, 0) + timedelta(minutes=i))  # all overdue by now
    session.rollback()
    # Hold the first batch just before its commit: its outbox rows wait for this table lock.
    blocker = engine_.connect()
    blocker.execute(text("LOCK TABLE outbox_events IN EXCLUSIVE MODE"))
    watcher = engine_.connect().execution_options(isolation_level="AUTOCOMMIT")  # fresh activity each read
    proc = worker_process(db_url)
    try:
        wait_started(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND query LIKE 'INSERT INTO outbox_events%'"))
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the worker never reached the end of its first batch"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        blocker.rollback()  # the batch in hand goes on, commits; the worker takes no other
        out, err = proc.communicate(timeout=20)
    finally:
        blocker.close()
        watcher.close()
        proc.kill()
    assert proc.returncode == 0, err
    assert f"stopped after 1 sweeps: 0 timers fired, {timers.BATCH} dossiers overdue, 0 steps late" in out, out
    session.rollback()
    flagged = session.scalar(select(func.count()).select_from(Dossier).where(Dossier.overdue.is_(True)))
    events = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "overdue"))
    sent = session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.kind == "overdue"))
    assert flagged == events == sent == timers.BATCH
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "step_late")) == 0


@pytest.mark.postgres_only
def test_two_workers_fire_each_timer_exactly_once(session, office, db_url):
    timer_procedure(session, '"PT3S"')
    procs = [worker_process(db_url), worker_process(db_url)]
    try:
        for proc in procs:
            wait_started(proc)
        started = [start_timer(session, office, "PT3S") for _ in range(40)]
        for dossier_id, _ in started:
            assert fired_at(session, dossier_id, within=15) is not None
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=20) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert all(proc.returncode == 0 for proc in procs), outputs
    ids = [dossier_id for dossier_id, _ in started]
    fired = dict(session.execute(select(AuditEvent.dossier_id, func.count()).where(
        AuditEvent.kind == "timer_fired", AuditEvent.dossier_id.in_(ids)).group_by(AuditEvent.dossier_id)).all())
    assert fired == {i: 1 for i in ids}
    second_steps = dict(session.execute(select(HumanTask.dossier_id, func.count()).where(
        HumanTask.spec_name == "Task_B", HumanTask.dossier_id.in_(ids)).group_by(HumanTask.dossier_id)).all())
    assert second_steps == {i: 1 for i in ids}
    reported = [int(out.split("sweeps: ")[1].split(" timers fired")[0]) for out, _ in outputs]
    assert sum(reported) == len(ids), outputs
    lateness = [(at - due).total_seconds() for (i, due) in started
                for at in [session.scalar(select(AuditEvent.at).where(AuditEvent.dossier_id == i,
                                                                      AuditEvent.kind == "timer_fired"))]]
    assert max(lateness) < 2, json.dumps(sorted(lateness)[-5:])


def test_a_sweep_of_several_batches_writes_each_batch_in_a_few_statements(session, factory, office, monkeypatch):
    """The sweep's writes are batched (issue #11: 10,000 timers in under 5 s): per batch the claim, the
    batch's reads and one statement each for the new inbox rows, the dossier rows, the audit rows —
    not three or more per timer. Each timer still fires once, each dossier's version moves by one and
    its audit chain verifies."""
    from sqlalchemy import event

    from engine.dossiers import audit

    monkeypatch.setattr(timers, "BATCH", 10)
    timer_procedure(session)
    at = vn(2026, 11, 2, 9, 30)
    waiting = [waiting_at_timer(session, office, "1.999001", at) for _ in range(25)]
    versions = {d.id: d.lock_version for d in waiting}
    statements = []
    engine = factory.kw["bind"]
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        report = timers.run_once(factory, vn(2026, 11, 2, 11, 31), kinds=[timers.TIMERS])
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert report.timers_fired == 25 and not report.failures
    batches = 3
    assert len(statements) <= 7 * batches, statements  # per-dossier writes would be ≥ 75
    session.rollback()
    session.expire_all()
    for d in waiting:
        again = session.get(Dossier, d.id)
        assert again.lock_version == versions[d.id] + 1 and again.timer_due_at is None
        assert timer_events(session, d.id) == 1
        steps = session.scalars(select(HumanTask.spec_name).where(HumanTask.dossier_id == d.id,
                                                                  HumanTask.completed_at.is_(None))).all()
        assert steps == ["Task_B"], steps
        assert audit.check_chain(session, d.id).intact


def test_a_batched_save_refuses_a_dossier_changed_behind_its_version(session, factory, office):
    """`aggregate.save_many` keeps `save`'s version guard: a row whose version moved is not overwritten."""
    from engine.dossiers import aggregate
    from engine.errors import Conflict

    timer_procedure(session)
    at = vn(2026, 11, 2, 9, 30)
    a, b = (waiting_at_timer(session, office, "1.999001", at) for _ in range(2))
    with factory() as s:
        rows = {r.id: r for r in aggregate.claim(s, Dossier.id.in_([a.id, b.id]), order_by=Dossier.id, limit=2)}
        rows[b.id].lock_version -= 1  # as if read before someone else's write
        for r in rows.values():
            r.timer_due_at = None
        with pytest.raises(Conflict):
            aggregate.save_many(s, list(rows.values()))
        s.rollback()
    session.rollback()
    assert session.get(Dossier, a.id).timer_due_at is not None
