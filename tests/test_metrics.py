"""QĐ 766 and TT 01/2018 figures on a known set of dossiers, asserted exactly, on both databases."""
from datetime import date

import pytest
from conftest import APPLICANT, as_orm, components_for, figures_of, item, open_task, pdf, receive, result_for, vn
from sqlalchemy import select

from engine import clock, dossiers
from engine.reporting import counters as report_counters
from engine.reporting import metrics
from engine.store.models import Dossier, HumanTask

ROLES = ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu")


def advance(session, office, d, times, decisions=None):
    """Complete the dossier's open steps at the given times (one step each)."""
    decisions = decisions or {}
    for i, at in enumerate(times):
        task = open_task(session, d)
        decision = decisions.get(i, "approve")
        note = "Lý do" if decision in ("refuse", "return") else ""
        data = {"decision": decision}
        if decision == "request_supplement":
            data["items"] = [item("Giấy tờ bổ sung")]
            note = "Thiếu giấy tờ"
        dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id, data=data, note=note, now=at,
                               result=result_for(session, task, at) if decision == "approve" else None)


@pytest.fixture
def known(session, office):
    """Seven dossiers in November 2026, each an edge case (see the module docstring of engine.metrics)."""
    mon = lambda h, m=0: vn(2026, 11, 2, h, m)  # noqa: E731
    d1 = receive(session, office, at=mon(9))  # finished early (Tue), returned and rated
    advance(session, office, d1, [mon(9, 30), mon(10), mon(10, 30), mon(11), vn(2026, 11, 3, 9)])
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=d1.code, now=vn(2026, 11, 3, 10))
    dossiers.rate_service(session, dossier_code=d1.code, id_number=APPLICANT["id_number"], rating="satisfied")

    d2 = receive(session, office, at=mon(9, 5))  # finished exactly at its deadline, Thu 5/11 17:00
    advance(session, office, d2, [mon(9, 30), mon(10), mon(10, 30), mon(11), vn(2026, 11, 5, 17, 0)])

    d3 = as_orm(session, dossiers.receive_dossier(
        session, actor_id=office["mot_cua"], procedure_code="1.001612", channel="online",
                                  applicant=APPLICANT, components=components_for("1.001612"), now=mon(9, 10)))
    advance(session, office, d3, [mon(9, 30), vn(2026, 11, 3, 9)], {1: "request_supplement"})
    # Supplement on Friday afternoon: the clock restarts, over the weekend, to Wed 11/11 17:00.
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=d3.code, now=vn(2026, 11, 6, 16),
                                components=[{"code": "GIAYDENGHI", "filename": "bs.pdf", "content": pdf("bs")}])
    advance(session, office, d3, [vn(2026, 11, 9, 9), vn(2026, 11, 9, 10), vn(2026, 11, 9, 11), vn(2026, 11, 10, 9)])

    d4 = receive(session, office, at=mon(9, 15))  # apology in time, finished after the original date: late
    advance(session, office, d4, [mon(9, 30)])
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d4.code, reason="Xác minh",
                           new_due_at=vn(2026, 11, 9, 17), now=vn(2026, 11, 4, 9))
    advance(session, office, d4, [vn(2026, 11, 6, 9), vn(2026, 11, 6, 10), vn(2026, 11, 6, 11), vn(2026, 11, 6, 14)])

    d5 = receive(session, office, at=mon(9, 20))  # withdrawn
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d5.code, now=vn(2026, 11, 4, 9))

    d6 = receive(session, office, at=mon(9, 25))  # never touched: overdue at the end of the month, no apology

    d7 = as_orm(session, dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code="1.001612", channel="post",
                                  applicant=APPLICANT, components=components_for("1.001612"), now=mon(9, 30)))
    # refused after appraisal, the refusal signed by the leader
    advance(session, office, d7, [mon(10), vn(2026, 11, 3, 9), vn(2026, 11, 3, 10)], {1: "refuse"})
    return {"d1": d1, "d2": d2, "d3": d3, "d4": d4, "d5": d5, "d6": d6, "d7": d7}


def test_every_figure_of_the_month(session, known):
    with clock.frozen(vn(2026, 12, 1, 9)):
        m = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30), unit_code="H40.1")
    assert m["received"] == {"total": 7, "online": 1, "counter": 5, "post": 1}
    assert m["finished"] == {"total": 5, "early": 3, "on_time": 1, "late": 1, "late_with_apology": 1}
    assert m["in_progress"] == {"total": 1, "in_time": 0, "overdue": 1}
    assert m["withdrawn"] == 1 and m["overdue_without_apology"] == 1 and m["supplement_requests"] == 1
    assert m["apologies"] == {"total": 1, "late": 0}
    assert m["on_time_rate"] == 0.8
    tt = m["tt01"]["indices"]
    assert tt["i1"] == round((2 + 1 + 2 + 0 + 2) / 5, 2)
    assert tt["i3"] == round((2 + 2 + 1 + 2 + 2) / 5, 2)
    assert tt["i4"] == round((1 + 1 + 2 + 1 + 1) / 5, 2)
    assert tt["i7"] == tt["i1"]  # no complaint among the ratings
    assert tt["i9"] == 0  # 1 of 7 dossiers online: under 15 %
    assert tt["i2"] == expected_i2(session, known)
    assert m["tt01"]["max_available"] == 12
    q = m["qd766"]["groups"]
    assert q["tien_do"] == 16.0 and q["so_hoa"] == 22.0 and q["hai_long"] == 18.0 and q["cong_khai"] is None
    assert q["truc_tuyen"] == round(22 * (1 / 7) / 0.5, 2)


def expected_i2(session, known) -> float:
    """Worst step per finished dossier, recomputed in Python from the inbox rows, independently of SQL."""
    rank = {"early": 2, "on_time": 1, "late": 0}
    total = 0
    finished = [known[k] for k in ("d1", "d2", "d3", "d4", "d7")]
    for d in finished:
        rows = session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id, HumanTask.cancelled.is_(False),
                                                       HumanTask.completed_at.is_not(None))).all()
        total += min(rank[report_counters.classify(r.completed_at, r.due_at)] for r in rows)
    return round(total / len(finished), 2)


def test_edge_cases_are_judged_as_the_law_says(session, known):
    def row(name):
        session.expire_all()
        return session.get(Dossier, known[name].id)
    assert row("d2").finish_result == "on_time"  # exactly at 17:00 on the due day
    assert row("d3").finish_result == "early" and row("d3").due_at == vn(2026, 11, 11, 17)  # clock restarted
    assert row("d4").finish_result == "late" and row("d4").apologized  # apology does not make it on time
    assert row("d5").finish_result is None and row("d7").status == "refused"


def test_breakdowns_trend_and_drill_down_match_the_totals(session, known):
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    units = metrics.by_unit(session, start, end)
    assert [u["key"] for u in units] == ["H40.1"] and units[0]["finished"]["total"] == 5
    procs = metrics.by_procedure(session, start, end)
    assert {p["key"]: p["received"]["total"] for p in procs} == {"1.001612": 7}
    trend = metrics.monthly(session, date(2026, 10, 1), end)
    assert trend == [{"month": "10/2026", "received": 0, "finished": 0, "on_time": 0, "late": 0},
                     {"month": "11/2026", "received": 7, "finished": 5, "on_time": 4, "late": 1}]
    late, n = metrics.dossier_list(session, "finished_late", start, end)
    assert n == 1 and late[0].code == known["d4"].code
    overdue, n = metrics.dossier_list(session, "in_progress_overdue", start, end, unit_code="H40.1")
    assert n == 1 and overdue[0].code == known["d6"].code
    assert metrics.summary(session, date(2026, 12, 1), date(2026, 12, 31))["received"]["total"] == 0


def test_weights_are_configuration(session, known):
    from engine.store.models import Setting
    session.add(Setting(key="metrics_config", value={"qd766": {"tien_do": {"weight": 10, "label": "Tiến độ"}}}))
    session.commit()
    m = metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30))
    assert m["qd766"]["groups"]["tien_do"] == 8.0


def test_every_drill_down_list_has_exactly_the_dossiers_its_figure_counts(session, known):
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    with clock.frozen(vn(2026, 12, 1, 9)):
        m = metrics.summary(session, start, end)
    figure = figures_of(m)
    assert set(figure) == set(metrics.KINDS)
    for kind, count in figure.items():
        assert metrics.dossier_list(session, kind, start, end)[1] == count, kind


def test_counters_kept_with_each_change_equal_a_full_rebuild(session, known):
    from engine.reporting import counters as report_counters
    from engine.store.models import DailyCount

    def counters():
        session.rollback()
        return sorted(session.execute(select(DailyCount.unit_id, DailyCount.procedure_id, DailyCount.day,
                                             DailyCount.name, DailyCount.n).where(DailyCount.n != 0)).all())
    incremental = counters()
    assert len(incremental) > 20
    report_counters.rebuild(session)
    session.commit()
    assert counters() == incremental


def test_figures_by_field_roll_up_its_procedures(session, known):
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    assert metrics.summary(session, start, end, field="Thành lập và hoạt động của hộ kinh doanh")["received"]["total"] == 7
    assert metrics.summary(session, start, end, field="Hộ tịch")["received"]["total"] == 0
    assert metrics.summary(session, start, end, unit_code="H40.2")["received"]["total"] == 0
