"""Timer sweep and concurrency: timers fire once, overdue flags are set once, completions race safely."""
import os
import subprocess
import sys
import threading
from datetime import date, timedelta

import pytest
from bpmn_fixtures import Node, linear_with
from conftest import APPLICANT, ROOT, as_orm, item, open_task, pdf, receive, vn
from sqlalchemy import func, select

from engine import catalog, dossiers
from engine.dossiers import timers
from engine.errors import TaskNotReady
from engine.store.models import AuditEvent, Dossier, HumanTask


def fresh(session):
    """See other sessions' commits: end any read snapshot (SQLite WAL) and expire loaded rows."""
    session.rollback()
    session.expire_all()


def timer_procedure(session, expression='"PT2H"'):
    catalog.create_procedure(session, actor_id=None, data={
        "code": "1.999001", "name": "Thủ tục thử nghiệm có hẹn giờ", "field": "Thử nghiệm", "level": "xa",
        "statutory_days": 1, "online_level": "mot_phan",
        "components": [{"code": "DON", "name": "Đơn", "required": True}],
    })
    xml = linear_with([Node("Timer", "intermediateCatchEvent", "Chờ niêm yết", "Lane_mc", 2,
                            timer=("timeDuration", expression))])
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.999001", bpmn=xml)
    catalog.publish_version(session, actor_id=None, procedure_code="1.999001", number=version.number,
                            effective_from=date(2026, 1, 1))
    session.commit()


def test_bpmn_timer_fires_exactly_once_at_its_time(session, factory, office):
    timer_procedure(session)
    d = as_orm(session, dossiers.receive_dossier(
        session, actor_id=office["mot_cua"], procedure_code="1.999001", channel="counter",
                                 applicant=APPLICANT, components=[{"code": "DON", "filename": "d.pdf", "content": pdf()}],
                                 now=vn(2026, 11, 2, 9, 0)))
    task = open_task(session, d)
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task.id, now=vn(2026, 11, 2, 9, 30))
    session.refresh(d)
    assert d.timer_due_at == vn(2026, 11, 2, 11, 30)
    assert timers.run_once(factory, vn(2026, 11, 2, 11, 29)).timers_fired == 0
    assert timers.run_once(factory, vn(2026, 11, 2, 11, 31)).timers_fired == 1
    assert timers.run_once(factory, vn(2026, 11, 2, 11, 40)).timers_fired == 0
    fresh(session)
    assert open_task(session, d).role == "chuyen_vien"
    assert session.get(Dossier, d.id).timer_due_at is None


def test_overdue_dossiers_and_late_steps_are_flagged_once(session, factory, office):
    d = receive(session, office)  # due Thu 5/11 17:00; first step due Mon 11:00
    r1 = timers.run_once(factory, vn(2026, 11, 2, 12, 0))
    assert (r1.dossiers_overdue, r1.steps_late) == (0, 1)
    r2 = timers.run_once(factory, vn(2026, 11, 6, 8, 0))
    assert (r2.dossiers_overdue, r2.steps_late) == (1, 0)
    assert timers.run_once(factory, vn(2026, 11, 9, 8, 0)).dossiers_overdue == 0
    fresh(session)
    d = session.get(Dossier, d.id)
    assert d.overdue and d.late_without_apology
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "overdue")) == 1


def test_clock_pauses_while_waiting_for_the_citizen(session, factory, office):
    d = receive(session, office)
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id,
                           now=vn(2026, 11, 2, 9, 30))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="Thiếu chữ ký", items=[item("Giấy đề nghị có chữ ký")], now=vn(2026, 11, 2, 10, 0))
    assert timers.run_once(factory, vn(2026, 11, 20, 9, 0)).dossiers_overdue == 0


@pytest.mark.postgres_only
def test_two_concurrent_timer_processes_flag_each_overdue_dossier_once(session, office, db_url):
    count = 60  # more than one claim batch, so both processes really work at the same time
    for i in range(count):
        receive(session, office, at=vn(2026, 11, 2, 8, 0) + timedelta(minutes=i))
    env = {**os.environ, "DATABASE_URL": db_url}
    cmd = [sys.executable, "-m", "motcua.cli", "timers", "run", "--now", "2026-11-10T09:00:00+07:00"]
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    fresh(session)
    flagged = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "overdue"))
    late_steps = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "step_late"))
    assert flagged == count and late_steps == count
    assert session.scalar(select(func.count()).select_from(Dossier).where(Dossier.overdue.is_(True))) == count
    reported = sum(int(out.split("timers fired, ")[1].split(" dossiers")[0]) for out, _ in outputs)
    assert reported == count


def race_two_completions(session, factory, office, barrier_wait: bool) -> tuple[list[str], object]:
    """Two sessions complete the same task at once; returns their outcomes."""
    d = receive(session, office)
    task_id = open_task(session, d).id
    barrier = threading.Barrier(2)
    results = []

    def worker():
        with factory() as s:
            if barrier_wait:
                barrier.wait()
            try:
                dossiers.complete_task(s, actor_id=office["mot_cua"], task_id=task_id, now=vn(2026, 11, 2, 9, 30))
                results.append("ok")
            except TaskNotReady:
                results.append("refused")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, d


@pytest.mark.postgres_only
def test_two_concurrent_completions_give_one_success_and_one_refusal(session, factory, office):
    results, d = race_two_completions(session, factory, office, barrier_wait=True)
    assert sorted(results) == ["ok", "refused"]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(HumanTask).where(HumanTask.dossier_id == d.id)) == 2
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.dossier_id == d.id, AuditEvent.kind == "task_completed")) == 1


@pytest.mark.sqlite_only
def test_two_concurrent_completions_on_sqlite_are_serialised_too(session, factory, office):
    # SQLite has one writer at a time (BEGIN IMMEDIATE); the barrier would only add a busy wait.
    results, _ = race_two_completions(session, factory, office, barrier_wait=False)
    assert sorted(results) == ["ok", "refused"]
