"""The printable forms 01–07 (TT 03/2025 Phụ lục I) printed by a real Chromium: the page count, the
paper size, and no text running off the sheet. Each test prints a form to PDF the way a browser's
print dialog does (print media, the stylesheet's @page size) and measures the laid-out sheet."""
import re
import shutil
from datetime import date
from types import SimpleNamespace

import pytest
from conftest import APPLICANT, pdf, result_for, vn
from sqlalchemy import select, update

from engine import catalog, dossiers
from engine.store.models import Dossier, HumanTask, ProcedureVersion, SupplementRequest
from webapp import i18n

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "matkhau-123"

pytestmark = pytest.mark.sqlite_only  # like test_browser: the UI over the same engine

MM = 96 / 25.4  # CSS pixels per millimetre
PT = 25.4 / 72  # millimetres per PDF point
# The paper each form is printed on (print.css): size and printable width (the page minus its margins).
A5 = {"size": (148, 210), "printable": 132}
A4 = {"size": (210, 297), "printable": 186}
A4_LANDSCAPE = {"size": (297, 210), "printable": 277}

# A procedure with the most components form 01 must fit on one A5 page, with long names.
LONG_NAME = ("Cấp giấy chứng nhận đủ điều kiện hoạt động dịch vụ hỗ trợ sinh hoạt, chăm sóc người cao tuổi "
             "và người khuyết tật tại cộng đồng trên địa bàn xã")
COMPONENTS = [
    ("TOKHAI", "Tờ khai đề nghị cấp giấy chứng nhận theo mẫu quy định, có chữ ký của người đại diện theo pháp luật "
               "và đóng dấu (nếu có)"),
    ("CCCD", "Bản sao có chứng thực hoặc bản sao kèm bản chính để đối chiếu căn cước công dân của người đứng đầu "
             "cơ sở dịch vụ"),
    ("DIADIEM", "Giấy tờ chứng minh quyền sử dụng hợp pháp địa điểm hoạt động (hợp đồng thuê nhà, giấy chứng nhận "
                "quyền sử dụng đất hoặc giấy tờ tương đương)"),
    ("NHANSU", "Danh sách nhân viên trực tiếp chăm sóc kèm bản sao văn bằng, chứng chỉ chuyên môn về công tác xã hội, "
               "điều dưỡng hoặc y tế"),
    ("PCCC", "Văn bản nghiệm thu về phòng cháy, chữa cháy hoặc biên bản kiểm tra an toàn phòng cháy, chữa cháy của cơ "
             "quan có thẩm quyền còn hiệu lực"),
    ("VESINH", "Giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm đối với cơ sở có tổ chức nấu ăn tập trung cho "
               "người được chăm sóc"),
    ("QUYCHE", "Quy chế hoạt động của cơ sở, trong đó nêu rõ quyền, nghĩa vụ của người được chăm sóc, gia đình người "
               "được chăm sóc và nhân viên"),
    ("UYQUYEN", "Văn bản ủy quyền cho người nộp hồ sơ trong trường hợp người nộp không phải là người đại diện theo "
                "pháp luật của cơ sở (nếu có)"),
]
PROCEDURE_CODE = "1.999801"
LONG_APPLICANT = {**APPLICANT, "name": "Công ty trách nhiệm hữu hạn Dịch vụ chăm sóc người cao tuổi Hạnh Phúc Tân Lạc",
                  "email": "hanhphuc.tanlac@example.vn",
                  "address": "Tổ dân phố Đồng Tâm, khu 8, đường Nguyễn Tất Thành kéo dài, xã Tân Lạc, tỉnh Phú Thọ"}
LONG_NOTE = ("Đã đối chiếu bản chính giấy chứng nhận quyền sử dụng đất số CS-0123456789 với bản sao, "
             "đề nghị lãnh đạo xem xét nội dung phòng cháy, chữa cháy")


# --- the running application and a browser: `live_server` and `browser` in conftest.py ------------


@pytest.fixture
def desk(browser, live_server):
    """The one-stop desk's officer, logged in; a viewport wider than any paper, so the sheet's own
    width (not the window's) decides where lines break."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/dang-nhap")
    page.fill("#username", "mot_cua1")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/hop-thu"))
    yield page
    context.close()


@pytest.fixture
def procedure(session, office):
    """A procedure with 8 components with long names, on the process of a shipped procedure that
    has a step which may request a supplement."""
    base = next(v for v in session.scalars(select(ProcedureVersion).where(ProcedureVersion.status == "published")
                                           .order_by(ProcedureVersion.id))
                if any("request_supplement" in s["decisions"] for s in v.meta["steps"].values()))
    catalog.create_procedure(session, actor_id=None, data={
        "code": PROCEDURE_CODE, "name": LONG_NAME, "field": "Bảo trợ xã hội", "level": "xa",
        "statutory_days": base.meta["statutory_days"], "online_level": "mot_phan",
        "components": [{"code": code, "name": name, "required": True, "copies": 1} for code, name in COMPONENTS],
    })
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code=PROCEDURE_CODE, bpmn=base.bpmn_xml)
    catalog.publish_version(session, actor_id=None, procedure_code=PROCEDURE_CODE, number=version.number,
                            effective_from=date(2025, 7, 1))
    return PROCEDURE_CODE


def receive(session, office, at=None, applicant=None):
    record = dossiers.receive_dossier(
        session, actor_id=office["mot_cua"], procedure_code=PROCEDURE_CODE, channel="counter",
        applicant=applicant or APPLICANT, now=at or vn(2026, 11, 2, 9, 0),
        components=[{"code": code, "filename": f"{code.lower()}.pdf", "content": pdf(code),
                     "content_type": "application/pdf"} for code, _ in COMPONENTS])
    return session.get(Dossier, record.id)


def open_tasks(session, d):
    session.expire_all()
    return session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id, HumanTask.completed_at.is_(None))
                           .order_by(HumanTask.started_at)).all()


def advance(session, office, d, until, start, note=""):
    """Approve the open steps, an hour apart from `start`, until a step offers `until` (a decision) or,
    with until=None, until the process has no open step. Returns the step reached and the time."""
    when = start
    for _ in range(20):
        tasks = open_tasks(session, d)
        if not tasks or (until and until in tasks[0].decisions):
            return (tasks[0] if tasks else None), when
        task = tasks[0]
        dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id, data={"decision": "approve"},
                               note=note, result=result_for(session, task, when), now=when)
        when = when.replace(hour=when.hour + 1) if when.hour < 16 else when.replace(day=when.day + 1, hour=8)
    raise AssertionError("the process did not get there")


# --- printing and measuring ---------------------------------------------------------------------
MEASURE = """(printableMm) => {
  const px = printableMm * 96 / 25.4;
  const sheet = document.querySelector('.sheet');
  const s = sheet.getBoundingClientRect();
  const problems = [];
  const describe = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().replace(/\\s+/g, '.') : '') + ' «' + (el.textContent || '').trim().slice(0, 60) + '»';
  if (sheet.scrollWidth > sheet.clientWidth + 1) problems.push('sheet scrolls: ' + sheet.scrollWidth + ' > ' + sheet.clientWidth);
  for (const el of sheet.querySelectorAll('*')) {
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;  // inside the QR code
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;  // not rendered
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline')
      problems.push('overflows its box: ' + describe(el) + ' ' + el.scrollWidth + ' > ' + el.clientWidth);
    if (r.right > s.right + 1 || r.left < s.left - 1)
      problems.push('outside the sheet: ' + describe(el) + ' [' + r.left.toFixed(1) + ', ' + r.right.toFixed(1)
                    + '] vs [' + s.left.toFixed(1) + ', ' + s.right.toFixed(1) + ']');
  }
  return {sheetWidth: s.width, printableWidth: px, problems: problems, text: sheet.innerText};
}"""


def print_form(page, url, paper):
    """Print `url` as the browser's print dialog would; returns (page sizes in mm, sheet text)."""
    page.emulate_media(media="screen")
    page.goto(url)
    page.emulate_media(media="print")
    measured = page.evaluate(MEASURE, paper["printable"])
    assert measured["sheetWidth"] <= measured["printableWidth"] + 0.5, (
        f"the sheet is {measured['sheetWidth'] / MM:.1f} mm wide, the paper prints {paper['printable']} mm")
    assert measured["problems"] == [], "text runs off the sheet:\n" + "\n".join(measured["problems"])
    document = page.pdf(prefer_css_page_size=True)
    return pdf_pages(document), measured["text"]


def pdf_pages(document: bytes) -> list[tuple[float, float]]:
    """Every page's size in mm, from the page objects' MediaBox (`/Type /Page`, not `/Pages`)."""
    sizes = []
    for match in re.finditer(rb"/Type\s*/Page(?![a-zA-Z])", document):
        obj_start = document.rfind(b" obj", 0, match.start())
        obj_end = document.find(b"endobj", match.end())
        box = re.search(rb"/MediaBox\s*\[\s*([\d.\s-]+)\]", document[obj_start:obj_end])
        assert box, "a page without its own MediaBox"
        x0, y0, x1, y1 = (float(v) for v in box.group(1).split())
        sizes.append((round((x1 - x0) * PT), round((y1 - y0) * PT)))
    return sizes


def assert_pages(sizes, paper, count=1):
    assert len(sizes) == count, f"{len(sizes)} pages printed, expected {count}"
    assert all(size == paper["size"] for size in sizes), f"pages {sizes} mm, expected {paper['size']}"


# --- the forms ----------------------------------------------------------------------------------
def test_form_01_with_eight_long_components_fits_one_a5_page(session, office, procedure, desk, live_server):
    d = receive(session, office, applicant=LONG_APPLICANT)
    sizes, text = print_form(desk, f"{live_server}/ho-so/{d.code}/in/01", A5)
    assert_pages(sizes, A5)
    assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in text
    flat = " ".join(text.split())
    for _, name in COMPONENTS:
        assert name in flat
    assert "Ngày 02 tháng 11 năm 2026" in flat  # the receipt's own date, not the day it is reprinted
    # The register line carries the register's numbers, never the daily sequence of the dossier code.
    register = re.search(r"Quyển số: (\S+), Số thứ tự: (\S+)", flat)
    assert register, flat
    if d.register_no is not None:
        assert register.groups() == (str(d.register_year), str(d.register_no))
    else:
        assert register.groups() == ("…", "…")


def test_form_02_prints_one_a5_page_with_every_kind_of_item(session, office, procedure, desk, live_server):
    d = receive(session, office)
    task, _ = advance(session, office, d, "request_supplement", vn(2026, 11, 2, 9, 30))
    # Friday 6/11: past the 3 working days after reception (Thu 5/11 17:00), so the request is late.
    dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id, now=vn(2026, 11, 6, 10, 0),
                           note="Hồ sơ chưa đủ điều kiện thẩm định",
                           data={"decision": "request_supplement", "acknowledge_late": True, "items": [
                               {"component": "TOKHAI", "problem": "Tờ khai thiếu chữ ký của người đại diện"},
                               {"component": None, "name": "Bản vẽ mặt bằng khu vực chăm sóc",
                                "problem": "Chưa có trong hồ sơ",
                                "reason": "Để kiểm tra diện tích tối thiểu cho mỗi người được chăm sóc"}]})
    # A request stored before items became objects: plain strings still print.
    request = session.scalar(select(SupplementRequest).where(SupplementRequest.dossier_id == d.id))
    session.execute(update(SupplementRequest).where(SupplementRequest.id == request.id).values(
        items=[*request.items, "Giấy xác nhận của Công an xã về địa điểm hoạt động"]))
    session.commit()

    sizes, text = print_form(desk, f"{live_server}/ho-so/{d.code}/in/02", A5)
    assert_pages(sizes, A5)  # no blank second page
    flat = " ".join(text.split())
    assert f"{COMPONENTS[0][1]}: Tờ khai thiếu chữ ký của người đại diện" in flat  # the component's name, then the problem
    assert "Bản vẽ mặt bằng khu vực chăm sóc (ngoài danh mục)" in flat
    assert "Để kiểm tra diện tích tối thiểu cho mỗi người được chăm sóc" in flat
    assert "Giấy xác nhận của Công an xã về địa điểm hoạt động" in flat
    assert "Ngày 06 tháng 11 năm 2026" in flat
    assert ("Yêu cầu bổ sung sau thời hạn 03 ngày làm việc kể từ ngày tiếp nhận: thời gian giải quyết không được "
            "tính lại.") in flat
    session.refresh(request)
    if request.respond_by is not None:
        assert f"Hạn bổ sung: {i18n.dt(request.respond_by)}" in flat
    else:
        assert "Hạn bổ sung" not in flat


def test_form_03_carries_the_refusal_date_reason_and_lateness(session, office, procedure, desk, live_server):
    d = receive(session, office)
    advance(session, office, d, "request_supplement", vn(2026, 11, 2, 9, 30))
    # Monday 9/11, after the legal due date: refused, and recorded as refused after the processing time.
    dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=d.code,
                            reason="Địa điểm hoạt động không bảo đảm diện tích tối thiểu theo quy định",
                            now=vn(2026, 11, 9, 10, 0))
    session.refresh(d)
    sizes, text = print_form(desk, f"{live_server}/ho-so/{d.code}/in/03", A5)
    assert_pages(sizes, A5)
    flat = " ".join(text.split())
    assert "Ngày 09 tháng 11 năm 2026" in flat
    assert "Địa điểm hoạt động không bảo đảm diện tích tối thiểu theo quy định" in flat
    assert d.finish_result == "late"
    assert "Hồ sơ bị từ chối sau khi đã hết thời hạn giải quyết theo quy định" in flat


def test_form_04_has_the_official_title_and_the_apology_date(session, office, procedure, desk, live_server):
    d = receive(session, office)
    advance(session, office, d, "request_supplement", vn(2026, 11, 2, 9, 30))
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code,
                           reason="Cần xác minh thêm địa điểm hoạt động với Công an xã",
                           new_due_at=vn(2026, 11, 12, 17, 0), now=vn(2026, 11, 3, 16, 0))
    sizes, text = print_form(desk, f"{live_server}/ho-so/{d.code}/in/04", A5)
    assert_pages(sizes, A5)
    flat = " ".join(text.split())
    assert "VĂN BẢN XIN LỖI VÀ ĐỀ NGHỊ GIA HẠN THỜI GIAN GIẢI QUYẾT" in flat  # TT 03/2025 Phụ lục I, mẫu số 04
    assert "Ngày 03 tháng 11 năm 2026" in flat
    assert "Cần xác minh thêm địa điểm hoạt động với Công an xã" in flat


def test_form_05_carries_the_decision_date(session, office, procedure, desk, live_server):
    d = receive(session, office)
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code,
                              reason="Công dân xin rút để bổ sung giấy tờ", now=vn(2026, 11, 4, 14, 0))
    sizes, text = print_form(desk, f"{live_server}/ho-so/{d.code}/in/05", A5)
    assert_pages(sizes, A5)
    flat = " ".join(text.split())
    assert "Ngày 04 tháng 11 năm 2026" in flat
    assert "Ngày ông/bà đề nghị dừng giải quyết: 04/11/2026" in flat
    assert "Lý do: Công dân xin rút để bổ sung giấy tờ" in flat


def test_form_05_prints_the_applicants_own_request(app, session, office, procedure):
    """The request's date and reason (`withdrawal`) are printed, not the decision's; an older dossier
    without a recorded request falls back to the decision's date."""
    from flask import render_template

    from engine.reporting import views

    d = receive(session, office)
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="x",
                              now=vn(2026, 11, 4, 14, 0))
    session.refresh(d)
    ctx = {**views.dossier_page(session, d, vn(2026, 11, 4, 15, 0)), "dossier": d, "qr": "",
           "title": "Thông báo dừng giải quyết hồ sơ"}
    with app.test_request_context():
        asked = render_template("forms/f05.html", **{**ctx, "withdrawal": {
            "requested_at": vn(2026, 11, 3, 8, 0), "reason": "Chuyển nơi cư trú"}})
        older = render_template("forms/f05.html", **{**ctx, "withdrawal": None})
    assert "Ngày ông/bà đề nghị dừng giải quyết: 03/11/2026" in asked and "Lý do: Chuyển nơi cư trú" in asked
    assert "Ngày ông/bà đề nghị dừng giải quyết: 04/11/2026" in older and "Lý do: …" in older
    assert "Ngày 04 tháng 11 năm 2026" in asked and "Ngày 04 tháng 11 năm 2026" in older


def test_form_06_fits_the_a4_width_and_shows_the_hand_back(session, office, procedure, desk, live_server):
    d = receive(session, office, applicant=LONG_APPLICANT)
    advance(session, office, d, None, vn(2026, 11, 2, 9, 30), note=LONG_NOTE)
    session.refresh(d)
    assert d.status == "result_ready"
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=d.code, now=vn(2026, 11, 5, 15, 30))
    sizes, text = print_form(desk, f"{live_server}/ho-so/{d.code}/in/06", A4)
    assert_pages(sizes, A4)
    flat = " ".join(text.split())
    assert "Tính thời gian từ" in flat
    assert "Thời gian trả kết quả: 15:30 05/11/2026" in flat  # the hand-back, not the appointment


def test_form_06_shows_when_each_steps_clock_started(app, session, office, procedure):
    """A hand-over after office hours: the slip shows the real hand-over and, in its own column, the
    time the step's working time started (`clock_from`, once the engine's slip rows carry it)."""
    from flask import render_template

    from engine.reporting import views

    d = receive(session, office)
    ctx = views.dossier_page(session, d, vn(2026, 11, 2, 18, 0))
    row = ctx["slip"][0]
    handed, started = i18n.dt(row.handed_at), i18n.dt(vn(2026, 11, 3, 7, 30))
    rows = [SimpleNamespace(**{**vars(row), "clock_from": vn(2026, 11, 3, 7, 30)})]
    with app.test_request_context():
        with_clock = render_template("forms/f06.html", dossier=d, title="Phiếu kiểm soát", qr="", **{**ctx, "slip": rows})
        without = render_template("forms/f06.html", dossier=d, title="Phiếu kiểm soát", qr="",
                                  **{**ctx, "slip": [SimpleNamespace(**{k: v for k, v in vars(row).items()
                                                                        if k != "clock_from"})]})

    def times(html):  # the row's time cells: hand-over, clock start, step deadline, finished
        return re.findall(r'<td class="when">([^<]*)</td>', html)[:2]

    assert times(with_clock) == [handed, started]
    assert times(without) == [handed, handed]  # no clock_from yet: the hand-over time stands in


def test_form_07_register_fits_a4_landscape(session, office, procedure, desk, live_server):
    returned = receive(session, office)
    advance(session, office, returned, None, vn(2026, 11, 2, 9, 30), note=LONG_NOTE)
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=returned.code,
                           via="post", now=vn(2026, 11, 5, 15, 30))
    refused = receive(session, office, at=vn(2026, 11, 2, 10, 0))
    dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=refused.code, reason="Không đủ điều kiện",
                            now=vn(2026, 11, 9, 10, 0))
    still_open = receive(session, office, at=vn(2026, 11, 3, 8, 0), applicant=LONG_APPLICANT)
    sizes, text = print_form(desk, f"{live_server}/so-theo-doi?tu=2026-11-01&den=2026-11-30", A4_LANDSCAPE)
    assert_pages(sizes, A4_LANDSCAPE)
    flat = " ".join(text.split())
    for heading in ("Số", "Trước / đúng / quá hạn", "Phương thức nhận kết quả"):
        assert heading in flat
    cells = {row[1]: row for row in desk.evaluate(
        "[...document.querySelectorAll('table.register tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))")}
    def number(d):  # the register's number (… until the engine gives one)
        session.refresh(d)
        return str(d.register_no) if d.register_no is not None else "…"

    for d in (returned, refused, still_open):
        assert cells[d.code][0] == number(d)
    assert cells[returned.code][9] in ("Trước hạn", "Đúng hạn") and cells[returned.code][10] == "Bưu chính"
    assert cells[refused.code][9:11] == ["Quá hạn", "—"]  # refused after the due date; nothing handed back
    assert cells[still_open.code][9:11] == ["—", "—"]
    # A later period: the register's number stays the dossier's, not the row's position.
    desk.goto(f"{live_server}/so-theo-doi?tu=2026-11-03&den=2026-11-30")
    assert desk.locator("table.register tbody td").first.inner_text().strip() == number(still_open)
