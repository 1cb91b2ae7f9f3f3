"""A dossier runs from reception to result through every role of the shipped process."""
from conftest import open_task, receive, result_for, vn

from engine import dossiers
from engine.dossiers import audit
from engine.reporting import slip as form06
from engine.store.models import PROCESSING, RECEIVED, RESULT_READY, RETURNED


def test_full_flow_to_returned(session, office):
    d = receive(session, office)
    assert d.code.startswith("H40.1-261102-")
    assert d.status == RECEIVED
    # Received Monday 2/11/2026 09:00, 3 working days: Tue, Wed, Thu → Thu 5/11 17:00.
    assert d.due_at == vn(2026, 11, 5, 17, 0)
    steps = [("mot_cua", "approve"), ("chuyen_vien", "approve"), ("lanh_dao_phong", "approve"),
             ("lanh_dao", "approve"), ("van_thu", "approve")]
    t = vn(2026, 11, 2, 10, 0)
    for role, decision in steps:
        task = open_task(session, d, role)
        result = dossiers.complete_task(session, actor_id=office[role], task_id=task.id,
                                        data={"decision": decision}, result=result_for(session, task, t), now=t)
        if role == "mot_cua":
            assert result.dossier.status == PROCESSING
        t = t.replace(hour=t.hour + 1)
    session.refresh(d)
    assert d.status == RESULT_READY
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=d.code, now=t)
    session.refresh(d)
    assert d.status == RETURNED
    slip = form06.control_slip(session, d.id)
    assert [r.role for r in slip] == [r for r, _ in steps]
    # Finished before the due time on the due day = on time; on an earlier day = early (form 06).
    assert [r.result for r in slip] == ["on_time", "early", "on_time", "early", "on_time"]
    # Kỳ duyệt starts at 12:00 (lunch): 13:00-17:00 is 4h, the remaining 2h end Tue 09:30.
    assert slip[3].due_at == vn(2026, 11, 3, 9, 30)
    assert audit.verify_chain(session, d.id) is None
