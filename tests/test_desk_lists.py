"""The desk's day (issue #12, lists): the header's counters are links to the dossiers behind them, each
list filterable, sortable and exportable with its row action; the search finds any dossier of the
caller's units in any state, with or without diacritics; another unit's dossiers never show."""
from __future__ import annotations

import csv
import io
import re

import pytest
from conftest import APPLICANT, components_for, item, open_task, receive, result_for, vn
from sqlalchemy import select

from engine import dossiers
from engine.access.actors import load_actor
from engine.reporting import lists
from engine.store.models import Dossier

NOW = vn(2026, 11, 10, 10)  # Tuesday


@pytest.fixture
def desk_day(session, office):
    """Dossiers of H40.1 in every desk state on Tue 10/11/2026 10:00, and one of H40.2."""
    def finish(d, at):
        while True:
            session.expire_all()
            try:
                task = open_task(session, d)
            except Exception:  # noqa: BLE001 - no open step left
                return
            dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id,
                                   data={"decision": "approve"}, result=result_for(session, task, at), now=at)

    late = receive(session, office, at=vn(2026, 11, 2, 9))                         # due Thu 5/11: overdue
    soon = receive(session, office, at=vn(2026, 11, 6, 9), channel="online")        # due Wed 11/11: due tomorrow
    waiting = receive(session, office, at=vn(2026, 11, 9, 9))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, waiting).id,
                           now=vn(2026, 11, 9, 10))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, waiting).id,
                                reason="Thiếu chữ ký", items=[item("Chữ ký chủ hộ")], now=vn(2026, 11, 9, 11))
    ready = receive(session, office, at=vn(2026, 11, 9, 8))
    finish(ready, vn(2026, 11, 9, 14))
    handed = receive(session, office, at=vn(2026, 11, 9, 8, 30))
    finish(handed, vn(2026, 11, 9, 15))
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=handed.code, now=vn(2026, 11, 10, 8))
    other = dossiers.receive_dossier(session, actor_id=office["other_mot_cua"], procedure_code="1.001612",
                                     channel="counter", applicant={**APPLICANT, "name": "Lò Văn Khác"},
                                     components=components_for("1.001612"), now=vn(2026, 11, 2, 9), unit_code="H40.2")
    return {"qua-han": late, "den-han": soon, "cho-bo-sung": waiting, "cho-tra": ready, "da-tra-hom-nay": handed,
            "other": other}


def test_each_list_holds_exactly_its_dossiers_and_the_counts_agree(session, office, desk_day):
    actor = load_actor(session, office["mot_cua"])
    counted = lists.counts(session, actor, NOW)
    for slug in lists.LISTS:
        rows, total = lists.desk_list(session, actor, slug, NOW)
        assert [d.code for d, _, _ in rows] == [desk_day[slug].code], slug
        assert total == counted[slug] == 1, slug
    online, n = lists.desk_list(session, actor, "den-han", NOW, channel="counter")
    assert (online, n) == ([], 0)
    # Another commune's desk sees its own overdue dossier only.
    other = load_actor(session, office["other_mot_cua"])
    assert [d.code for d, _, _ in lists.desk_list(session, other, "qua-han", NOW)[0]] == [desk_day["other"].code]


def test_the_search_finds_any_state_with_or_without_diacritics_never_another_units(session, office, desk_day):
    actor = load_actor(session, office["mot_cua"])
    everyone = {d.code for key, d in desk_day.items() if key != "other"}
    for q in ("Nguyễn Văn An", "nguyen van an", "NGUYEN", APPLICANT["phone"], APPLICANT["id_number"]):
        assert {d.code for d, _ in lists.search(session, actor, q)} == everyone, q
    assert [d.code for d, _ in lists.search(session, actor, desk_day["cho-tra"].code)] == [desk_day["cho-tra"].code]
    assert lists.search(session, actor, "lo van khac") == [] and lists.search(session, actor, "a") == []


def _login(app, username):
    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["MOTCUA_NOW"] = NOW.isoformat()
    http = app.test_client()
    page = http.get("/dang-nhap").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert http.post("/dang-nhap", data={"username": username, "password": "matkhau-123",
                                         "csrf_token": token}).status_code == 302
    return http


def test_the_header_links_to_the_lists_and_a_row_acts_on_its_dossier(app, session, office, desk_day):
    http = _login(app, "mot_cua1")
    inbox = http.get("/hop-thu").get_data(as_text=True)
    for slug in lists.LISTS:
        if slug != "da-tra-hom-nay":
            assert f'href="/danh-sach/{slug}"' in inbox, slug
    assert 'action="/tim-kiem"' in inbox
    page = http.get("/danh-sach/cho-tra").get_data(as_text=True)
    code = desk_day["cho-tra"].code
    assert code in page and desk_day["qua-han"].code not in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert http.post(f"/ho-so/{code}/tra-ket-qua", data={"csrf_token": token, "hinh-thuc": "post"}).status_code == 302
    session.rollback()  # see the web request's commit
    handed = session.scalar(select(Dossier).where(Dossier.code == code))
    assert (handed.status, handed.returned_via) == ("returned", "post")
    assert code in http.get("/danh-sach/da-tra-hom-nay").get_data(as_text=True)
    exported = http.get("/danh-sach/qua-han?xuat=csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(exported)))
    assert rows[0][0] == "Mã hồ sơ" and [r[0] for r in rows[1:]] == [desk_day["qua-han"].code]
    found = http.get("/tim-kiem?q=nguyen+van+an").get_data(as_text=True)
    assert desk_day["cho-bo-sung"].code in found and desk_day["other"].code not in found
    assert http.get("/danh-sach/khong-co").status_code == 404
