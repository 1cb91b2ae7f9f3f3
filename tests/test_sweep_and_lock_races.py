"""The batched timer sweep (BatchSink: new inbox rows, dossier rows, audit and outbox rows written at the
batch's end) on the shapes of process the sweep meets: a boundary timer on a step (interrupting or not),
a timer that ends the process, a timer that hands the dossier to another unit, a timer before a
parallel gateway, a timer in a loop; failures in a batch, several batches, two sweeps at once; and the
reads a completion no longer repeats (the actor, the consultations).

On PostgreSQL, a use case that waits for a dossier's lock held by another change (a use case, the sweep)
gets the locked row as that change committed it, but the rows its lock statement joins (open steps,
whether a consultation exists) as they were when the statement began: the races at the end show that
the lock reads them again then (aggregate.lock_with_open_tasks, `_seen_version`)."""
from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pytest
from bpmn_fixtures import Flow, Node, Process, render
from conftest import APPLICANT, item, open_task, pdf, receive, result_for, vn
from sqlalchemy import func, select, text

from engine import catalog, dossiers
from engine.access import directory
from engine.catalog.calendar import working_calendar
from engine.dossiers import audit, timers
from engine.reporting import counters
from engine.store.models import AuditEvent, DailyCount, Dossier, HumanTask, Notice, OutboxEvent, Unit

COMPONENTS = [{"code": "DON", "filename": "d.pdf", "content": pdf()}]
LANES = [("Lane_mc", "Một cửa", "mot_cua"), ("Lane_cv", "Chuyên viên", "chuyen_vien")]
TWO_HOURS = '"PT2H"'


# --- building processes --------------------------------------------------------------------------
def publish(session, code: str, xml: str, name: str = "Thủ tục thử nghiệm hẹn giờ") -> None:
    catalog.create_procedure(session, actor_id=None, data={
        "code": code, "name": name, "field": "Thử nghiệm", "level": "xa", "statutory_days": 1,
        "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}]})
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code=code, bpmn=xml)
    catalog.publish_version(session, actor_id=None, procedure_code=code, number=version.number,
                            effective_from=date(2026, 1, 1))
    session.commit()


def chain_flows(ids: list[str]) -> list[Flow]:
    return [Flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(ids, ids[1:]))]


def timer_then_end_bpmn() -> str:
    """start → Task_A (desk) → timer 2h → end: the timer's firing finishes the process."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Timer", "intermediateCatchEvent", "Chờ niêm yết", "Lane_mc", 2, timer=("timeDuration", TWO_HOURS)),
             Node("E", "endEvent", "end", "Lane_mc", 3)]
    return render(Process("Process_timer_end", "timer end", LANES, nodes, chain_flows(["S", "Task_A", "Timer", "E"])))


def boundary_bpmn(interrupting: bool) -> str:
    """start → Task_A (desk) → Task_B (specialist) → end, with a 2h timer on Task_B leading to Task_C
    (desk) → end. Interrupting: Task_B is withdrawn when the timer fires; otherwise both stay open."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Task_B", "userTask", "B", "Lane_cv", 2, {"duration": "PT4H"}),
             Node("E", "endEvent", "end", "Lane_cv", 3),
             Node("Task_C", "userTask", "C", "Lane_mc", 3, {"duration": "PT4H"}),
             Node("E2", "endEvent", "end2", "Lane_mc", 4)]
    flows = chain_flows(["S", "Task_A", "Task_B", "E"]) + [Flow("FB2", "Task_C", "E2")]
    xml = render(Process("Process_boundary", "boundary", LANES, nodes, flows))
    boundary = (f'<bpmn:boundaryEvent id="BT" name="Quá 2 giờ" attachedToRef="Task_B" '
                f'cancelActivity="{"true" if interrupting else "false"}"><bpmn:outgoing>FB1</bpmn:outgoing>'
                '<bpmn:timerEventDefinition id="TED_BT"><bpmn:timeDuration xsi:type="bpmn:tFormalExpression">'
                '&quot;PT2H&quot;</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>\n'
                '    <bpmn:sequenceFlow id="FB1" sourceRef="BT" targetRef="Task_C" />\n')
    xml = xml.replace("  </bpmn:process>", "    " + boundary + "  </bpmn:process>", 1)
    xml = xml.replace("<bpmn:flowNodeRef>Task_B</bpmn:flowNodeRef>",
                      "<bpmn:flowNodeRef>Task_B</bpmn:flowNodeRef><bpmn:flowNodeRef>BT</bpmn:flowNodeRef>", 1)
    shape = ('<bpmndi:BPMNShape id="BT_di" bpmnElement="BT"><dc:Bounds x="500" y="280" width="36" height="36" />'
             '</bpmndi:BPMNShape>\n')
    return xml.replace("    </bpmndi:BPMNPlane>", "      " + shape + "    </bpmndi:BPMNPlane>", 1)


def lien_thong_timer_bpmn() -> str:
    """start → Task_A (desk of the receiving unit) → timer 2h → Task_B (specialist of unit H40.2) → end."""
    lanes = [("Lane_mc", "Một cửa", "mot_cua", "@receiving"), ("Lane_cv", "Chuyên viên xã khác", "chuyen_vien", "H40.2")]
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Timer", "intermediateCatchEvent", "Chờ", "Lane_mc", 2, timer=("timeDuration", TWO_HOURS)),
             Node("Task_B", "userTask", "B", "Lane_cv", 3, {"duration": "PT1H"}),
             Node("E", "endEvent", "end", "Lane_cv", 4)]
    return render(Process("Process_lt_timer", "lt timer", lanes, nodes,
                          chain_flows(["S", "Task_A", "Timer", "Task_B", "E"])))


def parallel_after_timer_bpmn() -> str:
    """start → Task_A → timer 2h → fork → (Task_B specialist, Task_C desk) → join → end."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Timer", "intermediateCatchEvent", "Chờ", "Lane_mc", 2, timer=("timeDuration", TWO_HOURS)),
             Node("Fork", "parallelGateway", "", "Lane_mc", 3),
             Node("Task_B", "userTask", "B", "Lane_cv", 4, {"duration": "PT1H"}),
             Node("Task_C", "userTask", "C", "Lane_mc", 4, {"duration": "PT2H"}),
             Node("Join", "parallelGateway", "", "Lane_mc", 5),
             Node("E", "endEvent", "end", "Lane_mc", 6)]
    flows = chain_flows(["S", "Task_A", "Timer", "Fork"]) + [
        Flow("P1", "Fork", "Task_B"), Flow("P2", "Fork", "Task_C"), Flow("P3", "Task_B", "Join"),
        Flow("P4", "Task_C", "Join"), Flow("P5", "Join", "E")]
    return render(Process("Process_par_timer", "parallel timer", LANES, nodes, flows))


def looping_timer_bpmn() -> str:
    """start → Task_A → (count = 0) → timer 2h → (count += 1) → count < 3 ? back to the timer : Task_B → end."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Init", "scriptTask", "Đặt", "Lane_mc", 2, script="count = 0"),
             Node("Timer", "intermediateCatchEvent", "Chờ", "Lane_mc", 3, timer=("timeDuration", TWO_HOURS)),
             Node("Count", "scriptTask", "Đếm", "Lane_mc", 4, script="count = count + 1"),
             Node("G", "exclusiveGateway", "Đủ?", "Lane_mc", 5),
             Node("Task_B", "userTask", "B", "Lane_cv", 6, {"duration": "PT1H"}),
             Node("E", "endEvent", "end", "Lane_cv", 7)]
    flows = chain_flows(["S", "Task_A", "Init", "Timer", "Count", "G"]) + [
        Flow("L1", "G", "Timer", condition="count < 3"), Flow("L2", "G", "Task_B", default=True),
        Flow("L3", "Task_B", "E")]
    return render(Process("Process_loop_timer", "loop timer", LANES, nodes, flows))


def broken_after_timer_bpmn() -> str:
    """start → Task_A → timer 2h → a script that fails: firing the timer fails."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Timer", "intermediateCatchEvent", "Chờ", "Lane_mc", 2, timer=("timeDuration", TWO_HOURS)),
             Node("Script", "scriptTask", "Tính", "Lane_mc", 3, script="x = missing_name + 1"),
             Node("Task_B", "userTask", "B", "Lane_cv", 4, {"duration": "PT1H"}),
             Node("E", "endEvent", "end", "Lane_cv", 5)]
    return render(Process("Process_broken", "broken", LANES, nodes,
                          chain_flows(["S", "Task_A", "Timer", "Script", "Task_B", "E"])))


# --- dossiers and what the database holds ---------------------------------------------------------
RECEIVED_AT, DONE_AT = vn(2026, 11, 2, 9, 0), vn(2026, 11, 2, 9, 30)
FIRE_AT = vn(2026, 11, 2, 11, 31)  # the 2h timers armed at DONE_AT are due at 11:30


def waiting(session, office, code: str) -> Dossier:
    """A dossier of `code` whose first step (Task_A, the desk's) was done at DONE_AT."""
    d = dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code=code, channel="counter",
                                 applicant=APPLICANT, components=COMPONENTS, now=RECEIVED_AT)
    task = session.scalar(select(HumanTask.id).where(HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None)))
    session.rollback()
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task, now=DONE_AT)
    session.rollback()
    session.expire_all()
    return session.get(Dossier, d.id)


def after(session, start, duration: str):
    """`start` plus a step's duration in working time (the calendar in force)."""
    return working_calendar(session).add_duration(start, duration)


def fresh(session) -> None:
    session.rollback()
    session.expire_all()


def kinds_of(session, dossier_id: int) -> list[str]:
    return list(session.scalars(select(AuditEvent.kind).where(AuditEvent.dossier_id == dossier_id)
                                .order_by(AuditEvent.seq)))


def tasks_of(session, dossier_id: int) -> list[HumanTask]:
    return list(session.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier_id)
                                .order_by(HumanTask.started_at, HumanTask.spec_name)))


def outbox_of(session, dossier_id: int) -> list[str]:
    return list(session.scalars(select(OutboxEvent.kind).where(OutboxEvent.dossier_id == dossier_id)
                                .order_by(OutboxEvent.id)))


def assert_counters_match_a_rebuild(session) -> None:
    fresh(session)
    columns = (DailyCount.unit_id, DailyCount.procedure_id, DailyCount.day, DailyCount.name, DailyCount.n)
    kept = sorted(session.execute(select(*columns).where(DailyCount.n != 0)).all())
    counters.rebuild(session)
    session.flush()
    rebuilt = sorted(session.execute(select(*columns).where(DailyCount.n != 0)).all())
    session.rollback()
    assert kept == rebuilt


def assert_intact(session, ids) -> None:
    fresh(session)
    for i in ids:
        check = audit.check_chain(session, i)
        assert check.intact, check.line()


# --- boundary timers ------------------------------------------------------------------------------
def complete_in_turn(session, office, dossier_id: int, roles) -> Dossier:
    """Complete the dossier's open step of each role in `roles`, in turn (at 12:00 on 2/11); the dossier after."""
    d = session.get(Dossier, dossier_id)
    for role in roles:
        task = open_task(session, d, role)
        session.rollback()
        dossiers.complete_task(session, actor_id=office[role], task_id=task.id, now=vn(2026, 11, 2, 12, 0))
        fresh(session)
        d = session.get(Dossier, d.id)
    return d


def test_an_interrupting_boundary_timer_withdraws_the_step_and_opens_the_next_in_each_batch(
        session, factory, office, monkeypatch):
    monkeypatch.setattr(timers, "BATCH", 3)
    publish(session, "1.999201", boundary_bpmn(interrupting=True))
    ds = [waiting(session, office, "1.999201") for _ in range(7)]  # three batches: 3, 3, 1
    versions = {d.id: d.lock_version for d in ds}
    assert all(d.timer_due_at == vn(2026, 11, 2, 11, 30) for d in ds)
    report = timers.run_once(factory, FIRE_AT, kinds=[timers.TIMERS])
    assert (report.timers_fired, report.failures) == (7, [])
    fresh(session)
    for d in ds:
        again = session.get(Dossier, d.id)
        assert again.lock_version == versions[d.id] + 1 and again.timer_due_at is None
        rows = tasks_of(session, d.id)
        assert [(t.spec_name, t.cancelled, t.completed_at is not None) for t in rows] == [
            ("Task_A", False, True), ("Task_B", True, True), ("Task_C", False, False)]
        task_b, task_c = rows[1], rows[2]
        assert task_b.completed_at == FIRE_AT and task_b.decision is None
        assert task_c.started_at == FIRE_AT and task_c.due_at == after(session, FIRE_AT, "PT4H")
        assert kinds_of(session, d.id)[-2:] == ["timer_fired", "task_started"]
        assert outbox_of(session, d.id) == ["received", "status_changed"]  # no status moved in the sweep
    assert report.timers_fired == 7
    assert timers.run_once(factory, FIRE_AT + timedelta(hours=1), kinds=[timers.TIMERS]).timers_fired == 0
    assert_intact(session, [d.id for d in ds])
    # The withdrawn step is no step done: the dossier finished from Task_C is judged on Task_A and Task_C.
    d = ds[0]
    task_c = open_task(session, session.get(Dossier, d.id))
    session.rollback()
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task_c.id, now=vn(2026, 11, 2, 16, 0))
    fresh(session)
    done = session.get(Dossier, d.id)
    assert done.status == "result_ready" and done.steps_result == "on_time"  # Task_B (cancelled) is not judged
    assert_counters_match_a_rebuild(session)


def test_a_non_interrupting_boundary_timer_keeps_the_step_and_opens_another(session, factory, office, monkeypatch):
    monkeypatch.setattr(timers, "BATCH", 2)
    publish(session, "1.999202", boundary_bpmn(interrupting=False))
    ds = [waiting(session, office, "1.999202") for _ in range(3)]
    report = timers.run_once(factory, FIRE_AT, kinds=[timers.TIMERS])
    assert (report.timers_fired, report.failures) == (3, [])
    fresh(session)
    for d in ds:
        rows = tasks_of(session, d.id)
        assert [(t.spec_name, t.cancelled, t.completed_at is not None) for t in rows] == [
            ("Task_A", False, True), ("Task_B", False, False), ("Task_C", False, False)]
        assert session.get(Dossier, d.id).timer_due_at is None
        assert kinds_of(session, d.id).count("task_started") == 3
    assert timers.run_once(factory, FIRE_AT + timedelta(hours=3), kinds=[timers.TIMERS]).timers_fired == 0
    assert_intact(session, [d.id for d in ds])
    # Both steps can be completed; the dossier finishes with the second one.
    d = complete_in_turn(session, office, ds[0].id, ("chuyen_vien", "mot_cua"))
    assert d.status == "result_ready"
    assert_counters_match_a_rebuild(session)


# --- a timer that ends the process -----------------------------------------------------------------
def test_a_timer_that_ends_the_process_finishes_each_dossier_of_the_batch_once(session, factory, office, monkeypatch):
    monkeypatch.setattr(timers, "BATCH", 2)
    publish(session, "1.999203", timer_then_end_bpmn())
    ds = [waiting(session, office, "1.999203") for _ in range(5)]
    assert_counters_match_a_rebuild(session)
    report = timers.run_once(factory, FIRE_AT, kinds=[timers.TIMERS])
    assert (report.timers_fired, report.failures) == (5, [])
    fresh(session)
    for d in ds:
        again = session.get(Dossier, d.id)
        assert again.status == "result_ready" and again.finished_at == FIRE_AT
        assert again.finished_on == date(2026, 11, 2) and again.timer_due_at is None
        steps = session.execute(select(HumanTask.completed_at, HumanTask.due_at).where(
            HumanTask.dossier_id == d.id, HumanTask.cancelled.is_(False))).all()
        assert len(steps) == 1
        assert again.steps_result == counters.worst([counters.classify(c, due) for c, due in steps]) == "on_time"
        assert again.finish_result == "early"
        assert kinds_of(session, d.id)[-2:] == ["timer_fired", "finished"]
        assert outbox_of(session, d.id) == ["received", "status_changed", "status_changed"]
        payload = session.scalars(select(OutboxEvent.payload).where(OutboxEvent.dossier_id == d.id)
                                  .order_by(OutboxEvent.id.desc())).first()
        assert payload["status"] == "result_ready" and payload["finished_at"] is not None
        kinds = sorted(session.scalars(select(Notice.kind).where(Notice.dossier_id == d.id, Notice.created_at == FIRE_AT)))
        assert kinds == ["result_ready", "result_ready"]  # e-mail and SMS
        assert session.scalar(select(func.count()).select_from(HumanTask).where(
            HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None))) == 0
    assert_counters_match_a_rebuild(session)
    assert_intact(session, [d.id for d in ds])


# --- liên thông, parallel steps, a loop ------------------------------------------------------------
def test_a_timer_that_hands_the_dossier_to_another_unit_audits_the_hand_over(session, factory, office, monkeypatch):
    monkeypatch.setattr(timers, "BATCH", 2)
    publish(session, "1.999204", lien_thong_timer_bpmn())
    ds = [waiting(session, office, "1.999204") for _ in range(3)]
    report = timers.run_once(factory, FIRE_AT, kinds=[timers.TIMERS])
    assert (report.timers_fired, report.failures) == (3, [])
    fresh(session)
    other = session.scalar(select(Unit.id).where(Unit.code == "H40.2"))
    for d in ds:
        task = open_task(session, session.get(Dossier, d.id))
        assert (task.spec_name, task.unit_id) == ("Task_B", other)
        events = session.execute(select(AuditEvent.kind, AuditEvent.data).where(AuditEvent.dossier_id == d.id)
                                 .order_by(AuditEvent.seq)).all()
        assert [k for k, _ in events][-3:] == ["timer_fired", "handed_off", "task_started"]
        handed = events[-2][1]
        assert (handed["from_unit"], handed["to_unit"]) == ("H40.1", "H40.2")
    assert_intact(session, [d.id for d in ds])
    # The other unit's specialist takes the step from there.
    task = open_task(session, session.get(Dossier, ds[0].id))
    session.rollback()
    dossiers.complete_task(session, actor_id=office["other_chuyen_vien"], task_id=task.id, now=vn(2026, 11, 2, 12, 0))
    fresh(session)
    assert session.get(Dossier, ds[0].id).status == "result_ready"
    assert_counters_match_a_rebuild(session)


def test_a_timer_before_a_parallel_gateway_opens_both_steps(session, factory, office, monkeypatch):
    monkeypatch.setattr(timers, "BATCH", 2)
    publish(session, "1.999205", parallel_after_timer_bpmn())
    ds = [waiting(session, office, "1.999205") for _ in range(3)]
    report = timers.run_once(factory, FIRE_AT, kinds=[timers.TIMERS])
    assert (report.timers_fired, report.failures) == (3, [])
    fresh(session)
    for d in ds:
        opened = sorted((t.spec_name, t.role, t.started_at, t.due_at) for t in tasks_of(session, d.id)
                        if t.completed_at is None)
        assert opened == [("Task_B", "chuyen_vien", FIRE_AT, after(session, FIRE_AT, "PT1H")),
                          ("Task_C", "mot_cua", FIRE_AT, after(session, FIRE_AT, "PT2H"))]
        assert kinds_of(session, d.id)[-3:] == ["timer_fired", "task_started", "task_started"]
    assert_intact(session, [d.id for d in ds])
    d = complete_in_turn(session, office, ds[0].id, ("mot_cua", "chuyen_vien"))
    assert d.status == "result_ready" and d.steps_result == "on_time"
    assert_counters_match_a_rebuild(session)


def test_a_timer_in_a_loop_is_armed_again_by_the_sweep(session, factory, office, monkeypatch):
    monkeypatch.setattr(timers, "BATCH", 2)
    publish(session, "1.999206", looping_timer_bpmn())
    ds = [waiting(session, office, "1.999206") for _ in range(3)]
    now = FIRE_AT
    for round_ in (1, 2):
        report = timers.run_once(factory, now, kinds=[timers.TIMERS])
        assert (report.timers_fired, report.failures) == (3, [])
        fresh(session)
        for d in ds:
            again = session.get(Dossier, d.id)
            assert again.timer_due_at == now + timedelta(hours=2), round_  # armed again, from the firing
            assert not [t for t in tasks_of(session, d.id) if t.completed_at is None]
        assert timers.run_once(factory, now + timedelta(hours=1), kinds=[timers.TIMERS]).timers_fired == 0
        now += timedelta(hours=2, minutes=1)
    report = timers.run_once(factory, now, kinds=[timers.TIMERS])
    assert (report.timers_fired, report.failures) == (3, [])
    fresh(session)
    for d in ds:
        again = session.get(Dossier, d.id)
        assert again.timer_due_at is None
        assert open_task(session, again).spec_name == "Task_B"
        assert kinds_of(session, d.id).count("timer_fired") == 3
    assert_intact(session, [d.id for d in ds])


# --- a failing process in a batch; several batches; two sweeps at once ------------------------------
def waiting_from(session, office, code: str, minute: int) -> Dossier:
    """`waiting`, its first step done `minute` minutes after DONE_AT (so its timer comes in that order)."""
    d = dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code=code, channel="counter",
                                 applicant=APPLICANT, components=COMPONENTS, now=RECEIVED_AT)
    task = session.scalar(select(HumanTask.id).where(HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None)))
    session.rollback()
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task, now=DONE_AT + timedelta(minutes=minute))
    fresh(session)
    return session.get(Dossier, d.id)


MIXED = {"1.999201": boundary_bpmn(True), "1.999203": timer_then_end_bpmn(), "1.999204": lien_thong_timer_bpmn(),
         "1.999205": parallel_after_timer_bpmn(), "1.999206": looping_timer_bpmn(),
         "1.999207": broken_after_timer_bpmn()}
# What each kind of dossier holds after its timer fired: its steps (name, cancelled, still open), audit
# events after the firing, outbox events.
EXPECTED = {
    "1.999201": ([("Task_A", False, False), ("Task_B", True, False), ("Task_C", False, True)],
                 ["timer_fired", "task_started"], ["received", "status_changed"]),
    "1.999203": ([("Task_A", False, False)], ["timer_fired", "finished"], ["received", "status_changed", "status_changed"]),
    "1.999204": ([("Task_A", False, False), ("Task_B", False, True)], ["timer_fired", "handed_off", "task_started"],
                 ["received", "status_changed"]),
    "1.999205": ([("Task_A", False, False), ("Task_B", False, True), ("Task_C", False, True)],
                 ["timer_fired", "task_started", "task_started"], ["received", "status_changed"]),
    "1.999206": ([("Task_A", False, False)], ["timer_fired"], ["received", "status_changed"]),
}


def steps_of(session, dossier_id):
    return sorted((t.spec_name, t.cancelled, t.completed_at is None) for t in tasks_of(session, dossier_id))


@pytest.mark.parametrize("failing_at", [0, 3, 6])
def test_a_failing_process_redoes_its_batch_without_a_row_of_the_failed_attempt(
        session, factory, office, monkeypatch, failing_at):
    """A batch whose n-th dossier fails is rolled back and redone without it: the dossiers before it in the
    failed attempt are written once (their steps, audit events, outbox events, notices, counters), never
    twice; the failing one is left as it was."""
    monkeypatch.setattr(timers, "BATCH", 4)
    for code, xml in MIXED.items():
        publish(session, code, xml)
    order = ["1.999203", "1.999206", "1.999201", "1.999205", "1.999204", "1.999206", "1.999203", "1.999201",
             "1.999205", "1.999204", "1.999206", "1.999203", "1.999201"]
    order.insert(failing_at, "1.999207")
    order.insert(8, "1.999207")
    ds = [(code, waiting_from(session, office, code, i)) for i, code in enumerate(order)]
    before = {d.id: (d.lock_version, d.audit_seq, d.timer_due_at, steps_of(session, d.id), outbox_of(session, d.id))
              for _, d in ds}
    now = FIRE_AT + timedelta(minutes=len(order))
    report = timers.run_once(factory, now, kinds=[timers.TIMERS])
    broken = {d.id for code, d in ds if code == "1.999207"}
    assert report.failed_ids == broken and len(report.failures) == 2
    assert report.timers_fired == len(order) - 2
    fresh(session)
    for code, d in ds:
        again = session.get(Dossier, d.id)
        if d.id in broken:
            assert (again.lock_version, again.audit_seq, again.timer_due_at, steps_of(session, d.id),
                    outbox_of(session, d.id)) == before[d.id]
            continue
        steps, events, outbox = EXPECTED[code]
        assert steps_of(session, d.id) == steps, code
        assert kinds_of(session, d.id)[before[d.id][1]:] == events, code
        assert outbox_of(session, d.id) == outbox, code
        assert again.lock_version == before[d.id][0] + 1
        # The looping timer is armed again from the firing (the batch's UPDATE mixes it with cleared ones).
        assert again.timer_due_at == (now + timedelta(hours=2) if code == "1.999206" else None), code
        notices = session.scalar(select(func.count()).select_from(Notice).where(Notice.dossier_id == d.id,
                                                                                Notice.created_at > DONE_AT))
        assert notices == (2 if code == "1.999203" else 0), code
    assert_counters_match_a_rebuild(session)
    assert_intact(session, [d.id for _, d in ds])


@pytest.mark.postgres_only
def test_two_sweeps_at_once_over_several_batches_fire_each_timer_once(session, factory, office, monkeypatch):
    """Two sweeps of batches of 5 run together over 23 due timers of two kinds (steps opened, processes
    finished, so both touch the same report counters): each timer fires once, each dossier's version moves
    by one, every step is opened once, the counters still equal a rebuild."""
    monkeypatch.setattr(timers, "BATCH", 5)
    publish(session, "1.999203", timer_then_end_bpmn())
    publish(session, "1.999205", parallel_after_timer_bpmn())
    ds = [(code, waiting_from(session, office, code, i % 7))
          for i, code in enumerate(["1.999203", "1.999205"] * 11 + ["1.999203"])]
    versions = {d.id: d.lock_version for _, d in ds}
    barrier, reports, errors = threading.Barrier(2), [], []

    def sweep():
        try:
            barrier.wait(10)
            reports.append(timers.run_once(factory, FIRE_AT + timedelta(minutes=10)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(r.timers_fired for r in reports) == len(ds) and not any(r.failures for r in reports)
    fresh(session)
    for code, d in ds:
        assert session.get(Dossier, d.id).lock_version == versions[d.id] + 1
        assert kinds_of(session, d.id).count("timer_fired") == 1
        assert steps_of(session, d.id) == EXPECTED[code][0]
    assert_counters_match_a_rebuild(session)
    assert_intact(session, [d.id for _, d in ds])


# --- the flags, in whole batches (more than 50 parameters: psycopg's executemany) ----------------------
def test_overdue_and_late_steps_over_more_than_a_batch_are_flagged_once_with_intact_chains(
        session, factory, office, db_url, monkeypatch):
    sent_many = []
    if db_url.startswith("postgresql"):  # the rows of a batch go through psycopg's executemany
        import psycopg

        real = psycopg.Cursor.executemany

        def executemany(cursor, query, params_seq, *args, **kwargs):
            params_seq = list(params_seq)
            sent_many.append((str(query).split("(")[0].strip(), len(params_seq)))
            return real(cursor, query, params_seq, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "executemany", executemany)
    count = timers.BATCH + 5
    ds = [receive(session, office, at=vn(2026, 11, 2, 8, 0) + timedelta(seconds=i)) for i in range(count)]
    fresh(session)
    versions = {d.id: (d.lock_version, d.audit_seq) for d in ds}
    report = timers.run_once(factory, vn(2026, 11, 10, 9, 0))
    assert (report.dossiers_overdue, report.steps_late, report.failures) == (count, count, [])
    again = timers.run_once(factory, vn(2026, 11, 11, 9, 0))
    assert (again.dossiers_overdue, again.steps_late) == (0, 0)
    fresh(session)
    for d in ds:
        row = session.get(Dossier, d.id)
        assert row.overdue and row.late_without_apology and row.overdue_flagged_at == vn(2026, 11, 10, 9, 0)
        assert (row.lock_version, row.audit_seq) == (versions[d.id][0] + 2, versions[d.id][1] + 2)
        assert kinds_of(session, d.id)[-2:] == ["overdue", "step_late"]
        assert outbox_of(session, d.id) == ["received", "overdue"]
        assert open_task(session, row).late
    payloads = session.scalars(select(OutboxEvent.payload).where(OutboxEvent.kind == "overdue")).all()
    assert len(payloads) == count and all(p["overdue"] is True for p in payloads)
    assert len({p["event_id"] for p in payloads}) == count
    if db_url.startswith("postgresql"):
        assert ("INSERT INTO audit_events", timers.BATCH) in sent_many, sent_many
        assert ("INSERT INTO outbox_events", timers.BATCH) in sent_many, sent_many
    assert_counters_match_a_rebuild(session)
    assert_intact(session, [d.id for d in ds])


def test_unanswered_supplement_requests_in_one_batch_are_expired_once(session, factory, office):
    count = 12  # 12 audit rows of 10 columns: more than psycopg parses once
    ds = []
    for i in range(count):
        d = receive(session, office, at=vn(2026, 11, 2, 8, 0) + timedelta(minutes=i))
        dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id,
                               now=vn(2026, 11, 2, 9, 30))
        dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                    reason="Thiếu chữ ký", items=[item("Giấy đề nghị có chữ ký")],
                                    now=vn(2026, 11, 2, 10, 0))
        ds.append(d)
    fresh(session)
    report = timers.run_once(factory, vn(2026, 12, 20, 9, 0), kinds=[timers.SUPPLEMENTS_DUE])
    assert (report.supplements_expired, report.failures) == (count, [])
    assert timers.run_once(factory, vn(2026, 12, 21, 9, 0), kinds=[timers.SUPPLEMENTS_DUE]).supplements_expired == 0
    fresh(session)
    for d in ds:
        assert kinds_of(session, d.id)[-1] == "supplement_expired"
        assert outbox_of(session, d.id)[-1] == "supplement_expired"
        assert session.get(Dossier, d.id).status == "awaiting_supplement"
    assert_intact(session, [d.id for d in ds])


# --- the consultations a completion no longer reads when the lock says there are none ----------------
def held_before_commit(factory, use_case):
    """Run `use_case(session)` in a thread whose commit waits: returns (the thread, an event set when it
    holds its locks and is about to commit, an event that lets it commit, what it raised)."""
    ready, go, raised = threading.Event(), threading.Event(), []

    def run():
        with factory() as s:
            real = s.commit

            def commit():
                ready.set()
                go.wait(20)
                real()

            s.commit = commit
            try:
                use_case(s)
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(20), raised
    return thread, go, raised


def behind_the_lock(session, factory, first_thread, go, use_case) -> list:
    """Run `use_case(session)` in a thread while `first_thread` holds the dossier's lock before its commit:
    once it waits for that lock, let the first commit (`go`). Returns what the use case returned or raised."""
    outcome = []

    def run():
        with factory() as s:
            try:
                outcome.append(use_case(s))
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                outcome.append(exc)

    second = threading.Thread(target=run)
    second.start()
    wait_for_a_lock_wait(session)
    go.set()
    first_thread.join(20)
    second.join(20)
    return outcome


def wait_for_a_lock_wait(session) -> None:
    """Until some other backend of this database waits for a row lock."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        waiting = session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'"))
        session.rollback()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("nobody waited for the dossier's lock")


def at_the_specialist(session, office):
    d = receive(session, office)
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id,
                           now=vn(2026, 11, 2, 9, 30))
    task = open_task(session, d, "chuyen_vien")
    result = result_for(session, task, vn(2026, 11, 2, 11))
    session.rollback()
    return d, task.id, result


def ask(office, task_id):
    return lambda s: dossiers.ask_opinions(s, actor_id=office["chuyen_vien"], task_id=task_id, unit_codes=["H40.2"],
                                           content="Ý kiến về hiện trạng", days=2, now=vn(2026, 11, 2, 10))


@pytest.mark.postgres_only
def test_a_completion_that_waited_for_the_lock_sees_the_consultation_just_asked(session, factory, office):
    """The specialist asks H40.2 for its opinion; at the same moment (a second tab, the API) the step is
    completed. The completion waits for the dossier's lock, then must find the request and wait for the
    answer (ConsultationPending), as it does when it comes a moment later."""
    from engine.errors import ConsultationPending

    d, task_id, result = at_the_specialist(session, office)
    asking, go, ask_raised = held_before_commit(factory, ask(office, task_id))
    outcome = behind_the_lock(session, factory, asking, go, lambda s: dossiers.complete_task(
        s, actor_id=office["chuyen_vien"], task_id=task_id, data={"decision": "approve"}, result=result,
        now=vn(2026, 11, 2, 11)))
    assert not ask_raised, ask_raised
    assert len(outcome) == 1 and isinstance(outcome[0], ConsultationPending), outcome
    fresh(session)
    assert open_task(session, session.get(Dossier, d.id), "chuyen_vien").id == task_id


@pytest.mark.postgres_only
def test_two_requests_for_the_same_units_opinion_at_once_give_one(session, factory, office):
    """Two requests for H40.2's opinion from the same step at the same moment: the second waits for the
    lock, then must find the first (a unit is not asked twice while it may still answer)."""
    from engine.errors import InvalidInput
    from engine.store.models import Consultation

    d, task_id, _ = at_the_specialist(session, office)
    first, go, first_raised = held_before_commit(factory, ask(office, task_id))
    second_raised = behind_the_lock(session, factory, first, go, ask(office, task_id))
    assert not first_raised, first_raised
    fresh(session)
    asked = session.scalar(select(func.count()).select_from(Consultation).where(Consultation.dossier_id == d.id))
    assert asked == 1
    assert len(second_raised) == 1 and isinstance(second_raised[0], InvalidInput), second_raised


@pytest.mark.postgres_only
def test_two_claims_of_one_step_at_once_give_it_to_one_specialist(session, factory, office):
    """(Older than the change under review, same cause: the open steps read by the lock's statement.) Two
    specialists of the unit claim the same unassigned step at the same moment: the second waits for the
    lock, then must find the step taken (TaskTaken), not take it over."""
    from engine.dossiers.assignment import TaskTaken

    second_user = directory.add_user(session, "cv_hai", "matkhau-123", [("H40.1", "chuyen_vien")], "Trần Văn Hai").id
    session.commit()
    d, task_id, _ = at_the_specialist(session, office)
    first, go, first_raised = held_before_commit(
        factory, lambda s: dossiers.claim_task(s, actor_id=office["chuyen_vien"], task_id=task_id, now=vn(2026, 11, 2, 10)))
    second_raised = behind_the_lock(session, factory, first, go, lambda s: dossiers.claim_task(
        s, actor_id=second_user, task_id=task_id, now=vn(2026, 11, 2, 10)))
    assert not first_raised, first_raised
    fresh(session)
    assert session.get(HumanTask, task_id).assignee_id == office["chuyen_vien"]
    assert len(second_raised) == 1 and isinstance(second_raised[0], TaskTaken), second_raised


# --- the actor the token's read hands to the use case ---------------------------------------------
def test_a_token_acts_with_the_grants_of_its_own_request_not_an_earlier_ones(session, office, client):
    """The actor a request's token read is handed to that request's use case only: once the specialist's
    grant is withdrawn, the same token's next request may no longer complete the step (nor see it)."""
    from conftest import bearer

    from engine.store.db import begin_write
    from engine.store.models import RoleGrant

    d, task_id, _ = at_the_specialist(session, office)
    headers = bearer(client, "chuyen_vien1")
    listed = client.get("/api/v1/tasks", headers=headers)  # reads (and hands on) the actor, runs no use case
    assert listed.status_code == 200 and task_id in [t["id"] for t in listed.get_json()]
    begin_write(session)
    session.execute(RoleGrant.__table__.delete().where(RoleGrant.user_id == office["chuyen_vien"]))
    session.commit()
    answer = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {"decision": "approve"}}, headers=headers)
    assert answer.status_code in (403, 404), answer.get_json()
    fresh(session)
    assert open_task(session, session.get(Dossier, d.id)).id == task_id
    assert client.get("/api/v1/tasks", headers=headers).get_json() == []



@pytest.mark.postgres_only
def test_a_completion_that_waited_for_the_sweep_sees_the_step_the_timer_opened(session, factory, office):
    """(Older than the change under review, same cause as the consultations'.) The sweep fires a
    non-interrupting boundary timer (Task_C opens beside Task_B) while the specialist completes Task_B:
    the completion waits for the sweep's lock and must then take Task_C as open, not open it a second
    time (a duplicate key: the specialist gets an error for a step they could complete)."""
    publish(session, "1.999202", boundary_bpmn(interrupting=False))
    d = waiting(session, office, "1.999202")
    task_b = open_task(session, d, "chuyen_vien").id
    session.rollback()
    ready, go, raised = threading.Event(), threading.Event(), []

    def holding():
        s = factory()
        real = s.commit

        def commit():
            ready.set()
            go.wait(20)
            real()

        s.commit = commit
        return s

    sweeping = threading.Thread(target=lambda: raised.append(timers.run_once(holding, FIRE_AT, kinds=[timers.TIMERS])))
    sweeping.start()
    assert ready.wait(20)
    outcome = behind_the_lock(session, factory, sweeping, go, lambda s: dossiers.complete_task(
        s, actor_id=office["chuyen_vien"], task_id=task_b, now=FIRE_AT))
    assert raised[0].timers_fired == 1
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    fresh(session)
    assert steps_of(session, d.id) == [("Task_A", False, False), ("Task_B", False, False), ("Task_C", False, True)]
