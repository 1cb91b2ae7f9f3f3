"""HTTP API v1 over the Flask test client, on SQLite and PostgreSQL: the DESIGN.md contract."""
import base64
from pathlib import Path

import pytest
from conftest import APPLICANT, bearer, item, pdf, result_for
from sqlalchemy import func, select

from engine import clock
from engine.store.models import Dossier, OutboxEvent

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def dossier_body(code="1.001612", **extra):
    comps = {"1.001612": ["GIAYDENGHI"], "1.009994": ["DONDENGHI", "QUYENSDD", "BANVE"]}[code]
    body = {"procedure_code": code, "channel": "counter", "applicant": APPLICANT,
            "components": [{"code": c, "filename": f"{c.lower()}.pdf", "content_base64": b64(pdf(c))} for c in comps]}
    body.update(extra)
    return body


def assert_problem(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    data = response.get_json()
    assert data["status"] == status and data["title"] and data["detail"] and data["type"].startswith("urn:motcua:problem:")
    if code:
        assert data["type"] == f"urn:motcua:problem:{code}"
    return data


@pytest.fixture
def frozen():
    with clock.frozen(clock.aware(__import__("datetime").datetime(2026, 11, 2, 9, 0))):
        yield


def test_token_and_bad_credentials(client, office):
    assert "Authorization" in bearer(client, "mot_cua1")
    assert_problem(client.post("/api/v1/auth/token", json={"username": "mot_cua1", "password": "sai-mat-khau"}), 401)
    assert_problem(client.post("/api/v1/auth/token", json={"username": "khong-co", "password": "x"}), 401)
    assert_problem(client.post("/api/v1/auth/token", json={"username": "mot_cua1"}), 422, "invalid_input")
    assert_problem(client.get("/api/v1/tasks"), 401)
    assert_problem(client.get("/api/v1/tasks", headers={"Authorization": "Bearer forged"}), 401)


def test_generic_errors_are_problems(client, office):
    assert_problem(client.get("/api/v1/khong-ton-tai"), 404)
    assert_problem(client.delete("/api/v1/procedures"), 405)
    h = bearer(client, "mot_cua1")
    assert_problem(client.post("/api/v1/dossiers", data="x", headers={**h, "Content-Type": "text/plain"}), 415)
    assert_problem(client.post("/api/v1/dossiers", data="{not json", headers={**h, "Content-Type": "application/json"}),
                   400)
    assert_problem(client.post("/api/v1/dossiers", json=[1, 2], headers=h), 422)


def test_request_too_large_is_413(app, client, office):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    h = bearer(client, "mot_cua1")
    big = client.post("/api/v1/dossiers", data="x" * 4096, headers={**h, "Content-Type": "application/json"})
    assert_problem(big, 413)


def test_catalog_is_public_and_procedure_creation_is_admin_only(client, office):
    listed = client.get("/api/v1/procedures").get_json()
    assert sorted(p["code"] for p in listed) == ["1.001193", "1.001612", "1.009994"]
    one = client.get("/api/v1/procedures/1.009994").get_json()
    assert one["statutory_days"] == 15 and one["versions"][0]["status"] == "published"
    assert_problem(client.get("/api/v1/procedures/9.999999"), 404)
    new = {"code": "1.004227", "name": "Thủ tục mới", "field": "Thử", "level": "xa", "statutory_days": 5,
           "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}],
           "legal_bases": [{"number": "01/2026/TT-X", "title": "Thông tư", "effective_from": "2026-01-01"}]}
    assert_problem(client.post("/api/v1/procedures", json=new, headers=bearer(client, "designer1")), 403)
    created = client.post("/api/v1/procedures", json=new, headers=bearer(client, "admin1"))
    assert created.status_code == 201 and created.get_json()["code"] == "1.004227"
    assert_problem(client.post("/api/v1/procedures", json=new, headers=bearer(client, "admin1")), 409)
    bad = client.post("/api/v1/procedures", json={**new, "code": "4.1", "level": "huyen-cu"},
                      headers=bearer(client, "admin1"))
    assert set(assert_problem(bad, 422)["errors"]) == {"code", "level"}


def test_versions_submit_validate_publish(client, office):
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()
    designer, admin = bearer(client, "designer1"), bearer(client, "admin1")
    bad = client.post("/api/v1/procedures/1.001612/versions", json={"bpmn": "<definitions"}, headers=designer)
    assert assert_problem(bad, 422, "bpmn_invalid")["errors"][0]["code"] == "xml_not_well_formed"
    v = client.post("/api/v1/procedures/1.001612/versions", json={"bpmn": xml.replace("PT4H", "PT3H"), "notes": "v2"},
                    headers=designer)
    assert v.status_code == 201 and v.get_json() == {"number": 2, "problems": []}
    assert_problem(client.post("/api/v1/procedures/1.001612/versions/2/publish", json={"effective_from": "2026-12-01"},
                               headers=designer), 403)
    ok = client.post("/api/v1/procedures/1.001612/versions/2/publish", json={"effective_from": "2026-12-01"},
                     headers=admin)
    assert ok.status_code == 200 and ok.get_json()["status"] == "published"
    assert_problem(client.post("/api/v1/procedures/1.001612/versions/2/publish", json={"effective_from": "2026-12-02"},
                               headers=admin), 409, "version_immutable")
    check = client.post("/api/v1/bpmn/validate", json={"bpmn": "<a><b></a>"}, headers=designer)
    assert check.status_code == 200 and check.get_json()["valid"] is False


def test_receive_and_read_a_dossier_with_unit_authorization(client, office, frozen):
    h = bearer(client, "mot_cua1")
    r = client.post("/api/v1/dossiers", json=dossier_body(), headers=h)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["code"] == "H40.1-261102-0001" and created["status"] == "received"
    assert created["due_at"] == "2026-11-05T17:00:00+07:00"
    view = client.get(f"/api/v1/dossiers/{created['code']}", headers=bearer(client, "chuyen_vien1")).get_json()
    assert view["procedure_code"] == "1.001612" and view["version"] == 1
    assert view["open_tasks"][0]["role"] == "mot_cua" and view["timeline"][0]["finished"] is None
    # Another commune's staff cannot see it: the same answer as for a code that does not exist.
    assert_problem(client.get(f"/api/v1/dossiers/{created['code']}", headers=bearer(client, "cv_khac")), 404)
    assert_problem(client.post("/api/v1/dossiers", json=dossier_body(), headers=bearer(client, "chuyen_vien1")), 403)


def test_missing_component_names_each_one_and_writes_nothing(client, session, office):
    body = dossier_body("1.009994")
    body["components"] = body["components"][:1]
    data = assert_problem(client.post("/api/v1/dossiers", json=body, headers=bearer(client, "mot_cua1")), 422,
                          "missing_components")
    assert set(data["errors"]) == {"components.QUYENSDD", "components.BANVE"}
    assert session.scalar(select(func.count()).select_from(Dossier)) == 0


def test_uploads_are_sniffed_and_base64_checked(client, session, office):
    h = bearer(client, "mot_cua1")
    fake = dossier_body()
    fake["components"][0]["content_base64"] = b64(b"MZ\x90\x00 not a pdf")
    assert "components.0" in assert_problem(client.post("/api/v1/dossiers", json=fake, headers=h), 422)["errors"]
    exe = dossier_body()
    exe["components"][0]["filename"] = "virus.exe"
    assert_problem(client.post("/api/v1/dossiers", json=exe, headers=h), 422)
    broken = dossier_body()
    broken["components"][0]["content_base64"] = "***"
    assert "components.0.content_base64" in assert_problem(client.post("/api/v1/dossiers", json=broken, headers=h),
                                                           422)["errors"]
    assert session.scalar(select(func.count()).select_from(Dossier)) == 0


def test_idempotent_retry_creates_one_dossier(client, session, office):
    h = {**bearer(client, "mot_cua1"), "Idempotency-Key": "quay-1-lan-thu-nhat"}
    first = client.post("/api/v1/dossiers", json=dossier_body(), headers=h)
    again = client.post("/api/v1/dossiers", json=dossier_body(), headers=h)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert session.scalar(select(func.count()).select_from(Dossier)) == 1
    other = dossier_body(applicant={**APPLICANT, "name": "Người khác"})
    assert_problem(client.post("/api/v1/dossiers", json=other, headers=h), 409, "idempotency_key_reused")


def test_tasks_complete_supplement_apology_and_result(client, session, office, frozen):
    desk, cv = bearer(client, "mot_cua1"), bearer(client, "chuyen_vien1")
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=desk).get_json()["code"]
    task = client.get("/api/v1/tasks", headers=desk).get_json()[0]
    assert task["dossier_code"] == code and task["decisions"] == ["approve"]
    assert_problem(client.post(f"/api/v1/tasks/{task['id']}/complete", json={}, headers=cv), 403)
    assert client.post(f"/api/v1/tasks/{task['id']}/complete", json={}, headers=desk).get_json()["status"] == "processing"
    assert_problem(client.post(f"/api/v1/tasks/{task['id']}/complete", json={}, headers=desk), 409, "task_not_ready")
    appraisal = client.get("/api/v1/tasks", headers=cv).get_json()[0]
    assert_problem(client.post(f"/api/v1/dossiers/{code}/supplements", json={"components": []}, headers=desk), 409,
                   "supplement_not_requested")
    req = {"data": {"decision": "request_supplement", "items": [item("Giấy đề nghị có chữ ký")]}, "note": "Thiếu chữ ký"}
    done = client.post(f"/api/v1/tasks/{appraisal['id']}/complete", json=req, headers=cv)
    assert done.get_json()["status"] == "awaiting_supplement"
    sup = {"components": [{"code": "GIAYDENGHI", "filename": "moi.pdf", "content_base64": b64(pdf("moi"))}]}
    back = client.post(f"/api/v1/dossiers/{code}/supplements", json=sup, headers={**desk, "Idempotency-Key": "bs-1"})
    assert back.status_code == 200 and back.get_json()["status"] == "processing"
    again = client.post(f"/api/v1/dossiers/{code}/supplements", json=sup, headers={**desk, "Idempotency-Key": "bs-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    second = client.get("/api/v1/tasks", headers=cv).get_json()[0]
    assert_problem(client.post(f"/api/v1/tasks/{second['id']}/complete", json=req, headers=cv), 409,
                   "supplement_already_requested")
    # The desk records an apology only with the leader who signed it (L12).
    assert_problem(client.post(f"/api/v1/dossiers/{code}/apologies",
                               json={"reason": "Chờ xác minh", "new_due_at": "2026-11-13T17:00:00+07:00"}, headers=desk),
                   422)
    assert_problem(client.post(f"/api/v1/dossiers/{code}/apologies",
                               json={"reason": "Chờ xác minh", "new_due_at": "2026-11-13T17:00:00+07:00",
                                     "signed_by_id": office["chuyen_vien"]}, headers=desk), 422)
    apology = client.post(f"/api/v1/dossiers/{code}/apologies",
                          json={"reason": "Chờ xác minh", "new_due_at": "2026-11-13T17:00:00+07:00",
                                "signed_by_id": office["lanh_dao"]}, headers=desk)
    assert apology.status_code == 201 and apology.get_json()["late"] is False
    assert_problem(client.post(f"/api/v1/dossiers/{code}/apologies",
                               json={"reason": "Lần hai", "new_due_at": "2026-11-20T17:00:00+07:00"}, headers=desk),
                   409, "due_date_already_reset")
    for user in ("chuyen_vien1", "lanh_dao_phong1", "lanh_dao1", "van_thu1"):
        h = bearer(client, user)
        t = client.get("/api/v1/tasks", headers=h).get_json()[0]
        session.rollback()  # the API writes on its own connection
        assert client.post(f"/api/v1/tasks/{t['id']}/complete", json={
            "data": {"decision": "approve"}, "result": result_for(session, t["id"], api=True)}, headers=h).status_code == 200
    returned = client.post(f"/api/v1/dossiers/{code}/return-result", headers=desk)
    assert returned.get_json() == {"code": code, "status": "returned"}
    view = client.get(f"/api/v1/dossiers/{code}", headers=desk).get_json()
    assert len(view["supplements"]) == 1 and len(view["apologies"]) == 1
    assert [t["role"] for t in view["timeline"]] == ["mot_cua", "chuyen_vien", "chuyen_vien", "lanh_dao_phong",
                                                    "lanh_dao", "van_thu"]
    assert view["timeline"][1]["decision"] == "request_supplement"


def test_withdraw(client, office):
    desk = bearer(client, "mot_cua1")
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=desk).get_json()["code"]
    assert_problem(client.post(f"/api/v1/dossiers/{code}/withdraw", json={}, headers=bearer(client, "mc_khac")), 404)
    r = client.post(f"/api/v1/dossiers/{code}/withdraw", json={"reason": "Công dân rút hồ sơ"}, headers=desk)
    assert r.get_json()["status"] == "withdrawn"
    assert_problem(client.post(f"/api/v1/dossiers/{code}/withdraw", json={}, headers=desk), 409, "dossier_closed")


def test_public_lookup_matches_code_and_id_and_is_rate_limited(app, client, office):
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=bearer(client, "mot_cua1")).get_json()["code"]
    ok = client.get(f"/api/v1/public/dossiers/{code}?id_number={APPLICANT['id_number']}")
    assert ok.status_code == 200
    assert set(ok.get_json()) == {"code", "procedure_code", "procedure_name", "status", "overdue", "received_at",
                                  "due_at", "finished_at", "returned_at"}
    wrong = client.get(f"/api/v1/public/dossiers/{code}?id_number=000000000000")
    assert assert_problem(wrong, 404)["detail"] == "Không có hồ sơ nào được tìm thấy"
    assert assert_problem(client.get("/api/v1/public/dossiers/KHONG-CO?id_number=1"), 404)["detail"] == \
        "Không có hồ sơ nào được tìm thấy"
    for _ in range(app.config["PUBLIC_LOOKUP_LIMIT"]):
        client.get(f"/api/v1/public/dossiers/{code}?id_number=1")
    limited = assert_problem(client.get(f"/api/v1/public/dossiers/{code}?id_number={APPLICANT['id_number']}"), 429)
    assert limited and int(client.get(f"/api/v1/public/dossiers/{code}?id_number=1").headers["Retry-After"]) > 0


def test_outbox_rows_follow_each_state_change(client, session, office):
    desk = bearer(client, "mot_cua1")
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=desk).get_json()["code"]
    task = client.get("/api/v1/tasks", headers=desk).get_json()[0]
    client.post(f"/api/v1/tasks/{task['id']}/complete", json={}, headers=desk)
    client.post(f"/api/v1/dossiers/{code}/withdraw", json={}, headers=desk)
    events = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [(e.kind, e.payload["status"]) for e in events] == [
        ("received", "received"), ("status_changed", "processing"), ("status_changed", "withdrawn")]
    assert len({e.event_id for e in events}) == 3 and events[0].payload["dossier_code"] == code


def test_metrics_need_a_manager_and_count_dossiers(client, office, frozen):
    desk = bearer(client, "mot_cua1")
    client.post("/api/v1/dossiers", json=dossier_body(), headers=desk)
    client.post("/api/v1/dossiers", json=dossier_body(channel="online"), headers=desk)
    assert_problem(client.get("/api/v1/metrics", headers=desk), 403)
    m = client.get("/api/v1/metrics?from=2026-11-01&to=2026-11-30&unit=H40.1", headers=bearer(client, "manager1"))
    data = m.get_json()
    assert data["received"] == {"total": 2, "online": 1, "counter": 1, "post": 0}
    assert data["in_progress"]["total"] == 2 and data["on_time_rate"] is None
    assert_problem(client.get("/api/v1/metrics?from=2026-11-30&to=2026-11-01", headers=bearer(client, "manager1")), 422)


def test_openapi_document_lists_every_contract_path(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    expected = {"/auth/token", "/procedures", "/procedures/{code}", "/procedures/{code}/versions",
                "/procedures/{code}/versions/{number}/publish", "/bpmn/validate", "/dossiers", "/dossiers/{code}",
                "/tasks", "/tasks/{task_id}/complete", "/dossiers/{code}/supplements", "/dossiers/{code}/apologies",
                "/dossiers/{code}/withdraw", "/dossiers/{code}/return-result", "/public/dossiers/{code}", "/metrics"}
    assert expected <= set(doc["paths"])
    assert "DossierIn" in doc["components"]["schemas"]


def test_unexpected_errors_are_logged_problems_without_a_stack_trace(app, client, caplog):
    @app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/api/v1/_boom", headers={"X-Request-ID": "req-42"})
    data = assert_problem(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert data["request_id"] == "req-42" and response.headers["X-Request-ID"] == "req-42"
    assert any("req-42" in r.getMessage() for r in caplog.records)


def test_expired_token_is_refused(client, office):
    import datetime as dt

    h = bearer(client, "mot_cua1")
    with clock.frozen(clock.now() + dt.timedelta(hours=13)):
        assert_problem(client.get("/api/v1/tasks", headers=h), 401)
    assert client.get("/api/v1/tasks", headers=h).status_code == 200


def test_procedure_with_expired_legal_basis_leaves_the_public_catalog(client, session, office):
    from datetime import date

    from engine import catalog
    catalog.get_procedure(session, "1.009994").legal_bases[0].expires_on = date(2020, 1, 1)
    session.commit()
    listed = {p["code"] for p in client.get("/api/v1/procedures").get_json()}
    assert listed == {"1.001193", "1.001612"}
    assert_problem(client.post("/api/v1/dossiers", json=dossier_body("1.009994"), headers=bearer(client, "mot_cua1")),
                   409, "procedure_not_accepting")
