"""End to end in a real browser (Playwright driving Debian's Chromium) against a live server."""
import re
import shutil

import pytest
from conftest import LIVE_APPS, ROOT

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "screenshots"
ID_NUMBER = "017090001234"
PASSWORD = "matkhau-123"

pytestmark = pytest.mark.sqlite_only  # the UI over the same engine; the engine itself runs on both databases


class Desk:
    """One browser context per person, recording every request the pages make."""

    def __init__(self, browser, base):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.page.on("request", lambda req: self.requests.append(req.url))

    def login(self, username):
        page = self.page
        page.goto(f"{self.base}/dang-nhap")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        # Each role lands on its own start page (inbox, dashboard, designer, catalog).
        page.wait_for_url(re.compile(r".*/(hop-thu|bang-dieu-khien|thiet-ke|quan-tri/thu-tuc)"))
        return page

    def open_task_of(self, code):
        self.page.goto(f"{self.base}/hop-thu?q={code}")
        self.page.click(f"a:text('{code}')")
        return self.page

    def decide(self, label, reason=None, items=None, fill=None, files=None):
        form = self.page.locator("form.decision", has=self.page.locator(f"button:text-is('{label}')"))
        if reason is not None:
            form.locator("textarea[name=reason]").fill(reason)
        for selector, value in (fill or {}).items():
            form.locator(selector).fill(value)
        for selector, path in (files or {}).items():
            form.locator(selector).set_input_files(path)
        for code, problem in (items or {}).items():
            form.locator(f"input[name=thanh-phan][value={code}]").check()
            form.locator(f"input[name=van-de-{code}]").fill(problem)
        form.locator("button[type=submit]").click()
        self.page.wait_for_load_state()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_dossier_end_to_end_through_the_ui(live_server, browser, tmp_path):
    desk = Desk(browser, live_server)
    page = desk.login("mot_cua1")

    # Reception: procedure, applicant, the required scan; the appointment is shown before saving.
    page.goto(f"{live_server}/tiep-nhan")
    page.select_option("#thu-tuc", "1.001612")
    page.click("button:text('Chọn')")
    assert "Ngày hẹn trả (dự kiến)" in page.content()
    page.fill("#f-applicant-name", "Nguyễn Văn An")
    page.fill("#f-applicant-id_number", "12")  # wrong on purpose: the page keeps the upload and the other fields
    page.fill("#f-applicant-phone", "0912345678")
    page.fill("#f-applicant-address", "Xóm Đồng, xã Tân Lạc")
    scan = tmp_path / "giay-de-nghi.pdf"
    scan.write_bytes(b"%PDF-1.4\n% giay de nghi\n%%EOF\n")
    page.set_input_files("#file_GIAYDENGHI", str(scan))
    page.click("button:text('Tiếp nhận và in giấy hẹn')")
    assert page.title().startswith("Lỗi: ")
    assert "Số định danh cá nhân (CCCD) không hợp lệ: «12»" in page.content()
    assert page.input_value("#f-applicant-name") == "Nguyễn Văn An"
    assert "Đã tải lên: giay-de-nghi.pdf" in page.content()
    page.fill("#f-applicant-id_number", ID_NUMBER)
    page.click("button:text('Tiếp nhận và in giấy hẹn')")
    code = page.locator(".big-code").inner_text().strip()
    assert re.fullmatch(r"H40\.1-\d{6}-0001", code)

    page.click("a:text('In giấy tiếp nhận (mẫu 01)')")
    assert code in page.content() and "<svg" in page.content() and "GIẤY TIẾP NHẬN" in page.content()
    shot(page, "receipt-form-01")

    page.goto(f"{live_server}/hop-thu")
    assert code in page.content()
    shot(page, "inbox")
    desk.open_task_of(code)
    desk.decide("Chuyển chuyên viên thẩm định")  # each button is named by the diagram's flow
    assert "Hồ sơ hiện ở: Chuyên viên" in page.content()

    # The specialist requests supplementation once.
    specialist = Desk(browser, live_server)
    sp = specialist.login("chuyen_vien1")
    specialist.open_task_of(code)
    shot(sp, "task")
    specialist.decide("Yêu cầu bổ sung", reason="Giấy đề nghị thiếu chữ ký",
                      items={"GIAYDENGHI": "Giấy đề nghị có chữ ký chủ hộ"})
    assert "Đã yêu cầu bổ sung" in sp.content()

    # The desk records the supplement: the dossier is processed again with a new appointment.
    page.goto(f"{live_server}/ho-so/{code}")
    assert "Yêu cầu bổ sung giấy tờ" in page.content()
    page.set_input_files("#sup_GIAYDENGHI", str(scan))
    page.click("button:text('Ghi nhận bổ sung')")
    assert "thời hạn giải quyết được tính lại" in page.content()

    # Second request: no button in the UI, and the server refuses a forged one in plain Vietnamese.
    specialist.open_task_of(code)
    assert sp.locator("button:text-is('Yêu cầu bổ sung')").count() == 0
    assert "Không thể yêu cầu bổ sung lần hai" in sp.content()
    with sp.expect_navigation():
        sp.evaluate("""() => {
            const form = document.querySelector('form.decision');
            form.querySelector('input[name=decision]').value = 'request_supplement';
            const items = document.createElement('textarea'); items.name = 'items'; items.value = 'Giấy khác';
            form.appendChild(items); form.querySelector('textarea[name=reason]').value = 'Thiếu thêm';
            form.submit();
        }""")
    assert "chỉ cho phép yêu cầu bổ sung" in sp.locator("#error-summary").inner_text()
    specialist.decide("Trình lãnh đạo phòng")

    # The leader signs and attaches the signed result; the clerk registers its number and date.
    signed = tmp_path / "giay-chung-nhan.pdf"
    signed.write_bytes(b"%PDF-1.4\n% giay chung nhan da ky\n%%EOF\n")
    from engine import clock
    today = clock.local(clock.now()).date().isoformat()
    for username, label, extra in (
            ("lanh_dao_phong1", "Trình lãnh đạo ký", {}),
            ("lanh_dao1", "Ký duyệt", {"files": {"#f-result-file": str(signed)}}),
            ("van_thu1", "Vào sổ, chuyển trả kết quả",
             {"fill": {"#f-result-number": "15/GCN-HKD", "#f-result-signed_on": today}})):
        person = Desk(browser, live_server)
        person.login(username)
        person.open_task_of(code)
        person.decide(label, **extra)
        assert f"Đã {label[0].lower()}{label[1:]} hồ sơ {code}" in person.page.content()

    # The dossier page: control slip and the procedure's own diagram with the steps marked.
    page.goto(f"{live_server}/ho-so/{code}")
    page.wait_for_selector("#diagram[data-ready='1']", timeout=15000)
    assert page.locator("#diagram .done").count() >= 4
    assert "Đã xử lý xong" in page.content()
    shot(page, "dossier")
    page.click("button:text('Trả kết quả')")
    assert "Đã trả kết quả" in page.content()

    # A citizen looks it up and rates the service, once.
    citizen = Desk(browser, live_server)
    cp = citizen.page
    cp.goto(f"{live_server}/tra-cuu")
    cp.fill("#ma", code)
    cp.fill("#so-dinh-danh", "000000000000")
    cp.click("button:text('Tra cứu')")
    assert "Không có hồ sơ nào được tìm thấy" in cp.content()
    cp.fill("#ma", code)
    cp.fill("#so-dinh-danh", ID_NUMBER)
    cp.click("button:text('Tra cứu')")
    assert "Đã trả kết quả" in cp.content()
    cp.check("input[value=satisfied]")
    cp.click("button:text('Gửi đánh giá')")
    text = cp.locator("main").inner_text()
    assert "Cảm ơn bạn đã đánh giá" in text and "Bạn đã đánh giá: Hài lòng" in text
    assert cp.locator("button:text('Gửi đánh giá')").count() == 0
    shot(cp, "citizen-lookup")

    # Another commune's staff cannot open the dossier.
    other = Desk(browser, live_server)
    other.login("cv_khac")
    response = other.page.goto(f"{live_server}/ho-so/{code}")
    assert response.status == 404 and code not in other.page.content()

    # No page asked any host but the app itself.
    for person in (desk, specialist, citizen, other):
        assert all(url.startswith(live_server) for url in person.requests), \
            [u for u in person.requests if not u.startswith(live_server)]


def test_login_refuses_bad_passwords_and_pages_need_login(live_server, browser):
    desk = Desk(browser, live_server)
    page = desk.page
    page.goto(f"{live_server}/hop-thu")
    assert "/dang-nhap" in page.url
    page.fill("#username", "mot_cua1")
    page.fill("#password", "sai")
    page.click("button[type=submit]")
    assert "Tên đăng nhập hoặc mật khẩu không đúng" in page.content()


def test_manager_dashboard_matches_the_api_and_drills_down(live_server, browser, session, office):
    from conftest import receive, vn

    from engine import dossiers as uc
    overdue = receive(session, office, at=vn(2026, 11, 2, 9))
    done = receive(session, office, at=vn(2026, 11, 2, 10))
    from conftest import open_task, result_for
    for role in ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"):
        task = open_task(session, done)
        uc.complete_task(session, actor_id=office[role], task_id=task.id, data={"decision": "approve"},
                         result=result_for(session, task, vn(2026, 11, 3, 9)), now=vn(2026, 11, 3, 9))
    manager = Desk(browser, live_server)
    page = manager.login("manager1")
    page.goto(f"{live_server}/bang-dieu-khien?don-vi=H40.1&tu=2026-11-01&den=2026-11-30")
    shown = {k: page.locator(f"#h-{k}").inner_text().strip() for k in ("received", "finished", "overdue", "ontime")}
    token = page.request.post(f"{live_server}/api/v1/auth/token",
                              data={"username": "manager1", "password": PASSWORD}).json()["token"]
    api = page.request.get(f"{live_server}/api/v1/metrics?from=2026-11-01&to=2026-11-30&unit=H40.1",
                           headers={"Authorization": f"Bearer {token}"}).json()
    assert shown["received"] == str(api["received"]["total"]) == "2"
    assert shown["finished"] == str(api["finished"]["total"]) == "1"
    assert shown["overdue"] == str(api["in_progress"]["overdue"]) == "1"
    assert shown["ontime"] == f"{api['on_time_rate'] * 100:.1f} %".replace(".", ",")
    shot(page, "dashboard")
    page.click("#h-overdue a")
    assert "Đang giải quyết quá hạn: 1 hồ sơ" in page.content() and overdue.code in page.content()
    assert done.code not in page.content()
    assert all(url.startswith(live_server) for url in manager.requests)


def test_designer_adds_a_step_sees_the_problem_on_the_diagram_fixes_it_and_a_future_version_waits(
        live_server, browser, session, office):
    from datetime import datetime

    from engine.clock import VN_TZ
    designer = Desk(browser, live_server)
    page = designer.login("designer1")
    page.goto(f"{live_server}/thiet-ke/1.001612")
    page.wait_for_selector("#canvas[data-ready='1']", timeout=15000)
    # Add a step in the specialist's lane, between reception and appraisal (the API a modeler's palette uses).
    page.evaluate("""() => {
        const m = window.motcuaModeler, modeling = m.get('modeling'), reg = m.get('elementRegistry');
        const lane = reg.get('Lane_chuyen_vien'), flow = reg.get('Flow_forward'), next = reg.get('Task_ThamDinh');
        const task = modeling.createShape({ type: 'bpmn:UserTask' }, { x: 330, y: lane.y + lane.height / 2 }, lane);
        modeling.updateProperties(task, { id: 'Task_KiemTraThucDia', name: 'Kiểm tra thực địa' });
        modeling.reconnectEnd(flow, task, { x: task.x, y: task.y + 40 });
        modeling.connect(task, next);
        m.get('selection').select(task);
    }""")
    page.fill("#p-duration", "PT2H")
    page.press("#p-duration", "Tab")
    page.click("#btn-check")
    page.wait_for_selector("#problems li")
    assert "Tổng thời hạn các bước" in page.inner_text("#problems")
    assert page.locator(".problem-badge").count() >= 1
    shot(page, "designer")
    # Fix: take the two hours from the leader's signing step, then save a draft version.
    page.evaluate("""() => { const m = window.motcuaModeler;
                             m.get('selection').select(m.get('elementRegistry').get('Task_KyDuyet')); }""")
    page.fill("#p-duration", "PT4H")
    page.press("#p-duration", "Tab")
    page.click("#btn-save")
    page.wait_for_selector("#status:has-text('phiên bản 2')")
    assert page.locator(".problem-badge").count() == 0

    # The admin publishes it from tomorrow; until then reception keeps using version 1.
    admin = Desk(browser, live_server)
    ap = admin.login("admin1")
    ap.goto(f"{live_server}/quan-tri/thu-tuc/1.001612")
    ap.fill("#eff-2", "2026-12-01")
    ap.click("form:has(#eff-2) button")
    assert "Đã công bố phiên bản 2" in ap.content()
    ap.click("a:text('So sánh với phiên bản 1')")
    ap.wait_for_selector(".bpmn-diagram[data-ready='1'] >> nth=1", timeout=15000)
    assert ap.locator(".bpmn-diagram").nth(1).locator(".djs-element.added").count() == 1  # the new step
    assert ap.locator(".bpmn-diagram").nth(0).locator(".djs-element.changed").count() >= 1
    assert "Kiểm tra thực địa" in ap.inner_text("main")
    shot(ap, "version-diff")

    import base64

    from conftest import APPLICANT

    def receive_via_api(at):
        live_app.config["MOTCUA_NOW"] = at
        token = ap.request.post(f"{live_server}/api/v1/auth/token",
                                data={"username": "mot_cua1", "password": PASSWORD}).json()["token"]
        body = {"procedure_code": "1.001612", "channel": "counter", "applicant": APPLICANT,
                "components": [{"code": "GIAYDENGHI", "filename": "d.pdf",
                                "content_base64": base64.b64encode(b"%PDF-1.4 x").decode()}]}
        code = ap.request.post(f"{live_server}/api/v1/dossiers", data=body,
                               headers={"Authorization": f"Bearer {token}"}).json()["code"]
        return ap.request.get(f"{live_server}/api/v1/dossiers/{code}",
                              headers={"Authorization": f"Bearer {token}"}).json()["version"]

    live_app = LIVE_APPS[-1]
    assert receive_via_api(datetime(2026, 11, 30, 9, tzinfo=VN_TZ).isoformat()) == 1
    assert receive_via_api(datetime(2026, 12, 1, 9, tzinfo=VN_TZ).isoformat()) == 2
    live_app.config.pop("MOTCUA_NOW")
