"""Result documents and decision buttons (issue #12 item 3): the signing step attaches the signed PDF and
the register step records its number and signing date, or the step cannot be approved; the result is
audited, downloadable by who may see the dossier and listed on form 06; each decision button says what it
does, by the name of the diagram's flow; only who may complete a step is offered its decisions."""
from __future__ import annotations

import base64
import io
import re
from datetime import date

import pytest
from bpmn_fixtures import Flow, Node, Process, render
from conftest import ROOT, bearer, csrf, login, open_task, pdf, receive, vn
from sqlalchemy import func, select

from engine import catalog, dossiers
from engine.access import directory
from engine.dossiers.results import ResultRequired
from engine.errors import InvalidInput
from engine.reporting import views
from engine.reporting.slip import control_slip
from engine.store import files
from engine.store.models import RESULT_READY, AuditEvent, Dossier, DossierFile, HumanTask
from engine.workflow import bpmn_xml, validation

SIGNED = pdf("ket-qua-da-ky")


def to_step(session, office, role, code="1.001612"):
    """A dossier received Monday 2/11/2026 09:00 and approved up to the open step of `role`."""
    d = receive(session, office, code=code)
    at = vn(2026, 11, 2, 10)
    for before in ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"):
        if before == role:
            break
        result = {"file": {"filename": "ket-qua.pdf", "content": SIGNED}} if before == "lanh_dao" else None
        dossiers.complete_task(session, actor_id=office[before], task_id=open_task(session, d, before).id,
                               data={"decision": "approve"}, result=result, now=at)
    session.expire_all()
    return d, open_task(session, d, role)


def snapshot(session, d) -> tuple:
    """What a refused completion must leave as it was."""
    session.rollback()
    row = session.get(Dossier, d.id)
    return (row.lock_version, row.status, row.result_number, row.result_signed_on,
            session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.dossier_id == d.id)),
            session.scalar(select(func.count()).select_from(DossierFile).where(DossierFile.dossier_id == d.id)),
            session.scalar(select(func.count()).select_from(HumanTask).where(HumanTask.dossier_id == d.id,
                                                                             HumanTask.completed_at.is_(None))))


def refused(session, office, task, role, errors: set[str], result=None, decision="approve", note=""):
    with pytest.raises(InvalidInput) as exc:
        dossiers.complete_task(session, actor_id=office[role], task_id=task.id, data={"decision": decision},
                               note=note, result=result, now=vn(2026, 11, 3, 9))
    assert set(exc.value.errors) == errors, exc.value.errors
    return exc.value


# --- the engine --------------------------------------------------------------------------------------------
def test_signing_needs_the_signed_pdf_and_registering_its_number_and_date(session, office):
    d, sign = to_step(session, office, "lanh_dao")
    before = snapshot(session, d)
    missing = refused(session, office, sign, "lanh_dao", {"result.file"})
    assert isinstance(missing, ResultRequired) and missing.code == "result_required"
    for content, why in ((b"GIF89a" + b"\0" * 64, "not a PDF"), (b"%PDF-1.7\n1 0 obj\n", "incomplete"),
                         (b"", "empty"), (b"%PDF-" + b"0" * files.MAX_FILE_BYTES + b"%%EOF", "larger")):
        bad = refused(session, office, sign, "lanh_dao", {"result.file"},
                      result={"file": {"filename": "ket-qua.pdf", "content": content}})
        assert why in bad.errors["result.file"]
    for name in ("../ket-qua.pdf", "", "a\x00.pdf"):
        bad = refused(session, office, sign, "lanh_dao", {"result.file"},
                      result={"file": {"filename": name, "content": SIGNED}})
        assert "file name" in bad.errors["result.file"]
    # The signing step attaches the file only; a number belongs to the register step.
    refused(session, office, sign, "lanh_dao", {"result.number"},
            result={"file": {"filename": "ket-qua.pdf", "content": SIGNED}, "number": "12/GCN"})
    # Sending the dossier back records no result.
    refused(session, office, sign, "lanh_dao", {"result.file"}, decision="return", note="Sai tên",
            result={"file": {"filename": "ket-qua.pdf", "content": SIGNED}})
    assert snapshot(session, d) == before

    dossiers.complete_task(session, actor_id=office["lanh_dao"], task_id=sign.id, data={"decision": "approve"},
                           result={"file": {"filename": "giay-chung-nhan.pdf", "content": SIGNED}},
                           now=vn(2026, 11, 3, 9))
    kept = session.scalars(select(DossierFile).where(DossierFile.dossier_id == d.id,
                                                     DossierFile.purpose == "result")).one()
    assert (kept.filename, kept.content_type, kept.component_code) == ("giay-chung-nhan.pdf", "application/pdf", "KETQUA")
    assert files.open_file(kept.storage_key) == SIGNED
    page = views.dossier_page(session, session.get(Dossier, d.id), vn(2026, 11, 3, 9))
    assert page["result"]["file"].id == kept.id and page["result"]["number"] is None
    assert kept.id not in {f.id for f in page["files"]}  # the result is not one of the citizen's components

    register = open_task(session, d, "van_thu")
    before = snapshot(session, d)
    refused(session, office, register, "van_thu", {"result.number", "result.signed_on"})
    refused(session, office, register, "van_thu", {"result.signed_on"},
            result={"number": "15/GCN-HKD", "signed_on": date(2026, 11, 4)})      # after today (3/11)
    refused(session, office, register, "van_thu", {"result.signed_on"},
            result={"number": "15/GCN-HKD", "signed_on": date(2026, 11, 1)})      # before the dossier was received
    refused(session, office, register, "van_thu", {"result.number"}, result={"number": "x" * 65, "signed_on": "2026-11-03"})
    refused(session, office, register, "van_thu", {"result.file"},
            result={"number": "15/GCN-HKD", "signed_on": "2026-11-03", "file": {"filename": "a.pdf", "content": SIGNED}})
    assert snapshot(session, d) == before

    done = dossiers.complete_task(session, actor_id=office["van_thu"], task_id=register.id,
                                  data={"decision": "approve"}, result={"number": " 15/GCN-HKD ", "signed_on": "2026-11-03"},
                                  now=vn(2026, 11, 3, 10))
    assert done.dossier.status == RESULT_READY
    session.expire_all()
    row = session.get(Dossier, d.id)
    assert (row.result_number, row.result_signed_on) == ("15/GCN-HKD", date(2026, 11, 3))
    events = {e.kind: e for e in session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == d.id))}
    assert events["result_attached"].data["sha256"] == kept.sha256 and events["result_attached"].step == "Task_KyDuyet"
    assert events["result_attached"].actor_id == office["lanh_dao"]
    assert events["result_registered"].data == {"task_id": register.id, "number": "15/GCN-HKD", "signed_on": "2026-11-03"}
    assert events["result_registered"].actor_id == office["van_thu"]
    slip = {r.step: r for r in control_slip(session, d.id)}
    assert slip["Task_KyDuyet"].result_file == "giay-chung-nhan.pdf"
    assert (slip["Task_VaoSo"].result_number, slip["Task_VaoSo"].result_signed_on) == ("15/GCN-HKD", date(2026, 11, 3))


def test_a_step_without_the_result_property_records_none(session, office):
    d = receive(session, office)
    with pytest.raises(InvalidInput) as exc:
        dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id,
                               result={"number": "1/TB", "signed_on": "2026-11-02"}, now=vn(2026, 11, 2, 10))
    assert set(exc.value.errors) == {"result.number", "result.signed_on"}


# --- the API, the files, the forms ---------------------------------------------------------------------------
def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def test_the_api_takes_the_result_and_the_dossier_shows_it_to_who_may_see_it(client, ui, session, office):
    d, sign = to_step(session, office, "lanh_dao")
    leader = bearer(client, "lanh_dao1")
    url = f"/api/v1/tasks/{sign.id}/complete"
    missing = client.post(url, json={"data": {"decision": "approve"}}, headers=leader)
    assert missing.status_code == 422 and missing.content_type == "application/problem+json"
    assert missing.get_json()["type"].endswith("result_required") and "result.file" in missing.get_json()["errors"]
    not_pdf = client.post(url, json={"data": {"decision": "approve"}, "result": {
        "file": {"filename": "ket-qua.pdf", "content_base64": b64(b"PK\x03\x04 not a pdf")}}}, headers=leader)
    assert not_pdf.status_code == 422 and "not a PDF" in not_pdf.get_json()["errors"]["result.file"]
    garbled = client.post(url, json={"data": {"decision": "approve"}, "result": {
        "file": {"filename": "ket-qua.pdf", "content_base64": "%%%"}}}, headers=leader)
    assert garbled.status_code == 422 and "result.file.content_base64" in garbled.get_json()["errors"]
    assert session.scalar(select(func.count()).select_from(DossierFile).where(DossierFile.purpose == "result")) == 0
    ok = client.post(url, json={"data": {"decision": "approve"}, "result": {
        "file": {"filename": "giay-chung-nhan.pdf", "content_base64": b64(SIGNED)}}}, headers=leader)
    assert ok.status_code == 200, ok.get_json()
    clerk = bearer(client, "van_thu1")
    session.rollback()  # the API wrote on its own connection
    register = open_task(session, d, "van_thu")
    ok = client.post(f"/api/v1/tasks/{register.id}/complete", json={
        "data": {"decision": "approve"}, "result": {"number": "15/GCN-HKD", "signed_on": "2026-11-03"}}, headers=clerk)
    assert ok.status_code == 200 and ok.get_json()["status"] == "result_ready", ok.get_json()

    shown = client.get(f"/api/v1/dossiers/{d.code}", headers=bearer(client, "mot_cua1")).get_json()["result"]
    assert shown["number"] == "15/GCN-HKD" and shown["signed_on"] == "2026-11-03"
    assert shown["file"]["filename"] == "giay-chung-nhan.pdf" and shown["file"]["size"] == len(SIGNED)
    file_id = shown["file"]["id"]
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "result" in spec["components"]["schemas"]["CompleteIn"]["properties"]

    desk = login(ui, "mot_cua1")
    page = desk.get(f"/ho-so/{d.code}").get_data(as_text=True)
    assert "15/GCN-HKD" in page and f"/tep/{file_id}" in page and "Trả kết quả" in page
    download = desk.get(f"/tep/{file_id}")
    assert download.status_code == 200 and download.data == SIGNED and download.mimetype == "application/pdf"
    form06 = desk.get(f"/ho-so/{d.code}/in/06").get_data(as_text=True)
    assert "văn bản số <strong>15/GCN-HKD</strong> ký ngày 03/11/2026" in form06
    assert "Đính kèm kết quả đã ký: giay-chung-nhan.pdf" in form06 and "Vào sổ: số 15/GCN-HKD, ngày ký 03/11/2026" in form06
    register_page = desk.get("/so-theo-doi?tu=2026-11-01&den=2026-11-30").get_data(as_text=True)
    assert "KQ số 15/GCN-HKD" in register_page
    # Another commune's staff may not see the dossier, so neither its result.
    other = login(ui.application.test_client(), "mc_khac")
    assert other.get(f"/tep/{file_id}").status_code == 404
    assert other.get(f"/ho-so/{d.code}").status_code == 404


def test_the_step_page_asks_for_the_result_with_errors_next_to_the_fields(ui, session, office):
    d, sign = to_step(session, office, "lanh_dao")
    leader = login(ui, "lanh_dao1")
    url = f"/cong-viec/{sign.id}"
    page = leader.get(url).get_data(as_text=True)
    assert 'name="ket-qua-tep"' in page and 'enctype="multipart/form-data"' in page
    r = leader.post(url, data={"csrf_token": csrf(leader, url), "decision": "approve"},
                    content_type="multipart/form-data")
    assert r.status_code == 422 and "Đính kèm văn bản kết quả đã ký (tệp PDF)." in r.get_data(as_text=True)
    r = leader.post(url, data={"csrf_token": csrf(leader, url), "decision": "approve",
                               "ket-qua-tep": (io.BytesIO(b"hello"), "ket-qua.txt")},
                    content_type="multipart/form-data")
    assert r.status_code == 422 and "Văn bản kết quả phải là tệp PDF" in r.get_data(as_text=True)
    assert snapshot(session, d)[1] == "processing" and open_task(session, d, "lanh_dao").id == sign.id
    r = leader.post(url, data={"csrf_token": csrf(leader, url), "decision": "approve",
                               "ket-qua-tep": (io.BytesIO(SIGNED), "giay-chung-nhan.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code == 302
    assert f"Đã ký duyệt hồ sơ {d.code}. Hồ sơ hiện ở: Văn thư." in leader.get("/hop-thu").get_data(as_text=True)

    session.rollback()
    register = open_task(session, d, "van_thu")
    clerk = login(ui.application.test_client(), "van_thu1")
    url = f"/cong-viec/{register.id}"
    page = clerk.get(url).get_data(as_text=True)
    assert "giay-chung-nhan.pdf" in page  # the signed document the clerk registers
    assert 'name="so-van-ban"' in page and 'name="ngay-ky"' in page and 'name="ket-qua-tep"' not in page
    r = clerk.post(url, data={"csrf_token": csrf(clerk, url), "decision": "approve", "so-van-ban": "15/GCN-HKD"})
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "Nhập ngày ký văn bản." in page and 'value="15/GCN-HKD"' in page
    assert 'id="e-result-signed_on"' in page


# --- the buttons --------------------------------------------------------------------------------------------
def test_every_shipped_step_names_each_of_its_decisions():
    for path in [*sorted((ROOT / "processes").glob("*/v1.bpmn")), ROOT / "motcua/demo_processes/1.999901/v1.bpmn"]:
        model = bpmn_xml.read_model(bpmn_xml.parse_safely(path.read_bytes()))
        for step in model.steps.values():
            assert set(step.labels) == set(step.decisions), (path, step.id)
            assert "Chuyển xử lý" not in step.labels.values() and "Đồng ý" not in step.labels.values()
        signers = [s for s in model.steps.values() if "file" in s.result]
        registers = [s for s in model.steps.values() if "number" in s.result]
        assert [s.role for s in signers] == ["lanh_dao"] and registers, path


LABEL_CODE = "1.999301"


def labelled(approve_name: str, done_name: str) -> str:
    lanes = [("Lane_mc", "Một cửa", "mot_cua"), ("Lane_cv", "Chuyên viên", "chuyen_vien")]
    nodes = [Node("S", "startEvent", "Tiếp nhận", "Lane_mc", 0),
             Node("Task_A", "userTask", "Kiểm tra", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("G", "exclusiveGateway", "?", "Lane_mc", 2),
             Node("Task_B", "userTask", "Xử lý", "Lane_cv", 3, {"duration": "PT1H"}),
             Node("E", "endEvent", "Xong", "Lane_cv", 4), Node("E2", "endEvent", "Từ chối", "Lane_mc", 3)]
    flows = [Flow("F1", "S", "Task_A"), Flow("F2", "Task_A", "G"),
             Flow("F3", "G", "Task_B", approve_name, 'decision == "approve"'),
             Flow("F4", "G", "E2", "", 'decision == "return"'), Flow("F5", "Task_B", "E", done_name)]
    return render(Process("Process_labels", "Nhãn nút", lanes, nodes, flows))


def publish(session, bpmn: str) -> None:
    """A new version of the label test procedure, in force from the n-th of January."""
    if LABEL_CODE not in {p.code for p in catalog.list_procedures(session)}:
        catalog.create_procedure(session, actor_id=None, data={
            "code": LABEL_CODE, "name": "Thủ tục thử nhãn nút", "field": "Thử nghiệm", "level": "xa",
            "statutory_days": 1, "online_level": "mot_phan",
            "components": [{"code": "DON", "name": "Đơn", "required": True}]})
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code=LABEL_CODE, bpmn=bpmn)
    catalog.publish_version(session, actor_id=None, procedure_code=LABEL_CODE, number=version.number,
                            effective_from=date(2026, 1, version.number))
    session.commit()


def test_buttons_say_what_the_diagram_names_them(ui, session, office):
    publish(session, labelled("Trình ông Tư ký", "Hoàn tất, báo Một cửa"))
    first = dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code=LABEL_CODE, channel="counter",
                                     applicant={"name": "Lê Thị Hoa", "id_number": "017090009999"},
                                     components=[{"code": "DON", "filename": "don.pdf", "content": pdf()}],
                                     now=vn(2026, 11, 2, 9))
    publish(session, labelled("Chuyển bà Năm xem", ""))  # v2 from 2/1: the next dossier runs on it
    second = dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code=LABEL_CODE, channel="counter",
                                      applicant={"name": "Lê Thị Hoa", "id_number": "017090009999"},
                                      components=[{"code": "DON", "filename": "don.pdf", "content": pdf()}],
                                      now=vn(2026, 11, 2, 9, 30))
    desk = login(ui, "mot_cua1")
    buttons = {}
    for d in (first, second):
        task = session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id)).one()
        page = desk.get(f"/cong-viec/{task.id}").get_data(as_text=True)
        buttons[d.code] = re.findall(r'<button type="submit" class="[^"]*" data-once>([^<]+)</button>', page)
    assert buttons[first.code] == ["Trình ông Tư ký", "Trả lại bước trước"]  # an unnamed branch: the usual verb
    assert buttons[second.code] == ["Chuyển bà Năm xem", "Trả lại bước trước"]

    task = session.scalars(select(HumanTask).where(HumanTask.dossier_id == first.id)).one()
    url = f"/cong-viec/{task.id}"
    assert desk.post(url, data={"csrf_token": csrf(desk, url), "decision": "approve"}).status_code == 302
    assert f"Đã trình ông Tư ký hồ sơ {first.code}." in desk.get("/hop-thu").get_data(as_text=True)
    specialist = login(ui.application.test_client(), "chuyen_vien1")
    session.rollback()
    task = session.scalars(select(HumanTask).where(HumanTask.dossier_id == first.id, HumanTask.completed_at.is_(None))).one()
    page = specialist.get(f"/cong-viec/{task.id}").get_data(as_text=True)
    assert "Hoàn tất, báo Một cửa</button>" in page  # a step's one outgoing flow names its only button
    task = session.scalars(select(HumanTask).where(HumanTask.dossier_id == second.id)).one()
    assert desk.post(f"/cong-viec/{task.id}", data={"csrf_token": csrf(desk, f"/cong-viec/{task.id}"),
                                                    "decision": "approve"}).status_code == 302
    session.rollback()
    task = session.scalars(select(HumanTask).where(HumanTask.dossier_id == second.id, HumanTask.completed_at.is_(None))).one()
    assert "Chuyển xử lý</button>" in specialist.get(f"/cong-viec/{task.id}").get_data(as_text=True)


def test_labels_and_the_result_property_are_read_and_checked():
    model = bpmn_xml.read_model(bpmn_xml.parse_safely(labelled("  Trình\n  ký ", "Xong")))
    assert model.steps["Task_A"].labels == {"approve": "Trình ký"} and model.steps["Task_B"].labels == {"approve": "Xong"}
    lanes = [("Lane_ld", "Lãnh đạo", "lanh_dao")]
    for value, expected, problems in (("file", ["file"], set()), ("File, number", ["file", "number"], set()),
                                      ("number file number", ["number", "file"], set()),
                                      ("pdf", ["pdf"], {"bad_result_property"})):
        xml = render(Process("Process_r", "r", lanes, [
            Node("S", "startEvent", "s", "Lane_ld", 0),
            Node("Task_K", "userTask", "Ký", "Lane_ld", 1, {"duration": "PT1H", "result": value}),
            Node("E", "endEvent", "e", "Lane_ld", 2)], [Flow("F1", "S", "Task_K"), Flow("F2", "Task_K", "E")]))
        result = validation.validate(xml, 1, {"lanh_dao"})
        assert result.model.steps["Task_K"].result == expected
        assert {p.code for p in result.problems} == problems, result.problems


def test_only_who_may_complete_a_step_is_offered_its_decisions(ui, session, office):
    directory.add_user(session, "chuyen_vien2", "matkhau-123", [("H40.1", "chuyen_vien")])
    session.commit()
    d, appraisal = to_step(session, office, "chuyen_vien")
    url = f"/cong-viec/{appraisal.id}"
    leader = login(ui.application.test_client(), "lanh_dao1")  # sees the dossier, holds another role
    page = leader.get(url).get_data(as_text=True)
    assert 'class="decision' not in page and "bạn chỉ xem được hồ sơ" in page
    colleague = login(ui, "chuyen_vien2")
    assert 'class="decision decision-approve"' in colleague.get(url).get_data(as_text=True)  # unassigned: the role
    dossiers.claim_task(session, actor_id=office["chuyen_vien"], task_id=appraisal.id, now=vn(2026, 11, 2, 11))
    page = colleague.get(url).get_data(as_text=True)
    assert 'class="decision' not in page and "Gửi xin ý kiến" not in page
    assert "Việc đã phân công cho <strong>" in page and 'id="khong-xu-ly"' in page
    assignee = login(ui.application.test_client(), "chuyen_vien1")
    page = assignee.get(url).get_data(as_text=True)
    assert 'class="decision decision-approve"' in page and "Trình lãnh đạo phòng</button>" in page
    assert 'id="khong-xu-ly"' not in page


def result_at_intake(decision: str = "approve", result: str = "number") -> str:
    lanes = [("Lane_mc", "Một cửa", "mot_cua"), ("Lane_cv", "Chuyên viên", "chuyen_vien")]
    nodes = [Node("S", "startEvent", "Tiếp nhận", "Lane_mc", 0),
             Node("Task_A", "userTask", "Kiểm tra, vào sổ", "Lane_mc", 1, {"duration": "PT1H", "result": result}),
             Node("G", "exclusiveGateway", "?", "Lane_mc", 2),
             Node("Task_B", "userTask", "Xử lý", "Lane_cv", 3, {"duration": "PT1H"}),
             Node("E", "endEvent", "Xong", "Lane_cv", 4), Node("E2", "endEvent", "Trả lại", "Lane_mc", 3)]
    flows = [Flow("F1", "S", "Task_A"), Flow("F2", "Task_A", "G"),
             Flow("F3", "G", "Task_B", "Chuyển xử lý", f'decision == "{decision}"'),
             Flow("F4", "G", "E2", "", 'decision == "return"'), Flow("F5", "Task_B", "E", "Xong")]
    return render(Process("Process_intake_result", "Kết quả tại bước tiếp nhận", lanes, nodes, flows))


def test_a_step_recording_the_result_must_move_forward_with_approve():
    """Found by review: the result is asked when the step approves, so a forward branch named otherwise
    ('ky') would let the step move on without it."""
    codes = {p.code for p in validation.validate(result_at_intake("ky"), 1, {"mot_cua", "chuyen_vien"}).problems}
    assert "result_without_approve" in codes
    codes = {p.code for p in validation.validate(result_at_intake(), 1, {"mot_cua", "chuyen_vien"}).problems}
    assert "result_without_approve" not in codes


def test_receiving_and_forwarding_cannot_skip_a_result_the_intake_step_records(session, office):
    from engine.dossiers.reception import IntakeNotForwardable
    publish(session, result_at_intake())
    session.commit()
    before = session.scalar(select(func.count()).select_from(Dossier))
    with pytest.raises(IntakeNotForwardable):
        dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code=LABEL_CODE, channel="counter",
                                 applicant={"name": "Nguyễn Văn An", "id_number": "017090001234"},
                                 components=[{"code": "DON", "filename": "don.pdf", "content": pdf("don")}],
                                 forward=True, now=vn(2026, 11, 2, 9))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Dossier)) == before


def test_the_api_gives_each_decision_its_button_text_from_the_diagram(client, session, office):
    d = receive(session, office)
    desk = bearer(client, "mot_cua1")
    task, = [t for t in client.get("/api/v1/tasks", headers=desk).get_json() if t["dossier_code"] == d.code]
    assert task["labels"] == {"approve": "Chuyển chuyên viên thẩm định"}
    claimed = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=desk).get_json()
    assert claimed["labels"] == task["labels"]
