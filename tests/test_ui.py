"""The HTML screens through the Flask test client, with CSRF on, on SQLite and PostgreSQL."""
import re
from datetime import timedelta

import pytest
from conftest import APPLICANT, ROOT, csrf, item, login, open_task, pdf, receive, result_for, vn

from engine import dossiers
from engine.errors import DossierClosed, NotFound


def test_pages_need_login_and_forms_need_csrf(ui, office):
    assert "/dang-nhap" in ui.get("/hop-thu").headers["Location"]
    refused = ui.post("/dang-nhap", data={"username": "mot_cua1", "password": "matkhau-123"})
    assert refused.status_code == 400 and "tải lại trang" in refused.get_data(as_text=True)
    bad = ui.post("/dang-nhap", data={"username": "mot_cua1", "password": "sai", "csrf_token": csrf(ui)})
    assert bad.status_code == 401 and "Tên đăng nhập hoặc mật khẩu không đúng" in bad.get_data(as_text=True)
    assert ui.post("/dang-nhap?next=https://evil.example/", data={
        "username": "mot_cua1", "password": "matkhau-123", "csrf_token": csrf(ui)}).headers["Location"] == "/hop-thu"


def test_reception_names_missing_components_in_vietnamese_and_writes_nothing(ui, session, office):
    from sqlalchemy import func, select

    from engine.store.models import Dossier
    login(ui, "mot_cua1")
    token = csrf(ui, "/tiep-nhan?thu-tuc=1.009994")
    r = ui.post("/tiep-nhan", data={"thu-tuc": "1.009994", "csrf_token": token, "name": APPLICANT["name"],
                                    "id_number": APPLICANT["id_number"], "channel": "counter"},
                content_type="multipart/form-data")
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "<title>Lỗi: " in page and "Thiếu thành phần hồ sơ bắt buộc" in page
    assert "QUYENSDD" in page and 'value="Nguyễn Văn An"' in page
    assert session.scalar(select(func.count()).select_from(Dossier)) == 0


def test_reception_search_finds_procedures_without_diacritics(ui, office):
    login(ui, "mot_cua1")
    page = ui.get("/tiep-nhan?tim=ho kinh doanh").get_data(as_text=True)
    assert "Đăng ký thành lập hộ kinh doanh" in page and "Ngày hẹn trả (dự kiến)" in page
    assert "Thủ tục đăng ký khai sinh" not in page


def test_inbox_search_ignores_diacritics_and_scopes_to_roles(ui, session, office):
    d = receive(session, office)
    login(ui, "mot_cua1")
    assert d.code in ui.get("/hop-thu?q=nguyen van an").get_data(as_text=True)
    assert d.code not in ui.get("/hop-thu?q=tran thi").get_data(as_text=True)
    leader = login(ui.application.test_client(), "lanh_dao1")
    assert d.code not in leader.get("/hop-thu").get_data(as_text=True)
    assert d.code in leader.get("/hop-thu?pham-vi=don-vi").get_data(as_text=True)


def test_other_unit_gets_404_on_pages_files_and_forms(ui, session, office):
    d = receive(session, office)
    login(ui, "cv_khac")
    for url in (f"/ho-so/{d.code}", f"/ho-so/{d.code}/in/01", f"/ho-so/{d.code}/quy-trinh.bpmn", "/tep/1",
                f"/cong-viec/{open_task(session, d).id}"):
        assert ui.get(url).status_code == 404, url


def test_all_printable_forms_render_filled(ui, session, office):
    d = receive(session, office)
    task = open_task(session, d)
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task.id, now=vn(2026, 11, 2, 10))
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Chờ xác minh",
                           new_due_at=d.due_at + timedelta(days=7), now=vn(2026, 11, 3, 9))  # Thu 5/11 → Thu 12/11
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="Thiếu chữ ký", items=[item("Đơn có chữ ký")],
                                now=vn(2026, 11, 3, 10))
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="Rút",
                              now=vn(2026, 11, 4, 9))
    login(ui, "mot_cua1")
    expect = {"01": "GIẤY TIẾP NHẬN", "02": "Đơn có chữ ký", "03": "PHIẾU TỪ CHỐI", "04": "Chờ xác minh",
              "05": "dừng giải quyết", "06": "Tiếp nhận, kiểm tra hồ sơ"}
    for form, text in expect.items():
        page = ui.get(f"/ho-so/{d.code}/in/{form}").get_data(as_text=True)
        assert text in page and d.code in page, form
    register = ui.get("/so-theo-doi?tu=2026-11-01&den=2026-11-30").get_data(as_text=True)
    assert "SỔ THEO DÕI HỒ SƠ" in register and d.code in register


def test_task_refusal_is_explained_and_nothing_changes(ui, session, office):
    d = receive(session, office)
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id)
    login(ui, "chuyen_vien1")
    task_id = open_task(session, d).id
    page = ui.get(f"/cong-viec/{task_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = ui.post(f"/cong-viec/{task_id}", data={"csrf_token": token, "decision": "refuse", "reason": ""})
    assert r.status_code == 422 and "Vui lòng nhập lý do." in r.get_data(as_text=True)
    assert open_task(session, d).id == task_id


def test_citizen_lookup_is_rate_limited(ui, app, session, office):
    d = receive(session, office)
    app.config["PUBLIC_LOOKUP_LIMIT"] = 3
    token = csrf(ui, "/tra-cuu")
    for _ in range(3):
        assert ui.post("/tra-cuu", data={"csrf_token": token, "ma": d.code, "so-dinh-danh": "1"}).status_code == 404
    limited = ui.post("/tra-cuu", data={"csrf_token": token, "ma": d.code, "so-dinh-danh": APPLICANT["id_number"]})
    assert limited.status_code == 429 and "quá nhiều lần" in limited.get_data(as_text=True)


def test_the_id_number_never_travels_in_a_url_and_staff_pages_are_not_cached(ui, session, office):
    """Issue #12 item 8: the look-up sends the ID number in the POST body; a URL carrying it shows
    nothing; staff pages tell caches not to store them."""
    d = receive(session, office)
    page = ui.get(f"/tra-cuu?ma={d.code}&so-dinh-danh={APPLICANT['id_number']}").get_data(as_text=True)
    assert 'method="post"' in page and APPLICANT["name"] not in page
    token = csrf(ui, "/tra-cuu")
    found = ui.post("/tra-cuu", data={"csrf_token": token, "ma": d.code, "so-dinh-danh": APPLICANT["id_number"]})
    assert found.status_code == 200 and d.code in found.get_data(as_text=True)
    login(ui, "mot_cua1")
    staff = ui.get(f"/ho-so/{d.code}")
    assert staff.status_code == 200 and "no-store" in staff.headers["Cache-Control"]


def test_rating_only_after_the_result_and_once(session, office):
    d = receive(session, office)
    with pytest.raises(DossierClosed):
        dossiers.rate_service(session, dossier_code=d.code, id_number=APPLICANT["id_number"], rating="satisfied")
    session.rollback()
    for role in ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"):
        task = open_task(session, d)
        dossiers.complete_task(session, actor_id=office[role], task_id=task.id, data={"decision": "approve"},
                               result=result_for(session, task))
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=d.code)
    with pytest.raises(NotFound):
        dossiers.rate_service(session, dossier_code=d.code, id_number="000000000", rating="satisfied")
    session.rollback()
    dossiers.rate_service(session, dossier_code=d.code, id_number=APPLICANT["id_number"], rating="satisfied")
    with pytest.raises(dossiers.AlreadyRated):
        dossiers.rate_service(session, dossier_code=d.code, id_number=APPLICANT["id_number"], rating="not_satisfied")


def test_file_viewer_serves_the_scan_inline(ui, session, office):
    d = receive(session, office)
    login(ui, "chuyen_vien1")
    r = ui.get("/tep/1")
    assert r.status_code == 200 and r.data == pdf("GIAYDENGHI") and r.mimetype == "application/pdf"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and d.code


def test_dashboard_is_for_oversight_roles_and_exports(ui, session, office):
    receive(session, office)
    login(ui, "mot_cua1")
    assert ui.get("/bang-dieu-khien").status_code == 403
    manager = login(ui.application.test_client(), "manager1")
    assert manager.get("/bang-dieu-khien?tu=2026-11-01&den=2026-11-30").status_code == 200
    csv_text = manager.get("/bang-dieu-khien/xuat.csv?bang=thu-tuc&tu=2026-11-01&den=2026-11-30").get_data(as_text=True)
    assert csv_text.splitlines()[1].startswith("1.001612,1,0,")
    xlsx = manager.get("/bang-dieu-khien/xuat.xlsx?bang=don-vi&tu=2026-11-01&den=2026-11-30")
    from io import BytesIO

    from openpyxl import load_workbook
    sheet = load_workbook(BytesIO(xlsx.data)).active
    assert sheet.cell(2, 1).value == "Đơn vị" and sheet.cell(3, 1).value == "H40.1" and sheet.cell(3, 2).value == 1
    assert manager.get("/bang-dieu-khien/danh-sach?loai=khong-co").status_code == 404
    assert manager.get("/bang-dieu-khien?don-vi=H40.2").status_code == 403  # another commune


def test_register_and_drill_down_lists_export_too(ui, session, office):
    d = receive(session, office)
    manager = login(ui, "manager1")
    reg = manager.get("/so-theo-doi?tu=2026-11-01&den=2026-11-30&xuat=csv").get_data(as_text=True)
    assert reg.splitlines()[0].lstrip("\ufeff").startswith("Số,Mã hồ sơ") and d.code in reg
    listing = manager.get("/bang-dieu-khien/danh-sach?loai=received&tu=2026-11-01&den=2026-11-30&xuat=csv")
    assert d.code in listing.get_data(as_text=True)
    by_field = manager.get("/bang-dieu-khien?tu=2026-11-01&den=2026-11-30&linh-vuc=Hộ tịch").get_data(as_text=True)
    assert 'id="h-received"><a' in by_field and ">0</a>" in by_field.split('id="h-received"')[1][:200]


def test_admin_catalog_screens_publish_retire_expire_and_import(ui, session, office):
    import io
    import json

    login(ui, "mot_cua1")
    assert ui.get("/quan-tri/thu-tuc").status_code == 403
    admin = login(ui.application.test_client(), "admin1")
    page = admin.get("/quan-tri/thu-tuc/1.001612").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = admin.post("/quan-tri/thu-tuc/1.001612/can-cu", data={"csrf_token": token, "number": "168/2025/NĐ-CP",
                                                               "expires_on": "2026-11-20"}, follow_redirects=True)
    assert "Đã cập nhật hiệu lực" in r.get_data(as_text=True)
    listing = admin.get("/quan-tri/thu-tuc").get_data(as_text=True)
    assert "đã hết hiệu lực" in listing and "Không tiếp nhận" in listing
    r = admin.post("/quan-tri/thu-tuc/1.001193/phien-ban/1/ngung", data={"csrf_token": token}, follow_redirects=True)
    assert "Đã ngừng áp dụng phiên bản 1" in r.get_data(as_text=True)
    exported = json.loads(admin.get("/quan-tri/thu-tuc.json").get_data(as_text=True))
    assert {p["code"] for p in exported} == {"1.001193", "1.001612", "1.009994"}
    bad = admin.post("/quan-tri/thu-tuc/nhap", data={"csrf_token": token, "catalog": (io.BytesIO(b"[{}]"), "x.json")},
                     content_type="multipart/form-data", follow_redirects=True)
    assert "Danh mục không thay đổi" in bad.get_data(as_text=True)
    for hostile in (b"[" * 100_000 + b"]" * 100_000, b'[{"code": "1.0\\u0000"}]', b'[{"n": 1e999}]'):
        r = admin.post("/quan-tri/thu-tuc/nhap", data={"csrf_token": token, "catalog": (io.BytesIO(hostile), "x.json")},
                       content_type="multipart/form-data", follow_redirects=True)
        assert r.status_code == 200 and "Tệp danh mục phải là JSON" in r.get_data(as_text=True)


def test_admin_migration_screen_dry_run_then_move(ui, session, office):
    from datetime import date

    from engine import catalog
    d = receive(session, office)
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text().replace('value="PT6H"', 'value="PT5H"')
    version, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.001612", bpmn=xml, notes="v2")
    catalog.publish_version(session, actor_id=None, procedure_code="1.001612", number=version.number,
                            effective_from=date(2026, 1, 1))
    admin = login(ui, "admin1")
    dry = admin.get(f"/quan-tri/thu-tuc/1.001612/chuyen-phien-ban/{version.number}").get_data(as_text=True)
    assert d.code in dry and "Chuyển được" in dry
    token = re.search(r'name="csrf_token" value="([^"]+)"', dry).group(1)
    done = admin.post(f"/quan-tri/thu-tuc/1.001612/chuyen-phien-ban/{version.number}",
                      data={"csrf_token": token, "ma": d.code}).get_data(as_text=True)
    assert "Đã chuyển" in done
    session.rollback()
    session.expire_all()
    from engine.store.models import Dossier
    assert session.get(Dossier, d.id).version_id == version.id


def test_each_role_lands_on_its_own_start_page(ui, session, office):
    """Issue #12 item 6: a manager starts on the dashboard, a designer in the designer, an admin in the
    catalog; whoever works steps starts in the inbox."""
    expected = {"mot_cua1": "/hop-thu", "chuyen_vien1": "/hop-thu", "manager1": "/bang-dieu-khien",
                "designer1": "/thiet-ke", "admin1": "/quan-tri/thu-tuc"}
    for username, page in expected.items():
        client = ui.application.test_client()
        token = csrf(client)
        landed = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123", "csrf_token": token})
        assert landed.status_code == 302 and landed.headers["Location"].startswith(page), username
        assert client.get("/").headers["Location"].startswith(page), username
