"""Fixtures: every database test runs on SQLite and on the real PostgreSQL, schema from Alembic."""
from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine import catalog, dossiers
from engine.access import directory
from engine.catalog.calendar import install_shipped_calendar
from engine.clock import VN_TZ
from engine.store import schema
from engine.store.db import make_engine, make_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
# The audit chains' key (engine/config.audit_key): one fixed key for the tests and the processes they
# start, which may run on PostgreSQL, where an instance refuses to work without one.
os.environ.setdefault("MOTCUA_AUDIT_KEY", "tests-only-audit-key-0123456789abcdef")
PG_URL = os.environ.get("MOTCUA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
KEEP_TABLES = {"roles", "alembic_version"}


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing():
    """argon2's production cost (~130 ms a hash) would dominate fixture set-up; tests of the
    hashing itself use the real parameters through engine.security directly."""
    from argon2 import PasswordHasher

    from engine.access import passwords

    real = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = real


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    schema.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str:
    eng = create_engine(PG_URL)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()
    schema.upgrade(PG_URL)
    return PG_URL


def _reset_caches():
    from engine.dossiers import aggregate

    aggregate.reset_caches()


def pytest_collection_modifyitems(config, items):
    """Backend-specific tests run only in their backend's variant (deselected, not skipped)."""
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("postgres_only") and "[sqlite" in item.nodeid:
            drop.append(item)
        elif item.get_closest_marker("sqlite_only") and "[postgresql" in item.nodeid:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    _reset_caches()
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_migrated")
    eng = create_engine(url)
    with eng.begin() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))]
        doomed = [t for t in tables if t not in KEEP_TABLES]
        if doomed:
            conn.execute(text(f"TRUNCATE {', '.join(doomed)} RESTART IDENTITY CASCADE"))
        # The calendar in force is law data the migrations ship: put it back as a fresh database has it.
        install_shipped_calendar(conn)
    eng.dispose()
    return url


@pytest.fixture
def engine_(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine_):
    return make_sessionmaker(engine_)


@pytest.fixture
def session(factory):
    with factory() as s:
        yield s


@pytest.fixture(autouse=True)
def upload_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "uploads"
    monkeypatch.setenv("MOTCUA_UPLOAD_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def audit_anchor_dir(tmp_path, monkeypatch) -> Path:
    """Each test's own anchor files (engine/dossiers/anchors.py): never the working tree's var/."""
    path = tmp_path / "audit-anchors"
    monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_DIR", str(path))
    return path


@dataclass
class Office:
    unit: str
    users: dict[str, int]

    def __getitem__(self, role: str) -> int:
        return self.users[role]


def vn(*args) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)


STAFF_NAMES = {"mot_cua": "Lê Thị Hoa", "chuyen_vien": "Phạm Minh Tuấn", "lanh_dao_phong": "Đỗ Thu Hà",
               "lanh_dao": "Vũ Quang Huy", "van_thu": "Ngô Thị Lan", "admin": "Hoàng Văn Nam",
               "designer": "Đặng Thị Mai", "manager": "Bùi Đức Long"}


@pytest.fixture
def office(session) -> Office:
    """A commune office with one user per role, another commune, and the shipped procedures."""
    directory.add_unit(session, "H40.1", "UBND xã Tân Lạc")
    directory.add_unit(session, "H40.2", "UBND xã Mường Bi")
    users = {}
    for role in ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu", "admin", "designer", "manager"):
        users[role] = directory.add_user(session, f"{role}1", "matkhau-123", [("H40.1", role)], STAFF_NAMES[role]).id
    users["other_chuyen_vien"] = directory.add_user(session, "cv_khac", "matkhau-123", [("H40.2", "chuyen_vien")],
                                                    "Lò Văn Sơn").id
    users["other_mot_cua"] = directory.add_user(session, "mc_khac", "matkhau-123", [("H40.2", "mot_cua")],
                                                "Quàng Thị Mơ").id
    catalog.load_processes(session, ROOT / "processes", actor_id=None)
    session.commit()
    return Office("H40.1", users)


def item(problem: str, component: str = "GIAYDENGHI") -> dict:
    """One requested supplement item: a component of the procedure and what is wrong with it."""
    return {"component": component, "problem": problem}


def figures_of(m: dict) -> dict:
    """A metrics summary (engine.reporting.metrics.summary, GET /api/v1/metrics) as {drill-down kind: count}."""
    return {
        "received": m["received"]["total"], "received_online": m["received"]["online"],
        "received_counter": m["received"]["counter"], "received_post": m["received"]["post"],
        "finished": m["finished"]["total"], "finished_early": m["finished"]["early"],
        "finished_on_time": m["finished"]["on_time"], "finished_late": m["finished"]["late"],
        "finished_late_apologized": m["finished"]["late_with_apology"], "in_progress": m["in_progress"]["total"],
        "in_progress_overdue": m["in_progress"]["overdue"], "withdrawn": m["withdrawn"],
        "overdue_without_apology": m["overdue_without_apology"], "supplemented": m["supplement_requests"],
        "digitised": m["received"]["total"],
    }


def pdf(tag: str = "x") -> bytes:
    return b"%PDF-1.4\n" + tag.encode() + b"\n%%EOF\n"


def result_for(session, task, at: datetime | None = None, *, api: bool = False) -> dict | None:
    """The result document `task` (a step, or its id) records when it approves, if its diagram says so
    (engine/dossiers/results.py): in the shipped processes the leader's signing step attaches the signed
    PDF, the clerk's register step records its number and signing date (`at`'s day). `api`: as the API
    takes it (the file in base64). None for a step that records none."""
    from engine import clock
    from engine.dossiers import results
    from engine.store.models import Dossier, HumanTask, ProcedureVersion

    row = session.get(HumanTask, task if isinstance(task, str) else task.id)
    meta = session.get(ProcedureVersion, session.get(Dossier, row.dossier_id).version_id).meta
    needs, out = results.required(meta, row.spec_name), {}
    if "file" in needs:
        content = pdf("ket-qua-da-ky")
        out["file"] = {"filename": "ket-qua.pdf", **({"content_base64": base64.b64encode(content).decode()} if api
                                                     else {"content": content})}
    if "number" in needs:
        out.update(number="01/KQ", signed_on=clock.local(at or clock.now()).date().isoformat())
    return out or None


def components_for(code: str) -> list[dict]:
    required = {
        "1.001612": ["GIAYDENGHI"],
        "1.001193": ["TOKHAI", "GIAYCHUNGSINH"],
        "1.009994": ["DONDENGHI", "QUYENSDD", "BANVE"],
    }[code]
    return [{"code": c, "filename": f"{c.lower()}.pdf", "content": pdf(c), "content_type": "application/pdf"} for c in required]


APPLICANT = {"name": "Nguyễn Văn An", "id_number": "017090001234", "phone": "0912345678",
             "email": "an@example.vn", "address": "Xóm Đồng, xã Tân Lạc, tỉnh Phú Thọ"}


def receive(session, office, code="1.001612", at=None, channel="counter"):
    """Receive a dossier at the office's desk; returns it as an ORM object of `session`."""
    from engine.store.models import Dossier

    record = dossiers.receive_dossier(
        session, actor_id=office["mot_cua"], procedure_code=code, channel=channel,
        applicant=APPLICANT, components=components_for(code), now=at or vn(2026, 11, 2, 9, 0),
    )
    return session.get(Dossier, record.id)


def open_task(session, dossier, role=None):
    from sqlalchemy import select

    from engine.store.models import HumanTask

    stmt = select(HumanTask).where(HumanTask.dossier_id == dossier.id, HumanTask.completed_at.is_(None))
    if role:
        stmt = stmt.where(HumanTask.role == role)
    return session.scalars(stmt).one()


@pytest.fixture
def app(db_url, upload_dir):
    from webapp import create_app

    return create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "test-secret"})


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(client, username: str, password: str = "matkhau-123") -> dict:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def as_orm(session, record):
    """A dossier a use case returned (a Core record), as an ORM object of `session`."""
    from engine.store.models import Dossier

    return session.get(Dossier, record.id)


# --- a live server and a browser (tests/test_browser.py, tests/test_forms_print.py) ---------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LIVE_APPS: list = []  # the running app, so a test can move its clock seam (MOTCUA_NOW)


@pytest.fixture
def live_server(db_url, office, upload_dir):
    import threading

    from werkzeug.serving import make_server

    from webapp import create_app

    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "browser-test", "SESSION_COOKIE_SECURE": False})
    LIVE_APPS.append(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    from playwright import sync_api as playwright_api

    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


# --- a real SMTP server and an HTTP SMS gateway on 127.0.0.1 (notices to the applicant) ------------
PUBLIC = "https://dichvucong.phutho.gov.vn"
FROM = "Bộ phận một cửa xã Tân Lạc <motcua@tanlac.phutho.gov.vn>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts; refuses the recipients in `refuse` with 550."""

    def __init__(self):
        self.messages: list = []
        self.refuse: set[str] = set()
        self.delay = 0.0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            time.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


class Gateway:
    """A brandname SMS gateway: records each POSTed JSON body; answers the statuses in `script` first
    (then 200)."""

    def __init__(self):
        self.received: list[dict] = []
        self.answers: list[int] = []
        self.script: list[int] = []
        self.delay = 0.0
        self.lock = threading.Lock()


@pytest.fixture
def gateway():
    gw = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if gw.delay:
                time.sleep(gw.delay)
            with gw.lock:
                status = gw.script.pop(0) if gw.script else 200
                gw.received.append({**body, "idempotency_key": self.headers["Idempotency-Key"]})
                gw.answers.append(status)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "x"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gw.url = f"http://127.0.0.1:{server.server_port}/sms/send"
    yield gw
    server.shutdown()
    server.server_close()


@pytest.fixture
def send(factory, smtp, gateway):
    """send_pending against the local SMTP server and gateway, at `now`."""
    def run(now, **kwargs):
        options = {"smtp_url": smtp.url, "sender": FROM, "sms_url": gateway.url, "public_url": PUBLIC}
        from engine import notify
        return notify.send_pending(factory, now=now, **{**options, **kwargs})
    return run


# --- the screens through the Flask test client, and a time bound -------------------------------------
@pytest.fixture
def ui(app):
    """A browser-less client of the screens (CSRF on; the session cookie works over plain HTTP)."""
    app.config["SESSION_COOKIE_SECURE"] = False
    return app.test_client()


def csrf(client, url="/dang-nhap"):
    """The CSRF token of the form on `url`."""
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(client, username, password="matkhau-123"):
    r = client.post("/dang-nhap", data={"username": username, "password": password, "csrf_token": csrf(client)})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


@contextmanager
def watchdog(seconds: float, what: str = "the block"):
    """Fail (TimeoutError) if the block runs longer than `seconds`: a loose bound, far above what bounded
    code takes and far below what the unbounded code took, so a loaded machine does not make it flaky."""
    def expired(*_):
        raise TimeoutError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
