"""Deadlines in every order the law allows: receive → supplement request (inside / outside the window)
→ supplement delivered / never → apology (before / after the due date) → refuse / withdraw / finish /
return. Each row of TABLE is a path with its expectations computed by hand from the rules in
engine/reporting/deadlines.py and docs/legal-rules.md, on the calendar of November 2026 (weekdays;
office hours 07:30–11:30, 13:00–17:00).

Every dossier is received Mon 2/11 09:00 at the counter for 1.001612 (3 working days): the legal due
date is Thu 5/11 17:00, and the supplement window (3 working days after reception) ends Thu 5/11 17:00.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from conftest import open_task, pdf, receive, result_for, vn
from sqlalchemy import select

from engine import dossiers
from engine.access.actors import load_actor
from engine.dossiers import timers
from engine.errors import DossierClosed, LateSupplementRequest
from engine.reporting import deadlines, lists, metrics, views
from engine.reporting.counters import classify
from engine.store.models import AuditEvent, Dossier, SupplementRequest

DUE = vn(2026, 11, 5, 17)
ITEMS = [{"component": "GIAYDENGHI", "problem": "Thiếu chữ ký của chủ hộ"}]


@dataclass
class Row:
    name: str
    steps: list[tuple]
    status: str
    result: str | None            # finish_result
    legal_due: object             # legal_due_at at the end
    due: object                   # the appointment (due_at) at the end
    overdue_at: dict = field(default_factory=dict)   # {moment: overdue now?} checked along the way
    apologized: bool = False


# The steps: ("forward", t) the desk forwards · ("supplement", t[, "ack"]) the specialist asks ·
# ("deliver", t) the citizen supplements · ("apology", t, new appointment) signed by the leader ·
# ("finish", t) every remaining step approved at t · ("refuse", t) specialist refuses, leader signs ·
# ("leader_refuses", t) form 03 by the leader directly · ("withdraw", t) · ("return", t).
TABLE = [
    Row("early", [("forward", vn(2026, 11, 2, 10)), ("finish", vn(2026, 11, 4, 10))],
        "result_ready", "early", DUE, DUE),
    Row("on time at 17:00 of the due day", [("forward", vn(2026, 11, 2, 10)), ("finish", vn(2026, 11, 5, 17))],
        "result_ready", "on_time", DUE, DUE,
        overdue_at={vn(2026, 11, 5, 16, 59): False, vn(2026, 11, 5, 17): False}),
    Row("late, no apology", [("forward", vn(2026, 11, 2, 10)), ("finish", vn(2026, 11, 6, 9))],
        "result_ready", "late", DUE, DUE, overdue_at={vn(2026, 11, 5, 17, 0, 1): True}),
    Row("returned to the citizen", [("forward", vn(2026, 11, 2, 10)), ("finish", vn(2026, 11, 4, 10)),
                                    ("return", vn(2026, 11, 5, 9))],
        "returned", "early", DUE, DUE),
    # A timely request pauses the clock; the supplement restarts it from zero: Mon 9/11 10:00 + 3 → Thu 12/11.
    Row("supplement in the window, delivered, early", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 3, 10)), ("deliver", vn(2026, 11, 9, 10)),
        ("finish", vn(2026, 11, 11, 10))],
        "result_ready", "early", vn(2026, 11, 12, 17), vn(2026, 11, 12, 17),
        overdue_at={vn(2026, 11, 6, 9): False, vn(2026, 11, 9, 9): False}),
    Row("supplement delivered after the old due date, finished on the new one", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 3, 10)), ("deliver", vn(2026, 11, 10, 9)),
        ("finish", vn(2026, 11, 13, 17))],
        "result_ready", "on_time", vn(2026, 11, 13, 17), vn(2026, 11, 13, 17),
        overdue_at={vn(2026, 11, 10, 12): False}),
    Row("supplement delivered, then late", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 3, 10)), ("deliver", vn(2026, 11, 9, 10)),
        ("finish", vn(2026, 11, 13, 9))],
        "result_ready", "late", vn(2026, 11, 12, 17), vn(2026, 11, 12, 17),
        overdue_at={vn(2026, 11, 12, 17, 1): True}),
    # Issue #10 case 2: apology 3/11 (→ 10/11), supplement 4/11, delivered 9/11 → 12/11; finished 11/11: early.
    Row("apology then supplement", [
        ("forward", vn(2026, 11, 2, 10)), ("apology", vn(2026, 11, 3, 10), vn(2026, 11, 10, 17)),
        ("supplement", vn(2026, 11, 4, 10)), ("deliver", vn(2026, 11, 9, 10)), ("finish", vn(2026, 11, 11, 10))],
        # the restart begins a new period: the earlier apology covered the old date only
        "result_ready", "early", vn(2026, 11, 12, 17), vn(2026, 11, 12, 17), apologized=False,
        overdue_at={vn(2026, 11, 6, 9): False}),
    # Supplement then apology: the apology moves the appointment, not the legal date (12/11).
    Row("supplement then apology, finished after the legal date", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 3, 10)), ("deliver", vn(2026, 11, 9, 10)),
        ("apology", vn(2026, 11, 10, 10), vn(2026, 11, 16, 17)), ("finish", vn(2026, 11, 13, 10))],
        "result_ready", "late", vn(2026, 11, 12, 17), vn(2026, 11, 16, 17), apologized=True,
        overdue_at={vn(2026, 11, 13, 9): True}),
    Row("apology in time, finished within the new appointment: still late", [
        ("forward", vn(2026, 11, 2, 10)), ("apology", vn(2026, 11, 3, 10), vn(2026, 11, 10, 17)),
        ("finish", vn(2026, 11, 9, 10))],
        "result_ready", "late", DUE, vn(2026, 11, 10, 17), apologized=True,
        overdue_at={vn(2026, 11, 6, 9): True}),
    Row("apology after the due date", [
        ("forward", vn(2026, 11, 2, 10)), ("apology", vn(2026, 11, 6, 9), vn(2026, 11, 11, 17)),
        ("finish", vn(2026, 11, 10, 10))],
        "result_ready", "late", DUE, vn(2026, 11, 11, 17), apologized=True,
        overdue_at={vn(2026, 11, 6, 8): True}),
    # A late request (after Thu 5/11 17:00) neither pauses nor restarts the clock: the agency bears it.
    Row("late supplement request, delivered, finished", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 6, 9), "ack"), ("deliver", vn(2026, 11, 9, 10)),
        ("finish", vn(2026, 11, 10, 10))],
        "result_ready", "late", DUE, DUE, overdue_at={vn(2026, 11, 6, 10): True, vn(2026, 11, 9, 11): True}),
    # Never supplemented: the clock stopped at the request (Tue 3/11 10:00) — not late, however long it waits.
    Row("supplement never delivered, refused by the leader", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 3, 10)),
        ("leader_refuses", vn(2026, 12, 7, 9))],
        "refused", "early", DUE, DUE, overdue_at={vn(2026, 11, 20, 9): False}),
    Row("supplement never delivered, withdrawn", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 3, 10)), ("withdraw", vn(2026, 11, 6, 9))],
        "withdrawn", None, DUE, DUE),
    Row("withdrawn while processing", [("forward", vn(2026, 11, 2, 10)), ("withdraw", vn(2026, 11, 3, 9))],
        "withdrawn", None, DUE, DUE),
    # A refusal carried through the leader's step ends refused (issue #10 case 8).
    Row("refused at appraisal, signed in time", [("forward", vn(2026, 11, 2, 10)), ("refuse", vn(2026, 11, 4, 10))],
        "refused", "early", DUE, DUE),
    Row("refused after the due date (flagged, L11)", [("forward", vn(2026, 11, 2, 10)), ("refuse", vn(2026, 11, 6, 10))],
        "refused", "late", DUE, DUE),
    Row("late supplement request never answered, refused", [
        ("forward", vn(2026, 11, 2, 10)), ("supplement", vn(2026, 11, 6, 9), "ack"),
        ("leader_refuses", vn(2026, 11, 20, 9))],
        "refused", "late", DUE, DUE, overdue_at={vn(2026, 11, 16, 9): True}),
]


def _run(session, office, factory, row: Row) -> Dossier:
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    checks = sorted(row.overdue_at.items())

    def check_until(moment):
        while checks and checks[0][0] <= moment:
            at, expected = checks.pop(0)
            session.expire_all()
            now = session.get(Dossier, d.id)
            assert deadlines.is_overdue(now, at) is expected, f"{row.name}: overdue at {at}"
            listed = session.scalars(select(Dossier.id).where(Dossier.id == d.id, deadlines.overdue(at))).all()
            assert bool(listed) is expected, f"{row.name}: SQL overdue at {at}"

    for step in row.steps:
        check_until(step[1])
        do(session, office, d, step)
    check_until(vn(2027, 1, 1))
    session.expire_all()
    return session.get(Dossier, d.id)


def do(session, office, d, step: tuple, shift: timedelta = timedelta(0)) -> None:
    """One step of a path (see TABLE), at its time moved by `shift`."""
    kind, at = step[0], step[1] + shift
    if kind == "forward":
        dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=at)
    elif kind == "supplement":
        dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                    reason="Hồ sơ chưa hợp lệ", items=ITEMS, acknowledge_late="ack" in step, now=at)
    elif kind == "deliver":
        dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=d.code, now=at,
                                    components=[{"code": "GIAYDENGHI", "filename": "bs.pdf", "content": pdf("bs")}])
    elif kind == "apology":
        dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Cần xác minh",
                               new_due_at=step[2] + shift, now=at)
    elif kind == "finish":
        session.expire_all()
        while (task := _open(session, d)) is not None:
            dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id,
                                   data={"decision": "approve"}, result=result_for(session, task, at), now=at)
    elif kind == "refuse":
        dossiers.complete_task(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                               data={"decision": "refuse"}, note="Ngành nghề không được kinh doanh", now=at)
        dossiers.complete_task(session, actor_id=office["lanh_dao"], task_id=open_task(session, d).id,
                               data={"decision": "approve"}, now=at)
    elif kind == "leader_refuses":
        dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=d.code,
                                reason="Không bổ sung hồ sơ trong thời hạn", now=at)
    elif kind == "withdraw":
        dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="Rút", now=at)
    elif kind == "return":
        dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=d.code, now=at)
    else:
        raise ValueError(kind)


def _open(session, d):
    from engine.store.models import HumanTask
    return session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None))).first()


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_every_path_ends_as_the_law_says(session, office, factory, row):
    d = _run(session, office, factory, row)
    assert (d.status, d.finish_result) == (row.status, row.result)
    assert (d.legal_due_at, d.due_at) == (row.legal_due, row.due)
    assert d.apologized is row.apologized and d.clock_paused is False


def test_a_late_request_is_not_sent_without_confirmation_and_changes_nothing(session, office):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=vn(2026, 11, 2, 10))
    before = session.scalar(select(AuditEvent.seq).where(AuditEvent.dossier_id == d.id).order_by(AuditEvent.seq.desc()).limit(1))
    with pytest.raises(LateSupplementRequest):
        dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                    reason="x", items=ITEMS, now=vn(2026, 11, 5, 17, 1))
    session.rollback()
    assert session.scalar(select(AuditEvent.seq).where(AuditEvent.dossier_id == d.id)
                          .order_by(AuditEvent.seq.desc()).limit(1)) == before
    assert session.get(Dossier, d.id).status == "processing"
    # At 17:00 exactly the window is still open: no confirmation needed, and the clock pauses.
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="x", items=ITEMS, now=vn(2026, 11, 5, 17))
    session.expire_all()
    assert session.get(Dossier, d.id).clock_paused is True


def test_requested_items_name_a_component_or_say_why_not(session, office):
    from engine.errors import InvalidInput
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=vn(2026, 11, 2, 10))
    task_id = open_task(session, d).id
    for bad, field_name in (
            (["Giấy tờ khác"], "items.0"),                                             # free text
            ([{"component": "KHONGCO", "problem": "x"}], "items.0.component"),        # not a component
            ([{"component": "GIAYDENGHI", "problem": " "}], "items.0.problem"),       # what is wrong?
            ([{"component": None, "name": "Sổ hộ khẩu", "problem": "bản sao"}], "items.0.reason")):  # outside: why?
        with pytest.raises(InvalidInput) as refused:
            dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=task_id, reason="x",
                                        items=bad, now=vn(2026, 11, 3, 9))
        assert field_name in refused.value.errors
        session.rollback()
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=task_id, reason="x", now=vn(2026, 11, 3, 9),
                                items=[ITEMS[0], {"component": None, "name": "Giấy xác nhận cư trú", "problem": "bản chính",
                                                  "reason": "Địa chỉ trên đơn khác địa chỉ thường trú"}])
    req = session.scalar(select(SupplementRequest))
    assert req.items[0]["name"] == "Giấy đề nghị đăng ký hộ kinh doanh"
    assert req.items[1] == {"component": None, "name": "Giấy xác nhận cư trú", "problem": "bản chính",
                            "reason": "Địa chỉ trên đơn khác địa chỉ thường trú"}


def test_no_apology_while_the_citizen_holds_the_dossier(session, office):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=vn(2026, 11, 2, 10))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="x", items=ITEMS, now=vn(2026, 11, 3, 9))
    with pytest.raises(DossierClosed):
        dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="x",
                               new_due_at=vn(2026, 11, 12, 17), now=vn(2026, 11, 4, 9))


def test_an_unanswered_supplement_is_flagged_once_when_its_answer_date_passes(session, office, factory):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=vn(2026, 11, 2, 10))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="x", items=ITEMS, now=vn(2026, 11, 3, 10))
    req = session.scalar(select(SupplementRequest))
    assert req.respond_by == vn(2026, 12, 3, 17)  # 30 calendar days later, at the end of that working day
    session.rollback()
    assert timers.run_once(factory, now=vn(2026, 12, 3, 17)).supplements_expired == 0
    assert timers.run_once(factory, now=vn(2026, 12, 3, 17, 1)).supplements_expired == 1
    assert timers.run_once(factory, now=vn(2026, 12, 4, 9)).supplements_expired == 0
    session.expire_all()
    kinds = session.scalars(select(AuditEvent.kind).where(AuditEvent.dossier_id == d.id)).all()
    assert kinds.count("supplement_expired") == 1 and "overdue" not in kinds


def test_one_definition_of_overdue_in_the_sweep_the_counters_the_dashboard_and_the_lists(session, office, factory):
    """Issue #10 cases 1 and 4: a dossier waiting for the citizen and one due at 17:00 today are not
    overdue anywhere; one past its date is overdue everywhere."""
    paused = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, paused).id, now=vn(2026, 11, 2, 10))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, paused).id,
                                reason="x", items=ITEMS, now=vn(2026, 11, 3, 9))
    late = receive(session, office, at=vn(2026, 11, 2, 9, 30))             # due Thu 5/11 17:00
    today = receive(session, office, at=vn(2026, 11, 5, 9))                # due Tue 10/11 17:00
    now = vn(2026, 11, 10, 16)
    report = timers.run_once(factory, now=now)
    assert report.dossiers_overdue == 1
    session.expire_all()
    actor = load_actor(session, office["mot_cua"])
    assert lists.counts(session, actor, now)["qua-han"] == 1
    today_lists = metrics.due_soon(session, [paused.unit_id], now)
    assert [d.code for d in today_lists["overdue"]] == [late.code]
    assert [d.code for d in today_lists["due_soon"]] == [today.code]
    from engine import clock
    with clock.frozen(now):
        head = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30))
        drill, n = metrics.dossier_list(session, "in_progress_overdue", date(2026, 11, 1), date(2026, 11, 30))
        no_apology, m = metrics.dossier_list(session, "overdue_without_apology", date(2026, 11, 1), date(2026, 11, 30))
    assert head["in_progress"]["overdue"] == 1 and head["overdue_without_apology"] == 1
    assert [d.code for d in drill] == [late.code] and n == 1 and m == 1
    for d, expected in ((paused, False), (late, True), (today, False)):
        assert views.is_overdue(session.get(Dossier, d.id), now) is expected
        assert views.dossier_view(session, d.code)["overdue"] is expected or d is not late


def test_working_days_in_words():
    from engine.workflow.workcal import WorkingCalendar
    from webapp import i18n
    cal = WorkingCalendar()
    # 18 calendar days, 14 working days (3–6, 9–13, 16–20 November).
    assert i18n.remaining(vn(2026, 11, 2, 17), vn(2026, 11, 20, 17), cal) == ("Quá hạn 14 ngày làm việc", "late")
    assert i18n.remaining(vn(2026, 11, 20, 17), vn(2026, 11, 2, 17), cal) == ("Còn 14 ngày làm việc", "ok")
    # Under a day: hours of office time (Tue 7:30–11:00 = 3.5 h after Mon 17:00).
    assert i18n.remaining(vn(2026, 11, 2, 17), vn(2026, 11, 3, 11), cal) == ("Quá hạn 4 giờ làm việc", "late")
    assert i18n.remaining(vn(2026, 11, 3, 17), vn(2026, 11, 3, 15), cal) == ("Còn 2 giờ làm việc", "soon")


def test_classify_is_judged_on_local_days():
    assert classify(vn(2026, 11, 5, 8), DUE) == "on_time" and classify(vn(2026, 11, 4, 23), DUE) == "early"


def test_the_slip_shows_real_hand_over_times_and_marks_a_late_request(session, office):
    """Form 06: a paper dossier received at 16:00 is handed on at once but its clock starts the next
    morning (after the 15:00 cut-off): the hand-over time is real, never after the step's finish."""
    from engine.reporting.slip import LATE_REQUEST, control_slip
    d = receive(session, office, at=vn(2026, 11, 2, 16))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=vn(2026, 11, 2, 16, 10))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id, reason="x",
                                items=ITEMS, acknowledge_late=True, now=vn(2026, 11, 9, 9))
    first, second = control_slip(session, d.id)
    assert first.handed_at == vn(2026, 11, 2, 16) and first.clock_from == vn(2026, 11, 3, 7, 30)
    assert first.handed_at <= first.finished_at == vn(2026, 11, 2, 16, 10)
    assert LATE_REQUEST in second.note and LATE_REQUEST not in first.note


def test_a_late_request_scores_nothing_on_the_contacts_index(session, office):
    """TT 01/2018 index 3: no supplement 2 points, one timely request 1, a late request 0."""
    from engine import clock
    for when, ack in ((vn(2026, 11, 3, 9), False), (vn(2026, 11, 6, 9), True)):
        d = receive(session, office, at=vn(2026, 11, 2, 9))
        dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=vn(2026, 11, 2, 10))
        dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id, reason="x",
                                    items=ITEMS, acknowledge_late=ack, now=when)
        dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Không bổ sung",
                                now=vn(2026, 11, 20, 9))
    with clock.frozen(vn(2026, 12, 1, 9)):
        m = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30))
    assert m["tt01"]["indices"]["i3"] == round((1 + 0) / 2, 2)


def test_the_transfer_cut_off_is_the_dated_law_parameter_in_force(session, office):
    """L7: a paper dossier received at or after the cut-off in force that day is handed on (its steps'
    clock starts) the next working morning; the cut-off is law data with an effective date."""
    from engine.catalog import calendar
    late_afternoon = receive(session, office, at=vn(2026, 11, 2, 15, 30))
    assert late_afternoon.handed_on_at == vn(2026, 11, 3, 7, 30)
    assert open_task(session, late_afternoon).started_at == vn(2026, 11, 3, 7, 30)
    online = receive(session, office, at=vn(2026, 11, 2, 15, 30), channel="online")
    assert online.handed_on_at == vn(2026, 11, 2, 15, 30)
    # From 9/11 a (hypothetical) rule without a cut-off: same-day hand-over; earlier days keep 15:00.
    calendar.set_law_parameter(session, "transfer_cutoff", date(2026, 11, 9), None, source="Thử nghiệm")
    calendar.invalidate_calendar()
    assert receive(session, office, at=vn(2026, 11, 9, 15, 30)).handed_on_at == vn(2026, 11, 9, 15, 30)
    assert receive(session, office, at=vn(2026, 11, 6, 15, 30)).handed_on_at == vn(2026, 11, 9, 7, 30)
