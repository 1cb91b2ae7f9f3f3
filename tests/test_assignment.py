"""Phân công (issue 12, item 4): a head of a step's unit assigns an open step to one holder of its role
there, or reassigns it; a holder of the role claims an unassigned step; once assigned, only the assignee
completes it; every change of hands is audited; "Việc của tôi" lists what is mine or nobody's, "Việc của
đơn vị" everything with its assignee. Through the engine, the API and the screens, on SQLite and PostgreSQL."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import bearer, open_task, receive, vn
from sqlalchemy import select
from test_lien_thong import open_step as lien_thong_step
from test_lien_thong import province, receive_at_x  # noqa: F401  (the province fixture: liên thông)

from engine import dossiers
from engine.access import directory
from engine.access.actors import load_actor
from engine.dossiers.audit import verify_chain
from engine.errors import InvalidInput, NotAllowed, NotFound, TaskNotReady
from engine.reporting import views
from engine.store.models import AuditEvent, Dossier, HumanTask

AT = vn(2026, 11, 2, 10, 0)
BINH = "Trần Thị Bình"


@pytest.fixture
def people(session, office) -> dict[str, int]:
    """The office's users, a second specialist of H40.1 and a head of department of the other commune."""
    ids = dict(office.users)
    ids["chuyen_vien2"] = directory.add_user(session, "chuyen_vien2", "matkhau-123", [("H40.1", "chuyen_vien")],
                                             full_name=BINH).id
    ids["other_head"] = directory.add_user(session, "ldp_khac", "matkhau-123", [("H40.2", "lanh_dao_phong")]).id
    session.commit()
    return ids


@pytest.fixture
def step(session, office, people) -> tuple[str, str]:
    """A dossier received at H40.1 whose desk step is done: (its code, the id of its open specialist step)."""
    d = receive(session, office)
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id,
                           data={"decision": "approve"}, now=AT - timedelta(minutes=30))
    task = open_task(session, d)
    assert task.role == "chuyen_vien"
    code, task_id = d.code, task.id
    session.rollback()
    return code, task_id


def assignee_of(session, task_id: str) -> int | None:
    value = session.scalar(select(HumanTask.assignee_id).where(HumanTask.id == task_id))
    session.rollback()  # end the read: the app's writers never wait on it
    return value


def handovers(session, code: str) -> list[dict]:
    """The dossier's `task_assigned` events as {how, from, to} (the hash chain checked first)."""
    dossier_id = session.scalar(select(Dossier.id).where(Dossier.code == code))
    assert verify_chain(session, dossier_id) is None
    rows = session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == dossier_id,
                                                    AuditEvent.kind == "task_assigned").order_by(AuditEvent.seq)).all()
    out = [{"how": e.data["how"], "from": e.data["from"], "to": e.data["to"], "by": e.actor_id} for e in rows]
    session.rollback()
    return out


# --- the engine ------------------------------------------------------------------------------------
def test_a_head_assigns_only_to_a_holder_of_the_steps_role_in_its_unit(session, people, step):
    code, task_id = step
    for wrong in (people["mot_cua"], people["lanh_dao_phong"], people["other_chuyen_vien"], 999999):
        with pytest.raises(InvalidInput):   # another role of the unit, the head themself, another unit's specialist
            dossiers.assign_task(session, actor_id=people["lanh_dao_phong"], task_id=task_id, assignee_id=wrong, now=AT)
    assert assignee_of(session, task_id) is None and handovers(session, code) == []

    done = dossiers.assign_task(session, actor_id=people["lanh_dao_phong"], task_id=task_id,
                                assignee_id=people["chuyen_vien2"], now=AT)
    assert done.changed and done.assignee_name == BINH and done.unit_code == "H40.1"
    assert assignee_of(session, task_id) == people["chuyen_vien2"]
    # the agency's leader heads the unit too
    dossiers.assign_task(session, actor_id=people["lanh_dao"], task_id=task_id, assignee_id=people["chuyen_vien"],
                         now=AT + timedelta(minutes=1))
    assert assignee_of(session, task_id) == people["chuyen_vien"]


def test_only_a_head_of_the_steps_unit_assigns(session, people, step):
    code, task_id = step
    for who in ("chuyen_vien", "chuyen_vien2", "mot_cua", "van_thu", "manager"):
        with pytest.raises(NotAllowed):
            dossiers.assign_task(session, actor_id=people[who], task_id=task_id, assignee_id=people["chuyen_vien"], now=AT)
    with pytest.raises(NotFound):  # a head of another commune does not even see the dossier
        dossiers.assign_task(session, actor_id=people["other_head"], task_id=task_id, assignee_id=people["chuyen_vien"],
                             now=AT)
    assert assignee_of(session, task_id) is None and handovers(session, code) == []


def test_an_assigned_step_is_completed_only_by_its_assignee(session, people, step):
    code, task_id = step
    dossiers.assign_task(session, actor_id=people["lanh_dao_phong"], task_id=task_id, assignee_id=people["chuyen_vien2"],
                         now=AT)
    with pytest.raises(NotAllowed, match="assigned to another user"):
        dossiers.complete_task(session, actor_id=people["chuyen_vien"], task_id=task_id, data={"decision": "approve"},
                               now=AT + timedelta(minutes=5))
    with pytest.raises(NotAllowed):  # the head who assigned it does not complete it either
        dossiers.complete_task(session, actor_id=people["lanh_dao_phong"], task_id=task_id,
                               data={"decision": "approve"}, now=AT + timedelta(minutes=5))
    assert assignee_of(session, task_id) == people["chuyen_vien2"]
    done = dossiers.complete_task(session, actor_id=people["chuyen_vien2"], task_id=task_id,
                                  data={"decision": "approve"}, now=AT + timedelta(minutes=6))
    assert done.task.completed_by_id == people["chuyen_vien2"]


def test_reassignment_is_audited_with_from_and_to(session, people, step):
    code, task_id = step
    head, cv1, cv2 = people["lanh_dao_phong"], people["chuyen_vien"], people["chuyen_vien2"]
    dossiers.assign_task(session, actor_id=head, task_id=task_id, assignee_id=cv1, now=AT)
    again = dossiers.assign_task(session, actor_id=head, task_id=task_id, assignee_id=cv1, now=AT + timedelta(minutes=1))
    assert not again.changed  # the same assignee again: nothing happens, nothing is recorded
    moved = dossiers.assign_task(session, actor_id=head, task_id=task_id, assignee_id=cv2, now=AT + timedelta(minutes=2))
    assert moved.previous_id == cv1 and moved.changed
    assert handovers(session, code) == [{"how": "assign", "from": None, "to": cv1, "by": head},
                                        {"how": "assign", "from": cv1, "to": cv2, "by": head}]


def test_a_specialist_claims_a_free_step_but_cannot_take_one_assigned_to_someone_else(session, people, step):
    code, task_id = step
    cv1, cv2 = people["chuyen_vien"], people["chuyen_vien2"]
    claimed = dossiers.claim_task(session, actor_id=cv1, task_id=task_id, now=AT)
    assert claimed.changed and assignee_of(session, task_id) == cv1
    assert not dossiers.claim_task(session, actor_id=cv1, task_id=task_id, now=AT + timedelta(minutes=1)).changed
    with pytest.raises(dossiers.TaskTaken):
        dossiers.claim_task(session, actor_id=cv2, task_id=task_id, now=AT + timedelta(minutes=2))
    assert assignee_of(session, task_id) == cv1
    assert handovers(session, code) == [{"how": "claim", "from": None, "to": cv1, "by": cv1}]


def test_only_a_holder_of_the_steps_role_in_its_unit_claims_and_only_an_open_step(session, people, step):
    code, task_id = step
    for who in ("mot_cua", "lanh_dao_phong", "lanh_dao"):  # the unit's other roles, heads included
        with pytest.raises(NotAllowed):
            dossiers.claim_task(session, actor_id=people[who], task_id=task_id, now=AT)
    with pytest.raises(NotFound):  # a specialist of another commune
        dossiers.claim_task(session, actor_id=people["other_chuyen_vien"], task_id=task_id, now=AT)
    assert assignee_of(session, task_id) is None
    dossiers.complete_task(session, actor_id=people["chuyen_vien"], task_id=task_id, data={"decision": "approve"}, now=AT)
    with pytest.raises(TaskNotReady):
        dossiers.claim_task(session, actor_id=people["chuyen_vien2"], task_id=task_id, now=AT + timedelta(minutes=1))
    with pytest.raises(TaskNotReady):
        dossiers.assign_task(session, actor_id=people["lanh_dao_phong"], task_id=task_id,
                             assignee_id=people["chuyen_vien2"], now=AT + timedelta(minutes=1))
    assert handovers(session, code) == []


def test_the_assignee_or_a_head_hands_the_step_back_to_the_unit(session, people, step):
    code, task_id = step
    cv1, cv2, head = people["chuyen_vien"], people["chuyen_vien2"], people["lanh_dao_phong"]
    dossiers.claim_task(session, actor_id=cv1, task_id=task_id, now=AT)
    with pytest.raises(NotAllowed):  # another specialist cannot free someone else's step
        dossiers.release_task(session, actor_id=cv2, task_id=task_id, now=AT + timedelta(minutes=1))
    dossiers.release_task(session, actor_id=cv1, task_id=task_id, now=AT + timedelta(minutes=2))
    assert assignee_of(session, task_id) is None
    dossiers.claim_task(session, actor_id=cv2, task_id=task_id, now=AT + timedelta(minutes=3))
    dossiers.release_task(session, actor_id=head, task_id=task_id, now=AT + timedelta(minutes=4))
    assert assignee_of(session, task_id) is None
    assert [(h["how"], h["from"], h["to"]) for h in handovers(session, code)] == [
        ("claim", None, cv1), ("release", cv1, None), ("claim", None, cv2), ("release", cv2, None)]


def test_my_work_holds_my_steps_and_free_ones_the_units_work_everything_with_its_assignee(session, office, people, step):
    code, task_id = step
    other = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, other).id,
                           data={"decision": "approve"}, now=AT - timedelta(minutes=20))
    other_code = other.code
    session.rollback()
    dossiers.assign_task(session, actor_id=people["lanh_dao_phong"], task_id=task_id, assignee_id=people["chuyen_vien2"],
                         now=AT)

    def listed(who, **kw):
        rows, total = views.inbox_page(session, load_actor(session, people[who]), at=AT, **kw)
        session.rollback()
        assert total == len(rows)
        return {r["dossier"].code: r["assignee"] for r in rows}

    assert listed("chuyen_vien2") == {code: BINH, other_code: None}
    assert listed("chuyen_vien") == {other_code: None}           # someone else's step is not "mine"
    assert listed("chuyen_vien", whole_unit=True) == {code: BINH, other_code: None}
    assert listed("chuyen_vien2", only="da-nhan") == {code: BINH}
    assert listed("chuyen_vien2", only="chua-phan-cong") == {other_code: None}
    api_rows = views.inbox(session, load_actor(session, people["chuyen_vien2"]))
    session.rollback()
    assert {r["dossier_code"]: (r["assignee_id"], r["assignee"]) for r in api_rows} == {
        code: (people["chuyen_vien2"], BINH), other_code: (None, None)}


# --- the API ---------------------------------------------------------------------------------------
def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == f"urn:motcua:problem:{code}"


def test_api_assign_claim_and_release(client, session, people, step):
    code, task_id = step
    head, cv1, cv2 = bearer(client, "lanh_dao_phong1"), bearer(client, "chuyen_vien1"), bearer(client, "chuyen_vien2")
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/assign", json={"assignee_id": people["mot_cua"]}, headers=head),
                   422, "invalid_input")
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/assign", json={"assignee_id": people["chuyen_vien"]},
                               headers=cv2), 403, "not_allowed")
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/assign", json={"assignee_id": "x"}, headers=head),
                   422, "invalid_input")
    r = client.post(f"/api/v1/tasks/{task_id}/assign", json={"assignee_id": people["chuyen_vien2"]}, headers=head)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["id"], body["dossier_code"], body["assignee_id"], body["assignee"], body["unit_code"]) == \
        (task_id, code, people["chuyen_vien2"], BINH, "H40.1")
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/claim", headers=cv1), 409, "task_taken")
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {"decision": "approve"}}, headers=cv1),
                   403, "not_allowed")
    assert [t["id"] for t in client.get("/api/v1/tasks", headers=cv1).get_json()] == []
    assert [(t["id"], t["assignee"]) for t in client.get("/api/v1/tasks", headers=cv2).get_json()] == [(task_id, BINH)]
    assert client.post(f"/api/v1/tasks/{task_id}/release", headers=cv2).get_json()["assignee_id"] is None
    claimed = client.post(f"/api/v1/tasks/{task_id}/claim", headers=cv1)
    assert claimed.status_code == 200 and claimed.get_json()["assignee_id"] == people["chuyen_vien"]
    assert_problem(client.post("/api/v1/tasks/khong-co/claim", headers=cv1), 404, "not_found")
    assert [(h["how"], h["to"]) for h in handovers(session, code)] == [
        ("assign", people["chuyen_vien2"]), ("release", None), ("claim", people["chuyen_vien"])]


def test_openapi_documents_assign_and_claim(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assign = doc["paths"]["/tasks/{task_id}/assign"]["post"]
    assert assign["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/AssignIn")
    assert {"200", "403", "404", "409", "422"} <= set(assign["responses"])
    assert {"200", "403", "404", "409"} <= set(doc["paths"]["/tasks/{task_id}/claim"]["post"]["responses"])
    assert "/tasks/{task_id}/release" in doc["paths"]
    assert {"assignee_id", "assignee"} <= set(doc["components"]["schemas"]["TaskOut"]["properties"])


# --- the screens -----------------------------------------------------------------------------------
def csrf(client, url="/dang-nhap"):
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def login(app):
    app.config["SESSION_COOKIE_SECURE"] = False
    count = iter(range(1, 100))

    def as_user(username):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.9.0.{next(count)}"
        r = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123", "csrf_token": csrf(client)})
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
        return client
    return as_user


def test_screens_claim_assign_and_show_the_assignee(login, session, people, step):
    code, task_id = step
    cv1, cv2, head = login("chuyen_vien1"), login("chuyen_vien2"), login("lanh_dao_phong1")
    claim_action = f'action="/cong-viec/{task_id}/nhan-viec"'
    assign_action = f'action="/cong-viec/{task_id}/phan-cong"'

    mine = cv1.get("/hop-thu").get_data(as_text=True)
    assert code in mine and claim_action in mine and "Chưa phân công" in mine and assign_action not in mine
    unit = head.get("/hop-thu?pham-vi=don-vi").get_data(as_text=True)
    assert assign_action in unit and claim_action not in unit  # a head assigns; the step is not of their role
    assert f'<option value="{people["chuyen_vien2"]}"' in unit and f'<option value="{people["mot_cua"]}"' not in unit

    assert cv1.post(f"/cong-viec/{task_id}/nhan-viec", data={"tro-ve": "hop-thu"}).status_code == 400  # no CSRF token
    assert assignee_of(session, task_id) is None
    r = cv1.post(f"/cong-viec/{task_id}/nhan-viec", data={"csrf_token": csrf(cv1, "/hop-thu"), "tro-ve": "hop-thu"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/hop-thu")
    assert assignee_of(session, task_id) == people["chuyen_vien"]
    assert "Bạn đã nhận bước" in cv1.get("/hop-thu").get_data(as_text=True)

    # the other specialist: gone from their work, listed under the unit's with its assignee, cannot take it
    assert code not in cv2.get("/hop-thu").get_data(as_text=True)
    assert code in cv2.get("/hop-thu?pham-vi=don-vi").get_data(as_text=True)
    r = cv2.post(f"/cong-viec/{task_id}/nhan-viec", data={"csrf_token": csrf(cv2, "/hop-thu")})
    assert r.status_code == 303
    assert "đã được giao cho người khác" in cv2.get(r.headers["Location"]).get_data(as_text=True)
    assert assignee_of(session, task_id) == people["chuyen_vien"]

    # the head reassigns from the unit's list; the step page names the new assignee
    r = head.post(f"/cong-viec/{task_id}/phan-cong", data={"csrf_token": csrf(head, "/hop-thu"), "tro-ve": "don-vi",
                                                          "nguoi-nhan": str(people["chuyen_vien2"])})
    assert r.status_code == 303 and "pham-vi=don-vi" in r.headers["Location"]
    assert assignee_of(session, task_id) == people["chuyen_vien2"]
    page = head.get(r.headers["Location"]).get_data(as_text=True)
    assert "Đã phân công bước" in page and BINH in page and "trước đây: Phạm Minh Tuấn" in page
    task_page = cv2.get(f"/cong-viec/{task_id}").get_data(as_text=True)
    assert "Người xử lý: <strong>Trần Thị Bình</strong> (bạn)" in task_page and "Trả việc về đơn vị" in task_page
    # an ineligible assignee is refused with a Vietnamese reason, nothing changes
    r = head.post(f"/cong-viec/{task_id}/phan-cong", data={"csrf_token": csrf(head, "/hop-thu"),
                                                          "nguoi-nhan": str(people["mot_cua"])})
    assert "Hãy chọn một người giữ vai trò Chuyên viên" in head.get(r.headers["Location"]).get_data(as_text=True)
    r = head.post(f"/cong-viec/{task_id}/phan-cong", data={"csrf_token": csrf(head, "/hop-thu"), "nguoi-nhan": ""})
    assert "Hãy chọn một người giữ vai trò Chuyên viên" in head.get(r.headers["Location"]).get_data(as_text=True)
    assert assignee_of(session, task_id) == people["chuyen_vien2"]
    # a specialist may not assign: the 403 page
    r = cv1.post(f"/cong-viec/{task_id}/phan-cong", data={"csrf_token": csrf(cv1, "/hop-thu"),
                                                         "nguoi-nhan": str(people["chuyen_vien"])})
    assert r.status_code == 403
    assert [(h["how"], h["from"], h["to"]) for h in handovers(session, code)] == [
        ("claim", None, people["chuyen_vien"]), ("assign", people["chuyen_vien"], people["chuyen_vien2"])]



# --- liên thông: the step's unit, not the receiving one, assigns it ---------------------------------
def test_a_step_held_by_another_unit_is_assigned_by_that_units_head(session, province):  # noqa: F811
    ids = province  # commune H40.1 receives; department SXD's specialists and leader decide
    ids["cv2@SXD"] = directory.add_user(session, "cv2.sxd", "matkhau-123", [("SXD", "chuyen_vien")]).id
    ids["lanh_dao_phong@H40.1"] = directory.add_user(session, "ldp.h40.1", "matkhau-123",
                                                     [("H40.1", "lanh_dao_phong")]).id
    session.commit()
    d = receive_at_x(session, ids)
    dossiers.complete_task(session, actor_id=ids["mot_cua@H40.1"], task_id=lien_thong_step(session, d).id,
                           data={"decision": "approve"}, now=AT - timedelta(minutes=30))
    task_id = lien_thong_step(session, d).id
    session.rollback()
    with pytest.raises(NotAllowed):  # the receiving commune's head sees the dossier but does not run SXD's step
        dossiers.assign_task(session, actor_id=ids["lanh_dao_phong@H40.1"], task_id=task_id,
                             assignee_id=ids["chuyen_vien@SXD"], now=AT)
    with pytest.raises(InvalidInput):  # the commune's specialist holds the role, but not in the step's unit
        dossiers.assign_task(session, actor_id=ids["lanh_dao@SXD"], task_id=task_id,
                             assignee_id=ids["chuyen_vien@H40.1"], now=AT)
    with pytest.raises(NotAllowed):
        dossiers.claim_task(session, actor_id=ids["chuyen_vien@H40.1"], task_id=task_id, now=AT)
    done = dossiers.assign_task(session, actor_id=ids["lanh_dao@SXD"], task_id=task_id, assignee_id=ids["cv2@SXD"],
                                now=AT)
    assert done.unit_code == "SXD" and assignee_of(session, task_id) == ids["cv2@SXD"]
    with pytest.raises(NotAllowed):
        dossiers.complete_task(session, actor_id=ids["chuyen_vien@SXD"], task_id=task_id, data={"decision": "approve"},
                               now=AT + timedelta(minutes=1))
