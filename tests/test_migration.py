"""Moving running dossiers to a newer version: dry run verdicts, the move, old deadlines kept."""
from datetime import date
from pathlib import Path

import pytest
from conftest import open_task, receive, result_for, vn
from sqlalchemy import select

from engine import catalog, dossiers
from engine.dossiers import audit
from engine.dossiers.migration import migrate_dossiers
from engine.errors import NotAllowed
from engine.reporting import slip as form06
from engine.store.models import AuditEvent, Dossier

ROOT = Path(__file__).resolve().parent.parent


def step(session, office, d, at, decision="approve", **extra):
    task = open_task(session, d)
    dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id,
                           data={"decision": decision, **extra}, now=at,
                           result=result_for(session, task, at) if decision == "approve" else None)


def test_dry_run_then_move_keeps_deadlines_and_the_moved_dossiers_finish_on_v2(session, office):
    fresh = receive(session, office, at=vn(2026, 10, 30, 9))          # at reception: can move
    at_appraisal = receive(session, office, at=vn(2026, 10, 30, 9, 10))
    step(session, office, at_appraisal, vn(2026, 10, 30, 9, 30))      # waiting at appraisal: can move
    past_gateway = receive(session, office, at=vn(2026, 10, 30, 9, 20))
    step(session, office, past_gateway, vn(2026, 10, 30, 9, 40))
    step(session, office, past_gateway, vn(2026, 10, 30, 10))         # went through the changed gateway
    version = v2_fixture(session, office)
    due_before = open_task(session, at_appraisal).due_at

    with pytest.raises(NotAllowed):
        migrate_dossiers(session, actor_id=office["mot_cua"], procedure_code="1.001612", to_number=version.number)
    session.rollback()
    dry = {v.code: v for v in migrate_dossiers(session, actor_id=office["admin"], procedure_code="1.001612",
                                               to_number=version.number, now=vn(2026, 11, 2, 8))}
    assert dry[fresh.code].can_move and dry[at_appraisal.code].can_move
    assert not dry[past_gateway.code].can_move and "Kết quả thẩm định?" in dry[past_gateway.code].reasons[0]
    assert not any(v.moved for v in dry.values())
    session.rollback()
    assert session.get(Dossier, fresh.id).version_id != version.id  # a dry run changes nothing

    moved = {v.code: v for v in migrate_dossiers(session, actor_id=office["admin"], procedure_code="1.001612",
                                                 to_number=version.number, dry_run=False, now=vn(2026, 11, 2, 8))}
    assert moved[fresh.code].moved and moved[at_appraisal.code].moved and not moved[past_gateway.code].moved
    session.rollback()
    session.expire_all()
    assert session.get(Dossier, at_appraisal.id).version_id == version.id
    assert session.get(Dossier, past_gateway.id).version_id != version.id
    assert open_task(session, at_appraisal).due_at == due_before  # the step keeps its deadline
    assert session.scalar(select(AuditEvent.kind).where(AuditEvent.dossier_id == at_appraisal.id,
                                                        AuditEvent.kind == "migrated")) == "migrated"
    # The moved dossier runs on v2: the renamed step shows up, and it finishes.
    step(session, office, at_appraisal, vn(2026, 11, 2, 9))
    assert open_task(session, at_appraisal).name == "Xem xét hồ sơ, trình lãnh đạo ký"
    for hour in (10, 11, 13):
        step(session, office, at_appraisal, vn(2026, 11, 2, hour))
    session.refresh(at_appraisal)
    assert at_appraisal.status == "result_ready"
    fresh_due = open_task(session, fresh).due_at
    step(session, office, fresh, vn(2026, 11, 2, 9))  # the dossier moved at reception runs all of v2 too
    assert open_task(session, fresh).name == "Thẩm định hồ sơ đăng ký" and fresh_due == vn(2026, 10, 30, 11)
    for hour in (10, 11, 13, 14):
        step(session, office, fresh, vn(2026, 11, 3, hour))
    session.refresh(fresh)
    assert fresh.status == "result_ready" and fresh.version_id == version.id
    slip = form06.control_slip(session, at_appraisal.id)
    assert [r.role for r in slip] == ["mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"]
    assert audit.verify_chain(session, at_appraisal.id) is None


def v2_fixture(session, office):
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()
    xml = (xml.replace('name="Xem xét, trình ký"', 'name="Xem xét hồ sơ, trình lãnh đạo ký"')
              .replace('value="PT6H"', 'value="PT5H"')
              .replace('decision == "refuse"', 'decision in ("refuse", "reject")'))
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.001612", bpmn=xml, notes="v2")
    catalog.publish_version(session, actor_id=None, procedure_code="1.001612", number=version.number,
                            effective_from=date(2026, 11, 1))
    return version
