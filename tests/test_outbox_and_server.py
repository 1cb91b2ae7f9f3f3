"""Outbox delivery to a local HTTP receiver (with an injected failure) and the API behind real gunicorn."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from conftest import ROOT, receive
from sqlalchemy import func, select

from engine import dossiers
from engine.dossiers import outbox
from engine.store.models import OutboxEvent


class Receiver:
    """A local portal stand-in: records POSTed events; fails the N-th request with HTTP 503."""

    def __init__(self, fail_on: set[int]):
        self.events, self.calls, self.fail_on = [], 0, fail_on
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                receiver.calls += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.calls in receiver.fail_on:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.events.append((self.headers["Idempotency-Key"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_outbox_delivers_in_order_retrying_after_a_failure(session, factory, office):
    d = receive(session, office)
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="rút")
    receive(session, office)
    rx = Receiver(fail_on={2})
    try:
        report = outbox.push_with_retries(factory, rx.url, attempts=3, backoff=0.01)
    finally:
        rx.close()
    assert report.sent == 3 and report.failed == 1
    kinds = [(e["dossier_code"], e["status"]) for _, e in rx.events]
    assert kinds == [(d.code, "received"), (d.code, "withdrawn"), (kinds[2][0], "received")]
    assert all(key == event["event_id"] for key, event in rx.events)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))) == 0
    failed = session.scalars(select(OutboxEvent).where(OutboxEvent.attempts == 2)).all()
    assert len(failed) == 1 and failed[0].payload["status"] == "withdrawn"


def test_outbox_push_cli_reports_undelivered_events(session, office, db_url):
    receive(session, office)
    env = {**os.environ, "DATABASE_URL": db_url}
    result = subprocess.run([sys.executable, "-m", "motcua.cli", "outbox", "push", "--to", "http://127.0.0.1:9/x",
                             "--attempts", "1"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "1 events still waiting" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null"), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null"), err.headers


@pytest.mark.parametrize("workers", [2])
def test_api_behind_gunicorn(session, office, db_url, upload_dir, workers):
    import base64

    from conftest import APPLICANT, pdf
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "MOTCUA_SECRET_KEY": "x" * 32, "MOTCUA_UPLOAD_DIR": str(upload_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                             str(workers), "webapp.wsgi:app"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/openapi.json", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        status, token, _ = call("POST", f"{base}/auth/token", {"username": "mot_cua1", "password": "matkhau-123"})
        assert status == 200
        auth = {"Authorization": f"Bearer {token['token']}", "Idempotency-Key": "gunicorn-1"}
        body = {"procedure_code": "1.001612", "channel": "counter", "applicant": APPLICANT,
                "components": [{"code": "GIAYDENGHI", "filename": "gdn.pdf",
                                "content_base64": base64.b64encode(pdf()).decode()}]}
        results = [call("POST", f"{base}/dossiers", body, auth) for _ in range(3)]  # a flaky-network retry
        assert {r[0] for r in results} == {201} and len({r[1]["code"] for r in results}) == 1
        status, problem, headers = call("GET", f"{base}/dossiers/NOPE", headers=auth)
        assert status == 404 and headers["Content-Type"] == "application/problem+json"
        status, public, _ = call("GET", f"{base}/public/dossiers/{results[0][1]['code']}?id_number={APPLICANT['id_number']}")
        assert status == 200 and public["status"] == "received"
    finally:
        proc.terminate()
        proc.wait(10)
