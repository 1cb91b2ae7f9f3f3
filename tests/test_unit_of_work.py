"""What the unit of work guarantees for every use case: counters equal to a full rebuild after each
change, the outbox event of each change, authorization on entry, nothing written on refusal."""
from __future__ import annotations

import pytest
from conftest import APPLICANT, item, open_task, pdf, receive, result_for, vn
from sqlalchemy import func, select

from engine import dossiers
from engine.dossiers import timers
from engine.errors import LateSupplementRequest, NotAllowed, NotFound
from engine.reporting import counters
from engine.store.db import PendingChanges
from engine.store.models import AuditEvent, DailyCount, Dossier, OutboxEvent, SupplementRequest

STEPS = ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu")


def kept_counters(session):
    session.rollback()
    return sorted(session.execute(select(DailyCount.unit_id, DailyCount.procedure_id, DailyCount.day, DailyCount.name,
                                         DailyCount.n).where(DailyCount.n != 0)).all())


def assert_counters_match_a_rebuild(session):
    kept = kept_counters(session)
    counters.rebuild(session)
    session.flush()
    rebuilt = sorted(session.execute(select(DailyCount.unit_id, DailyCount.procedure_id, DailyCount.day,
                                            DailyCount.name, DailyCount.n).where(DailyCount.n != 0)).all())
    session.rollback()
    assert kept == rebuilt


def complete(session, office, d, role, decision="approve", at=None, **data):
    note = data.pop("note", "")
    task, at = open_task(session, d, role), at or vn(2026, 11, 3, 9)
    return dossiers.complete_task(session, actor_id=office[role], task_id=task.id,
                                  data={"decision": decision, **data}, note=note, now=at,
                                  result=result_for(session, task, at) if decision == "approve" else None)


def outbox_kinds(session, d):
    session.rollback()
    return [k for (k,) in session.execute(select(OutboxEvent.kind).where(OutboxEvent.dossier_id == d.id)
                                          .order_by(OutboxEvent.id))]


def test_every_use_case_keeps_the_report_counters_equal_to_a_rebuild(session, office, factory):
    refused = receive(session, office)
    complete(session, office, refused, "mot_cua")
    assert_counters_match_a_rebuild(session)
    dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=refused.code, reason="Không đủ điều kiện",
                            now=vn(2026, 11, 3, 10))
    assert_counters_match_a_rebuild(session)
    # A refusal is a finished dossier in the reports (QĐ 766 counts it as handled), on the day it happened.
    assert [(r.day.isoformat(), r.n) for r in kept_counters(session) if r.name == "finished"] == [("2026-11-03", 1)]
    assert outbox_kinds(session, refused) == ["received", "status_changed", "status_changed"]

    withdrawn = receive(session, office)
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=withdrawn.code, now=vn(2026, 11, 3, 10))
    assert_counters_match_a_rebuild(session)

    supplemented = receive(session, office)
    complete(session, office, supplemented, "mot_cua")
    complete(session, office, supplemented, "chuyen_vien", "request_supplement", note="Thiếu chữ ký", items=[item("Đơn")])
    assert_counters_match_a_rebuild(session)
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=supplemented.code,
                                components=[{"code": "GIAYDENGHI", "filename": "b.pdf", "content": pdf("b")}],
                                now=vn(2026, 11, 4, 9))
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=supplemented.code, reason="Xác minh",
                           new_due_at=vn(2026, 11, 16, 17), now=vn(2026, 11, 5, 9))
    assert_counters_match_a_rebuild(session)
    timers.run_once(factory, vn(2026, 11, 20, 9))
    assert_counters_match_a_rebuild(session)
    for role in STEPS[1:]:
        complete(session, office, supplemented, role, at=vn(2026, 11, 20, 10))
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=supplemented.code, now=vn(2026, 11, 20, 11))
    dossiers.rate_service(session, dossier_code=supplemented.code, id_number=APPLICANT["id_number"], rating="satisfied")
    assert_counters_match_a_rebuild(session)
    assert outbox_kinds(session, supplemented) == [
        "received", "status_changed", "status_changed", "supplement_received", "appointment_changed", "overdue",
        "status_changed", "status_changed"]


def test_a_supplement_asked_after_the_window_is_recorded_as_late(session, office):
    d = receive(session, office)  # Mon 2/11 09:00; the window is 3 working days: until Thu 5/11 17:00
    complete(session, office, d, "mot_cua", at=vn(2026, 11, 2, 10))
    late = {"note": "x", "items": [item("y")]}
    with pytest.raises(LateSupplementRequest):  # the specialist is told before confirming
        complete(session, office, d, "chuyen_vien", "request_supplement", at=vn(2026, 11, 6, 9), **late)
    session.rollback()
    complete(session, office, d, "chuyen_vien", "request_supplement", at=vn(2026, 11, 6, 9), acknowledge_late=True, **late)
    session.rollback()
    assert session.scalar(select(SupplementRequest.within_window)) is False


# a designer may not even see a dossier (no personal data): its code answers like a missing one
REFUSED = {False: NotAllowed, True: NotFound}


@pytest.mark.parametrize("who", ["chuyen_vien", "lanh_dao_phong", "van_thu", "manager", "designer"])
def test_only_the_desk_returns_a_result_or_records_a_withdrawal(session, office, who):
    d = receive(session, office)
    for role in STEPS:
        complete(session, office, d, role)
    session.rollback()
    before = session.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(REFUSED[who == "designer"]):
        dossiers.return_result(session, actor_id=office[who], dossier_code=d.code)
    other = receive(session, office)
    with pytest.raises(REFUSED[who == "designer"]):
        dossiers.withdraw_dossier(session, actor_id=office[who], dossier_code=other.code)
    with pytest.raises(REFUSED[who == "designer"]):
        dossiers.refuse_dossier(session, actor_id=office[who], dossier_code=other.code, reason="x")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == before + 2  # received, task_started
    assert session.get(Dossier, d.id).status == "result_ready"


def test_another_units_dossier_answers_like_a_missing_one(session, office):
    d = receive(session, office)
    for use_case, kwargs in ((dossiers.withdraw_dossier, {}), (dossiers.return_result, {}),
                             (dossiers.refuse_dossier, {"reason": "x"}),
                             (dossiers.issue_apology, {"reason": "x", "new_due_at": vn(2026, 11, 20, 17)})):
        with pytest.raises(NotFound):
            use_case(session, actor_id=office["other_mot_cua"], dossier_code=d.code, **kwargs)


def test_a_use_case_refuses_to_commit_the_callers_pending_changes(session, office):
    d = receive(session, office)
    d.applicant = {**d.applicant, "name": "Sửa tay"}
    with pytest.raises(PendingChanges):
        dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code)
    session.rollback()
    assert session.get(Dossier, d.id).applicant["name"] == APPLICANT["name"]


def test_the_actor_a_request_just_read_is_taken_once_and_only_for_that_user(session, office):
    """The API's token look-up hands its actor to the use case that follows (one read fewer), but only
    for the same user and only once: a second use case in the request reads the user afresh."""
    from dataclasses import replace

    from engine.access.actors import load_actor, remember_actor

    mot_cua = load_actor(session, office["mot_cua"])
    stale = replace(mot_cua, grants=mot_cua.grants | {(999, "lanh_dao")})  # as the request read it
    remember_actor(session, stale)
    assert load_actor(session, office["chuyen_vien"]).id == office["chuyen_vien"]  # another user: read, not taken
    remember_actor(session, stale)
    assert load_actor(session, office["mot_cua"]) is stale
    assert load_actor(session, office["mot_cua"]) == mot_cua  # once: then read again
    session.rollback()


def test_an_api_request_reads_its_actor_once(session, office):
    """A completion through the API: the token's read gives the actor, the use case does not read it again."""
    from sqlalchemy import event

    from webapp import create_app

    d = receive(session, office)
    task = open_task(session, d)
    session.rollback()
    app = create_app({"DATABASE_URL": session.get_bind().url.render_as_string(hide_password=False),
                      "SECRET_KEY": "test-secret-key-0123456789abcdef", "TESTING": True})
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "mot_cua1", "password": "matkhau-123"}).get_json()["token"]
    engine = app.extensions["motcua.sessionmaker"].kw["bind"]
    seen = []
    listener = lambda conn, cursor, statement, *args: seen.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        answer = client.post(f"/api/v1/tasks/{task.id}/complete", json={"data": {"decision": "approve"}},
                             headers={"Authorization": f"Bearer {token}"})
    finally:
        event.remove(engine, "before_cursor_execute", listener)
        engine.dispose()
    assert answer.status_code == 200, answer.get_data(as_text=True)
    user_reads = [s for s in seen if "FROM users" in s or "FROM api_tokens" in s]
    assert len(user_reads) == 1, user_reads
