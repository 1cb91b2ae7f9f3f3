"""The reception desk in one step (issue #12 item 2), on SQLite and PostgreSQL: receive and pass on the
desk's intake step in one transaction; the applicant's details checked by one rule set (the desk's form
and the API); an incomplete dossier answered at the counter with guidance (form 02, once) or a refusal
(form 03), recorded and printable, without a dossier; and the type-ahead in a real browser."""
import base64
import re
from datetime import date

import pytest
from bpmn_fixtures import LANES, Flow, Node, Process, render
from conftest import APPLICANT, bearer, components_for, csrf, login, pdf, vn
from sqlalchemy import func, select

from engine import catalog, dossiers
from engine.dossiers import applicant as applicant_rules
from engine.dossiers import counter
from engine.dossiers.reception import IntakeNotForwardable
from engine.errors import InvalidInput, NotAllowed, NotFound, WorkflowError
from engine.store.models import (
    AuditEvent,
    CounterNotice,
    DailySequence,
    Dossier,
    DossierFile,
    HumanTask,
    OutboxEvent,
    RegisterSequence,
    User,
)

NOW = vn(2026, 11, 2, 9, 0)
PROBLEM = "application/problem+json"
GUIDE = [{"component": "GIAYDENGHI", "problem": "Thiếu chữ ký của chủ hộ"}]


def count(session, model) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(model))


def receive(session, office, **kwargs):
    args = {"actor_id": office["mot_cua"], "procedure_code": "1.001612", "channel": "counter", "applicant": APPLICANT,
            "components": components_for("1.001612"), "now": NOW, **kwargs}
    return dossiers.receive_dossier(session, **args)


def custom_procedure(session, code: str, xml: str) -> str:
    catalog.create_procedure(session, actor_id=None, data={
        "code": code, "name": "Thủ tục thử nghiệm", "field": "Thử nghiệm", "level": "xa", "statutory_days": 2,
        "online_level": "mot_phan", "components": [{"code": "GIAYDENGHI", "name": "Giấy đề nghị", "required": True}]})
    version, problems = catalog.submit_version(session, actor_id=None, procedure_code=code, bpmn=xml)
    catalog.publish_version(session, actor_id=None, procedure_code=code, number=version.number,
                            effective_from=date(2026, 1, 1))
    session.commit()
    return code


def specialist_first() -> str:
    """The process opens at the specialist's step: the desk has no intake step to pass on."""
    nodes = [Node("S", "startEvent", "start", "Lane_cv", 0),
             Node("Task_B", "userTask", "Thẩm định", "Lane_cv", 1, {"duration": "PT4H"}),
             Node("E", "endEvent", "end", "Lane_cv", 2)]
    flows = [Flow("F1", "S", "Task_B"), Flow("F2", "Task_B", "E")]
    return render(Process("Process_cv_first", "cv first", LANES, nodes, flows))


def fails_after_intake() -> str:
    """The intake step offers `approve`, but for a counter dossier no branch after it matches: the process
    fails when the step is completed."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "Tiếp nhận", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("G", "exclusiveGateway", "?", "Lane_mc", 2),
             Node("Task_B", "userTask", "Thẩm định", "Lane_cv", 3, {"duration": "PT4H"}),
             Node("E", "endEvent", "end", "Lane_cv", 4)]
    flows = [Flow("F1", "S", "Task_A"), Flow("F2", "Task_A", "G"),
             Flow("F3", "G", "Task_B", condition='decision == "approve" and channel == "online"'),
             Flow("F4", "Task_B", "E")]
    return render(Process("Process_fails", "fails", LANES, nodes, flows))


def two_desk_steps() -> str:
    """The process opens two steps of the desk at once: no single intake step to pass on."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("P1", "parallelGateway", "", "Lane_mc", 1),
             Node("Task_A", "userTask", "Tiếp nhận", "Lane_mc", 2, {"duration": "PT1H"}),
             Node("Task_A2", "userTask", "Số hóa", "Lane_mc", 2, {"duration": "PT1H"}),
             Node("P2", "parallelGateway", "", "Lane_mc", 3),
             Node("Task_B", "userTask", "Thẩm định", "Lane_cv", 4, {"duration": "PT4H"}),
             Node("E", "endEvent", "end", "Lane_cv", 5)]
    flows = [Flow("F1", "S", "P1"), Flow("F2", "P1", "Task_A"), Flow("F3", "P1", "Task_A2"), Flow("F4", "Task_A", "P2"),
             Flow("F5", "Task_A2", "P2"), Flow("F6", "P2", "Task_B"), Flow("F7", "Task_B", "E")]
    return render(Process("Process_two", "two", LANES, nodes, flows))


def nothing_written(session) -> None:
    for model in (Dossier, HumanTask, AuditEvent, DossierFile, OutboxEvent, DailySequence, RegisterSequence):
        assert count(session, model) == 0, model.__name__


# --- one step: receive and pass on the intake step -----------------------------------------------------
def test_receive_and_forward_completes_the_intake_step_in_the_same_transaction(session, office):
    d = receive(session, office, forward=True)
    assert d.status == "processing"
    session.rollback()
    tasks = session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id).order_by(HumanTask.started_at,
                                                                                          HumanTask.role)).all()
    intake = next(t for t in tasks if t.role == "mot_cua")
    assert intake.completed_at == NOW and intake.completed_by_id == office["mot_cua"] and intake.decision == "approve"
    assert intake.assignee_id == office["mot_cua"] and not intake.cancelled
    assert [t.role for t in tasks if t.completed_at is None] == ["chuyen_vien"]
    kinds = session.scalars(select(AuditEvent.kind).where(AuditEvent.dossier_id == d.id).order_by(AuditEvent.seq)).all()
    assert kinds == ["received", "task_started", "task_assigned", "task_completed", "task_started"]
    assert session.scalars(select(OutboxEvent.kind).where(OutboxEvent.dossier_id == d.id)
                           .order_by(OutboxEvent.id)).all() == ["received", "status_changed"]


def test_receive_only_leaves_the_intake_step_open(session, office):
    d = receive(session, office)
    assert d.status == "received"
    open_steps = session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id,
                                                         HumanTask.completed_at.is_(None))).all()
    assert [(t.role, t.assignee_id) for t in open_steps] == [("mot_cua", None)]


def test_no_intake_step_to_pass_on_receives_nothing(session, office):
    custom_procedure(session, "1.999501", specialist_first())
    with pytest.raises(IntakeNotForwardable):
        receive(session, office, procedure_code="1.999501", forward=True)
    nothing_written(session)
    assert receive(session, office, procedure_code="1.999501").status == "received"  # receiving alone still works


def test_two_steps_opened_at_once_are_no_intake_step_to_pass_on(session, office):
    custom_procedure(session, "1.999503", two_desk_steps())
    with pytest.raises(IntakeNotForwardable):
        receive(session, office, procedure_code="1.999503", forward=True)
    nothing_written(session)


def test_a_process_failing_at_the_intake_step_receives_nothing(session, office):
    custom_procedure(session, "1.999502", fails_after_intake())
    with pytest.raises(WorkflowError):
        receive(session, office, procedure_code="1.999502", forward=True)
    nothing_written(session)


def test_only_the_desk_forwards_and_another_units_desk_may_not(session, office):
    with pytest.raises(NotAllowed):
        receive(session, office, actor_id=office["chuyen_vien"], forward=True)
    with pytest.raises(NotAllowed):
        receive(session, office, actor_id=office["other_mot_cua"], unit_code="H40.1", forward=True)
    nothing_written(session)


# --- the applicant's details: one rule set --------------------------------------------------------------
@pytest.mark.parametrize("typed, stored", [
    ("0912345678", "0912345678"), ("+84 912 345 678", "0912345678"), ("84-386-123-456", "0386123456"),
    ("0210.3812.345", "02103812345"), ("(024) 3825 1234", "02438251234"), ("0587 123 456", "0587123456"),
])
def test_vietnamese_phone_numbers_are_normalised(typed, stored):
    assert applicant_rules.normalize_phone(typed) == stored


@pytest.mark.parametrize("typed", ["0123456789", "091234567", "09123456789", "0612345678", "+1 415 555 0100",
                                   "02103812", "abc"])
def test_phone_numbers_that_are_not_vietnamese_are_refused(typed):
    assert applicant_rules.normalize_phone(typed) is None


@pytest.mark.parametrize("id_type, number, ok", [
    ("cccd", "017090001234", True), ("cccd", "017 090 001 234", True), ("cccd", "01709000123", False),
    ("cccd", "01709000123A", False), ("cmnd", "171234567", True), ("cmnd", "1712345678", False),
    ("ho_chieu", "c1234567", True), ("ho_chieu", "C123456", False), ("ho_chieu", "12345678", False),
    ("ma_so_thue", "0101234567", True), ("ma_so_thue", "0101234567-001", True), ("ma_so_thue", "010123456", False),
    ("khac", "GKS 12/2020", True), ("khac", "AB", False), ("khac", "X" * 31, False),
])
def test_id_documents_by_type(id_type, number, ok):
    _, problems = applicant_rules.check({"name": "A", "id_type": id_type, "id_number": number})
    assert (not problems) is ok, problems


def test_each_field_has_its_rule_and_the_address_is_required_only_at_the_desk():
    good = {"name": "Nguyễn Văn An", "id_type": "cccd", "id_number": "017090001234"}
    assert applicant_rules.check(good)[1] == []
    assert [p.field for p in applicant_rules.check(good, address_required=True)[1]] == ["address"]
    bad = {"name": "A" * 201, "id_type": "cccd", "id_number": "12", "phone": "0123", "email": "an@", "address": "x" * 501}
    problems = {p.field: p for p in applicant_rules.check(bad)[1]}
    assert set(problems) == {"name", "id_number", "phone", "email", "address"}
    assert problems["phone"].vi.startswith("Số điện thoại không hợp lệ: «0123»")
    assert problems["id_number"].vi.startswith("Số định danh cá nhân (CCCD) không hợp lệ: «12»")
    assert problems["email"].vi.startswith("Thư điện tử không hợp lệ")
    assert [p.field for p in applicant_rules.check({**good, "name": "   "})[1]] == ["name"]
    assert [p.field for p in applicant_rules.check({**good, "id_type": "the-xanh"})[1]] == ["id_type"]


def test_the_use_case_stores_the_normalised_details_and_refuses_bad_ones(session, office):
    d = receive(session, office, applicant={**APPLICANT, "phone": "+84 912 345 678", "id_number": "017 090 001 234"})
    assert d.applicant["phone"] == "0912345678" and d.applicant_id_number == "017090001234"
    assert d.applicant["id_type"] == "cccd"  # read from the number's shape when no type was named
    with pytest.raises(InvalidInput) as refused:
        receive(session, office, applicant={**APPLICANT, "phone": "12345"})
    assert set(refused.value.errors) == {"applicant.phone"}
    assert count(session, Dossier) == 1


# --- the screens --------------------------------------------------------------------------------------
@pytest.fixture
def ui(ui):
    """The screens' client on the desk's Monday morning."""
    ui.application.config["MOTCUA_NOW"] = NOW.isoformat()
    return ui


def desk_form(client, action, code="1.001612", files=True, **fields):
    data = {"thu-tuc": code, "csrf_token": csrf(client, f"/tiep-nhan?thu-tuc={code}"), "action": action,
            "name": APPLICANT["name"], "id_type": "cccd", "id_number": APPLICANT["id_number"],
            "phone": APPLICANT["phone"], "email": APPLICANT["email"], "address": APPLICANT["address"],
            "channel": "counter"}
    if files:
        import io
        data.update({f"file_{c['code']}": (io.BytesIO(c["content"]), c["filename"]) for c in components_for(code)})
    data.update(fields)
    return client.post("/tiep-nhan", data=data, content_type="multipart/form-data")


def test_the_desk_receives_and_forwards_in_one_click_then_shows_the_receipt(ui, session, office):
    login(ui, "mot_cua1")
    r = desk_form(ui, "chuyen-xu-ly")
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    code = re.search(r"/ho-so/([^/]+)/da-tiep-nhan", r.headers["Location"]).group(1)
    page = ui.get(r.headers["Location"]).get_data(as_text=True)
    assert "Đã tiếp nhận và chuyển xử lý hồ sơ" in page and code in page
    assert f'src="/ho-so/{code}/in/01"' in page and "data-print-frame" in page  # the receipt, ready to print
    assert "Thẩm định" in page or "Chuyên viên" in page  # who holds it now
    d = session.scalar(select(Dossier).where(Dossier.code == code))
    assert d.status == "processing"
    receipt = ui.get(f"/ho-so/{code}/in/01").get_data(as_text=True)
    assert "GIẤY TIẾP NHẬN" in receipt and code in receipt


def test_receive_only_is_still_offered_and_leaves_the_step_in_the_inbox(ui, session, office):
    login(ui, "mot_cua1")
    page = ui.get("/tiep-nhan?thu-tuc=1.001612").get_data(as_text=True)
    assert 'value="chuyen-xu-ly" class="primary"' in page and 'value="tiep-nhan"' in page
    r = desk_form(ui, "tiep-nhan")
    assert r.status_code == 302
    assert "Đã tiếp nhận hồ sơ" in ui.get(r.headers["Location"]).get_data(as_text=True)
    assert session.scalar(select(Dossier.status)) == "received"


def test_a_refused_forward_shows_why_and_receives_nothing(ui, session, office):
    custom_procedure(session, "1.999501", specialist_first())
    login(ui, "mot_cua1")
    r = desk_form(ui, "chuyen-xu-ly", code="1.999501", files=False,
                  **{"file_GIAYDENGHI": (__import__("io").BytesIO(pdf()), "don.pdf")})
    page = r.get_data(as_text=True)
    assert r.status_code == 409 and "không cho phép tiếp nhận và chuyển xử lý cùng lúc" in page
    assert 'value="Nguyễn Văn An"' in page and "Đã tải lên: don.pdf" in page
    assert count(session, Dossier) == 0


def test_each_bad_field_gets_its_vietnamese_message_and_keeps_what_was_typed(ui, session, office):
    login(ui, "mot_cua1")
    r = desk_form(ui, "chuyen-xu-ly", name="", id_type="ho_chieu", id_number="123", phone="0123 456",
                  email="an@@example", address="")
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "<title>Lỗi: " in page
    for key, text in [("applicant-name", "Nhập họ và tên chủ hồ sơ"),
                      ("applicant-id_number", "Số hộ chiếu không hợp lệ: «123»"),
                      ("applicant-phone", "Số điện thoại không hợp lệ: «0123 456»"),
                      ("applicant-email", "Thư điện tử không hợp lệ: «an@@example»"),
                      ("applicant-address", "Nhập địa chỉ của chủ hồ sơ")]:
        assert re.search(rf'id="e-{key}"><span class="sr">Lỗi: </span>{re.escape(text)}', page), key
        assert f'href="#f-{key}"' in page  # the error summary links to the field
    assert 'value="0123 456"' in page and 'value="an@@example"' in page and 'value="123"' in page
    assert '<option value="ho_chieu" data-pattern' in page and "selected>Hộ chiếu" in page
    assert "Đã tải lên: giaydenghi.pdf" in page  # the scan is kept
    assert count(session, Dossier) == 0


def test_the_form_carries_client_side_hints(ui, office):
    login(ui, "mot_cua1")
    page = ui.get("/tiep-nhan?thu-tuc=1.001612").get_data(as_text=True)
    assert 'maxlength="200"' in page and 'maxlength="500"' in page and f'pattern="{applicant_rules.PHONE_HINT}"' in page
    assert 'pattern="\\d{12}"' in page and "novalidate" in page


def test_type_ahead_data_and_the_procedure_json(ui, office):
    login(ui, "mot_cua1")
    page = ui.get("/tiep-nhan").get_data(as_text=True)
    assert 'data-list="/tiep-nhan/thu-tuc.json"' in page
    assert '<form method="post"' in page and 'id="ho-so"\n      hidden' in page  # the form waits for a choice
    offered = ui.get("/tiep-nhan/thu-tuc.json").get_json()
    assert {"code": "1.001612", "name": "Đăng ký thành lập hộ kinh doanh", "field": "Thành lập và hoạt động của hộ kinh "
            "doanh", "key": "1.001612 dang ky thanh lap ho kinh doanh thanh lap va hoat dong cua ho kinh doanh"} in offered
    data = ui.get("/tiep-nhan/thu-tuc/1.001612.json").get_json()
    assert data["code"] == "1.001612" and data["name"] == "Đăng ký thành lập hộ kinh doanh"
    assert [c["code"] for c in data["components"]][0] == "GIAYDENGHI" and data["components"][0]["required"]
    assert data["statutory"] == "3 ngày làm việc" and re.fullmatch(r"\d\d:\d\d \d\d/\d\d/\d{4}", data["preview"])
    assert ui.get("/tiep-nhan/thu-tuc/9.999999.json").status_code == 404
    specialist = login(ui.application.test_client(), "chuyen_vien1")
    assert specialist.get("/tiep-nhan/thu-tuc/1.001612.json").status_code == 403
    assert specialist.get("/tiep-nhan/thu-tuc.json").status_code == 403


def test_search_without_javascript_ignores_diacritics(ui, office):
    login(ui, "mot_cua1")
    page = ui.get("/tiep-nhan?tim=ho kinh doanh").get_data(as_text=True)
    assert "Đăng ký thành lập hộ kinh doanh" in page and "Ngày hẹn trả (dự kiến)" in page
    assert 'value="1.001193"' not in page
    assert "Không tìm thấy thủ tục" in ui.get("/tiep-nhan?tim=khong co thu tuc nay").get_data(as_text=True)


# --- at the counter, without a dossier (L3) --------------------------------------------------------------
def issue(session, office, kind="guidance", **kwargs):
    args = {"actor_id": office["mot_cua"], "kind": kind, "procedure_code": "1.001612", "applicant": APPLICANT,
            "items": GUIDE if kind == "guidance" else [], "reason": "" if kind == "guidance" else "Không thuộc thẩm quyền",
            "now": NOW, **kwargs}
    return counter.issue_counter_notice(session, **args)


def test_guidance_and_refusal_are_recorded_and_numbered_without_a_dossier(session, office):
    guided = issue(session, office)
    assert (guided.kind, guided.number, guided.year, guided.repeated) == ("guidance", 1, 2026, False)
    assert counter.number_of(guided) == "1/PBS"
    assert guided.items == [{"component": "GIAYDENGHI", "name": "Giấy đề nghị đăng ký hộ kinh doanh",
                             "problem": "Thiếu chữ ký của chủ hộ"}]
    refused = issue(session, office, kind="refusal", applicant={**APPLICANT, "id_number": "017090009999"})
    assert counter.number_of(refused) == "1/PTC" and refused.reason == "Không thuộc thẩm quyền"
    assert count(session, CounterNotice) == 2
    for model in (Dossier, HumanTask, AuditEvent, OutboxEvent, RegisterSequence, DailySequence):
        assert count(session, model) == 0, model.__name__
    today = counter.notices_of_day(session, [guided.unit_id], NOW.date())
    assert [v.number for v in today] == ["1/PTC", "1/PBS"]
    assert today[0].officer == session.get(User, office["mot_cua"]).full_name


def test_the_desk_guides_once_then_warns_and_a_confirmed_second_is_marked(session, office):
    first = issue(session, office)
    with pytest.raises(counter.GuidanceAlreadyGiven) as warned:
        issue(session, office, applicant={**APPLICANT, "id_number": "017 090 001 234", "name": "Nguyen Van An"})
    assert warned.value.previous.id == first.id and "1/PBS" in warned.value.message
    assert count(session, CounterNotice) == 1
    second = issue(session, office, acknowledge_repeat=True)
    assert second.repeated and counter.number_of(second) == "2/PBS"
    # Another procedure, or a refusal, is no second guidance.
    assert not issue(session, office, procedure_code="1.001193",
                     items=[{"component": "TOKHAI", "problem": "Chưa ký"}]).repeated
    assert issue(session, office, kind="refusal").kind == "refusal"


def test_each_unit_guides_its_own_applicants(session, office):
    issue(session, office)
    other = issue(session, office, actor_id=office["other_mot_cua"])
    assert not other.repeated and counter.number_of(other) == "1/PBS"  # numbered per unit


def test_what_a_notice_must_say(session, office):
    with pytest.raises(InvalidInput) as no_items:
        issue(session, office, items=[])
    assert "items" in no_items.value.errors
    with pytest.raises(InvalidInput) as no_reason:
        issue(session, office, kind="refusal", reason="  ")
    assert set(no_reason.value.errors) == {"reason"}
    with pytest.raises(InvalidInput) as outside:  # a document the procedure does not list needs its reason (L1)
        issue(session, office, items=[{"component": None, "name": "Sổ hộ khẩu", "problem": "Bản sao"}])
    assert "items.0.reason" in outside.value.errors
    with pytest.raises(InvalidInput) as bad_phone:
        issue(session, office, applicant={**APPLICANT, "phone": "113"})
    assert set(bad_phone.value.errors) == {"applicant.phone"}
    with pytest.raises(InvalidInput):
        issue(session, office, kind="nhac-nho")
    assert count(session, CounterNotice) == 0


def test_only_the_units_desk_issues_and_sees_its_notices(session, office):
    for who, unit in (("chuyen_vien", None), ("lanh_dao", None), ("other_mot_cua", "H40.1")):
        with pytest.raises(NotAllowed):
            issue(session, office, actor_id=office[who], unit_code=unit)
    assert count(session, CounterNotice) == 0
    notice = issue(session, office)
    from engine.access.actors import load_actor
    assert counter.visible_notice(session, load_actor(session, office["lanh_dao"]), notice.id).number == "1/PBS"
    for who in ("other_mot_cua", "designer"):
        with pytest.raises(NotFound):
            counter.visible_notice(session, load_actor(session, office[who]), notice.id)


def test_the_desk_gives_guidance_prints_it_and_lists_it_on_the_reception_page(ui, session, office):
    login(ui, "mot_cua1")
    r = desk_form(ui, "huong-dan", files=False, **{"thanh-phan": "GIAYDENGHI",
                                                  "van-de-GIAYDENGHI": "Thiếu chữ ký của chủ hộ",
                                                  "reason": "Giấy đề nghị chưa hợp lệ"})
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    session.rollback()
    notice = session.scalar(select(CounterNotice))
    assert r.headers["Location"].endswith(f"/tiep-nhan/phieu/{notice.id}")
    done = ui.get(r.headers["Location"]).get_data(as_text=True)
    assert "1/PBS" in done and "không được tiếp nhận" in done and f'src="/tiep-nhan/phieu/{notice.id}/in"' in done
    form = ui.get(f"/tiep-nhan/phieu/{notice.id}/in").get_data(as_text=True)
    assert "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ" in form and "Số: 1/PBS" in form and "Mẫu số 02" in form
    assert "Giấy đề nghị đăng ký hộ kinh doanh</strong>: Thiếu chữ ký của chủ hộ" in form
    assert "Lý do: Giấy đề nghị chưa hợp lệ" in form and "Ngày 02 tháng 11 năm 2026" in form
    desk = ui.get("/tiep-nhan").get_data(as_text=True)
    assert "Đã hướng dẫn / từ chối tại quầy hôm nay" in desk and f"/tiep-nhan/phieu/{notice.id}/in" in desk
    assert count(session, Dossier) == 0


def test_a_second_guidance_on_the_screen_shows_the_first_and_asks_to_confirm(ui, session, office):
    first = issue(session, office)
    login(ui, "mot_cua1")
    fields = {"thanh-phan": "GIAYDENGHI", "van-de-GIAYDENGHI": "Thiếu bản chính"}
    r = desk_form(ui, "huong-dan", files=False, **fields)
    page = r.get_data(as_text=True)
    assert r.status_code == 409 and "đã được hướng dẫn bổ sung hồ sơ của thủ tục này tại quầy" in page
    assert "phiếu số 1/PBS" in page and f"/tiep-nhan/phieu/{first.id}/in" in page
    assert 'name="xac-nhan-lan-hai"' in page and 'value="Thiếu bản chính"' in page  # what was typed stays
    assert count(session, CounterNotice) == 1
    r = desk_form(ui, "huong-dan", files=False, **fields, **{"xac-nhan-lan-hai": "1"})
    assert r.status_code == 302
    session.rollback()
    assert session.scalar(select(CounterNotice).order_by(CounterNotice.id.desc())).repeated


def test_the_desk_refuses_with_reasons_on_form_03(ui, session, office):
    login(ui, "mot_cua1")
    missing = desk_form(ui, "tu-choi", files=False)
    assert missing.status_code == 422 and 'id="e-reason"' in missing.get_data(as_text=True)
    unexplained = desk_form(ui, "huong-dan", files=False, **{"thanh-phan": "GIAYDENGHI"})
    assert unexplained.status_code == 422
    assert 'id="e-thieu-GIAYDENGHI"' in unexplained.get_data(as_text=True)  # next to the component's row
    r = desk_form(ui, "tu-choi", files=False, reason="Thủ tục không thuộc thẩm quyền của UBND xã")
    assert r.status_code == 302
    notice = session.scalar(select(CounterNotice))
    form = ui.get(f"/tiep-nhan/phieu/{notice.id}/in").get_data(as_text=True)
    assert "Mẫu số 03" in form and "Số: 1/PTC" in form and "Thủ tục không thuộc thẩm quyền của UBND xã" in form
    assert "UBND XÃ TÂN LẠC" in form
    other = login(ui.application.test_client(), "mc_khac")
    assert other.get(f"/tiep-nhan/phieu/{notice.id}/in").status_code == 404
    assert other.get(f"/tiep-nhan/phieu/{notice.id}").status_code == 404


# --- the API ----------------------------------------------------------------------------------------------
def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def dossier_body(**extra):
    return {"procedure_code": "1.001612", "channel": "counter", "applicant": APPLICANT,
            "components": [{"code": "GIAYDENGHI", "filename": "g.pdf", "content_base64": b64(pdf())}], **extra}


def problem_of(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == f"urn:motcua:problem:{code}"
    return body


def test_api_checks_the_applicant_by_the_same_rules_and_keeps_its_contract(client, office):
    h = bearer(client, "mot_cua1")
    bad = dossier_body(applicant={**APPLICANT, "phone": "0123", "email": "x", "id_type": "cmnd", "name": "A" * 201})
    errors = problem_of(client.post("/api/v1/dossiers", json=bad, headers=h), 422, "invalid_input")["errors"]
    assert set(errors["applicant"]) == {"phone", "email", "id_number", "name"}
    # Optional fields stay optional; without a type the number's shape names it; +84 is stored as 0.
    minimal = dossier_body(applicant={"name": "Trần Thị Bình", "id_number": "017090005678", "phone": "+84912000111"})
    created = client.post("/api/v1/dossiers", json=minimal, headers=h)
    assert created.status_code == 201, created.get_json()
    shown = client.get(created.headers["Location"], headers=h).get_json()["applicant"]
    assert shown["phone"] == "0912000111" and shown["id_type"] == "cccd"
    forwarded = client.post("/api/v1/dossiers", json=dossier_body(forward=True), headers=h)
    assert forwarded.status_code == 201 and forwarded.get_json()["status"] == "processing"


def test_api_counter_notices(client, session, office):
    h = bearer(client, "mot_cua1")
    body = {"procedure_code": "1.001612", "kind": "guidance", "applicant": APPLICANT, "items": GUIDE}
    r = client.post("/api/v1/counter-notices", json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert out["number"] == "1/PBS" and out["unit_code"] == "H40.1" and out["items"][0]["component"] == "GIAYDENGHI"
    assert client.get(r.headers["Location"], headers=h).get_json()["id"] == out["id"]
    again = problem_of(client.post("/api/v1/counter-notices", json=body, headers=h), 409, "counter_guidance_repeated")
    assert "1/PBS" in again["detail"]
    assert client.post("/api/v1/counter-notices", json={**body, "acknowledge_repeat": True},
                       headers=h).get_json()["repeated"] is True
    no_reason = problem_of(client.post("/api/v1/counter-notices", json={**body, "kind": "refusal", "items": []},
                                       headers=h), 422, "invalid_input")
    assert "reason" in no_reason["errors"]
    bad = problem_of(client.post("/api/v1/counter-notices", json={**body, "applicant": {**APPLICANT, "phone": "1"}},
                                 headers=h), 422, "invalid_input")
    assert "phone" in bad["errors"]["applicant"]
    problem_of(client.post("/api/v1/counter-notices", json=body, headers=bearer(client, "chuyen_vien1")), 403,
               "not_allowed")
    other = bearer(client, "mc_khac")
    problem_of(client.post("/api/v1/counter-notices", json={**body, "unit_code": "H40.1"}, headers=other), 403,
               "not_allowed")
    problem_of(client.get(f"/api/v1/counter-notices/{out['id']}", headers=other), 404, "not_found")
    assert count(session, CounterNotice) == 2 and count(session, Dossier) == 0
    doc = client.get("/api/v1/openapi.json").get_json()
    assert {"/counter-notices", "/counter-notices/{notice_id}"} <= set(doc["paths"])
    assert "409" in doc["paths"]["/counter-notices"]["post"]["responses"]


# --- the type-ahead, in a real browser (Playwright driving Debian's Chromium) ------------------------------
@pytest.mark.sqlite_only  # the screen over the same engine, like tests/test_browser.py
def test_type_ahead_finds_ignoring_diacritics_and_fills_the_form_without_reloading(live_server, browser, tmp_path):
    pytest.importorskip("playwright.sync_api")
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/dang-nhap")
    page.fill("#username", "mot_cua1")
    page.fill("#password", "matkhau-123")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/hop-thu"))
    page.goto(f"{live_server}/tiep-nhan")
    assert page.locator("#ho-so").is_hidden()
    page.evaluate("window.sameDocument = true")

    search = page.locator("#tim")
    search.press_sequentially("ho kinh doanh")
    options = page.locator("#tim-ket-qua [role=option]")
    options.first.wait_for()
    assert options.all_inner_texts() == ["1.001612 · Đăng ký thành lập hộ kinh doanh"]
    assert search.get_attribute("role") == "combobox" and search.get_attribute("aria-expanded") == "true"
    assert "1 thủ tục phù hợp" in page.locator("#tim-trang-thai").inner_text()
    search.press("Escape")
    assert page.locator("#tim-ket-qua").is_hidden() and search.get_attribute("aria-expanded") == "false"

    search.fill("")
    search.press_sequentially("đăng ký")  # with diacritics: several procedures, walked with the arrow keys
    page.wait_for_function("() => document.querySelectorAll('#tim-ket-qua [role=option]').length >= 2")
    search.press("ArrowDown")
    search.press("ArrowDown")
    second = page.locator("#tim-lc-1")
    assert search.get_attribute("aria-activedescendant") == "tim-lc-1" and second.get_attribute("aria-selected") == "true"
    chosen_code = second.locator(".code").inner_text()
    search.press("Enter")
    page.wait_for_function("() => { const f = document.getElementById('ho-so'); "
                           "return !f.hidden && !f.hasAttribute('aria-busy'); }")
    assert page.evaluate("window.sameDocument") is True  # no reload
    assert page.url.endswith(f"/tiep-nhan?thu-tuc={chosen_code}")
    assert page.locator("input[name=thu-tuc]").input_value() == chosen_code
    assert page.evaluate("document.activeElement.id") == "f-applicant-name"

    # Choosing another one, by code, replaces the components: 1.001612 asks for the application form.
    search.fill("")
    search.press_sequentially("1.0016")
    page.locator("#tim-ket-qua [role=option]").first.wait_for()
    page.locator("#tim-ket-qua [role=option]").first.click()
    page.wait_for_selector("#file_GIAYDENGHI", state="attached")
    assert page.evaluate("window.sameDocument") is True
    assert "Giấy đề nghị đăng ký hộ kinh doanh" in page.locator("#f-components-GIAYDENGHI").inner_text()
    assert page.locator("#f-components-GIAYDENGHI .required").count() == 1
    assert page.locator("#f-components-BIENBANHOP .required").count() == 0
    assert page.locator("input[name=thanh-phan][value=GIAYDENGHI]").count() == 1
    assert re.fullmatch(r"\d\d:\d\d \d\d/\d\d/\d{4}", page.locator("strong[data-procedure=preview]").inner_text())

    # Then the one-step reception and the receipt, ready to print.
    page.fill("#f-applicant-name", "Nguyễn Văn An")
    page.fill("#f-applicant-id_number", "017090001234")
    page.fill("#f-applicant-phone", "+84 912 345 678")
    page.fill("#f-applicant-address", "Xóm Đồng, xã Tân Lạc")
    scan = tmp_path / "giay-de-nghi.pdf"
    scan.write_bytes(pdf("giay de nghi"))
    page.set_input_files("#file_GIAYDENGHI", str(scan))
    page.click("button:text('Tiếp nhận và chuyển xử lý')")
    page.wait_for_url(re.compile(r".*/da-tiep-nhan"))
    assert "Đã tiếp nhận và chuyển xử lý hồ sơ" in page.content()
    assert page.locator("button[data-print-frame]").is_visible()
    receipt = page.frame(name="bien-nhan")
    receipt.wait_for_load_state()
    assert "GIẤY TIẾP NHẬN" in receipt.content() and "0912345678" in receipt.content()
    context.close()


@pytest.mark.sqlite_only
def test_counter_notices_print_on_one_a5_page(live_server, browser, session, office):
    from test_forms_print import A5, assert_pages, print_form

    guided = issue(session, office, reason="Hồ sơ chưa đủ thành phần theo Nghị định 168/2025/NĐ-CP",
                   items=[*GUIDE, {"component": "UYQUYEN", "problem": "Văn bản ủy quyền chưa có chữ ký của các thành viên"},
                          {"component": None, "name": "Giấy xác nhận nơi cư trú", "problem": "Bản chính",
                           "reason": "Để xác định địa điểm kinh doanh thuộc địa bàn xã"}])
    refused = issue(session, office, kind="refusal", items=GUIDE,
                    reason="Thủ tục không thuộc thẩm quyền giải quyết của Ủy ban nhân dân xã")
    page = browser.new_context(locale="vi-VN").new_page()
    page.goto(f"{live_server}/dang-nhap")
    page.fill("#username", "mot_cua1")
    page.fill("#password", "matkhau-123")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/hop-thu"))
    sizes, text = print_form(page, f"{live_server}/tiep-nhan/phieu/{guided.id}/in", A5)
    assert_pages(sizes, A5)
    flat = " ".join(text.split())
    assert "Số: 1/PBS" in flat and "Giấy xác nhận nơi cư trú (ngoài danh mục)" in flat and "NGƯỜI HƯỚNG DẪN" in flat
    sizes, text = print_form(page, f"{live_server}/tiep-nhan/phieu/{refused.id}/in", A5)
    assert_pages(sizes, A5)
    flat = " ".join(text.split())
    assert "Số: 1/PTC" in flat and "PHIẾU TỪ CHỐI TIẾP NHẬN" in flat and "không thuộc thẩm quyền" in flat


# --- the once rule, as a reviewer attacked it ----------------------------------------------------
def test_the_once_rule_sees_the_same_document_typed_as_another_kind(session, office):
    issue(session, office)
    with pytest.raises(counter.GuidanceAlreadyGiven):
        issue(session, office, applicant={**APPLICANT, "id_type": "khac", "id_number": "017 090 001 234"})


def test_a_received_dossier_closes_the_guidance_a_later_application_may_be_guided_again(session, office):
    from datetime import timedelta
    issue(session, office)
    dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code="1.001612", channel="counter",
                             applicant=APPLICANT, components=components_for("1.001612"), now=NOW + timedelta(days=1))
    later = issue(session, office, now=NOW + timedelta(days=90))
    assert not later.repeated
    with pytest.raises(counter.GuidanceAlreadyGiven):   # ... once again for the new application
        issue(session, office, now=NOW + timedelta(days=91))


def test_guidance_only_for_a_procedure_accepting_dossiers_today(session, office):
    from engine.errors import ProcedureNotAccepting
    with pytest.raises(ProcedureNotAccepting):
        issue(session, office, now=vn(2020, 1, 6, 9))   # before any version took effect
    assert count(session, CounterNotice) == 0
    assert issue(session, office, kind="refusal", now=vn(2020, 1, 6, 9)).kind == "refusal"


def test_items_are_bounded_for_the_desk_as_for_the_api(session, office):
    with pytest.raises(InvalidInput) as err:
        issue(session, office, items=[{"component": "GIAYDENGHI", "problem": "x" * 300_000}])
    assert err.value.errors == {"items.0.problem": "at most 2000 characters"}
    assert count(session, CounterNotice) == 0


@pytest.mark.postgres_only
def test_two_desks_guiding_the_same_applicant_at_once_give_one_first_guidance(factory, office):
    """Both check 'no earlier guidance' at the same moment: the notice number's row lock serialises them."""
    import threading
    outcomes, barrier = [], threading.Barrier(2)
    real = counter.previous_guidance

    def slow_previous(*args, **kwargs):
        found = real(*args, **kwargs)
        try:
            barrier.wait(timeout=2)   # both threads are past the check (or one waits on the lock: timeout)
        except threading.BrokenBarrierError:
            pass
        return found

    def desk():
        with factory() as s:
            try:
                outcomes.append(("issued", issue(s, office).repeated))
            except counter.GuidanceAlreadyGiven:
                outcomes.append(("warned", None))

    counter.previous_guidance = slow_previous
    try:
        threads = [threading.Thread(target=desk) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        counter.previous_guidance = real
    assert sorted(outcomes) == [("issued", False), ("warned", None)]
