"""The process designer as a person uses it: unsaved changes are not lost silently, the palette leaves
the diagram visible, durations are hours or days of work (never "PT4H"), and problems name the step
and take you to it. Plus the server-side words those screens share (webapp/i18n.py duration)."""
import io
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from test_language import offences

from engine.workflow import validation
from webapp import i18n
from webapp.designer import element_labels, problem_text

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "matkhau-123"
KNOWN_ROLES = {"mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"}
SHIPPED = (ROOT / "processes" / "1.001612" / "v1.bpmn").read_text(encoding="utf-8")
ISO_ON_SCREEN = re.compile(r"\bP(?:T\d|\d+(?:\.\d+)?D)")  # PT4H, P2D, P1DT4H as a person would read them
DURATIONS = {
    "PT4H": "4 giờ làm việc", "P2D": "2 ngày làm việc", "P1DT4H": "1 ngày 4 giờ làm việc",
    "PT30M": "30 phút làm việc", "PT1.5H": "1,5 giờ làm việc", "p0.5d": "0,5 ngày làm việc",
    "PT0H": "0 giờ làm việc", "P1DT0H": "1 ngày làm việc", "": "Chưa có thời hạn",
    "4 giờ": "«4 giờ» (thời hạn không đúng dạng)", "PT": "«PT» (thời hạn không đúng dạng)",
}


# --- server-side words ----------------------------------------------------------------------------
@pytest.mark.parametrize("iso,words", DURATIONS.items())
def test_a_duration_reads_as_working_hours_or_days(iso, words):
    assert i18n.duration(iso) == words


def test_a_missing_duration_reads_as_missing():
    assert i18n.duration(None) == "Chưa có thời hạn"
    assert i18n.number(1234567) == "1234567" and i18n.number(0.25) == "0,25"


def _codes_in(source: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, source))


def test_every_problem_the_validator_can_raise_has_a_vietnamese_message():
    engine = ROOT / "engine" / "workflow"
    codes = _codes_in((engine / "validation.py").read_text(), r'Problem\(\s*(?:ERROR|WARNING),\s*"(\w+)"')
    codes |= _codes_in((engine / "bpmn_xml.py").read_text(), r'UnsafeXml\(\s*"(\w+)"')
    assert len(codes) > 20
    assert codes <= set(validation.MESSAGES_VI), codes - set(validation.MESSAGES_VI)
    # Step durations are hours or days to a person (a timer's expression is code: it may show "PT5M").
    for code in ("bad_duration", "task_without_duration", "durations_exceed_statutory"):
        assert not ISO_ON_SCREEN.search(validation.MESSAGES_VI[code]), code


def test_problems_carry_their_specifics_in_vietnamese():
    bad = SHIPPED.replace('value="P1D"', 'value="1 ngày"').replace('value="chuyen_vien"', 'value="ke_toan"')
    problems = {p.code: p.as_dict() for p in validation.validate(bad, 3, KNOWN_ROLES).problems}
    assert problems["bad_duration"]["message_vi"].endswith("Giá trị hiện có: «1 ngày».")
    assert problems["unknown_role"]["message_vi"].endswith("Vai trò: «ke_toan».")
    assert set(problems["bad_duration"]) == {"severity", "code", "element_id", "message", "message_vi"}
    long = validation.validate(SHIPPED, 1, None).problems
    [over] = [p for p in long if p.code == "durations_exceed_statutory"]
    assert ("«Tiếp nhận, kiểm tra hồ sơ» → «Thẩm định hồ sơ đăng ký»" in over.message_vi
            and "tổng 24 giờ làm việc, thời hạn giải quyết 1 ngày làm việc (8 giờ)." in over.message_vi)


def test_a_problem_is_named_by_the_element_a_person_sees():
    labels = element_labels(SHIPPED.replace('name="Thẩm định hồ sơ đăng ký"', 'name=""')
                            .replace('<bpmn:sequenceFlow id="Flow_start"', '<bpmn:sequenceFlow id="Flow_start" name=""'))
    assert labels["Task_XemXet"] == "Bước «Xem xét, trình ký»"
    assert labels["Task_ThamDinh"] == "Bước chưa đặt tên (mã Task_ThamDinh)"
    assert labels["Lane_chuyen_vien"] == "Làn «Chuyên viên»"
    assert labels["Gateway_XemXet"] == "Cổng rẽ «Đồng ý?»"
    assert re.fullmatch(r"Nhánh «Trả lại[^»]*» sau «Đồng ý\?»", labels["Flow_review_return"])  # names repeat
    assert labels["Flow_start"] == "Nhánh «Hồ sơ được tiếp nhận» → «Tiếp nhận, kiểm tra hồ sơ»"
    assert labels["EndEvent_TuChoi"] == "Sự kiện «Từ chối giải quyết»"
    problem = {"element_id": "Task_XemXet", "message_vi": "Bước chưa có thời hạn xử lý (thuộc tính duration)."}
    assert problem_text(problem, labels) == "Bước «Xem xét, trình ký»: Bước chưa có thời hạn xử lý (thuộc tính duration)."
    assert problem_text({**problem, "element_id": None}, labels) == problem["message_vi"]
    assert problem_text({**problem, "element_id": "X_1"}, labels).startswith("Phần tử X_1: ")
    assert element_labels("<not xml") == {}


def test_an_uploaded_file_with_problems_names_the_steps(client, office, session):
    client.application.config["WTF_CSRF_ENABLED"] = False
    assert client.post("/dang-nhap", data={"username": "designer1", "password": PASSWORD}).status_code == 302
    data = SHIPPED.replace('value="P1D"', 'value="một ngày"').encode()
    page = client.post("/thiet-ke/1.001612/tai-len", data={"bpmn": (io.BytesIO(data), "x.bpmn")},
                       content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    assert "Bước «Thẩm định hồ sơ đăng ký»: Thời hạn xử lý không hợp lệ" in page
    assert "Task_ThamDinh" not in page


# --- in the browser ---------------------------------------------------------------------------------
@pytest.fixture
def designer(live_server, browser):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed")
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/dang-nhap")
    page.fill("#username", "designer1")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/thiet-ke"))
    page.goto(f"{live_server}/thiet-ke/1.001612")
    page.wait_for_selector("#canvas[data-ready='1']", timeout=15000)
    yield page
    context.close()


def select(page, element_id):
    page.evaluate("""id => { const m = window.motcuaModeler;
                             m.get('selection').select(m.get('elementRegistry').get(id)); }""", element_id)


def duration_in_xml(page, element_id) -> str:
    return page.evaluate("""id => { const bo = window.motcuaModeler.get('elementRegistry').get(id).businessObject;
        const props = (bo.extensionElements ? bo.extensionElements.values : [])
            .filter(v => v.$type === 'spiffworkflow:Properties').flatMap(v => v.properties || []);
        const d = props.find(p => p.name === 'duration'); return d ? d.value : null; }""", element_id)


def boxes_overlap(a, b) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.mark.sqlite_only
def test_leaving_with_unsaved_changes_asks_first_and_not_after_saving(designer, live_server):
    page = designer
    dialogs = []

    def answer(dialog, accept):
        dialogs.append((dialog.type, dialog.message))
        dialog.accept() if accept else dialog.dismiss()

    # Nothing changed: the menu leaves without asking.
    page.on("dialog", lambda d: answer(d, accept=False))
    page.click("nav a:text('Thiết kế quy trình')")
    page.wait_for_url(f"{live_server}/thiet-ke")
    assert dialogs == []

    page.goto(f"{live_server}/thiet-ke/1.001612")
    page.wait_for_selector("#canvas[data-ready='1']", timeout=15000)
    assert page.locator("#dirty").is_hidden()
    select(page, "Task_XemXet")
    page.fill("#p-name", "Xem xét hồ sơ, trình ký")
    page.press("#p-name", "Tab")
    assert page.locator("#dirty").is_visible()

    # An in-app link asks in Vietnamese; declining keeps the page and the edit.
    page.click("nav a:text('Hộp thư')")
    assert dialogs == [("confirm", "Sơ đồ có thay đổi chưa lưu. Nếu rời trang, các thay đổi này sẽ mất. Vẫn rời trang?")]
    assert page.url.endswith("/thiet-ke/1.001612")
    # So do the forms of the page (log-out, upload): declined, nothing is sent.
    page.click("button:text('Đăng xuất')")
    assert len(dialogs) == 2 and page.url.endswith("/thiet-ke/1.001612")
    upload = page.locator("button:text('Tải lên và kiểm tra')")
    upload.click()
    assert len(dialogs) == 3 and page.url.endswith("/thiet-ke/1.001612")
    assert upload.is_enabled() and upload.get_attribute("data-sent") is None  # the double-submit guard never saw it
    # Leaving another way (address bar, reload, closing the tab): the browser's own prompt.
    page.evaluate("() => { window.location.href = '/hop-thu'; }")
    page.wait_for_timeout(300)
    assert dialogs[-1][0] == "beforeunload" and page.url.endswith("/thiet-ke/1.001612")

    # After a successful save nothing is pending: the menu leaves without asking.
    page.click("#btn-save")
    page.wait_for_selector("#status:has-text('phiên bản 2')")
    assert page.locator("#dirty").is_hidden()
    asked = len(dialogs)
    page.click("nav a:text('Thiết kế quy trình')")
    page.wait_for_url(f"{live_server}/thiet-ke")
    assert len(dialogs) == asked


@pytest.mark.sqlite_only
def test_undoing_every_edit_leaves_nothing_to_ask_about(designer):
    page = designer
    select(page, "Task_XemXet")
    page.fill("#p-name", "Tên khác")
    page.press("#p-name", "Tab")
    assert page.locator("#dirty").is_visible()
    page.evaluate("() => window.motcuaModeler.get('commandStack').undo()")
    assert page.locator("#dirty").is_hidden()


@pytest.mark.sqlite_only
def test_the_palette_does_not_cover_the_first_lane(designer):
    page = designer
    palette = page.locator(".djs-palette").bounding_box()
    canvas = page.locator("#canvas").bounding_box()
    for element in ("Lane_mot_cua", "Participant_Process_1_001612", "StartEvent_TiepNhan"):
        box = page.locator(f".djs-element[data-element-id='{element}']").bounding_box()
        assert not boxes_overlap(palette, box), (element, palette, box)
    lane = page.locator(".djs-element[data-element-id='Lane_mot_cua']").bounding_box()
    assert lane["x"] >= palette["x"] + palette["width"]
    assert canvas["x"] <= lane["x"] and lane["x"] + lane["width"] <= canvas["x"] + canvas["width"] + 1  # all in view


@pytest.mark.sqlite_only
def test_durations_are_hours_or_days_of_work_in_the_panel_and_iso_in_the_file(designer, live_server, session):
    page = designer
    select(page, "Task_XemXet")  # PT4H in the shipped file
    assert page.input_value("#p-duration") == "4" and page.input_value("#p-duration-unit") == "H"
    assert "Thời hạn hiện tại: 4 giờ làm việc" in page.inner_text("#props")
    select(page, "Task_ThamDinh")  # P1D
    assert page.input_value("#p-duration") == "1" and page.input_value("#p-duration-unit") == "D"
    assert "1 ngày làm việc" in page.inner_text("#props")
    assert not ISO_ON_SCREEN.search(page.inner_text("main"))
    assert offences(page.inner_text("aside")) == []  # no element id, code or English in the panel either

    # A branch's decision is a button a person knows by its Vietnamese name.
    select(page, "Flow_review_approve")
    assert page.input_value("#p-decision") == "approve"
    assert page.locator("#p-decision option:checked").inner_text() == "Chuyển xử lý"
    assert offences(page.inner_text("aside")) == []

    # Bad input: said next to the field, nothing written.
    select(page, "Task_KyDuyet")  # PT6H
    page.fill("#p-duration", "bốn")
    page.press("#p-duration", "Tab")
    assert "một số lớn hơn 0" in page.inner_text("#p-duration-error")
    assert page.get_attribute("#p-duration", "aria-invalid") == "true"
    assert duration_in_xml(page, "Task_KyDuyet") == "PT6H"

    # "4" + "giờ làm việc" writes PT4H; "1,5" + "ngày làm việc" writes P1.5D.
    page.fill("#p-duration", "4")
    page.select_option("#p-duration-unit", "H")
    page.press("#p-duration", "Tab")
    assert page.locator("#p-duration-error").is_hidden()
    assert duration_in_xml(page, "Task_KyDuyet") == "PT4H"
    assert "Thời hạn hiện tại: 4 giờ làm việc" in page.inner_text("#props")
    select(page, "Task_VaoSo")
    page.fill("#p-duration", "0,5")
    page.press("#p-duration", "Tab")
    page.select_option("#p-duration-unit", "D")
    assert duration_in_xml(page, "Task_VaoSo") == "P0.5D"
    assert "Thời hạn hiện tại: 0,5 ngày làm việc" in page.inner_text("#props")

    # A value pasted from another modeler's file is taken as it is, and shown in words.
    select(page, "Task_TiepNhan")
    page.fill("#p-duration", "pt1h")
    page.press("#p-duration", "Tab")
    assert duration_in_xml(page, "Task_TiepNhan") == "PT1H" and page.input_value("#p-duration") == "1"

    page.click("#btn-save")
    page.wait_for_selector("#status:has-text('phiên bản 2')")
    from engine import catalog
    session.rollback()
    steps = catalog.get_version(session, "1.001612", 2).meta["steps"]
    assert steps["Task_KyDuyet"]["duration"] == "PT4H" and steps["Task_VaoSo"]["duration"] == "P0.5D"

    # The panel and the server say the same words for the same value.
    samples = list(DURATIONS)
    said = page.evaluate("list => list.map(v => window.motcuaDuration.words(v))", samples)
    assert said == [i18n.duration(v) for v in samples]


@pytest.mark.sqlite_only
def test_a_problem_names_the_step_and_a_click_takes_you_to_it(designer):
    page = designer
    page.evaluate("""() => {
        const m = window.motcuaModeler, modeling = m.get('modeling'), reg = m.get('elementRegistry');
        const lane = reg.get('Lane_chuyen_vien'), flow = reg.get('Flow_forward'), next = reg.get('Task_ThamDinh');
        const task = modeling.createShape({ type: 'bpmn:UserTask' }, { x: 330, y: lane.y + lane.height / 2 }, lane);
        modeling.updateProperties(task, { id: 'Activity_1d63nk5', name: 'Kiểm tra thực địa' });
        modeling.reconnectEnd(flow, task, { x: task.x, y: task.y + 40 });
        modeling.connect(task, next);
        m.get('selection').select([]);
        m.get('canvas').scroll({ dx: -4000, dy: -2000 });  // far away from it
    }""")
    page.click("#btn-check")
    page.wait_for_selector("#problems li")
    problems = page.inner_text("#problems")
    assert "Bước «Kiểm tra thực địa»: Bước chưa có thời hạn xử lý" in problems
    assert "Activity_1d63nk5" not in problems and "Task_" not in problems
    page.click("#problems button:has-text('Bước «Kiểm tra thực địa»')")
    selected = page.evaluate("() => window.motcuaModeler.get('selection').get().map(e => e.id)")
    assert selected == ["Activity_1d63nk5"]
    assert page.input_value("#p-name") == "Kiểm tra thực địa"
    assert offences(page.inner_text("aside")) == []
    task = page.locator(".djs-element.selected[data-element-id='Activity_1d63nk5']").bounding_box()
    canvas, palette = page.locator("#canvas").bounding_box(), page.locator(".djs-palette").bounding_box()
    assert canvas["x"] <= task["x"] and task["x"] + task["width"] <= canvas["x"] + canvas["width"]
    assert canvas["y"] <= task["y"] and task["y"] + task["height"] <= canvas["y"] + canvas["height"]
    assert not boxes_overlap(task, palette)


def test_the_iso_pattern_of_these_tests_finds_what_it_must():
    assert ISO_ON_SCREEN.search("thời hạn PT4H") and ISO_ON_SCREEN.search("P2D") and ISO_ON_SCREEN.search("P1.5D")
    assert not ISO_ON_SCREEN.search("4 giờ làm việc · PHP · P.2")


# --- a step's result document (docs/bpmn-conventions.md, "Result documents") --------------------------
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
SHIPPED_CAMUNDA = SHIPPED.replace("spiffworkflow:properties", "camunda:properties").replace(
    "spiffworkflow:property", "camunda:property").replace(f'xmlns:spiffworkflow="{SPIFF_NS}"', f'xmlns:camunda="{CAMUNDA}"')


def properties_in(xml: str, element_id: str) -> list[tuple[str, str, str]]:
    """(namespace, name, value) of each property in the element's extension elements, in file order."""
    from lxml import etree
    root = etree.fromstring(xml.encode())
    [element] = root.xpath("//*[@id=$id]", id=element_id)
    return [(etree.QName(p).namespace, p.get("name"), p.get("value"))
            for p in element.iterfind("{*}extensionElements/{*}properties/{*}property")]


def result_of(xml: str, element_id: str) -> str | None:
    found = [value for _, name, value in properties_in(xml, element_id) if name == "result"]
    assert len(found) <= 1, found
    return found[0] if found else None


def diagram_xml(page) -> str:
    return page.evaluate("() => window.motcuaModeler.saveXML({ format: true }).then(r => r.xml)")


def open_file(page, xml: str):
    page.set_input_files("#file", files=[{"name": "quy-trinh.bpmn", "mimeType": "application/xml",
                                          "buffer": xml.encode()}])
    page.wait_for_selector("#status:has-text('Đã mở tệp quy-trinh.bpmn')")


def undo(page):
    page.evaluate("() => window.motcuaModeler.get('commandStack').undo()")


def redo(page):
    page.evaluate("() => window.motcuaModeler.get('commandStack').redo()")


def shown_result(page) -> tuple[str, str]:
    return page.input_value("#p-result"), page.locator("#p-result option:checked").inner_text()


def saved_version(session, number: int):
    from engine import catalog
    session.rollback()
    return catalog.get_version(session, "1.001612", number)


@pytest.mark.sqlite_only
def test_a_steps_result_document_is_chosen_in_the_panel_and_saved_in_the_file(designer, session):
    page = designer
    select(page, "Task_KyDuyet")  # the leader signs: result = file in the shipped file
    assert shown_result(page) == ("file", "Đính kèm văn bản ký số (PDF)")
    assert "phải đính kèm văn bản kết quả đã ký số (tệp PDF" in page.inner_text("#p-result-help")
    select(page, "Task_VaoSo")  # the clerk registers it: result = number
    assert shown_result(page) == ("number", "Ghi số và ngày ký văn bản")
    assert "phải ghi số văn bản kết quả và ngày ký" in page.inner_text("#p-result-help")
    select(page, "Task_XemXet")
    assert shown_result(page) == ("", "Không ghi kết quả")
    assert [o.strip() for o in page.locator("#p-result option").all_inner_texts()] == [
        "Không ghi kết quả", "Đính kèm văn bản ký số (PDF)", "Ghi số và ngày ký văn bản", "Cả hai"]
    assert offences(page.inner_text("aside")) == []
    select(page, "Gateway_XemXet")
    assert page.locator("#p-result").count() == 0  # a step's property only

    select(page, "Task_XemXet")
    page.select_option("#p-result", label="Cả hai")
    assert page.locator("#dirty").is_visible()
    assert "đính kèm văn bản kết quả đã ký số (tệp PDF) và ghi số, ngày ký" in page.inner_text("#p-result-help")
    assert result_of(diagram_xml(page), "Task_XemXet") == "file number"
    select(page, "Task_VaoSo")
    page.select_option("#p-result", label="Không ghi kết quả")
    assert "không phải ghi nhận văn bản kết quả" in page.inner_text("#p-result-help")
    select(page, "Task_XemXet")  # selected again: the panel reads what the diagram now says
    assert shown_result(page) == ("file number", "Cả hai")

    page.click("#btn-save")
    page.wait_for_selector("#status:has-text('phiên bản 2')")
    assert page.locator("#dirty").is_hidden()
    version = saved_version(session, 2)
    assert version.status == "draft"
    assert properties_in(version.bpmn_xml, "Task_XemXet") == [(SPIFF_NS, "duration", "PT4H"),
                                                               (SPIFF_NS, "result", "file number")]
    assert properties_in(version.bpmn_xml, "Task_VaoSo") == [(SPIFF_NS, "duration", "PT4H")]  # gone, duration kept
    assert result_of(version.bpmn_xml, "Task_KyDuyet") == "file"
    steps = version.meta["steps"]
    assert steps["Task_XemXet"]["result"] == ["file", "number"] and steps["Task_VaoSo"]["result"] == []


@pytest.mark.sqlite_only
def test_undo_puts_back_a_result_and_a_duration_and_the_panel_shows_it(designer):
    page = designer
    select(page, "Task_KyDuyet")
    page.select_option("#p-result", "")
    assert result_of(diagram_xml(page), "Task_KyDuyet") is None and page.locator("#dirty").is_visible()
    undo(page)
    assert result_of(diagram_xml(page), "Task_KyDuyet") == "file"
    assert shown_result(page) == ("file", "Đính kèm văn bản ký số (PDF)")
    assert page.locator("#dirty").is_hidden()
    redo(page)
    assert result_of(diagram_xml(page), "Task_KyDuyet") is None and shown_result(page)[0] == ""
    undo(page)

    page.fill("#p-duration", "1")
    page.press("#p-duration", "Tab")
    assert duration_in_xml(page, "Task_KyDuyet") == "PT1H"
    undo(page)
    assert duration_in_xml(page, "Task_KyDuyet") == "PT6H" and page.input_value("#p-duration") == "6"
    assert properties_in(diagram_xml(page), "Task_KyDuyet") == [(SPIFF_NS, "duration", "PT6H"),
                                                                (SPIFF_NS, "result", "file")]
    assert page.locator("#dirty").is_hidden()


@pytest.mark.sqlite_only
def test_a_result_the_panel_does_not_know_is_shown_as_it_is_and_the_check_names_both_problems(designer):
    page = designer
    open_file(page, SHIPPED.replace('name="result" value="file"', 'name="result" value="pdf"'))
    select(page, "Task_KyDuyet")
    assert shown_result(page) == ("pdf", "«pdf» (giá trị không hợp lệ)")
    assert "Giá trị «pdf» trong tệp không hợp lệ" in page.inner_text("#p-result-help")
    select(page, "Task_VaoSo")
    select(page, "Task_KyDuyet")
    assert shown_result(page)[0] == "pdf"  # looking is not changing
    assert result_of(diagram_xml(page), "Task_KyDuyet") == "pdf"

    # A step that records a result but cannot approve: its forward branch now refuses.
    select(page, "Task_XemXet")
    page.select_option("#p-result", "number")
    select(page, "Flow_review_approve")
    page.select_option("#p-decision", "refuse")
    page.evaluate("() => window.motcuaModeler.get('selection').select([])")
    page.click("#btn-check")
    page.wait_for_selector("#problems li")
    problems = page.inner_text("#problems")
    bad = ("Bước «Ký giấy chứng nhận đăng ký hộ kinh doanh»: " + validation.MESSAGES_VI["bad_result_property"]
           + " Giá trị hiện có: «pdf».")
    without = "Bước «Xem xét, trình ký»: " + validation.MESSAGES_VI["result_without_approve"]
    assert bad in problems and without in problems
    assert offences(problems) == []  # the problems read as Vietnamese, without codes
    page.click(f"#problems button:has-text('{without[:40]}')")
    assert page.evaluate("() => window.motcuaModeler.get('selection').get().map(e => e.id)") == ["Task_XemXet"]
    assert shown_result(page)[0] == "number"
    page.click(f"#problems button:has-text('{bad[:40]}')")
    assert shown_result(page)[0] == "pdf"

    # Chosen from the list: the known value replaces it, and the check no longer names it.
    page.select_option("#p-result", "file")
    assert result_of(diagram_xml(page), "Task_KyDuyet") == "file"
    page.click("#btn-check")
    page.wait_for_function("() => !document.querySelector('#problems').innerText.includes('«pdf»')")
    assert without in page.inner_text("#problems")


@pytest.mark.sqlite_only
def test_a_camunda_file_keeps_its_namespace_when_the_panel_edits_it(designer, session):
    page = designer
    open_file(page, SHIPPED_CAMUNDA)
    select(page, "Task_KyDuyet")
    assert page.input_value("#p-duration") == "6" and page.input_value("#p-duration-unit") == "H"
    assert shown_result(page) == ("file", "Đính kèm văn bản ký số (PDF)")
    page.select_option("#p-result", label="Cả hai")
    page.fill("#p-duration", "5")
    page.press("#p-duration", "Tab")
    select(page, "Task_VaoSo")
    assert shown_result(page)[0] == "number"
    page.select_option("#p-result", label="Không ghi kết quả")
    select(page, "Task_XemXet")
    page.select_option("#p-result", label="Ghi số và ngày ký văn bản")
    xml = diagram_xml(page)
    assert SPIFF_NS not in xml
    assert properties_in(xml, "Task_KyDuyet") == [(CAMUNDA, "duration", "PT5H"), (CAMUNDA, "result", "file number")]
    assert properties_in(xml, "Task_VaoSo") == [(CAMUNDA, "duration", "PT4H")]
    assert properties_in(xml, "Task_XemXet") == [(CAMUNDA, "duration", "PT4H"), (CAMUNDA, "result", "number")]
    undo(page)
    assert properties_in(diagram_xml(page), "Task_XemXet") == [(CAMUNDA, "duration", "PT4H")]
    redo(page)

    page.click("#btn-save")
    page.wait_for_selector("#status:has-text('phiên bản 2')")
    version = saved_version(session, 2)
    assert properties_in(version.bpmn_xml, "Task_KyDuyet") == [(CAMUNDA, "duration", "PT5H"),
                                                               (CAMUNDA, "result", "file number")]
    steps = version.meta["steps"]
    assert steps["Task_KyDuyet"]["result"] == ["file", "number"] and steps["Task_KyDuyet"]["duration"] == "PT5H"
    assert steps["Task_VaoSo"]["result"] == [] and steps["Task_XemXet"]["result"] == ["number"]


def test_the_panels_words_for_a_result_are_read_as_the_engine_reads_them():
    """The stored value the panel writes for both is one the engine reads as both."""
    from engine.workflow import bpmn_xml
    source = (ROOT / "webapp" / "static" / "modeler.js").read_text(encoding="utf-8")
    written = re.findall(r'^\s*\["([a-z ]*)", "([^"]+)",$', source, re.MULTILINE)
    assert [label for _, label in written] == ["Không ghi kết quả", "Đính kèm văn bản ký số (PDF)",
                                               "Ghi số và ngày ký văn bản", "Cả hai"]
    assert [bpmn_xml.result_values(value) for value, _ in written] == [[], ["file"], ["number"], ["file", "number"]]
