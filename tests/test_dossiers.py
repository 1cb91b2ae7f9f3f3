"""Dossier use cases: every rule, and 'nothing changed' after each refusal."""
from datetime import date

import pytest
from conftest import APPLICANT, components_for, item, open_task, pdf, receive, result_for, vn
from sqlalchemy import func, select

from engine import catalog, dossiers
from engine.access.actors import load_actor
from engine.catalog import calendar
from engine.dossiers import audit
from engine.errors import (
    DossierClosed,
    DueDateAlreadyReset,
    InvalidInput,
    MissingComponents,
    NotAllowed,
    ProcedureNotAccepting,
    SupplementAlreadyRequested,
    SupplementNotRequested,
    TaskNotReady,
)
from engine.reporting import slip as form06
from engine.reporting import views
from engine.store.models import (
    AWAITING_SUPPLEMENT,
    PROCESSING,
    REFUSED,
    RESULT_READY,
    WITHDRAWN,
    Apology,
    AuditEvent,
    Dossier,
    DossierFile,
    HumanTask,
    SupplementRequest,
)


def inbox(session, user_id):
    return views.inbox(session, load_actor(session, user_id))


def snapshot(session, dossier_id):
    """Everything a refused action must leave untouched."""
    session.expire_all()
    d = session.get(Dossier, dossier_id)
    return (
        d.status, d.due_at, d.lock_version, d.audit_seq, d.workflow_state,
        session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.dossier_id == dossier_id)),
        session.scalar(select(func.count()).select_from(HumanTask).where(HumanTask.dossier_id == dossier_id,
                                                                         HumanTask.completed_at.is_(None))),
        session.scalar(select(func.count()).select_from(SupplementRequest)),
        session.scalar(select(func.count()).select_from(DossierFile)),
    )


def complete(session, office, d, role, decision="approve", when=None, **data):
    task = open_task(session, d, role)
    note = data.pop("note", "")
    when = when or vn(2026, 11, 2, 10, 0)
    return dossiers.complete_task(session, actor_id=office[role], task_id=task.id,
                                  data={"decision": decision, **data}, note=note, now=when,
                                  result=result_for(session, task, when) if decision == "approve" else None)


def to_appraisal(session, office, at=None):
    d = receive(session, office, at=at)
    complete(session, office, d, "mot_cua", when=vn(2026, 11, 2, 9, 30))
    return d


# --- reception ------------------------------------------------------------------------------------
def test_receipt_codes_follow_the_daily_sequence_per_agency(session, office):
    a = receive(session, office)
    b = receive(session, office)
    c = receive(session, office, at=vn(2026, 11, 3, 8, 0))
    assert (a.code, b.code, c.code) == ("H40.1-261102-0001", "H40.1-261102-0002", "H40.1-261103-0001")
    files = session.scalars(select(DossierFile).where(DossierFile.dossier_id == a.id)).all()
    assert [f.component_code for f in files] == ["GIAYDENGHI"]
    assert files[0].sha256 == __import__("hashlib").sha256(pdf("GIAYDENGHI")).hexdigest()


def test_missing_required_component_is_named_and_nothing_is_written(session, office, upload_dir):
    with pytest.raises(MissingComponents) as err:
        dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code="1.009994", channel="counter",
                                 applicant=APPLICANT, components=components_for("1.009994")[:1],
                                 now=vn(2026, 11, 2, 9, 0))
    session.rollback()
    assert "QUYENSDD" in err.value.message and "BANVE" in err.value.message
    assert set(err.value.errors) == {"components.QUYENSDD", "components.BANVE"}
    assert session.scalar(select(func.count()).select_from(Dossier)) == 0
    assert not upload_dir.exists() or not any(upload_dir.rglob("*"))


def test_a_component_the_procedure_does_not_list_is_refused(session, office):
    comps = components_for("1.001612") + [{"code": "SOHOKHAU", "filename": "shk.pdf", "content": pdf()}]
    with pytest.raises(InvalidInput) as err:
        dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code="1.001612", channel="counter",
                                 applicant=APPLICANT, components=comps, now=vn(2026, 11, 2, 9, 0))
    assert "SOHOKHAU" in str(err.value.errors)


def test_only_a_one_stop_officer_receives(session, office):
    with pytest.raises(NotAllowed):
        dossiers.receive_dossier(session, actor_id=office["chuyen_vien"], procedure_code="1.001612",
                                 channel="counter", applicant=APPLICANT, components=components_for("1.001612"))


def test_expired_legal_basis_stops_new_dossiers(session, office):
    proc = catalog.get_procedure(session, "1.001612")
    proc.legal_bases[1].expires_on = date(2026, 11, 1)
    session.commit()
    with pytest.raises(ProcedureNotAccepting):
        receive(session, office)


# --- step order, roles, units -------------------------------------------------------------------
def test_out_of_order_twice_wrong_role_wrong_unit_are_refused(session, office):
    d = receive(session, office)
    first = open_task(session, d, "mot_cua")
    before = snapshot(session, d.id)
    with pytest.raises(NotAllowed):  # the specialist cannot do the desk's step (out of order)
        dossiers.complete_task(session, actor_id=office["chuyen_vien"], task_id=first.id, data={})
    session.rollback()
    with pytest.raises(NotAllowed):  # one-stop officer of another commune
        dossiers.complete_task(session, actor_id=office["other_mot_cua"], task_id=first.id, data={})
    session.rollback()
    assert snapshot(session, d.id) == before
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=first.id, data={}, now=vn(2026, 11, 2, 9, 5))
    after_first = snapshot(session, d.id)
    with pytest.raises(TaskNotReady):  # twice
        dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=first.id, data={})
    session.rollback()
    appraisal = open_task(session, d, "chuyen_vien")
    with pytest.raises(NotAllowed):
        dossiers.complete_task(session, actor_id=office["other_chuyen_vien"], task_id=appraisal.id,
                               data={"decision": "approve"})
    session.rollback()
    assert snapshot(session, d.id) == after_first


def test_decision_and_form_fields_are_whitelisted(session, office):
    d = to_appraisal(session, office)
    task = open_task(session, d, "chuyen_vien")
    assert sorted(task.decisions) == ["approve", "refuse", "request_supplement"]
    before = snapshot(session, d.id)
    with pytest.raises(InvalidInput):
        dossiers.complete_task(session, actor_id=office["chuyen_vien"], task_id=task.id, data={"decision": "publish"})
    session.rollback()
    with pytest.raises(InvalidInput):
        dossiers.complete_task(session, actor_id=office["chuyen_vien"], task_id=task.id,
                               data={"decision": "approve", "typename": "x"})
    session.rollback()
    assert snapshot(session, d.id) == before


def test_inbox_lists_only_the_users_roles_and_units(session, office):
    d = to_appraisal(session, office)
    mine = inbox(session, office["chuyen_vien"])
    assert [t["dossier_code"] for t in mine] == [d.code]
    assert inbox(session, office["other_chuyen_vien"]) == []
    assert inbox(session, office["lanh_dao"]) == []


# --- supplementation ----------------------------------------------------------------------------
def test_supplement_once_restarts_the_clock_and_a_second_request_changes_nothing(session, office):
    d = to_appraisal(session, office)
    complete(session, office, d, "chuyen_vien", "request_supplement", when=vn(2026, 11, 3, 10, 0),
             note="Giấy đề nghị thiếu chữ ký", items=[item("Giấy đề nghị có chữ ký chủ hộ")])
    session.refresh(d)
    assert d.status == AWAITING_SUPPLEMENT
    assert inbox(session, office["chuyen_vien"]) == []
    req = session.scalar(select(SupplementRequest))
    assert req.within_window and req.items == [
        {"component": "GIAYDENGHI", "name": "Giấy đề nghị đăng ký hộ kinh doanh", "problem": "Giấy đề nghị có chữ ký chủ hộ"}]

    # Citizen returns on Friday 6/11 at 10:00: 3 working days restart → Wed 11/11 17:00.
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=d.code,
                                components=[{"code": "GIAYDENGHI", "filename": "gdn-2.pdf", "content": pdf("2")}],
                                now=vn(2026, 11, 6, 10, 0))
    session.refresh(d)
    assert d.status == PROCESSING and d.due_at == vn(2026, 11, 11, 17, 0)

    before = snapshot(session, d.id)
    with pytest.raises(SupplementAlreadyRequested):
        complete(session, office, d, "chuyen_vien", "request_supplement", when=vn(2026, 11, 6, 11, 0),
                 note="Thiếu thêm", items=[item("Giấy khác")])
    session.rollback()
    assert snapshot(session, d.id) == before
    # The step is still open and can go on normally.
    complete(session, office, d, "chuyen_vien", "approve", when=vn(2026, 11, 6, 11, 0))


def test_supplement_rule_counts_history_not_the_database_row_alone(session, office):
    d = to_appraisal(session, office)
    complete(session, office, d, "chuyen_vien", "request_supplement", note="x", items=[item("y")])
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=d.code,
                                components=[{"code": "GIAYDENGHI", "filename": "a.pdf", "content": pdf()}],
                                now=vn(2026, 11, 3, 9, 0))
    session.execute(SupplementRequest.__table__.delete())  # even if the row were lost…
    session.commit()
    with pytest.raises(SupplementAlreadyRequested):  # …the process history still says it happened
        complete(session, office, d, "chuyen_vien", "request_supplement", note="x", items=[item("y")])


def test_supplement_needs_items_and_a_reason(session, office):
    d = to_appraisal(session, office)
    before = snapshot(session, d.id)
    with pytest.raises(InvalidInput):
        complete(session, office, d, "chuyen_vien", "request_supplement", note="thiếu", items=[])
    session.rollback()
    assert snapshot(session, d.id) == before


def test_delivering_a_supplement_nobody_asked_for_is_refused(session, office, upload_dir):
    d = to_appraisal(session, office)
    before = snapshot(session, d.id)
    with pytest.raises(SupplementNotRequested):
        dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=d.code,
                                    components=[{"code": "GIAYDENGHI", "filename": "a.pdf", "content": pdf("new")}])
    session.rollback()
    assert snapshot(session, d.id) == before


# --- apology ------------------------------------------------------------------------------------
def test_apology_resets_the_due_date_once(session, office):
    d = to_appraisal(session, office)  # due Thu 5/11 17:00
    ap = dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Chờ xác minh",
                                new_due_at=vn(2026, 11, 10, 17, 0), now=vn(2026, 11, 3, 16, 0))
    assert not ap.late
    session.refresh(d)
    assert d.due_at == vn(2026, 11, 10, 17, 0) and d.apologized and d.original_due_at == vn(2026, 11, 5, 17, 0)
    before = snapshot(session, d.id)
    with pytest.raises(DueDateAlreadyReset):
        dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="lần hai",
                               new_due_at=vn(2026, 11, 12, 17, 0), now=vn(2026, 11, 4, 9, 0))
    session.rollback()
    assert snapshot(session, d.id) == before


def test_apology_later_than_one_day_before_due_is_recorded_as_late(session, office):
    d = to_appraisal(session, office)  # due Thu 5/11 17:00; deadline for the apology: Wed 4/11 17:00
    ap = dossiers.issue_apology(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="Quá tải",
                                new_due_at=vn(2026, 11, 9, 17, 0), signed_by_id=office["lanh_dao"],
                                now=vn(2026, 11, 5, 8, 0))
    assert ap.late
    assert session.scalar(select(func.count()).select_from(Apology)) == 1


def test_apology_must_move_the_date_later_to_a_working_day(session, office):
    d = to_appraisal(session, office)
    for bad in (vn(2026, 11, 4, 17, 0), vn(2026, 11, 7, 17, 0)):  # earlier; a Saturday
        with pytest.raises(InvalidInput):
            dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="x",
                                   new_due_at=bad, now=vn(2026, 11, 3, 9, 0))
        session.rollback()
    with pytest.raises(NotAllowed):
        dossiers.issue_apology(session, actor_id=office["chuyen_vien"], dossier_code=d.code, reason="x",
                               new_due_at=vn(2026, 11, 9, 17, 0), now=vn(2026, 11, 3, 9, 0))


# --- refusal, withdrawal, result ----------------------------------------------------------------
def test_refuse_decision_ends_the_dossier_refused(session, office):
    d = to_appraisal(session, office)
    with pytest.raises(InvalidInput):
        complete(session, office, d, "chuyen_vien", "refuse")  # a reason is required
    session.rollback()
    complete(session, office, d, "chuyen_vien", "refuse", note="Ngành nghề cấm kinh doanh")
    session.refresh(d)
    # The specialist proposes; form 03 is the leader's to sign (L11): still open, at the leader.
    assert d.status == PROCESSING and [t["name"] for t in inbox(session, office["lanh_dao"])] == [
        "Ký văn bản từ chối giải quyết (mẫu 03)"]
    # Sent back: the proposal is withdrawn and appraisal starts again.
    complete(session, office, d, "lanh_dao", "return", note="Xem lại ngành nghề")
    session.refresh(d)
    assert d.refusal_reason is None and len(inbox(session, office["chuyen_vien"])) == 1
    complete(session, office, d, "chuyen_vien", "refuse", note="Ngành nghề cấm kinh doanh")
    complete(session, office, d, "lanh_dao", "approve")
    session.refresh(d)
    assert d.status == REFUSED and d.refusal_reason == "Ngành nghề cấm kinh doanh"
    assert inbox(session, office["lanh_dao_phong"]) == [] and inbox(session, office["lanh_dao"]) == []


def test_leader_refusal_and_withdrawal_end_the_process(session, office):
    d1 = to_appraisal(session, office)
    with pytest.raises(NotAllowed):
        dossiers.refuse_dossier(session, actor_id=office["chuyen_vien"], dossier_code=d1.code, reason="x")
    session.rollback()
    dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=d1.code, reason="Không đủ điều kiện",
                            now=vn(2026, 11, 3, 9, 0))
    d2 = to_appraisal(session, office)
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d2.code, reason="Công dân rút",
                              now=vn(2026, 11, 3, 9, 0))
    session.refresh(d1)
    session.refresh(d2)
    assert (d1.status, d2.status) == (REFUSED, WITHDRAWN)
    assert inbox(session, office["chuyen_vien"]) == []
    with pytest.raises(DossierClosed):
        dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d1.code)


def test_result_is_returned_only_when_ready(session, office):
    d = to_appraisal(session, office)
    with pytest.raises(DossierClosed):
        dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=d.code)
    session.rollback()
    for role in ("chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"):
        complete(session, office, d, role)
    session.refresh(d)
    assert d.status == RESULT_READY


def test_send_back_loops_to_appraisal_and_the_slip_records_both_rounds(session, office):
    d = to_appraisal(session, office)
    complete(session, office, d, "chuyen_vien")
    complete(session, office, d, "lanh_dao_phong", "return", note="Kiểm tra lại địa chỉ kinh doanh")
    assert open_task(session, d).role == "chuyen_vien"
    complete(session, office, d, "chuyen_vien")
    slip = form06.control_slip(session, d.id)
    assert [r.role for r in slip] == ["mot_cua", "chuyen_vien", "lanh_dao_phong", "chuyen_vien", "lanh_dao_phong"]
    assert slip[2].decision == "return" and slip[2].note == "Kiểm tra lại địa chỉ kinh doanh"


def test_audit_chain_detects_tampering(session, office):
    d = to_appraisal(session, office)
    assert audit.verify_chain(session, d.id) is None
    event = session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == d.id, AuditEvent.seq == 2)).one()
    event.data = {**event.data, "note": "sửa lén"}
    session.commit()
    assert audit.verify_chain(session, d.id) == 2


# --- versions -----------------------------------------------------------------------------------
def test_dossier_on_v1_keeps_running_on_v1_after_v2_is_published(session, office):
    from pathlib import Path
    d = to_appraisal(session, office)
    v1_id = d.version_id
    xml = (Path(__file__).resolve().parent.parent / "processes/1.001612/v1.bpmn").read_text()
    xml_v2 = xml.replace('value="P1D"', 'value="PT6H"').replace("Thẩm định hồ sơ đăng ký", "Thẩm định (v2)")
    v2, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.001612", bpmn=xml_v2, notes="v2: rút ngắn thẩm định")
    catalog.publish_version(session, actor_id=None, procedure_code="1.001612", number=v2.number, effective_from=date(2026, 11, 3))
    session.commit()
    complete(session, office, d, "chuyen_vien", when=vn(2026, 11, 3, 9, 0))
    session.refresh(d)
    assert d.version_id == v1_id
    new = receive(session, office, at=vn(2026, 11, 3, 9, 0))
    assert new.version_id == v2.id
    complete(session, office, new, "mot_cua", when=vn(2026, 11, 3, 9, 30))
    assert open_task(session, new, "chuyen_vien").name == "Thẩm định (v2)"
    # Reception on the day before v2 takes effect still uses v1.
    old_day = receive(session, office, at=vn(2026, 11, 2, 16, 0))
    assert old_day.version_id == v1_id


def test_an_admin_calendar_override_moves_appointments_at_once(session, office):
    assert receive(session, office, at=vn(2026, 11, 2, 9)).due_at == vn(2026, 11, 5, 17)
    calendar.set_calendar_day(session, date(2026, 11, 4), "holiday", "Nghỉ bù theo quyết định của tỉnh")
    assert receive(session, office, at=vn(2026, 11, 2, 9, 5)).due_at == vn(2026, 11, 6, 17)
    calendar.set_calendar_day(session, date(2026, 11, 4), "clear")
    assert receive(session, office, at=vn(2026, 11, 2, 9, 10)).due_at == vn(2026, 11, 5, 17)
    with pytest.raises(InvalidInput):
        calendar.set_calendar_day(session, date(2026, 11, 4), "nghi")
