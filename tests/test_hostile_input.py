"""Hostile input at every boundary gets a clear 4xx (a problem+json with a specific code on the API, a
Vietnamese page on the screens), never a 500, and changes nothing. On SQLite and PostgreSQL (which refuses
NUL in text: the 500s of issue #11 item 2 came from there).

The last tests drive every API operation of openapi.json and the main screens with hostile strings,
numbers and nesting (hypothesis) and assert no 5xx."""
import base64
import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import APPLICANT, bearer, pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.access import directory
from engine.store.models import Dossier, DossierFile, ProcedureVersion, RateLimitWindow

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
NUL, SURROGATE = "\x00", "\ud800"


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def raw_json(obj) -> str:
    """JSON text as a hostile client writes it: lone surrogates escaped (\\ud800), NUL as \\u0000."""
    return json.dumps(obj)  # ensure_ascii: every non-ASCII character, surrogates included, is escaped


def pct(text: str) -> str:
    """Percent-encode a path segment or query value, lone surrogates included (as their WTF-8 bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == f"urn:motcua:problem:{code}", body
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def assert_page(response, status, *words):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for word in words:
        assert word in page, page[:2000]
    return page


def login(client, username):
    client.application.config["WTF_CSRF_ENABLED"] = False  # (CSRF itself: tests/test_ui.py)
    response = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def counts(session):
    session.rollback()
    return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Dossier, DossierFile, ProcedureVersion, RateLimitWindow)}


@pytest.fixture
def csrf_off(app):
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def dossier_body(**applicant):
    return {"procedure_code": "1.001612", "channel": "counter", "applicant": {**APPLICANT, **applicant},
            "components": [{"code": "GIAYDENGHI", "filename": "don.pdf", "content_base64": b64(pdf())}]}


# --- NUL characters --------------------------------------------------------------------------------
def test_nul_in_the_login_username_is_refused_before_anything_is_read(client, office, session):
    """Unauthenticated: the HTML login and the API token. Nothing is written (not even a rate-limit hit)."""
    before = counts(session)
    page = assert_page(client.post("/dang-nhap", data={"username": "mot_cua1" + NUL, "password": "x"}), 400,
                       "ký tự NUL")
    assert "Hệ thống gặp lỗi" not in page
    body = assert_problem(client.post("/api/v1/auth/token", json={"username": "mot" + NUL, "password": "x"}), 400,
                          "nul_character")
    assert body["title"] == "Text contains a NUL character" and "body.username" in body["errors"]
    assert_problem(client.post("/api/v1/auth/token", json={"username": "mot_cua1", "password": NUL}), 400,
                   "nul_character")
    assert counts(session) == before


def test_nul_in_json_text_is_refused_and_no_dossier_is_received(client, office, session):
    h = bearer(client, "mot_cua1")
    before = counts(session)
    body = assert_problem(client.post("/api/v1/dossiers", json=dossier_body(name="Nguyễn" + NUL), headers=h), 400,
                          "nul_character")
    assert list(body["errors"]) == ["body.applicant.name"]
    with_file = dossier_body()
    with_file["components"][0]["filename"] = "don" + NUL + ".pdf"
    body = assert_problem(client.post("/api/v1/dossiers", json=with_file, headers=h), 400, "nul_character")
    assert list(body["errors"]) == ["body.components.0.filename"]
    keyed = {**dossier_body(), "ghi" + NUL + "chu": 1}  # keys too
    assert_problem(client.post("/api/v1/dossiers", json=keyed, headers=h), 400, "nul_character")
    assert counts(session) == before


def test_nul_in_the_url_path_and_query_is_refused(client, office, session):
    """On the API the status is the one openapi.json documents for the place: in the path 404 (nothing
    has such a name), in the query string 422; the problem's code says why."""
    h, manager = bearer(client, "mot_cua1"), bearer(client, "manager1")
    before = counts(session)
    body = assert_problem(client.get("/api/v1/dossiers/H40.1%00", headers=h), 404, "nul_character")
    assert body["title"] == "Text contains a NUL character" and list(body["errors"]) == ["path"]
    assert_problem(client.post("/api/v1/tasks/abc%00/complete", json={"data": {}}, headers=h), 404, "nul_character")
    assert_problem(client.get("/api/v1/public/dossiers/X%00?id_number=017090001234"), 404, "nul_character")
    assert_problem(client.get("/api/v1/public/dossiers/X?id_number=0170%0090001234"), 422, "nul_character")
    assert_problem(client.get("/api/v1/procedures/1.001612%00"), 404, "nul_character")
    body = assert_problem(client.get("/api/v1/metrics?unit=H40.1%00", headers=manager), 422, "nul_character")
    assert list(body["errors"]) == ["query.unit"]
    assert_problem(client.get("/api/v1/metrics?procedure=%00&field=x", headers=manager), 422, "nul_character")
    assert counts(session) == before


def test_nul_on_the_screens_is_a_vietnamese_400_page(client, csrf_off, office, session):
    login(client, "mot_cua1")
    before = counts(session)
    for url in ("/hop-thu?q=a%00b", "/hop-thu?thu-tuc=%00", "/tim-kiem?q=H40%00", "/so-theo-doi?linh-vuc=%00",
                "/ho-so/H40.1%00", "/cong-viec/abc%00", "/tiep-nhan?tim=%00", "/tra-cuu?ma=X%00&so-dinh-danh=017090001234"):
        assert_page(client.get(url), 400, "ký tự NUL")
    form = {"thu-tuc": "1.001612", "name": "Nguyễn" + NUL, "id_number": "017090001234", "channel": "counter",
            "file_GIAYDENGHI": (io.BytesIO(pdf()), "don.pdf")}
    assert_page(client.post("/tiep-nhan", data=form, content_type="multipart/form-data"), 400, "ký tự NUL")
    form = {"thu-tuc": "1.001612", "name": "Nguyễn", "id_number": "017090001234", "channel": "counter",
            "file_GIAYDENGHI": (io.BytesIO(pdf()), "don" + NUL + ".pdf")}
    assert_page(client.post("/tiep-nhan", data=form, content_type="multipart/form-data"), 400, "ký tự NUL")
    login(client, "manager1")
    assert_page(client.get("/bang-dieu-khien?don-vi=H40.1%00"), 400, "ký tự NUL")
    assert counts(session) == before


# --- lone surrogates, nesting, numbers that are not numbers -----------------------------------------
def test_a_lone_surrogate_in_json_is_refused(client, office, session):
    before = counts(session)
    body = assert_problem(client.post("/api/v1/auth/token", data=raw_json({"username": SURROGATE, "password": "x"}),
                                      content_type="application/json"), 400, "invalid_unicode")
    assert body["title"] == "Text is not valid Unicode"
    h = bearer(client, "mot_cua1")
    assert_problem(client.post("/api/v1/dossiers", data=raw_json(dossier_body(address="Xóm " + SURROGATE)),
                               content_type="application/json", headers=h), 400, "invalid_unicode")
    assert_problem(client.post("/api/v1/bpmn/validate", data=raw_json({"bpmn": "<a>\udfff</a>"}),
                               content_type="application/json", headers=h), 400, "invalid_unicode")
    assert counts(session) == before


@pytest.mark.parametrize("levels", [33, 5_000, 200_000])
def test_deeply_nested_json_is_refused_even_before_login(client, office, session, levels):
    """33 levels: over the limit; 5,000 and 200,000: a RecursionError in the JSON parser."""
    before = counts(session)
    deep = "[" * levels + "]" * levels
    body = assert_problem(client.post("/api/v1/auth/token", data=deep, content_type="application/json"), 400,
                          "json_too_deep")
    assert body["title"] == "JSON nested too deeply"
    h = bearer(client, "mot_cua1")
    nested = '{"data": {"decision": "approve", "x": ' + deep + "}}"
    assert_problem(client.post("/api/v1/tasks/abc/complete", data=nested, content_type="application/json", headers=h),
                   400, "json_too_deep")
    assert counts(session) == before


def test_json_nested_within_the_limit_is_still_read(client, office):
    h = bearer(client, "mot_cua1")
    fine = {"data": {"decision": "approve", "x": json.loads("[" * 29 + "]" * 29)}}  # 32 levels in all
    assert_problem(client.post("/api/v1/tasks/khong-co/complete", json=fine, headers=h), 404, "not_found")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_not_json(client, office, number):
    h = bearer(client, "mot_cua1")
    text = '{"data": {"decision": "approve", "amount": %s}}' % number
    body = assert_problem(client.post("/api/v1/tasks/abc/complete", data=text, content_type="application/json",
                                      headers=h), 400, "number_out_of_range")
    assert body["title"] == "Number out of range"


# --- absurd numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("page", [str(10**20), "-3", "0", "99999999999999999999999999999999999999999999999"])
def test_absurd_page_numbers_are_refused(client, office, page):
    login(client, "mot_cua1")
    assert_page(client.get(f"/hop-thu?trang={page}"), 400, "ngoài giới hạn")
    assert_page(client.get(f"/danh-sach/qua-han?trang={page}"), 400, "ngoài giới hạn")
    login(client, "manager1")
    assert_page(client.get(f"/bang-dieu-khien/danh-sach?loai=received&trang={page}"), 400, "ngoài giới hạn")


def test_reasonable_page_numbers_still_work(client, office):
    login(client, "mot_cua1")
    assert client.get("/hop-thu?trang=2").status_code == 200
    assert client.get("/hop-thu?trang=abc").status_code == 200  # not a number: the first page, as before


def test_absurd_numbers_in_paths_and_bodies_are_refused(client, office, session):
    before = counts(session)
    admin, h = bearer(client, "admin1"), bearer(client, "mot_cua1")
    body = assert_problem(client.post(f"/api/v1/procedures/1.001612/versions/{10**20}/publish",
                                      json={"effective_from": "2026-12-01"}, headers=admin), 404, "number_out_of_range")
    assert list(body["errors"]) == ["path.number"] and body["title"] == "Number out of range"
    assert_problem(client.post(f"/api/v1/consultations/{2**31}/answer", json={"answer": "x"}, headers=h), 404,
                   "number_out_of_range")
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=h).get_json()["code"]
    before = counts(session)
    apology = {"reason": "chậm", "new_due_at": "2026-12-30T17:00:00+07:00", "signed_by_id": 10**20}
    body = assert_problem(client.post(f"/api/v1/dossiers/{code}/apologies", json=apology, headers=h), 422,
                          "invalid_input")
    assert "signed_by_id" in body["errors"]
    assert counts(session) == before


# --- a BPMN file in UTF-16 or ISO-8859-1 -----------------------------------------------------------
def shipped(code="1.001612") -> str:
    return (ROOT / "processes" / code / "v1.bpmn").read_text(encoding="utf-8")


def latin1_bpmn() -> bytes:
    """The shipped process with a step renamed in Latin-1 characters, declared and encoded ISO-8859-1."""
    text = shipped().replace('encoding="UTF-8"', 'encoding="ISO-8859-1"', 1)
    text = text.replace('name="Tiếp nhận, kiểm tra hồ sơ"', 'name="Réception café"', 1)
    assert "Réception café" in text
    # Characters outside Latin-1 (Vietnamese) are written as character references, as an editor would.
    return text.encode("iso-8859-1", "xmlcharrefreplace")


def utf16_bpmn(bom=True) -> bytes:
    text = shipped().replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    return text.encode("utf-16" if bom else "utf-16-le")


def stored_versions(session):
    session.rollback()
    return session.scalars(select(ProcedureVersion).order_by(ProcedureVersion.id)).all()


@pytest.mark.parametrize("name,data,step_name", [
    ("utf-16 with BOM", utf16_bpmn(), "Tiếp nhận, kiểm tra hồ sơ"),
    ("utf-16 declared, no BOM", utf16_bpmn(bom=False), "Tiếp nhận, kiểm tra hồ sơ"),
    ("iso-8859-1", latin1_bpmn(), "Réception café"),
], ids=["utf-16", "utf-16-no-bom", "iso-8859-1"])
def test_designer_upload_decodes_the_file_per_its_declaration(client, csrf_off, office, session, name, data,
                                                              step_name):
    login(client, "designer1")
    response = client.post("/thiet-ke/1.001612/tai-len", data={"bpmn": (io.BytesIO(data), "quy-trinh.bpmn"),
                                                               "notes": name}, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    version = stored_versions(session)[-1]
    assert version.notes == name and version.status == "draft"
    assert version.bpmn_xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')  # stored as text, re-declared
    assert {s["name"] for s in version.meta["steps"].values()} >= {step_name, "Thẩm định hồ sơ đăng ký"}
    from engine.workflow import validation
    again = validation.validate(version.bpmn_xml, 3, None)  # the stored text reads the same
    assert again.valid and again.model.steps == validation.validate(data, 3, None).model.steps


def test_api_and_designer_accept_a_bpmn_text_that_declares_another_encoding(client, csrf_off, office, session):
    """A JSON string is already text: its declaration's encoding no longer applies (it is re-declared UTF-8)."""
    text = shipped().replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    h = bearer(client, "designer1")
    created = client.post("/api/v1/procedures/1.001612/versions", json={"bpmn": text, "notes": "utf-16"}, headers=h)
    assert created.status_code == 201, created.get_json()
    assert stored_versions(session)[-1].bpmn_xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    checked = client.post("/api/v1/bpmn/validate", json={"bpmn": text.replace('"UTF-16"', '"ISO-8859-1"')}, headers=h)
    assert checked.status_code == 200 and checked.get_json() == {"valid": True, "problems": []}
    login(client, "designer1")
    saved = client.post("/thiet-ke/1.001612/luu", json={"bpmn": text, "notes": "từ trình thiết kế"})
    assert saved.status_code == 201, saved.get_data(as_text=True)[:500]
    assert [v.notes for v in stored_versions(session)][-2:] == ["utf-16", "từ trình thiết kế"]


@pytest.mark.parametrize("data,why", [
    (shipped().replace("Tiếp nhận", "Réception").encode("iso-8859-1", "xmlcharrefreplace"), "declared UTF-8, is not"),
    (shipped().replace('encoding="UTF-8"', 'encoding="x-khong-co"', 1).encode(), "unknown encoding"),
    (shipped().replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode(), "declared UTF-16, is UTF-8"),
], ids=["latin-1-declared-utf-8", "unknown-encoding", "utf-8-declared-utf-16"])
def test_a_file_that_cannot_be_decoded_is_refused_clearly(client, csrf_off, office, session, data, why):
    login(client, "designer1")
    before = counts(session)
    response = client.post("/thiet-ke/1.001612/tai-len", data={"bpmn": (io.BytesIO(data), "x.bpmn")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert_page(response, 200, "Không đọc được tệp theo bảng mã")
    assert counts(session) == before, why


# --- property-based: every endpoint, hostile values, no 5xx ----------------------------------------
HOSTILE_TEXT = ["", " ", NUL, "a" + NUL + "b", SURROGATE, "\udfff" + "x", "\ufffd", "%00", "../../etc/passwd",
                "' OR 1=1 --", "<script>alert(1)</script>", "{{7*7}}", "A" * 5000, "😀" * 50, "\u202e",
                "1.001612", "H40.1", "H40.1-261102-0001", "-1", "0", str(10**20), "1e999", "NaN", "null",
                "2026-13-45", "2026-11-02T09:00:00+07:00", "\r\n", "\\", "٣", "Ⅻ"]
HOSTILE_NUMBERS = [0, -1, 1, 2**31, -(2**31) - 1, 2**63, 10**20, -(10**20), 10**400, 1.5, -0.0, 1e308, True, None]


def nested(depth: int):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


def hostile_values():
    leaves = st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(HOSTILE_NUMBERS),
                       st.text(alphabet=st.sampled_from(["a", "é", NUL, SURROGATE, "\udc80", " ", "0"]), max_size=8))
    deep = st.sampled_from([31, 32, 33, 40]).map(nested)
    return st.one_of(leaves, deep, st.recursive(leaves, lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["a", "data", NUL, SURROGATE]), children,
                                                        max_size=3)), max_leaves=6))


class RawJSON:
    """A JSON text sent as it is (too deep to build as objects, or to print in a falsifying example)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"RawJSON({self.text[:20]!r}… {len(self.text)} chars)"


def deep_text(levels: int, opening: str = "[") -> RawJSON:
    closing = {"[": "]", '{"a":': "}"}[opening]
    return RawJSON(opening * levels + "1" + closing * levels)


def hostile_body(properties: list[str]):
    """A JSON object with the operation's own fields (each maybe hostile), or any hostile document."""
    fields = st.fixed_dictionaries({}, optional={name: hostile_values() for name in properties})
    raw = st.sampled_from([deep_text(100), deep_text(3000), deep_text(100_000), deep_text(2000, '{"a":'),
                           RawJSON('{"a": NaN}'), RawJSON("[1e999]"), RawJSON('"\\ud800"'), RawJSON("{"),
                           RawJSON("")])
    return st.one_of(fields, hostile_values(), raw)


def operations(app, client) -> list[tuple[str, str, list[str], list[str], list[str], set[int]]]:
    """(method, path template, path parameters, query parameters, body fields, documented statuses) from
    openapi.json."""
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", []) + item.get("parameters", []) if isinstance(op, dict) else []
            path_params = [p["name"] for p in params if p["in"] == "path"]
            path_params += [seg[1:-1] for seg in path.split("/") if seg.startswith("{") and seg[1:-1] not in path_params]
            query = [p["name"] for p in params if p["in"] == "query"]
            fields = []
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                ref = body.get("$ref", "").rsplit("/", 1)[-1]
                fields = list(schemas.get(ref, body).get("properties", {}))
            statuses = {int(code) for code in op.get("responses", {})}
            out.append((method, spec["servers"][0]["url"] + path, path_params, query, fields, statuses))
    return out


PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _segment(value) -> str:
    return pct(value if isinstance(value, str) else json.dumps(value))


def _query(names: list[str], values: dict) -> str:
    return "&".join(f"{pct(n)}={_segment(values[n])}" for n in names if n in values)


def _assert_no_5xx(response, what):
    assert response.status_code < 500, f"{what}: {response.status_code} {response.get_data(as_text=True)[:300]}"


@pytest.fixture
def everyone(session, office):
    """One user holding every role at the office, so that every operation gets past its permission check."""
    roles = ["mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu", "admin", "designer", "manager"]
    directory.add_user(session, "tat_ca", "matkhau-123", [("H40.1", r) for r in roles])
    session.commit()
    return "tat_ca"


def valid_requests(code: str, task_id: str, user_id: int) -> tuple[dict, dict]:
    """A request each operation would accept (path values, body by path template): the property test
    sends these with one field made hostile, so hostile values get past the schemas to the use cases."""
    paths = {"code": code, "task_id": task_id, "number": 1}
    bodies = {
        "/auth/token": {"username": "tat_ca", "password": "matkhau-123"},
        "/procedures": {"code": "2.000123", "name": "Thủ tục thử", "field": "Thử", "level": "xa", "statutory_days": 5,
                        "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}],
                        "legal_bases": [{"number": "01/2026/TT-X", "title": "Thông tư", "effective_from": "2026-01-01"}]},
        "/procedures/{code}/versions": {"bpmn": shipped(), "notes": "v"},
        "/procedures/{code}/versions/{number}/publish": {"effective_from": "2026-12-01"},
        "/bpmn/validate": {"bpmn": shipped()},
        "/dossiers": dossier_body(),
        "/tasks/{task_id}/complete": {"data": {"decision": "approve"}, "note": "xong"},
        "/tasks/{task_id}/assign": {"assignee_id": user_id},
        "/dossiers/{code}/supplements": {"components": dossier_body()["components"], "note": "bổ sung"},
        "/dossiers/{code}/apologies": {"reason": "chậm", "new_due_at": "2026-12-30T17:00:00+07:00"},
        "/dossiers/{code}/withdraw": {"reason": "rút"},
        "/dossiers/{code}/return-result": {"note": "", "via": "counter"},
    }
    return paths, bodies


def leaves(value, path=()):
    """Every place in a JSON document a hostile value can go (containers included)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, (*path, i))


def replaced(document, path, value):
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = replaced(document[path[0]], path[1:], value)
    return copy


def mutated(valid):
    """The valid body with one place (a field, an item, the whole) replaced by a hostile value."""
    return st.tuples(st.sampled_from(list(leaves(valid))), hostile_values()).map(
        lambda change: replaced(valid, *change))


@pytest.mark.postgres_only
def test_every_api_operation_answers_hostile_input_without_a_5xx(app, client, everyone, session):
    """Every operation of openapi.json: its path parameters, query parameters and body filled with hostile
    strings, numbers and nesting, or a valid request with one place made hostile. PostgreSQL only (it is
    the stricter database: NUL, integer ranges); the targeted tests above run on both."""
    app.config["PUBLIC_LOOKUP_LIMIT"] = 100_000
    headers = bearer(client, everyone)
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=headers).get_json()["code"]
    task_id = client.get("/api/v1/tasks", headers=headers).get_json()[0]["id"]
    user_id = directory.add_user(session, "chuyen_vien9", "matkhau-123", [("H40.1", "chuyen_vien")]).id
    session.commit()
    paths, bodies = valid_requests(code, task_id, user_id)
    ops = operations(app, client)
    assert len(ops) >= 20 and {"post /api/v1/auth/token", "get /api/v1/metrics"} <= {f"{m} {p}" for m, p, *_ in ops}
    for method, template, path_params, query, fields, statuses in ops:
        valid = bodies.get(template.removeprefix("/api/v1"))
        body = hostile_body(fields) if valid is None else st.one_of(mutated(valid), hostile_body(fields))
        path_values = st.fixed_dictionaries({p: st.one_of(st.just(paths.get(p, code)), st.sampled_from(HOSTILE_TEXT),
                                                          st.sampled_from(HOSTILE_NUMBERS)) for p in path_params})
        _drive_api(client, headers, method, template, path_values, query, body, statuses)()


def _drive_api(client, headers, method, template, path_values, query, body, statuses):
    @PROPERTY
    @given(path_values=path_values,
           query_values=st.fixed_dictionaries({}, optional={q: st.sampled_from(HOSTILE_TEXT) for q in query}),
           body=body)
    def drive(path_values, query_values, body):
        url = template
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", _segment(value))
        qs = _query(query, query_values)
        url += "?" + qs if qs else ""
        kwargs = {"headers": headers}
        if method != "get":
            kwargs.update(data=body.text if isinstance(body, RawJSON) else raw_json(body), content_type="application/json")
        response = client.open(url, method=method.upper(), **kwargs)
        _assert_no_5xx(response, f"{method} {url} {body!r:.300}")
        # A refusal uses a status the contract documents for the operation (404/405: a URL that no longer
        # names the operation, e.g. an empty or "/"-bearing path segment, is routed elsewhere).
        assert response.status_code in statuses | {404, 405}, f"{method} {url}: {response.status_code} undocumented"
        assert response.status_code < 300 or response.mimetype == PROBLEM

    return drive


HTML_GETS = {
    "/hop-thu": ["trang", "q", "thu-tuc", "loc", "pham-vi"],
    "/tim-kiem": ["q"],
    "/danh-sach/qua-han": ["trang", "thu-tuc", "kenh", "sap-xep"],
    "/so-theo-doi": ["tu", "den", "linh-vuc"],
    "/bang-dieu-khien": ["don-vi", "tu", "den", "thu-tuc", "linh-vuc"],
    "/bang-dieu-khien/danh-sach": ["loai", "trang", "don-vi", "thu-tuc", "linh-vuc"],
    "/tiep-nhan": ["thu-tuc", "tim"],
    "/tra-cuu": ["ma", "so-dinh-danh"],
    "/ho-so/{code}": [],
    "/cong-viec/{code}": [],
    "/thiet-ke/{code}": [],
    "/quan-tri/thu-tuc/{code}": [],
    "/quan-tri/lich": ["nam"],
}
HTML_POSTS = {
    "/dang-nhap": ["username", "password"],
    "/tiep-nhan": ["thu-tuc", "name", "id_number", "phone", "email", "address", "channel", "unit_code"],
    "/tra-cuu": ["ma", "so-dinh-danh", "rating", "comment"],
    "/ho-so/{code}/rut": ["reason", "ngay-de-nghi"],
    "/ho-so/{code}/xin-loi": ["reason", "nguoi-ky", "new_due"],
}


@pytest.mark.postgres_only
def test_the_main_screens_answer_hostile_input_without_a_5xx(app, client, csrf_off, everyone):
    app.config["PUBLIC_LOOKUP_LIMIT"] = 100_000
    code = client.post("/api/v1/dossiers", json=dossier_body(), headers=bearer(client, everyone)).get_json()["code"]
    login(client, everyone)
    texts = st.one_of(st.sampled_from(HOSTILE_TEXT + [code]), st.sampled_from(HOSTILE_NUMBERS).map(str))
    for method, routes in (("GET", HTML_GETS), ("POST", HTML_POSTS)):
        for template, names in routes.items():
            _drive_screen(client, app.test_client(), code, texts, method, template, names)()
    deep = client.post("/thiet-ke/1.001612/kiem-tra", data=deep_text(5000).text, content_type="application/json")
    _assert_no_5xx(deep, "designer check, deep JSON")


def _drive_screen(client, anonymous, code, texts, method, template, names):
    @PROPERTY
    @given(segment=st.one_of(st.just(code), texts), values=st.fixed_dictionaries({}, optional={n: texts for n in names}))
    def drive(segment, values):
        url = template.replace("{code}", pct(segment))
        browser = anonymous if template in ("/dang-nhap", "/tra-cuu") else client
        if method == "GET":
            qs = _query(names, values)
            response = browser.get(url + ("?" + qs if qs else ""))
        else:
            form = "&".join(f"{pct(k)}={pct(v)}" for k, v in values.items())
            response = browser.post(url, data=form, content_type="application/x-www-form-urlencoded")
        _assert_no_5xx(response, f"{method} {url} {values!r:.300}")

    return drive
