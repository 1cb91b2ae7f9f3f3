"""Scale-out on one PostgreSQL: two `motcua serve` (gunicorn) and two timer workers on 127.0.0.1, a mixed
bounded load through the HTTP API across both servers — receptions retried at once on both servers with
the same Idempotency-Key, completions of the same step racing on both — then every answer the clients got
is checked against the database: no transition lost or doubled, no 5xx, every timer fired exactly once."""
import base64
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import APPLICANT, ROOT, pdf
from sqlalchemy import func, select
from test_timers import timer_procedure

from engine.dossiers import audit
from engine.store.models import AuditEvent, Dossier, HumanTask

pytestmark = pytest.mark.postgres_only

CLIENTS = 6          # client threads receiving and completing first steps
FINISHERS = 2        # client threads completing the steps the timers open
LOAD_SECONDS = 10
BODY = {"procedure_code": "1.999001", "channel": "counter", "applicant": APPLICANT,
        "components": [{"code": "DON", "filename": "don.pdf", "content_base64": base64.b64encode(pdf()).decode()}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, token: str | None = None, body=None, headers=None):
    """(status, JSON body, response headers) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None), dict(response.getheaders())
    finally:
        conn.close()


def at_once(*calls):
    """Run the calls (each a tuple of `call` arguments) at the same moment; their answers in order."""
    barrier = threading.Barrier(len(calls))

    def go(args):
        barrier.wait()
        return call(*args)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server on {port} exited: {proc.stderr.read()[-2000:]}"
        try:
            if call(port, "GET", "/api/v1/openapi.json")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server on {port} did not answer")


class Load:
    """What the clients did and what they were told."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.unexpected: list[str] = []
        self.receptions: list[tuple[str, list]] = []  # (key, both answers)
        self.races: defaultdict[str, list[int]] = defaultdict(list)  # task id → statuses of every completion sent
        self.completed_by_client: Counter = Counter()  # dossier code → completions answered 200
        self.first_step_done: set[str] = set()

    def saw(self, what: str, answer, expected=(200, 201)) -> None:
        with self.lock:
            self.statuses[answer[0]] += 1
            if answer[0] not in expected:
                self.unexpected.append(f"{what}: {answer[0]} {str(answer[1])[:300]}")


def receive_and_race(ports, tokens, load: Load, client: int, until: float) -> None:
    rng = random.Random(client)
    n = 0
    while time.monotonic() < until:
        n += 1
        key = f"quay-{client}-{n}"
        both = at_once(*[(p, "POST", "/api/v1/dossiers", tokens["desk"], BODY, {"Idempotency-Key": key}) for p in ports])
        for answer in both:
            load.saw("receive", answer, (201,))
        with load.lock:
            load.receptions.append((key, both))
        if both[0][0] != 201:
            continue
        code = both[0][1]["code"]
        answer = call(rng.choice(ports), "GET", f"/api/v1/dossiers/{code}", tokens["desk"])
        load.saw("read", answer)
        if answer[0] != 200 or not answer[1]["open_tasks"]:
            continue
        task_id = answer[1]["open_tasks"][0]["id"]
        done = {"data": {"decision": "approve"}}
        racing = at_once(*[(p, "POST", f"/api/v1/tasks/{task_id}/complete", tokens["desk"], done) for p in ports])
        for answer in racing:
            load.saw("complete first step", answer, (200, 409))
        with load.lock:
            load.races[task_id] += [a[0] for a in racing]
            wins = [a for a in racing if a[0] == 200]
            load.completed_by_client[code] += len(wins)
            if wins:
                load.first_step_done.add(code)


def finish_opened_steps(ports, tokens, load: Load, until: float) -> None:
    """Complete, racing on both servers, the steps the timers opened (the last step: → result ready)."""
    rng = random.Random(99)
    while time.monotonic() < until:
        answer = call(rng.choice(ports), "GET", "/api/v1/tasks", tokens["cv"])
        load.saw("inbox", answer)
        tasks = answer[1] if answer[0] == 200 else []
        rng.shuffle(tasks)
        for task in tasks[:5]:
            done = {"data": {"decision": "approve"}}
            racing = at_once(*[(p, "POST", f"/api/v1/tasks/{task['id']}/complete", tokens["cv"], done) for p in ports])
            for a in racing:
                load.saw("complete timer's step", a, (200, 409))
            with load.lock:
                load.races[task["id"]] += [a[0] for a in racing]
                load.completed_by_client[task["dossier_code"]] += sum(1 for a in racing if a[0] == 200)
        time.sleep(0.2)


def test_two_servers_and_two_timer_workers_lose_and_duplicate_nothing(session, office, db_url, tmp_path):
    timer_procedure(session, '"PT2S"')
    env = {**os.environ, "DATABASE_URL": db_url, "MOTCUA_UPLOAD_DIR": str(tmp_path / "shared-uploads"),
           "MOTCUA_SECRET_KEY": "scale-out-test-secret-key-0123456789", "MOTCUA_INSECURE_COOKIES": "1"}
    ports = [free_port(), free_port()]
    servers = [subprocess.Popen([sys.executable, "-m", "motcua.cli", "serve", "--host", "127.0.0.1", "--port", str(p),
                                 "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for p in ports]
    workers = [subprocess.Popen([sys.executable, "-m", "motcua.cli", "timers", "run"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    load = Load()
    try:
        for port, server in zip(ports, servers):
            wait_ready(port, server)
        for worker in workers:
            assert "timer worker started" in worker.stderr.readline()
        tokens = {}
        for who, user, port in (("desk", "mot_cua1", ports[0]), ("cv", "chuyen_vien1", ports[1])):
            status, answer, _ = call(port, "POST", "/api/v1/auth/token", body={"username": user, "password": "matkhau-123"})
            assert status == 200, answer
            tokens[who] = answer["token"]
        until = time.monotonic() + LOAD_SECONDS
        threads = [threading.Thread(target=receive_and_race, args=(ports, tokens, load, i, until)) for i in range(CLIENTS)]
        threads += [threading.Thread(target=finish_opened_steps, args=(ports, tokens, load, until + 3))
                    for _ in range(FINISHERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        # The last timers were started at most one load's end ago: they fire within seconds.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            session.rollback()
            if not session.scalar(select(func.count()).select_from(Dossier).where(Dossier.timer_due_at.is_not(None))):
                break
            time.sleep(0.2)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        worker_outputs = [w.communicate(timeout=30) for w in workers]
    finally:
        for proc in workers + servers:
            if proc.poll() is None:  # gunicorn: SIGQUIT is its quick shutdown
                proc.send_signal(signal.SIGTERM if proc in workers else signal.SIGQUIT)
        for proc in workers + servers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    session.rollback()

    # 0 server errors, and only the answers a client may get (409: the loser of a race).
    assert not any(status >= 500 for status in load.statuses), load.statuses
    assert load.unexpected == [], load.unexpected[:10]
    assert len(load.receptions) >= 2 * CLIENTS and len(load.races) >= 2 * CLIENTS, "the load hardly ran"

    # Receptions: the two requests with one key made one dossier; both were told its code, one as a replay.
    codes = set()
    for key, (a, b) in load.receptions:
        assert a[1]["code"] == b[1]["code"], key
        assert sorted(x[2].get("Idempotent-Replayed") == "true" for x in (a, b)) == [False, True], key
        codes.add(a[1]["code"])
    in_db = set(session.scalars(select(Dossier.code)))
    assert in_db == codes  # none lost, none created twice

    # Racing completions (two at once; the finishers may send another pair): exactly one won, the others were
    # told the step is no longer open, and the database holds exactly that one completion.
    for task_id, statuses in load.races.items():
        assert statuses.count(200) == 1 and set(statuses) == {200, 409}, (task_id, statuses)
    completed = Counter(dict(session.execute(
        select(Dossier.code, func.count()).join(HumanTask, HumanTask.dossier_id == Dossier.id)
        .where(HumanTask.completed_at.is_not(None), HumanTask.cancelled.is_(False)).group_by(Dossier.code)).all()))
    events = defaultdict(Counter)
    for code, kind in session.execute(select(Dossier.code, AuditEvent.kind).join(Dossier, Dossier.id == AuditEvent.dossier_id)):
        events[code][kind] += 1
    for code in codes:
        assert completed[code] == load.completed_by_client[code], code
        assert events[code]["task_completed"] == load.completed_by_client[code], code
        assert events[code]["received"] == 1, code

    # Timers: every first step done started one, and each fired exactly once, opening one next step.
    assert load.first_step_done
    second_steps = Counter(session.scalars(
        select(Dossier.code).join(HumanTask, HumanTask.dossier_id == Dossier.id).where(HumanTask.spec_name == "Task_B")))
    for code in codes:
        expected = 1 if code in load.first_step_done else 0
        assert events[code]["timer_fired"] == expected, code
        assert second_steps[code] == expected, code
    fired = [int(out.split("sweeps: ")[1].split(" timers fired")[0]) for out, _ in worker_outputs]
    assert sum(fired) == len(load.first_step_done), worker_outputs
    assert all(w.returncode == 0 for w in workers)

    # States agree with the answers, and every audit chain is intact.
    states = dict(session.execute(select(Dossier.code, Dossier.status)).all())
    for code in codes:
        done = load.completed_by_client[code]
        assert states[code] == {0: "received", 1: "processing", 2: "result_ready"}[done], (code, states[code], done)
    ids = session.scalars(select(Dossier.id)).all()
    assert [i for i in ids if audit.verify_chain(session, i) is not None] == []
