"""Liên thông (two-tier government since 1/7/2025): a dossier received at commune X is decided by the
provincial department S and comes back to X's desk, which hands the result back. Lanes name where
their role is held (`unit` = @receiving, @parent or a unit code); each change of unit is a hand-over
on the control slip; who sees the dossier follows the steps."""
from __future__ import annotations

import re
from datetime import date

import pytest
from bpmn_fixtures import Flow, Node, Process, render
from conftest import APPLICANT, pdf, vn
from sqlalchemy import select

from engine import catalog, dossiers
from engine.access import directory, policy
from engine.access.actors import load_actor
from engine.errors import BpmnInvalid, NotAllowed, NotFound
from engine.reporting import views
from engine.reporting.slip import control_slip
from engine.store.models import AuditEvent, Dossier, HumanTask, Unit

CODE = "1.999101"
PASSWORD = "matkhau-123"


def lien_thong_bpmn(where: str = "SXD", pid: str = "Process_lien_thong") -> str:
    lanes = [("Lane_mc", "Một cửa xã", "mot_cua", "@receiving"), ("Lane_cv", "Chuyên viên Sở", "chuyen_vien", where),
             ("Lane_ld", "Lãnh đạo Sở", "lanh_dao", where)]
    nodes = [Node("S", "startEvent", "Tiếp nhận", "Lane_mc", 0),
             Node("Task_TiepNhan", "userTask", "Tiếp nhận, chuyển Sở", "Lane_mc", 1, {"duration": "PT2H"}),
             Node("Task_ThamDinh", "userTask", "Thẩm định", "Lane_cv", 2, {"duration": "P2D"}),
             Node("Task_Ky", "userTask", "Ký kết quả", "Lane_ld", 3, {"duration": "P1D"}),
             Node("Task_NhanKetQua", "userTask", "Nhận kết quả từ Sở", "Lane_mc", 4, {"duration": "PT2H"}),
             Node("E", "endEvent", "Có kết quả", "Lane_mc", 5)]
    chain = ["S", "Task_TiepNhan", "Task_ThamDinh", "Task_Ky", "Task_NhanKetQua", "E"]
    return render(Process(pid, "Liên thông thử nghiệm", lanes, nodes,
                          [Flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(chain, chain[1:]))]))


@pytest.fixture
def province(session):
    """Province T40 with department SXD and YTE, communes X (H40.1) and Z (H40.2); one user per role."""
    directory.add_unit(session, "T40", "UBND tỉnh Phú Thọ")
    directory.add_unit(session, "SXD", "Sở Xây dựng", "T40")
    directory.add_unit(session, "STNMT", "Sở Nông nghiệp và Môi trường", "T40")
    directory.add_unit(session, "H40.1", "UBND xã Tân Lạc", "T40")
    directory.add_unit(session, "H40.2", "UBND xã Mường Bi", "T40")
    ids = {}
    for unit, roles in {"H40.1": ("mot_cua", "chuyen_vien"), "SXD": ("chuyen_vien", "lanh_dao"),
                        "STNMT": ("chuyen_vien",), "H40.2": ("mot_cua", "chuyen_vien"), "T40": ("manager",)}.items():
        for role in roles:
            ids[f"{role}@{unit}"] = directory.add_user(session, f"{role}.{unit}".lower(), PASSWORD, [(unit, role)]).id
    session.commit()
    catalog.create_procedure(session, actor_id=None, data={
        "code": CODE, "name": "Thủ tục liên thông xã – Sở (thử nghiệm)", "field": "Xây dựng", "level": "tinh",
        "statutory_days": 5, "online_level": "mot_phan",
        "components": [{"code": "DON", "name": "Đơn đề nghị", "required": True}]})
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code=CODE, bpmn=lien_thong_bpmn())
    catalog.publish_version(session, actor_id=None, procedure_code=CODE, number=version.number,
                            effective_from=date(2026, 1, 1))
    session.commit()
    return ids


def receive_at_x(session, ids, at=None):
    at = at or vn(2026, 11, 2, 9)
    record = dossiers.receive_dossier(session, actor_id=ids["mot_cua@H40.1"], procedure_code=CODE, channel="counter",
                                      applicant=APPLICANT, components=[{"code": "DON", "filename": "don.pdf",
                                                                       "content": pdf("don")}], now=at)
    return session.get(Dossier, record.id)


def open_step(session, d) -> HumanTask:
    session.expire_all()
    return session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None))).one()


def sees(session, ids, who, d) -> bool:
    try:
        policy.require_view(session, load_actor(session, ids[who]), d)
        return True
    except NotFound:
        return False


def inbox_codes(session, ids, who) -> list[str]:
    return [t["dossier_code"] for t in views.inbox(session, load_actor(session, ids[who]))]


def test_a_dossier_received_at_the_commune_is_decided_by_the_department_and_comes_back(session, province):
    ids = province
    d = receive_at_x(session, ids)
    first = open_step(session, d)
    assert first.unit_id == d.unit_id
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=first.id, now=vn(2026, 11, 2, 10))

    # Handed over to the department: its specialist's inbox, not the commune's nor another commune's.
    step = open_step(session, d)
    sxd = session.scalar(select(Unit.id).where(Unit.code == "SXD"))
    assert step.role == "chuyen_vien" and step.unit_id == sxd != d.unit_id
    assert inbox_codes(session, ids, "chuyen_vien@SXD") == [d.code]
    assert inbox_codes(session, ids, "chuyen_vien@H40.1") == [] and inbox_codes(session, ids, "chuyen_vien@H40.2") == []
    assert sees(session, ids, "chuyen_vien@SXD", d) and sees(session, ids, "mot_cua@H40.1", d)
    assert not sees(session, ids, "chuyen_vien@H40.2", d) and not sees(session, ids, "chuyen_vien@STNMT", d)
    with pytest.raises(NotAllowed):  # the commune's specialist cannot do the department's step
        dossiers.complete_task(session, actor_id=ids["chuyen_vien@H40.1"], task_id=step.id, now=vn(2026, 11, 3, 9))
    session.rollback()
    dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=step.id, now=vn(2026, 11, 3, 9))
    dossiers.complete_task(session, actor_id=ids["lanh_dao@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 4, 9))

    # Back at the commune's desk; the department still sees the dossier it worked on (read-only).
    back = open_step(session, d)
    assert back.unit_id == d.unit_id and inbox_codes(session, ids, "mot_cua@H40.1") == [d.code]
    assert sees(session, ids, "chuyen_vien@SXD", d) and inbox_codes(session, ids, "chuyen_vien@SXD") == []
    with pytest.raises(NotAllowed):  # hand-back is the receiving desk's
        dossiers.return_result(session, actor_id=ids["chuyen_vien@SXD"], dossier_code=d.code, now=vn(2026, 11, 4, 10))
    session.rollback()
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=back.id, now=vn(2026, 11, 4, 10))
    dossiers.return_result(session, actor_id=ids["mot_cua@H40.1"], dossier_code=d.code, now=vn(2026, 11, 4, 14))
    session.expire_all()
    assert session.get(Dossier, d.id).status == "returned"

    # Two hand-overs, X → SXD and SXD → X, each audited; the control slip names every unit.
    handoffs = session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == d.id,
                                                        AuditEvent.kind == "handed_off").order_by(AuditEvent.seq)).all()
    assert [(e.data["from_unit"], e.data["to_unit"]) for e in handoffs] == [("H40.1", "SXD"), ("SXD", "H40.1")]
    slip = control_slip(session, d.id)
    assert [(r.unit, r.unit_name) for r in slip] == [
        ("H40.1", "UBND xã Tân Lạc"), ("SXD", "Sở Xây dựng"), ("SXD", "Sở Xây dựng"), ("H40.1", "UBND xã Tân Lạc")]
    # Each hand-over row names both units: where it came from and where it went.
    assert [r.from_unit_name for r in slip] == [None, "UBND xã Tân Lạc", None, "Sở Xây dựng"]
    assert [t["unit_code"] for t in views.dossier_view(session, d.code)["timeline"]] == ["H40.1", "SXD", "SXD", "H40.1"]


def test_the_api_shows_the_unit_of_every_step(client, session, province):
    from conftest import bearer
    d = receive_at_x(session, province)
    dossiers.complete_task(session, actor_id=province["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 2, 10))
    tasks = client.get("/api/v1/tasks", headers=bearer(client, "chuyen_vien.sxd", PASSWORD)).get_json()
    assert [(t["dossier_code"], t["unit_code"]) for t in tasks] == [(d.code, "SXD")]
    view = client.get(f"/api/v1/dossiers/{d.code}", headers=bearer(client, "chuyen_vien.sxd", PASSWORD))
    assert view.status_code == 200 and [t["unit_code"] for t in view.get_json()["open_tasks"]] == ["SXD"]
    other = client.get(f"/api/v1/dossiers/{d.code}", headers=bearer(client, "chuyen_vien.h40.2", PASSWORD))
    assert other.status_code == 404


def test_a_lane_held_at_the_parent_unit_and_unknown_units(session, province):
    xml = lien_thong_bpmn("@parent", "Process_parent")
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code=CODE, bpmn=xml)
    catalog.publish_version(session, actor_id=None, procedure_code=CODE, number=version.number,
                            effective_from=date(2026, 11, 2))
    session.commit()
    d = receive_at_x(session, province, at=vn(2026, 11, 3, 9))
    dossiers.complete_task(session, actor_id=province["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 3, 10))
    parent = session.scalar(select(HumanTask.unit_id).where(HumanTask.dossier_id == d.id,
                                                            HumanTask.completed_at.is_(None)))
    assert views.dossier_view(session, d.code)["open_tasks"][0]["unit_code"] == "T40" and parent != d.unit_id
    with pytest.raises(BpmnInvalid) as refused:
        catalog.submit_version(session, actor_id=None, procedure_code=CODE, bpmn=lien_thong_bpmn("SKHONGCO", "P_x"))
    assert {p["code"] for p in refused.value.problems} == {"unknown_unit"}


def test_the_department_consults_other_units_and_waits_for_them_or_their_deadline(session, province, client):
    from conftest import bearer

    from engine.errors import ConsultationPending
    ids = province
    d = receive_at_x(session, ids)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 2, 10))
    step = open_step(session, d)
    asked = dossiers.ask_opinions(session, actor_id=ids["chuyen_vien@SXD"], task_id=step.id,
                                  unit_codes=["STNMT", "H40.1"], content="Ý kiến về hiện trạng sử dụng đất", days=2,
                                  now=vn(2026, 11, 2, 14))
    assert [a.due_at for a in asked] == [vn(2026, 11, 4, 17)] * 2
    # The consulted units see the request and the dossier; a commune not asked sees neither.
    assert sees(session, ids, "chuyen_vien@STNMT", d) and not sees(session, ids, "chuyen_vien@H40.2", d)
    pending = [c["unit_code"] for c in views.pending_consultations(session, load_actor(session, ids["chuyen_vien@STNMT"]))]
    assert pending == ["STNMT"]
    with pytest.raises(ConsultationPending):  # the asking step waits for every answer…
        dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=step.id, now=vn(2026, 11, 3, 9))
    session.rollback()
    # Answers: only the consulted unit's own staff; another unit's request answers like a missing one.
    stnmt = next(a for a in asked if a.unit_id != d.unit_id)
    denied = client.post(f"/api/v1/consultations/{stnmt.id}/answer", json={"answer": "Đồng ý"},
                         headers=bearer(client, "chuyen_vien.sxd", PASSWORD))
    assert denied.status_code == 404
    mine = client.get("/api/v1/consultations", headers=bearer(client, "chuyen_vien.stnmt", PASSWORD)).get_json()
    assert [(c["id"], c["dossier_code"]) for c in mine] == [(stnmt.id, d.code)]
    dossiers.answer_opinion(session, actor_id=ids["chuyen_vien@STNMT"], consultation_id=stnmt.id,
                            answer="Đất ở, phù hợp quy hoạch", now=vn(2026, 11, 3, 10))
    with pytest.raises(ConsultationPending):  # …or for the deadline: X has not answered yet
        dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=step.id, now=vn(2026, 11, 4, 16))
    session.rollback()
    dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=step.id, now=vn(2026, 11, 4, 17, 1))
    # The silent unit is listed for the receiving desk's head; the slip shows every unit asked.
    late = views.late_consultations(session, [d.unit_id], vn(2026, 11, 5, 9))
    assert [(c["unit_code"], c["answered_at"]) for c in late] == [("H40.1", None)]
    rows = [(r.unit, r.result) for r in control_slip(session, d.id) if r.task_id.startswith("consultation-")]
    assert sorted(rows, key=str) == sorted([("STNMT", "early"), ("H40.1", None)], key=str)
    with pytest.raises(NotFound):  # a unit that was not asked cannot answer
        dossiers.answer_opinion(session, actor_id=ids["chuyen_vien@H40.2"], consultation_id=stnmt.id, answer="x")


def test_consultation_screens_for_the_consulted_unit_only(session, province, app):
    ids = province
    d = receive_at_x(session, ids)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 2, 10))
    asked, = dossiers.ask_opinions(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                                   unit_codes=["STNMT"], content="Ý kiến về đất", days=3, now=vn(2026, 11, 2, 14))
    app.config["SESSION_COOKIE_SECURE"] = False

    def login(username):
        http = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/dang-nhap").get_data(as_text=True)).group(1)
        assert http.post("/dang-nhap", data={"username": username, "password": PASSWORD,
                                             "csrf_token": token}).status_code == 302
        return http, token
    stnmt, token = login("chuyen_vien.stnmt")
    assert "Ý kiến về đất" in stnmt.get("/hop-thu").get_data(as_text=True)
    page = stnmt.get(f"/xin-y-kien/{asked.id}")
    assert page.status_code == 200 and d.code in page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    empty = stnmt.post(f"/xin-y-kien/{asked.id}", data={"csrf_token": token, "y-kien": ""})
    assert empty.status_code == 422 and "Nhập ý kiến của đơn vị." in empty.get_data(as_text=True)
    assert stnmt.post(f"/xin-y-kien/{asked.id}", data={"csrf_token": token, "y-kien": "Đồng ý"}).status_code == 302
    for username in ("chuyen_vien.sxd", "chuyen_vien.h40.2", "mot_cua.h40.1"):
        http, _ = login(username)
        assert http.get(f"/xin-y-kien/{asked.id}").status_code == 404, username


def test_a_late_step_is_the_late_units_on_the_dashboard(session, province, app):
    """TT 01/2018 index 2 per unit: the department's late step counts against the department, not
    against the commune that received the dossier."""
    from engine.reporting import metrics
    ids = province
    d = receive_at_x(session, ids)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 2, 10))                      # on time (2 h)
    dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 9, 9))                       # due 4/11: late
    dossiers.complete_task(session, actor_id=ids["lanh_dao@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 9, 10))
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 9, 11))
    x = session.scalar(select(Unit.id).where(Unit.code == "H40.1"))
    by_unit = {r["unit_code"]: r for r in metrics.steps_by_unit(session, date(2026, 11, 1), date(2026, 11, 30), [x])}
    assert (by_unit["SXD"]["steps"], by_unit["SXD"]["late"], by_unit["SXD"]["tt01_i2"]) == (2, 1, 0)
    assert (by_unit["H40.1"]["steps"], by_unit["H40.1"]["late"], by_unit["H40.1"]["tt01_i2"]) == (2, 0, 1)


def test_end_to_end_commune_department_consultation_and_notices(session, province, send, smtp, gateway):
    """Issue #13's walk: received at commune X, handed to department S, which consults unit Y, back to
    X, handed back; the applicant told by e-mail and SMS; who sees what checked at every step."""
    ids = province
    people = {"X": "mot_cua@H40.1", "S": "chuyen_vien@SXD", "Y": "chuyen_vien@STNMT", "Z": "chuyen_vien@H40.2"}

    def check(visible: set[str], inbox_of: str | None, d):
        for who, user in people.items():
            assert sees(session, ids, user, d) is (who in visible), (who, visible)
            assert (d.code in inbox_codes(session, ids, user)) is (who == inbox_of), (who, inbox_of)
        assert not sees(session, ids, "mot_cua@H40.2", d)

    d = receive_at_x(session, ids)
    check({"X"}, "X", d)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 2, 10))
    check({"X", "S"}, "S", d)
    asked, = dossiers.ask_opinions(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                                   unit_codes=["STNMT"], content="Hiện trạng đất", days=2, now=vn(2026, 11, 2, 14))
    check({"X", "S", "Y"}, "S", d)
    assert [c["id"] for c in views.pending_consultations(session, load_actor(session, ids[people["Y"]]))] == [asked.id]
    dossiers.answer_opinion(session, actor_id=ids["chuyen_vien@STNMT"], consultation_id=asked.id, answer="Đất ở",
                            now=vn(2026, 11, 3, 9))
    dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 3, 10))
    dossiers.complete_task(session, actor_id=ids["lanh_dao@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 4, 9))
    check({"X", "S", "Y"}, "X", d)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 4, 10))
    dossiers.return_result(session, actor_id=ids["mot_cua@H40.1"], dossier_code=d.code, now=vn(2026, 11, 4, 14))
    check({"X", "S", "Y"}, None, d)

    # The applicant was told on receipt and when the result was ready, by e-mail and by SMS.
    assert send(vn(2026, 11, 4, 15)).sent == 4
    assert len(smtp.messages) == 2 and all(d.code in m["Subject"] for m in smtp.messages)
    assert len(gateway.received) == 2 and all(d.code in g["text"] and len(g["text"]) <= 160 for g in gateway.received)
    # Form 06 names every unit, the consulted one included.
    assert {r.unit for r in control_slip(session, d.id)} == {"H40.1", "SXD", "STNMT"}


# --- cases a review found (each failed on b2de0eb) --------------------------------------------------
def _at_sxd(session, ids):
    d = receive_at_x(session, ids)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 2, 10))
    return d


def _publish(session, xml):
    v, _ = catalog.submit_version(session, actor_id=None, procedure_code=CODE, bpmn=xml)
    catalog.publish_version(session, actor_id=None, procedure_code=CODE, number=v.number,
                            effective_from=date(2026, 11, 2))
    session.commit()
    return v


def test_refusal_and_apology_are_signed_by_the_leader_of_the_unit_holding_the_dossier(session, province):
    ids = province
    ids["lanh_dao@H40.1"] = directory.add_user(session, "ld.x", PASSWORD, [("H40.1", "lanh_dao")]).id
    session.commit()
    d = _at_sxd(session, ids)
    with pytest.raises(NotAllowed):  # the commune's leader cannot end what the department is deciding
        dossiers.refuse_dossier(session, actor_id=ids["lanh_dao@H40.1"], dossier_code=d.code, reason="Không đủ",
                                now=vn(2026, 11, 3, 9))
    session.rollback()
    # The department's leader signs the apology the commune's desk records, and may refuse.
    dossiers.issue_apology(session, actor_id=ids["mot_cua@H40.1"], dossier_code=d.code, reason="Chờ xác minh",
                           new_due_at=vn(2026, 11, 16, 17), signed_by_id=ids["lanh_dao@SXD"], now=vn(2026, 11, 3, 9))
    dossiers.refuse_dossier(session, actor_id=ids["lanh_dao@SXD"], dossier_code=d.code, reason="Không đủ điều kiện",
                            now=vn(2026, 11, 4, 9))
    session.expire_all()
    assert session.get(Dossier, d.id).status == "refused"


def test_consultations_close_with_the_dossier(session, province):
    from engine.errors import DomainError
    ids = province
    d = _at_sxd(session, ids)
    asked, = dossiers.ask_opinions(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                                   unit_codes=["STNMT"], content="Hiện trạng đất", days=2, now=vn(2026, 11, 2, 14))
    dossiers.withdraw_dossier(session, actor_id=ids["mot_cua@H40.1"], dossier_code=d.code, reason="rút",
                              now=vn(2026, 11, 2, 15))
    assert views.pending_consultations(session, load_actor(session, ids["chuyen_vien@STNMT"])) == []
    assert views.late_consultations(session, [d.unit_id], vn(2026, 11, 10, 9)) == []
    with pytest.raises(DomainError):
        dossiers.answer_opinion(session, actor_id=ids["chuyen_vien@STNMT"], consultation_id=asked.id, answer="x",
                                now=vn(2026, 11, 9, 9))


def test_a_parent_lane_at_a_unit_without_parent_is_refused_at_reception(session, province):
    from engine.errors import ProcedureNotAccepting
    mc = directory.add_user(session, "mc.t40", PASSWORD, [("T40", "mot_cua")]).id
    _publish(session, lien_thong_bpmn("@parent", "Process_parent"))
    with pytest.raises(ProcedureNotAccepting):
        dossiers.receive_dossier(session, actor_id=mc, procedure_code=CODE, channel="counter", applicant=APPLICANT,
                                 components=[{"code": "DON", "filename": "d.pdf", "content": pdf("d")}],
                                 now=vn(2026, 11, 3, 9))


def test_a_timer_inside_the_department_is_no_hand_off(session, factory, province):
    from engine.dossiers import timers
    ids = province
    lanes = [("Lane_mc", "MC", "mot_cua", "@receiving"), ("Lane_cv", "CV", "chuyen_vien", "SXD"),
             ("Lane_ld", "LD", "lanh_dao", "SXD")]
    nodes = [Node("S", "startEvent", "s", "Lane_mc", 0), Node("T1", "userTask", "X1", "Lane_mc", 1, {"duration": "PT2H"}),
             Node("T2", "userTask", "S1", "Lane_cv", 2, {"duration": "P1D"}),
             Node("W", "intermediateCatchEvent", "w", "Lane_cv", 3, timer=("timeDuration", '"PT2H"')),
             Node("T3", "userTask", "S2", "Lane_ld", 4, {"duration": "P1D"}),
             Node("T4", "userTask", "X2", "Lane_mc", 5, {"duration": "PT2H"}), Node("E", "endEvent", "e", "Lane_mc", 6)]
    chain = ["S", "T1", "T2", "W", "T3", "T4", "E"]
    _publish(session, render(Process("P_t", "t", lanes, nodes,
                                     [Flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(chain, chain[1:]))])))
    d = _at_sxd(session, ids)
    dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 3, 9))
    session.commit()
    assert timers.run_once(factory, vn(2026, 11, 3, 15)).timers_fired == 1
    session.expire_all()
    got = [(e.data["from_unit"], e.data["to_unit"], e.step) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.dossier_id == d.id, AuditEvent.kind == "handed_off").order_by(AuditEvent.seq))]
    assert got == [("H40.1", "SXD", "T2")]


def test_a_migration_that_would_move_an_open_step_to_another_unit_is_refused(session, province):
    from engine.dossiers.migration import migrate_dossiers
    admin = directory.add_user(session, "adm", PASSWORD, [("T40", "admin")]).id
    d = _at_sxd(session, province)
    v2 = _publish(session, lien_thong_bpmn("@parent"))
    verdict, = migrate_dossiers(session, actor_id=admin, procedure_code=CODE, to_number=v2.number, dry_run=False,
                                now=vn(2026, 11, 2, 15))
    assert not verdict.moved and any("would move from unit SXD to T40" in r for r in verdict.reasons)
    assert open_step(session, d).unit_id == session.scalar(select(Unit.id).where(Unit.code == "SXD"))


def test_the_official_index_2_scores_each_unit_on_its_own_steps(session, province):
    from engine.reporting import metrics
    ids = province
    d = _at_sxd(session, ids)
    dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 9, 9))  # late
    dossiers.complete_task(session, actor_id=ids["lanh_dao@SXD"], task_id=open_step(session, d).id, now=vn(2026, 11, 9, 10))
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=open_step(session, d).id,
                           now=vn(2026, 11, 9, 11))

    def i2(unit):
        return metrics.summary(session, date(2026, 11, 1), date(2026, 11, 30), unit_code=unit)["tt01"]["indices"]["i2"]
    assert (i2("H40.1"), i2("SXD")) == (1.0, 0.0)


def test_a_consulted_unit_answers_with_text_and_files(session, province, client):
    import base64

    from conftest import bearer
    ids = province
    d = _at_sxd(session, ids)
    asked, = dossiers.ask_opinions(session, actor_id=ids["chuyen_vien@SXD"], task_id=open_step(session, d).id,
                                   unit_codes=["STNMT"], content="Hiện trạng đất", days=2, now=vn(2026, 11, 2, 14))
    body = {"answer": "Đất ở, xem văn bản kèm theo",
            "files": [{"filename": "van-ban-y-kien.pdf", "content_base64": base64.b64encode(pdf("yk")).decode()}]}
    bad = client.post(f"/api/v1/consultations/{asked.id}/answer", headers=bearer(client, "chuyen_vien.stnmt", PASSWORD),
                      json={**body, "files": [{"filename": "x.exe", "content_base64": base64.b64encode(b"MZ..").decode()}]})
    assert bad.status_code == 422
    answered = client.post(f"/api/v1/consultations/{asked.id}/answer", json=body,
                           headers=bearer(client, "chuyen_vien.stnmt", PASSWORD))
    assert answered.status_code == 200 and [f["filename"] for f in answered.get_json()["files"]] == ["van-ban-y-kien.pdf"]
    # The file is kept with the dossier; the asking department sees it with the answer.
    shown = views.consultations_of(session, d.id)
    assert [f.filename for f in shown[0]["files"]] == ["van-ban-y-kien.pdf"] and shown[0]["answer"].startswith("Đất ở")
    # ... and on the dossier page, with a link that opens it.
    client.application.config["SESSION_COOKIE_SECURE"] = False
    http = client.application.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/dang-nhap").get_data(as_text=True)).group(1)
    assert http.post("/dang-nhap", data={"username": "chuyen_vien.sxd", "password": PASSWORD,
                                         "csrf_token": token}).status_code == 302
    page = http.get(f"/ho-so/{d.code}")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    link = re.search(r'href="(/tep/\d+)">van-ban-y-kien.pdf', page.get_data(as_text=True)).group(1)
    assert http.get(link).status_code == 200
