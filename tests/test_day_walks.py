"""A working day per role, in a real browser (Debian's Chromium) on the demo office (`motcua demo`):
each person logs in, then only clicks, types and chooses — no address is typed after the login page.

The desk officer receives three dossiers (one of each shipped procedure, found by typing in the
procedure search), delivers a supplement from the "Chờ bổ sung" list and hands back a result from the
"Chờ trả kết quả" list; the specialist, the head of department, the leader and the clerk each work the
step that waits on them; the manager reads the dashboard and drills down; the designer opens a process;
the administrator checks the catalog and the audit logs. Every list is saved under docs/screenshots/.

Each walk is independent: what a role needs waiting for it (a step at the leader's, say) is put there by
the engine before its browser opens, on the same demo database."""
from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
from conftest import ROOT
from sqlalchemy import select

from engine import clock, dossiers
from engine.store.db import make_engine, make_sessionmaker
from engine.store.models import Dossier, HumanTask, User

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.sqlite_only   # the demo office is the SQLite one the README's first command starts

SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "motcua-demo"   # motcua/demo.py
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pdf(tag: str) -> bytes:
    return f"%PDF-1.4\n% {tag}\n%%EOF\n".encode()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(autouse=True)
def upload_dir(demo_dir, monkeypatch) -> Path:   # the demo's scans, for every test of this module
    path = demo_dir / "uploads"
    monkeypatch.setenv("MOTCUA_UPLOAD_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def demo(demo_dir):
    """The demo office (built as `motcua demo` builds it) served on 127.0.0.1."""
    import os

    from werkzeug.serving import make_server

    from motcua import demo as demo_mod
    from webapp import create_app

    os.environ["MOTCUA_UPLOAD_DIR"] = str(demo_dir / "uploads")
    path = demo_dir / "demo.sqlite3"
    demo_mod.run(str(path))
    url = f"sqlite:///{path}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "day-walks", "SESSION_COOKIE_SECURE": False})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    factory = make_sessionmaker(make_engine(url))
    yield type("Demo", (), {"base": f"http://127.0.0.1:{server.server_port}", "factory": factory})
    server.shutdown()


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it with apt-get)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--lang=vi-VN"])
        yield b
        b.close()


class Person:
    """One member of staff in a browser of their own. `goto` is used once, for the login page."""

    def __init__(self, chromium, demo, username: str):
        self.base = demo.base
        self.context = chromium.new_context(viewport={"width": 1366, "height": 900}, locale="vi-VN")
        self.page = self.context.new_page()
        self.typed: list[str] = []
        page = self.page
        page.goto(f"{self.base}/dang-nhap")
        self.typed.append(page.url)
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()

    def nav(self, label: str):
        self.page.locator("nav[aria-label='Chính'] a", has_text=label).first.click()
        self.page.wait_for_load_state()
        return self.page

    def search_inbox(self, code: str):
        """From the inbox, find the step of `code` with the inbox's search box and open it."""
        self.nav("Hộp thư")
        self.page.locator("main form input[name=q]").first.fill(code)
        self.page.locator("main form input[name=q]").first.press("Enter")
        self.page.wait_for_load_state()
        self.page.locator(f"a:text('{code}')").first.click()
        self.page.wait_for_load_state()
        return self.page

    def decide(self, label: str, files: dict | None = None, fill: dict | None = None):
        page = self.page
        form = page.locator("form.decision", has=page.locator(f"button:text-is('{label}')"))
        for selector, path in (files or {}).items():
            form.locator(selector).set_input_files(str(path))
        for selector, value in (fill or {}).items():
            form.locator(selector).fill(value)
        form.locator(f"button:text-is('{label}')").click()
        page.wait_for_load_state()
        return page

    def shot(self, name: str):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def flash(self) -> str:
        return " ".join(self.page.locator(".flash, [role=status], .notice").all_inner_texts())

    def close(self):
        assert self.typed == [f"{self.base}/dang-nhap"], self.typed   # nothing typed after the login page
        self.context.close()


# --- the engine puts what a walk needs in front of it ---------------------------------------------------------------
def user_id(demo, username: str) -> int:
    with demo.factory() as s:
        return s.scalar(select(User.id).where(User.username == username))


def at_step(demo, role: str, procedure: str = "1.001612") -> str:
    """A fresh dossier of `procedure`, received by the demo desk and moved on until a step of `role` waits."""
    from engine import catalog
    desk = user_id(demo, "motcua")
    with demo.factory() as s:
        comps = [{"code": c["code"], "filename": f"{c['code'].lower()}.pdf", "content": pdf(c["code"]),
                  "content_type": "application/pdf"} for c in catalog.get_procedure(s, procedure).components
                 if c["required"]]
        d = dossiers.receive_dossier(s, actor_id=desk, procedure_code=procedure, channel="counter",
                                     applicant={"name": "Trịnh Thị Thu", "id_number": "017093004455",
                                                "phone": "0987654321", "address": "xã Tân Lạc"}, components=comps)
        code = d.code
    staff = {"mot_cua": "motcua", "chuyen_vien": "chuyenvien", "lanh_dao_phong": "truongphong",
             "lanh_dao": "chutich", "van_thu": "vanthu"}
    for _ in range(8):
        with demo.factory() as s:
            dossier = s.scalar(select(Dossier).where(Dossier.code == code))
            task = s.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier.id,
                                                     HumanTask.completed_at.is_(None))).one()
            if task.role == role:
                return code
            result = None
            if task.role == "lanh_dao":
                result = {"file": {"filename": "ket-qua.pdf", "content": pdf("ket qua"),
                                   "content_type": "application/pdf"}}
            if task.role == "van_thu":
                result = {"number": "99/GCN", "signed_on": clock.local(clock.now()).date().isoformat()}
            kwargs = {"result": result} if result else {}
            dossiers.complete_task(s, actor_id=user_id(demo, staff[task.role]), task_id=task.id,
                                   data={"decision": "approve"}, **kwargs)
    raise AssertionError(f"no {role} step in {procedure}")


# --- the walks --------------------------------------------------------------------------------------------------------
RECEIVED = [("ho kinh doanh", "1.001612", "Lò Thị Dung", "017192000111"),
            ("khai sinh", "1.001193", "Hà Văn Thành", "017088000222"),
            ("xay dung", "1.009994", "Đinh Công Mạnh", "017079000333")]


def test_the_desk_officer_receives_three_delivers_a_supplement_and_hands_back_a_result(demo, chromium, tmp_path):
    desk = Person(chromium, demo, "motcua")
    page = desk.page
    assert page.url.endswith("/hop-thu")
    desk.shot("day-desk-inbox")
    codes = []
    for typed, code, name, id_number in RECEIVED:
        desk.nav("Tiếp nhận hồ sơ")
        search = page.locator("#tim")
        search.press_sequentially(typed)
        option = page.locator("#tim-ket-qua [role=option]", has_text=code)
        option.first.click()
        page.wait_for_function("() => { const f = document.getElementById('ho-so'); "
                               "return !f.hidden && !f.hasAttribute('aria-busy'); }")
        page.fill("#f-applicant-name", name)
        page.fill("#f-applicant-id_number", id_number)
        page.fill("#f-applicant-phone", "0912 000 111")
        page.fill("#f-applicant-address", "Xóm Chợ, xã Tân Lạc")
        for row in page.locator("#ho-so tr[data-code]:has(.required)").all():
            scan = tmp_path / f"{row.get_attribute('data-code').lower()}.pdf"
            scan.write_bytes(pdf(name))
            row.locator("input[type=file]").set_input_files(str(scan))
        if len(codes) == 0:
            desk.shot("day-desk-reception")
        page.click("button:text('Tiếp nhận và chuyển xử lý')")
        page.wait_for_url(re.compile(r".*/da-tiep-nhan"))
        assert "Đã tiếp nhận và chuyển xử lý hồ sơ" in page.content()
        codes.append(page.locator(".big-code").inner_text().strip())
    desk.shot("day-desk-received")
    assert len(set(codes)) == 3

    # Each list of the header, from the header, saved as the desk sees it.
    for label, slug in (("Hồ sơ quá hạn", "qua-han"), ("Đến hạn", "den-han"), ("Chờ bổ sung", "cho-bo-sung"),
                        ("Chờ trả kết quả", "cho-tra")):
        desk.nav(label)
        assert page.url.split("?")[0].endswith(f"/danh-sach/{slug}")
        desk.shot(f"list-{slug}")

    # A supplement, from the "Chờ bổ sung" list.
    desk.nav("Chờ bổ sung")
    waiting = page.locator("table.inbox tbody tr", has=page.locator("a:text('Nhận hồ sơ bổ sung')")).first
    supplemented = waiting.locator("td a").first.inner_text().strip()
    waiting.locator("a:text('Nhận hồ sơ bổ sung')").click()
    page.wait_for_load_state()
    form = page.locator("#nhan-bo-sung")
    first_input = form.locator("input[type=file]").first
    scan = tmp_path / "bo-sung.pdf"
    scan.write_bytes(pdf("bo sung"))
    first_input.set_input_files(str(scan))
    form.locator("button:text('Ghi nhận bổ sung')").click()
    page.wait_for_load_state()
    assert "thời hạn giải quyết được tính lại" in page.content(), desk.flash()

    # A result handed back, from the "Chờ trả kết quả" list.
    desk.nav("Chờ trả kết quả")
    ready = page.locator("table.inbox tbody tr", has=page.locator("button:text('Trả kết quả')")).first
    handed = ready.locator("td a").first.inner_text().strip()
    ready.locator("button:text('Trả kết quả')").click()
    page.wait_for_load_state()
    assert "Đã trả kết quả" in page.content()
    desk.nav("Chờ trả kết quả")
    page.locator("p.tabs a", has_text="đã trả kết quả hôm nay").click()
    page.wait_for_load_state()
    assert handed in page.content()
    desk.shot("list-da-tra-hom-nay")

    # Any dossier of the unit, in any state, from the search box: by name without diacritics.
    page.locator("form[role=search] input").first.fill("lo thi dung")
    page.locator("form[role=search] input").first.press("Enter")
    page.wait_for_load_state()
    assert codes[0] in page.content()
    desk.shot("list-tim-kiem")
    desk.close()

    with demo.factory() as s:
        states = dict(s.execute(select(Dossier.code, Dossier.status).where(
            Dossier.code.in_([*codes, supplemented, handed]))).all())
    assert all(states[c] == "processing" for c in codes), states
    assert states[supplemented] == "processing" and states[handed] == "returned"


def test_the_specialist_appraises_the_step_waiting_on_them(demo, chromium):
    code = at_step(demo, "chuyen_vien")
    person = Person(chromium, demo, "chuyenvien")
    assert person.page.url.endswith("/hop-thu")
    person.shot("day-specialist-inbox")
    page = person.search_inbox(code)
    person.shot("day-specialist-task")
    label = page.locator("form.decision button.primary").first.inner_text().strip()
    assert label and label != "Chuyển xử lý"   # named by the diagram's flow, e.g. "Trình lãnh đạo phòng"
    person.decide(label)
    assert f"hồ sơ {code}" in page.content()
    person.close()


def test_the_head_of_department_assigns_a_step_then_forwards_their_own(demo, chromium):
    unassigned = at_step(demo, "chuyen_vien")
    own = at_step(demo, "lanh_dao_phong")
    person = Person(chromium, demo, "truongphong")
    page = person.page
    page.locator("a:text('Việc của đơn vị')").click()
    page.wait_for_load_state()
    person.shot("day-head-unit-inbox")
    page.locator("main form input[name=q]").first.fill(unassigned)
    page.locator("main form input[name=q]").first.press("Enter")
    page.wait_for_load_state()
    row = page.locator("table tbody tr", has=page.locator(f"a:text('{unassigned}')")).first
    row.locator("td.assign select").select_option(label="Lê Văn Hùng")
    row.locator("button:text-is('Phân công')").click()
    page.wait_for_load_state()
    assert "Lê Văn Hùng" in page.content()
    with demo.factory() as s:
        assert s.scalar(select(HumanTask.assignee_id).join(Dossier, Dossier.id == HumanTask.dossier_id).where(
            Dossier.code == unassigned, HumanTask.completed_at.is_(None))) == user_id(demo, "chuyenvien")
    person.search_inbox(own)
    label = page.locator("form.decision button.primary").first.inner_text().strip()
    person.decide(label)
    assert f"hồ sơ {own}" in page.content()
    person.close()


def test_the_leader_signs_with_the_signed_result_attached(demo, chromium, tmp_path):
    code = at_step(demo, "lanh_dao")
    person = Person(chromium, demo, "chutich")
    page = person.search_inbox(code)
    signed = tmp_path / "giay-chung-nhan-da-ky.pdf"
    signed.write_bytes(pdf("giay chung nhan da ky"))
    person.shot("day-leader-task")
    person.decide("Ký duyệt", files={"#f-result-file": signed})
    assert f"Đã ký duyệt hồ sơ {code}" in page.content()
    person.close()


def test_the_clerk_registers_the_result_and_sends_it_to_the_desk(demo, chromium):
    code = at_step(demo, "van_thu")
    person = Person(chromium, demo, "vanthu")
    page = person.search_inbox(code)
    today = clock.local(clock.now()).date().isoformat()
    person.decide("Vào sổ, chuyển trả kết quả", fill={"#f-result-number": "120/GCN-HKD", "#f-result-signed_on": today})
    assert f"hồ sơ {code}" in page.content()
    with demo.factory() as s:
        assert s.scalar(select(Dossier.status).where(Dossier.code == code)) == "result_ready"
    person.close()


def test_the_manager_reads_the_dashboard_and_drills_down(demo, chromium):
    person = Person(chromium, demo, "theodoi")
    page = person.page
    assert "/bang-dieu-khien" in page.url
    person.shot("day-manager-dashboard")
    page.locator("#h-received a").first.click()
    page.wait_for_load_state()
    assert "/bang-dieu-khien/danh-sach" in page.url and page.locator("table tbody tr").count() >= 1
    person.shot("list-bang-dieu-khien")
    person.close()


def test_the_designer_opens_a_process_and_sees_no_citizen(demo, chromium):
    person = Person(chromium, demo, "thietke")
    page = person.page
    assert "/thiet-ke" in page.url
    page.locator("a", has_text="Đăng ký thành lập hộ kinh doanh").first.click()
    page.wait_for_load_state()
    page.wait_for_selector(".djs-container", timeout=15000)
    person.shot("day-designer")
    nav = page.locator("nav[aria-label='Chính']").inner_text()
    assert "Hồ sơ quá hạn" not in nav and "Sổ theo dõi" not in nav
    person.close()


def test_the_administrator_checks_the_catalog_the_calendar_and_the_audit_logs(demo, chromium):
    person = Person(chromium, demo, "quantri")
    page = person.page
    assert "/quan-tri/thu-tuc" in page.url
    person.shot("day-admin-catalog")
    person.nav("Lịch làm việc")
    assert "Lịch làm việc" in page.content()
    person.nav("Kiểm tra nhật ký")
    assert "không toàn vẹn" not in page.locator("main").inner_text().lower() or \
        "0 hồ sơ" in page.locator("main").inner_text()
    person.shot("day-admin-audit")
    person.close()


def test_the_day_leaves_every_log_intact(demo):
    from engine.dossiers import audit
    with demo.factory() as s:
        ids = s.scalars(select(Dossier.id)).all()
        assert ids and all(audit.verify_chain(s, i) is None for i in ids)
