"""Every permission × role × unit relation, through the API and the HTML screens, on SQLite and PostgreSQL.

Four units: P (a province office), X (the dossier's own commune, under P), S (a sibling commune, under P) and
C (a unit under X). One user per (role, relation): the role held in that one unit. The dossiers are received at
X by X's one-stop desk.

What each user may do is written out by hand in `expected` from the rules of the permission table (OWN: a role
held in the dossier's unit; OVERSIGHT: in that unit or above it; ANYWHERE: in any unit; TASK: the step's role
in the step's unit) — never computed from `POLICY` — and `test_policy_table_is_the_reviewed_one` pins the table
itself, so a rule or a role dropped from it fails a test.

State-changing routes are called so that an authorized caller meets a domain refusal (409 / 422) and nothing
changes: authorization is checked before the state. A caller who may not see the dossier gets 404 (as for a
missing code), one who sees it without the role gets 403. Each test loops over its checks and users and fails
once, listing every mismatch.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from conftest import APPLICANT, ROOT, bearer, components_for, result_for, vn
from sqlalchemy import func, select

from engine import catalog, dossiers
from engine.access import directory
from engine.access.policy import POLICY, Rule
from engine.store.models import Apology, Dossier, HumanTask, Procedure, ProcedureVersion, SupplementRequest

P, X, S, C = "T40", "H40.1", "H40.2", "H40.1.1"
UNIT = {"own": X, "parent": P, "sibling": S, "child": C}
RELATIONS = ("own", "parent", "sibling", "child")
ROLES = ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu", "admin", "designer", "manager")
USERS = [(role, relation) for role in ROLES for relation in RELATIONS]
STEP_ROLES = ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu")  # the steps of 1.001612, in order
PASSWORD = "matkhau-123"
NOT_ALLOWED_VI = "Bạn không có quyền thực hiện thao tác này."  # webapp/i18n.py ERROR["not_allowed"]
PERIOD = "tu=2026-11-01&den=2026-11-30"


# --- the reviewed permission table, copied literally from engine/access/policy.py ---------------------
DESK = ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu")
REVIEWED_POLICY = {
    "dossier.receive": (Rule(("mot_cua",), "own"),),
    "dossier.view": (Rule(DESK, "own"), Rule(("manager",), "oversight"), Rule(DESK, "involved")),
    "task.complete": (Rule(None, "task"),),
    "task.assign": (Rule(("lanh_dao_phong", "lanh_dao"), "own"),),
    "task.claim": (Rule(None, "step"),),
    "supplement.deliver": (Rule(("mot_cua",), "own"),),
    "apology.issue": (Rule(("mot_cua",), "own"), Rule(("lanh_dao",), "holding")),
    "apology.sign": (Rule(("lanh_dao",), "holding"),),
    "dossier.refuse": (Rule(("lanh_dao",), "holding"),),
    "consultation.answer": (Rule(("chuyen_vien", "lanh_dao_phong", "lanh_dao"), "own"),),
    "dossier.withdraw": (Rule(("mot_cua",), "own"),),
    "result.return": (Rule(("mot_cua",), "own"),),
    "register.view": (Rule((*DESK, "manager"), "own"),),
    "reports.view": (Rule(("manager", "admin", "lanh_dao"), "oversight"),),
    "audit.verify": (Rule(("admin",), "oversight"),),
    "counter_notice.issue": (Rule(("mot_cua",), "own"),),
    "dossier.migrate": (Rule(("admin",), "anywhere"),),
    "calendar.apply": (Rule(("admin",), "anywhere"),),
    "catalog.manage": (Rule(("admin",), "anywhere"),),
    "process.design": (Rule(("designer", "admin"), "anywhere"),),
    "bpmn.validate": (Rule(None, "anywhere"),),
}


def expected(permission: str, role: str, relation: str, step_role: str | None = None) -> bool:
    """May a user holding `role` in the unit at `relation` to X do `permission` on a thing of X? (HOLDING
    rules: the world's dossiers are held at X — the step units of liên thông are tests/test_lien_thong.py's.)
    For task.complete and task.claim, `step_role` is the role of the step (in X)."""
    own = relation == "own"                          # OWN
    own_or_above = relation in ("own", "parent")     # OVERSIGHT
    if permission == "dossier.receive":
        return own and role == "mot_cua"
    if permission == "dossier.view":   # citizens' personal data: never a designer's or an administrator's
        return (own and role in DESK) or (own_or_above and role == "manager")
    if permission in ("task.complete", "task.claim"):   # claim: STEP, whoever holds the step
        return own and role == step_role
    if permission == "task.assign":                     # a head of the step's unit
        return own and role in ("lanh_dao_phong", "lanh_dao")
    if permission in ("supplement.deliver", "dossier.withdraw", "result.return", "counter_notice.issue"):
        return own and role == "mot_cua"
    if permission == "apology.issue":
        return own and role in ("mot_cua", "lanh_dao")
    if permission in ("dossier.refuse", "apology.sign"):
        return own and role == "lanh_dao"
    if permission == "consultation.answer":
        return own and role in ("chuyen_vien", "lanh_dao_phong", "lanh_dao")
    if permission == "register.view":
        return own and role in DESK + ("manager",)
    if permission == "reports.view":
        return own_or_above and role in ("manager", "admin", "lanh_dao")
    if permission == "audit.verify":
        return own_or_above and role == "admin"
    if permission in ("dossier.migrate", "catalog.manage", "calendar.apply"):
        return role == "admin"                       # ANYWHERE
    if permission == "process.design":
        return role in ("designer", "admin")
    if permission == "bpmn.validate":
        return True
    raise KeyError(f"no expectation written for {permission}")


# --- the world ---------------------------------------------------------------------------------------
def username(role: str, relation: str) -> str:
    return f"{role}_{relation}"


@dataclass
class World:
    open_code: str        # received at X, its first step (mot_cua) open
    closed_code: str      # withdrawn
    tasks: dict[str, str]  # step role → the id of an open step with that role (each on its own dossier at X)
    done: dict[str, str]   # step role → the id of a completed step with that role, on an open dossier at X


def open_step(session, code: str) -> tuple[str, str]:
    row = session.execute(select(HumanTask.id, HumanTask.role).join(Dossier, Dossier.id == HumanTask.dossier_id)
                          .where(Dossier.code == code, HumanTask.completed_at.is_(None))).one()
    return row.id, row.role


def build_world(session) -> World:
    directory.add_unit(session, P, "UBND tỉnh")
    directory.add_unit(session, X, "UBND xã Tân Lạc", P)
    directory.add_unit(session, S, "UBND xã Mường Bi", P)
    directory.add_unit(session, C, "Tổ một cửa thôn Đồng", X)
    ids = {(role, relation): directory.add_user(session, username(role, relation), PASSWORD, [(UNIT[relation], role)]).id
           for role, relation in USERS}
    catalog.load_processes(session, ROOT / "processes", actor_id=None)
    session.commit()
    at = vn(2026, 11, 2, 9, 0)

    def receive() -> str:
        return dossiers.receive_dossier(session, actor_id=ids["mot_cua", "own"], procedure_code="1.001612",
                                        channel="counter", applicant=APPLICANT, components=components_for("1.001612"),
                                        now=at).code

    tasks, done, codes = {}, {}, []
    for depth, role in enumerate(STEP_ROLES):
        code = receive()
        for step, done_by in enumerate(STEP_ROLES[:depth], 1):
            task_id, _ = open_step(session, code)
            dossiers.complete_task(session, actor_id=ids[done_by, "own"], task_id=task_id, data={"decision": "approve"},
                                   result=result_for(session, task_id, at), now=at + timedelta(minutes=10 * step))
            done[done_by] = task_id
        task_id, step_role = open_step(session, code)
        assert step_role == role, (code, step_role, role)
        tasks[role] = task_id
        codes.append(code)
    closed = receive()
    dossiers.withdraw_dossier(session, actor_id=ids["mot_cua", "own"], dossier_code=closed, reason="Công dân rút hồ sơ",
                              now=at + timedelta(minutes=5))
    session.commit()
    return World(open_code=codes[0], closed_code=closed, tasks=tasks, done=done)


def snapshot(session):
    """What a refused call must leave as it was: every dossier's status and row version, and the row counts."""
    rows = [tuple(r) for r in session.execute(select(Dossier.code, Dossier.status, Dossier.lock_version, Dossier.audit_seq,
                                                     Dossier.due_at).order_by(Dossier.code))]
    counts = tuple(session.execute(select(*(select(func.count()).select_from(m).scalar_subquery() for m in
                                            (HumanTask, Apology, SupplementRequest, Procedure, ProcedureVersion)))).one())
    session.rollback()  # end the read, so the app's writers are never waiting on it
    return rows, counts


# --- the checks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    surface: str                  # "API" | "HTML"
    permission: str
    what: str                     # method and path, for the report
    send: Callable                # (http client, bearer headers or CSRF token, world) → response
    allowed: int                  # the status an authorized caller gets (a domain refusal for writes)
    denial: str = "403"           # "403", or "dossier": 404 unless the caller may see the dossier, then 403
    step_role: str | None = None  # task.complete: the role of the step called
    writes: bool = False          # compare the database before and after every call
    shown: Callable | None = None  # (response, world) → allowed, for pages that filter instead of refusing


def denied_statuses(check: Check, role: str, relation: str) -> set[int]:
    if check.denial == "dossier":
        return {403} if expected("dossier.view", role, relation) else {404}
    return {403}


def api(method: str, path: Callable[[World], str], json=None) -> Callable:
    def send(http, headers, world):
        return http.open(path(world), method=method, json=json, headers=headers)
    return send


def html_get(path: Callable[[World], str]) -> Callable:
    def send(http, _token, world):
        return http.get(path(world))
    return send


def html_post(path: Callable[[World], str], **fields) -> Callable:
    def send(http, token, world):
        return http.post(path(world), data={"csrf_token": token, **fields}, content_type="multipart/form-data")
    return send


RECEIVE_BODY = {"procedure_code": "1.001612", "channel": "counter", "applicant": APPLICANT, "components": [], "unit_code": X}

API_CHECKS = [
    Check("API", "dossier.view", "GET /api/v1/dossiers/{open}", api("GET", lambda w: f"/api/v1/dossiers/{w.open_code}"),
          200, "dossier"),
    # no components: the desk gets 422 missing_components, nothing is written
    Check("API", "dossier.receive", "POST /api/v1/dossiers (unit_code X, no components)",
          api("POST", lambda w: "/api/v1/dossiers", RECEIVE_BODY), 422, writes=True),
    *[Check("API", "task.complete", f"POST /api/v1/tasks/{{{role} step}}/complete (unknown decision)",
            api("POST", lambda w, role=role: f"/api/v1/tasks/{w.tasks[role]}/complete", {"data": {"decision": "khong-co"}}),
            422, step_role=role, writes=True) for role in STEP_ROLES],  # no dossier look-up first: 403 for all others
    # phân công: a head meets the refusal of an assignee who does not exist (422); claiming a completed step
    # meets 409 — the step's role and unit are checked before its state (no completed van_thu step exists)
    Check("API", "task.assign", "POST /api/v1/tasks/{chuyen_vien step}/assign (no such assignee)",
          api("POST", lambda w: f"/api/v1/tasks/{w.tasks['chuyen_vien']}/assign", {"assignee_id": 999999}), 422,
          "dossier", writes=True),
    *[Check("API", "task.claim", f"POST /api/v1/tasks/{{completed {role} step}}/claim",
            api("POST", lambda w, role=role: f"/api/v1/tasks/{w.done[role]}/claim"), 409, "dossier", step_role=role,
            writes=True) for role in STEP_ROLES[:-1]],
    # the open dossier awaits no supplement → 409
    Check("API", "supplement.deliver", "POST /api/v1/dossiers/{open}/supplements",
          api("POST", lambda w: f"/api/v1/dossiers/{w.open_code}/supplements", {"components": []}), 409, "dossier",
          writes=True),
    Check("API", "apology.issue", "POST /api/v1/dossiers/{withdrawn}/apologies",
          api("POST", lambda w: f"/api/v1/dossiers/{w.closed_code}/apologies",
              {"reason": "Chờ xác minh", "new_due_at": "2026-12-15T17:00:00+07:00"}), 409, "dossier", writes=True),
    Check("API", "dossier.withdraw", "POST /api/v1/dossiers/{withdrawn}/withdraw",
          api("POST", lambda w: f"/api/v1/dossiers/{w.closed_code}/withdraw", {"reason": "Lần hai"}), 409, "dossier",
          writes=True),
    # not result_ready → 409
    Check("API", "result.return", "POST /api/v1/dossiers/{open}/return-result",
          api("POST", lambda w: f"/api/v1/dossiers/{w.open_code}/return-result", {"note": ""}), 409, "dossier",
          writes=True),
    # guidance at the counter with nothing to guide on → 422 (only after the permission check)
    Check("API", "counter_notice.issue", "POST /api/v1/counter-notices (unit_code X, guidance without items)",
          api("POST", lambda w: "/api/v1/counter-notices", {"procedure_code": "1.001612", "kind": "guidance",
                                                           "applicant": APPLICANT, "items": [], "unit_code": X}),
          422, writes=True),
    # a dossier's audit log: whoever may see the dossier (and its timeline)
    Check("API", "dossier.view", "GET /api/v1/dossiers/{open}/audit",
          api("GET", lambda w: f"/api/v1/dossiers/{w.open_code}/audit"), 200, "dossier"),
    Check("API", "reports.view", f"GET /api/v1/metrics?unit={X}", api("GET", lambda w: f"/api/v1/metrics?unit={X}"), 200),
    # the permission is checked before the body is parsed: an empty body is 422 for the admin, 403 for others
    Check("API", "catalog.manage", "POST /api/v1/procedures (empty body)",
          api("POST", lambda w: "/api/v1/procedures", {}), 422, writes=True),
    Check("API", "catalog.manage", "POST /api/v1/procedures/1.001612/versions/1/publish (empty body)",
          api("POST", lambda w: "/api/v1/procedures/1.001612/versions/1/publish", {}), 422, writes=True),
    Check("API", "process.design", "POST /api/v1/procedures/1.001612/versions (empty body)",
          api("POST", lambda w: "/api/v1/procedures/1.001612/versions", {}), 422, writes=True),
    Check("API", "bpmn.validate", "POST /api/v1/bpmn/validate (empty body)",
          api("POST", lambda w: "/api/v1/bpmn/validate", {}), 422),
]

HTML_PAGE_CHECKS = [
    Check("HTML", "dossier.view", "GET /ho-so/{open}", html_get(lambda w: f"/ho-so/{w.open_code}"), 200, "dossier"),
    Check("HTML", "reports.view", f"GET /bang-dieu-khien?don-vi={X}",
          html_get(lambda w: f"/bang-dieu-khien?don-vi={X}&{PERIOD}"), 200),
    Check("HTML", "catalog.manage", "GET /quan-tri/thu-tuc", html_get(lambda w: "/quan-tri/thu-tuc"), 200),
    Check("HTML", "dossier.migrate", "GET /quan-tri/thu-tuc/1.001612/chuyen-phien-ban/1 (dry run)",
          html_get(lambda w: "/quan-tri/thu-tuc/1.001612/chuyen-phien-ban/1"), 200, writes=True),
    Check("HTML", "process.design", "GET /thiet-ke", html_get(lambda w: "/thiet-ke"), 200),
    # the audit check runs over the dossiers of the units the admin oversees: X's first dossier is in its range
    Check("HTML", "audit.verify", "GET /quan-tri/nhat-ky (checks X's dossiers?)", html_get(lambda w: "/quan-tri/nhat-ky"),
          200, shown=lambda response, w: w.open_code in response.get_data(as_text=True)),
    # the register lists the dossiers of the units where the user holds a role: X's dossier shows, or not
    Check("HTML", "register.view", "GET /so-theo-doi (lists X's dossier?)", html_get(lambda w: f"/so-theo-doi?{PERIOD}"),
          200, shown=lambda response, w: w.open_code in response.get_data(as_text=True)),
]

HTML_ACTION_CHECKS = [
    # no files: the desk gets 422 (missing components); a user with no desk anywhere gets 403
    Check("HTML", "dossier.receive", "POST /tiep-nhan (unit_code X, no files)",
          html_post(lambda w: "/tiep-nhan", **{"thu-tuc": "1.001612", "unit_code": X, "name": APPLICANT["name"],
                                               "id_number": APPLICANT["id_number"], "channel": "counter"}),
          422, writes=True),
    *[Check("HTML", "task.complete", f"POST /cong-viec/{{{role} step}} (unknown decision)",
            html_post(lambda w, role=role: f"/cong-viec/{w.tasks[role]}", decision="khong-co"),
            422, "dossier", step_role=role, writes=True) for role in STEP_ROLES],
    # a refused assignment goes back to the page it came from (303) with the reason, and changes nothing
    Check("HTML", "task.assign", "POST /cong-viec/{chuyen_vien step}/phan-cong (no such assignee)",
          html_post(lambda w: f"/cong-viec/{w.tasks['chuyen_vien']}/phan-cong", **{"nguoi-nhan": "999999"}),
          303, "dossier", writes=True),
    *[Check("HTML", "task.claim", f"POST /cong-viec/{{completed {role} step}}/nhan-viec",
            html_post(lambda w, role=role: f"/cong-viec/{w.done[role]}/nhan-viec"), 303, "dossier", step_role=role,
            writes=True) for role in STEP_ROLES[:-1]],
    Check("HTML", "supplement.deliver", "POST /ho-so/{open}/bo-sung (awaits no supplement)",
          html_post(lambda w: f"/ho-so/{w.open_code}/bo-sung", note=""), 422, "dossier", writes=True),
    Check("HTML", "apology.issue", "POST /ho-so/{withdrawn}/xin-loi",
          html_post(lambda w: f"/ho-so/{w.closed_code}/xin-loi", reason="Chờ xác minh", new_due="2026-12-15"),
          422, "dossier", writes=True),
    Check("HTML", "dossier.withdraw", "POST /ho-so/{withdrawn}/rut",
          html_post(lambda w: f"/ho-so/{w.closed_code}/rut", reason="Lần hai"), 422, "dossier", writes=True),
    Check("HTML", "result.return", "POST /ho-so/{open}/tra-ket-qua (not result_ready)",
          html_post(lambda w: f"/ho-so/{w.open_code}/tra-ket-qua", note=""), 422, "dossier", writes=True),
    Check("HTML", "calendar.apply", "POST /quan-tri/lich/ap-dung (no day)",
          html_post(lambda w: "/quan-tri/lich/ap-dung", reason=""), 400, writes=True),
    Check("HTML", "dossier.refuse", "POST /ho-so/{withdrawn}/tu-choi",
          html_post(lambda w: f"/ho-so/{w.closed_code}/tu-choi", reason="Không đủ điều kiện"), 422, "dossier",
          writes=True),
]


def run(checks: list[Check], requesters: dict, session, world: World) -> list[str]:
    """Send every check as every user; the mismatches with `expected`, one line per check and outcome,
    naming every user (role@relation) it concerns."""
    found: dict[tuple[str, str], list[str]] = {}
    before = snapshot(session)
    for check in checks:
        for role, relation in USERS:
            http, auth = requesters[role, relation]
            response = check.send(http, auth, world)
            status, want = response.status_code, expected(check.permission, role, relation, check.step_role)
            body = response.get_data(as_text=True) if check.surface == "HTML" else ""
            if check.shown is not None:
                got = status == 200 and check.shown(response, world)
                ok, wanted = got == want, "listed" if want else "not listed"
                seen = f"{status}, {'listed' if got else 'not listed'}"
            elif want:
                ok, wanted = status == check.allowed and NOT_ALLOWED_VI not in body, f"allowed ({check.allowed})"
                seen = str(status)
            else:
                denied = denied_statuses(check, role, relation)
                ok, wanted = status in denied, f"denied ({' or '.join(map(str, sorted(denied)))})"
                seen = str(status)
            if NOT_ALLOWED_VI in body and status not in (403, 404):
                seen += " with the page saying 'Bạn không có quyền thực hiện thao tác này.'"
            where = f"{check.surface} {check.permission} {check.what}"
            if not ok:
                found.setdefault((where, f"expected {wanted}, got {seen}"), []).append(f"{role}@{relation}")
            if check.writes:
                after = snapshot(session)
                if after != before:
                    found.setdefault((where, f"changed the database (status {status})"), []).append(f"{role}@{relation}")
                    before = after
    return [f"{where}: {outcome} — as {', '.join(users)}" for (where, outcome), users in found.items()]


def report(mismatches: list[str]) -> str:
    return "mismatches with the permission table:\n" + "\n".join(mismatches)


# --- HTML log-in, as in test_ui.py (one client address per user: the log-in form allows 20 a client per 5 min) ---
def csrf(client, url="/dang-nhap"):
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(client, username):
    r = client.post("/dang-nhap", data={"username": username, "password": PASSWORD, "csrf_token": csrf(client)})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


def html_users(app) -> dict:
    app.config["SESSION_COOKIE_SECURE"] = False
    users = {}
    for i, (role, relation) in enumerate(USERS):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.0.0.{i + 1}"
        login(client, username(role, relation))
        users[role, relation] = (client, csrf(client, "/hop-thu"))
    return users


# --- the tests ---------------------------------------------------------------------------------------
def test_policy_table_is_the_reviewed_one():
    assert POLICY == REVIEWED_POLICY


def test_every_permission_has_an_expectation_and_a_route_checked():
    for permission in POLICY:
        expected(permission, "admin", "own", "admin")  # raises KeyError if no rule was written for it
    checked = {c.permission for c in API_CHECKS + HTML_PAGE_CHECKS + HTML_ACTION_CHECKS}
    # apology.sign is asked of the leader named as the signer, not of the caller: tests/test_api.py
    # (test_tasks_complete_supplement_apology_and_result) and tests/test_dossiers.py cover it.
    # consultation.answer is asked in the consulted unit, which a one-unit world lacks:
    # tests/test_lien_thong.py runs it through the API and the screens for every unit of a province.
    assert checked | {"apology.sign", "consultation.answer"} == set(POLICY), set(POLICY) ^ checked


def test_api_matrix(client, session):
    world = build_world(session)
    requesters = {(role, relation): (client, bearer(client, username(role, relation), PASSWORD)) for role, relation in USERS}
    mismatches = run(API_CHECKS, requesters, session, world)
    assert not mismatches, report(mismatches)


def test_html_pages_matrix(app, session):
    world = build_world(session)
    mismatches = run(HTML_PAGE_CHECKS, html_users(app), session, world)
    assert not mismatches, report(mismatches)


def test_html_actions_matrix(app, session):
    world = build_world(session)
    mismatches = run(HTML_ACTION_CHECKS, html_users(app), session, world)
    assert not mismatches, report(mismatches)
