"""Cases a review found beyond the deadline table (tests/test_deadlines.py): each failed on d7f5e0d.
R1 an apology cannot promise a past date; R2 a same-day procedure received after 15:00 can still be
asked for a supplement in time; R3 a migration keeps the time a dossier was received under; R4 a
withdrawal asked on the day of reception; R5 a restarted period is not covered by an earlier apology
(and may get its own); R6 past periods do not count a dossier the citizen held as overdue."""
from datetime import date
from pathlib import Path

import pytest
from conftest import open_task, pdf, receive, vn

from engine import catalog, clock, dossiers
from engine.dossiers import timers
from engine.dossiers.migration import migrate_dossiers
from engine.errors import DueDateAlreadyReset, InvalidInput
from engine.reporting import metrics
from engine.store.models import Dossier

ROOT = Path(__file__).resolve().parent.parent
ITEMS = [{"component": "GIAYDENGHI", "problem": "x"}]
SUPP = [{"code": "GIAYDENGHI", "filename": "b.pdf", "content": pdf("b")}]


def fwd(s, o, d, at):
    dossiers.complete_task(s, actor_id=o["mot_cua"], task_id=open_task(s, d).id, now=at)


def ask(s, o, d, at, ack=False):
    dossiers.request_supplement(s, actor_id=o["chuyen_vien"], task_id=open_task(s, d).id, reason="x",
                                items=ITEMS, acknowledge_late=ack, now=at)


def test_r1_apology_cannot_promise_a_date_already_past(session, office):
    d = receive(session, office, at=vn(2026, 11, 2, 9))                    # legal Thu 5/11 17:00
    fwd(session, office, d, vn(2026, 11, 2, 10))
    with pytest.raises(InvalidInput):                                       # on 20/11, promising 9/11
        dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="x",
                               new_due_at=vn(2026, 11, 9, 17), now=vn(2026, 11, 20, 9))


def test_r2_same_day_procedure_after_15h_window_open_when_it_reaches_the_specialist(session, office):
    d = receive(session, office, code="1.001193", at=vn(2026, 11, 2, 16))  # legal Tue 3/11 17:00, handed Tue 7:30
    t = open_task(session, d)
    dossiers.complete_task(session, actor_id=office[t.role], task_id=t.id, now=vn(2026, 11, 3, 8))
    t = open_task(session, d)
    dossiers.request_supplement(session, actor_id=office[t.role], task_id=t.id, reason="x",   # timely: no confirmation
                                items=[{"component": "TOKHAI", "problem": "x"}], now=vn(2026, 11, 3, 8, 30))
    session.expire_all()
    assert session.get(Dossier, d.id).clock_paused is True


def _v2_with(session, days, window):
    proc = catalog.get_procedure(session, "1.001612")
    proc.statutory_days, proc.supplement_window_days = days, window       # the law changes for new dossiers
    session.commit()
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text().replace('name="Xem xét, trình ký"', 'name="Xem xét v2"')
    v, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.001612", bpmn=xml, notes="v2")
    catalog.publish_version(session, actor_id=None, procedure_code="1.001612", number=v.number,
                            effective_from=date(2026, 11, 1))
    session.commit()
    return v


def test_r3_migration_keeps_the_rules_the_dossier_was_received_under(session, office):
    d = receive(session, office, at=vn(2026, 10, 26, 9))     # v1: 3 days, window 3 → legal & window Thu 29/10 17:00
    fwd(session, office, d, vn(2026, 10, 26, 10))
    v = _v2_with(session, days=10, window=10)
    verdict, = migrate_dossiers(session, actor_id=office["admin"], procedure_code="1.001612", to_number=v.number,
                                dry_run=False, now=vn(2026, 10, 27, 8))
    # Refused, with the reasons shown in the dry run: the dossier keeps its 3 days and its window.
    assert not verdict.moved and any("processing time differs (3 → 10" in r for r in verdict.reasons)
    # Fri 6/11: 8 working days after reception, a week past the legal date: the request must be late.
    ask(session, office, d, vn(2026, 11, 6, 9), ack=True)
    session.expire_all()
    got = session.get(Dossier, d.id)
    assert got.clock_paused is False and got.supplement_late is True


def test_r4_withdrawal_requested_on_the_day_of_reception(session, office):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="r",
                              requested_at=date(2026, 11, 2), now=vn(2026, 11, 3, 9))
    session.expire_all()
    assert session.get(Dossier, d.id).status == "withdrawn"


def test_r5_late_in_the_restarted_period_after_an_earlier_apology(session, office, factory):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    fwd(session, office, d, vn(2026, 11, 2, 10))
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="x",
                           new_due_at=vn(2026, 11, 10, 17), now=vn(2026, 11, 3, 9))
    ask(session, office, d, vn(2026, 11, 4, 9))
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=d.code, now=vn(2026, 11, 9, 10),
                                components=SUPP)                    # due_at = legal = Thu 12/11 17:00; apology date gone
    timers.run_once(factory, now=vn(2026, 11, 13, 9))
    with clock.frozen(vn(2026, 11, 13, 9)):
        m = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30))
    # Overdue on an appointment no apology covers.
    assert m["overdue_without_apology"] == 1
    # The new period may get its own apology (one per period, L12); it covers the new lateness.
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Chờ kết quả xác minh",
                           new_due_at=vn(2026, 11, 18, 17), now=vn(2026, 11, 13, 10))
    with clock.frozen(vn(2026, 11, 13, 11)):
        m = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30))
    assert m["overdue_without_apology"] == 0 and m["in_progress"]["overdue"] == 1
    session.expire_all()
    assert session.get(Dossier, d.id).due_at == vn(2026, 11, 18, 17)
    with pytest.raises(DueDateAlreadyReset):  # but only one in that period
        dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="x",
                               new_due_at=vn(2026, 11, 20, 17), now=vn(2026, 11, 16, 9))


def test_r6_past_period_not_overdue_while_paused(session, office):
    d = receive(session, office, at=vn(2026, 11, 24, 9))     # legal Fri 27/11 17:00
    fwd(session, office, d, vn(2026, 11, 24, 10))
    ask(session, office, d, vn(2026, 11, 25, 9))              # timely: paused through 30/11
    dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="không bổ sung",
                            now=vn(2026, 12, 28, 9))          # finish_result early
    with clock.frozen(vn(2026, 12, 29, 9)):
        m = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30))
    assert m["in_progress"]["overdue"] == 0                   # engine: 1 (was 0 when judged on 1/12)
