"""Citizens' personal data is for those who work dossiers (issue #12 item 6): a designer or an
administrator who holds no desk role sees figures and codes, never names, ID numbers or phones."""
import pytest
from conftest import APPLICANT, login, receive

from engine.access import directory

PERIOD = "tu=2026-11-01&den=2026-11-30"


@pytest.mark.parametrize("username", ["designer1", "admin1"])
def test_designer_and_admin_without_desk_role_never_see_a_citizen(ui, session, office, username):
    d = receive(session, office)
    c = login(ui, username)
    assert c.get(f"/ho-so/{d.code}").status_code == 404
    assert c.get(f"/ho-so/{d.code}/in/01").status_code == 404
    register = c.get(f"/so-theo-doi?{PERIOD}&xuat=csv")
    assert register.status_code in (200, 403) and APPLICANT["name"] not in register.get_data(as_text=True)
    for path in ("/danh-sach/qua-han", "/danh-sach/cho-tra", f"/tim-kiem?q={d.code}",
                 f"/tim-kiem?q={APPLICANT['id_number']}"):
        r = c.get(path)
        assert r.status_code in (200, 403), path
        body = r.get_data(as_text=True)
        assert APPLICANT["name"] not in body and f"/ho-so/{d.code}" not in body, path
    if username == "admin1":   # oversight figures stay visible, with the codes and without the people
        page = c.get(f"/bang-dieu-khien/danh-sach?loai=received&{PERIOD}").get_data(as_text=True)
        assert d.code in page and APPLICANT["name"] not in page and f"/ho-so/{d.code}" not in page
        csv_text = c.get(f"/bang-dieu-khien/danh-sach?loai=received&{PERIOD}&xuat=csv").get_data(as_text=True)
        assert d.code in csv_text and APPLICANT["name"] not in csv_text
    api_token = c.application.test_client()
    from conftest import bearer
    headers = bearer(api_token, username)
    assert api_token.get(f"/api/v1/dossiers/{d.code}", headers=headers).status_code == 404


def test_a_manager_and_a_desk_role_still_see_the_applicant(ui, session, office):
    d = receive(session, office)
    manager = login(ui, "manager1")
    page = manager.get(f"/bang-dieu-khien/danh-sach?loai=received&{PERIOD}").get_data(as_text=True)
    assert APPLICANT["name"] in page and f"/ho-so/{d.code}" in page
    assert APPLICANT["name"] in manager.get(f"/ho-so/{d.code}").get_data(as_text=True)


def test_a_designer_who_also_works_the_desk_sees_that_units_dossiers(ui, session, office):
    d = receive(session, office)
    directory.add_user(session, "tk_mc", "matkhau-123", [("H40.1", "designer"), ("H40.1", "mot_cua")])
    session.commit()
    c = login(ui, "tk_mc")
    assert APPLICANT["name"] in c.get(f"/ho-so/{d.code}").get_data(as_text=True)
