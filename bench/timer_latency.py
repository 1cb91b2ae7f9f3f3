"""Benchmark: how late BPMN timers fire while clients load the server, and how long a sweep of many due
timers takes — the timer worker of the working tree against the one of a baseline revision, same run.

    .venv/bin/python bench/timer_latency.py [--pg URL] [--clients 32] [--seconds 30] [--timers 10000]
                                            [--parts latency,sweep] [--baseline HEAD] [--write docs/benchmarks.md]

PostgreSQL only (the database named by --pg is wiped: default `motcua_timers_bench`; `test` is refused).
Two trees are measured: the current one, a snapshot of this working tree taken at start, and the baseline,
the same snapshot with `engine/dossiers/timers.py` and `motcua/cli.py` as they are at --baseline, so the
two sides differ by the timer code only.

Latency (per side): a fresh database with one commune office and a procedure whose process waits 3 s
(`PT3S`, a BPMN timer) after its first step; `motcua serve` (gunicorn, --server-workers processes) and
one `motcua timers run` of the side's tree on 127.0.0.1; `--clients` threads, each with its own token,
loop for `--seconds` over the HTTP API: receive a dossier, read it, complete its first step (which starts
its timer), read the inbox. When the load ends the run waits (bounded) for every started timer to fire.
A timer's lateness is its `timer_fired` audit event's `at` (the sweep's clock when it fired it) minus the
due time the event records; the share fired within 1 s of their due time is the target (95 %).

Sweep (per variant): a fresh database holding `--timers` dossiers all waiting at a timer already due
(one made through the use cases, the rest copied from it in SQL with fresh task ids), then
`timers.run_once` at the same `now` in one process of each tree, and in two processes of the current tree
started together (the 2-core machine's two workers). Checked afterwards: every dossier has exactly one
`timer_fired` event and one open next step. The current tree's child also times SpiffWorkflow alone on
the same state (load, fire, dump, in memory: the floor under any sweep) and every SQL statement's
execution (round trip included), which says where the time goes.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from engine_cycle import write_section  # noqa: E402  this folder: a run into its section of docs/benchmarks.md
from use_cases import (  # noqa: E402  this folder: tree snapshots, PostgreSQL reset, in-process CLI
    _cli,
    _foreign_modules,
    _isolate_imports,
    ensure_pg_database,
    reset_pg,
    snapshot_working_tree,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/motcua_timers_bench"
MARKER = "TIMER_BENCH_JSON "
PROCEDURE = "1.999001"
UNIT = "H40.1"
PASSWORD = "mat-khau-do-hieu-nang"
DELAY = 3.0  # seconds between a dossier's first step and its timer
APPLICANT = {"name": "Nguyễn Văn An", "id_number": "017090001234", "phone": "0912345678",
             "email": "an@example.vn", "address": "Xóm Đồng, xã Tân Lạc, tỉnh Phú Thọ"}
PDF = b"%PDF-1.4\nbench\n%%EOF\n"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMER_CODE = {"engine/dossiers/timers.py", "motcua/cli.py"}
# Every process of an instance on a database server shares one audit key (engine/config.py).
os.environ.setdefault("MOTCUA_AUDIT_KEY", "bench-only-audit-key-0123456789abcdef")


def timer_bpmn(delay: str) -> str:
    """start → Task_A (mot_cua) → timer `delay` → Task_B (chuyen_vien) → end."""
    sys.path.insert(0, str(ROOT / "tools"))
    from bpmn_builder import Flow, Node, Process, render

    lanes = [("Lane_mc", "Một cửa", "mot_cua"), ("Lane_cv", "Chuyên viên", "chuyen_vien")]
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "Tiếp nhận", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("Timer", "intermediateCatchEvent", "Chờ niêm yết", "Lane_mc", 2, timer=("timeDuration", f'"{delay}"')),
             Node("Task_B", "userTask", "Thẩm định", "Lane_cv", 3, {"duration": "PT1H"}),
             Node("E", "endEvent", "Kết thúc", "Lane_cv", 4)]
    chain = ["S", "Task_A", "Timer", "Task_B", "E"]
    return render(Process("Process_timer_bench", "timer bench", lanes, nodes,
                          [Flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(chain, chain[1:]))]))


# --- set-up (in this process, current tree) ------------------------------------------------------------
def set_up(url: str, delay: str) -> dict[str, int]:
    """A fresh office on the database at `url` (already reset): schema, unit, users, the timer procedure."""
    os.environ["DATABASE_URL"] = url
    _cli("init-db")
    _cli("units", "add", UNIT, "UBND xã Tân Lạc")
    _cli("users", "add", "bench_mc", "--password", PASSWORD, "--unit", UNIT, "--role", "mot_cua")
    _cli("users", "add", "bench_cv", "--password", PASSWORD, "--unit", UNIT, "--role", "chuyen_vien")
    from sqlalchemy import select

    from engine import catalog
    from engine.dossiers import aggregate
    from engine.store.db import make_engine, make_sessionmaker
    from engine.store.models import User

    aggregate.reset_caches()
    eng = make_engine(url)
    with make_sessionmaker(eng)() as s:
        catalog.create_procedure(s, actor_id=None, data={
            "code": PROCEDURE, "name": "Thủ tục thử nghiệm có hẹn giờ", "field": "Thử nghiệm", "level": "xa",
            "statutory_days": 1, "online_level": "mot_phan",
            "components": [{"code": "DON", "name": "Đơn", "required": True}]})
        version, _ = catalog.submit_version(s, actor_id=None, procedure_code=PROCEDURE, bpmn=timer_bpmn(delay))
        catalog.publish_version(s, actor_id=None, procedure_code=PROCEDURE, number=version.number,
                                effective_from=date(2026, 1, 1))
        s.commit()
        users = {name: uid for uid, name in s.execute(select(User.id, User.username))}
    eng.dispose()
    return users


def child_env(tree: Path, url: str, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=str(tree), DATABASE_URL=url, MOTCUA_UPLOAD_DIR=str(tmp / "uploads"),
               MOTCUA_DATA_DIR=str(tmp / "var"), MOTCUA_SECRET_KEY="bench-only-secret-key-0123456789",
               MOTCUA_INSECURE_COOKIES="1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


# --- latency under load --------------------------------------------------------------------------------
class Api:
    """A tiny JSON client over one keep-alive connection (reopened when the server closes it)."""

    def __init__(self, port: int):
        self.port, self.conn, self.token = port, None, None

    def call(self, method: str, path: str, body=None, timeout: float = 60) -> tuple[int, dict | list | None]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, (json.loads(raw) if raw else None)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if Api(port).call("GET", "/api/v1/openapi.json", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not answer")


def client_loop(port: int, until: float, out: list, errors: list) -> None:
    api = Api(port)
    status, token = api.call("POST", "/api/v1/auth/token", {"username": "bench_mc", "password": PASSWORD})
    if status != 200:
        errors.append(f"login: {status} {token}")
        return
    api.token = token["token"]
    body = {"procedure_code": PROCEDURE, "channel": "counter", "applicant": APPLICANT,
            "components": [{"code": "DON", "filename": "don.pdf", "content_base64": base64.b64encode(PDF).decode()}]}

    def timed(op, method, path, payload=None):
        t0 = time.perf_counter()
        status, answer = api.call(method, path, payload)
        out.append((op, status, time.perf_counter() - t0))
        if status >= 500 or status not in (200, 201):
            errors.append(f"{op}: {status} {str(answer)[:200]}")
        return status, answer

    while time.monotonic() < until:
        status, created = timed("receive", "POST", "/api/v1/dossiers", body)
        if status != 201:
            continue
        status, dossier = timed("read dossier", "GET", f"/api/v1/dossiers/{created['code']}")
        if status != 200 or not dossier["open_tasks"]:
            continue
        timed("complete first step", "POST", f"/api/v1/tasks/{dossier['open_tasks'][0]['id']}/complete",
              {"data": {"decision": "approve"}})
        timed("inbox", "GET", "/api/v1/tasks")


def lateness(url: str) -> tuple[list[float], int]:
    """Seconds each fired timer fired after its due time, and how many started timers have not fired."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT at, data FROM audit_events WHERE kind = 'timer_fired'")).all()
        pending = conn.scalar(text("SELECT count(*) FROM dossiers WHERE timer_due_at IS NOT NULL"))
    eng.dispose()
    out = []
    for at, data in rows:
        data = data if isinstance(data, dict) else json.loads(data)
        out.append((at - datetime.fromisoformat(data["due"])).total_seconds())
    return out, pending


def run_latency(side: str, tree: Path, server_tree: Path, url: str, args) -> dict:
    """`tree`: the worker's code; the server runs the current tree on both sides."""
    reset_pg(url)
    set_up(url, f"PT{DELAY:g}S")
    tmp = Path(tempfile.mkdtemp(prefix="motcua-tl-"))
    env = child_env(tree, url, tmp)
    port = free_port()
    server_log = open(tmp / "server.log", "w")
    worker_log = open(tmp / "worker.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "motcua.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.server_workers)], cwd=server_tree,
                              env=child_env(server_tree, url, tmp), stdout=subprocess.DEVNULL, stderr=server_log)
    worker = None
    try:
        wait_ready(port, server)
        worker = subprocess.Popen([sys.executable, "-m", "motcua.cli", "timers", "run"], cwd=tree, env=env,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        time.sleep(3)  # the worker is up and idle
        calls: list = []
        errors: list = []
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=client_loop, args=(port, until, calls, errors), daemon=True)
                   for _ in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 120)
        load_seconds = time.monotonic() - t0
        # Every started timer fires within the old worker's 30 s interval (plus its sweep).
        deadline = time.monotonic() + DELAY + 45
        while time.monotonic() < deadline:
            late, pending = lateness(url)
            if not pending:
                break
            time.sleep(1)
        late, pending = lateness(url)
    finally:
        worker_status = stop_process(worker) if worker is not None else None
        stop_process(server)
        server_log.close()
        worker_log.close()
        worker_out = (tmp / "worker.log").read_text(encoding="utf-8", errors="replace")
        shutil.rmtree(tmp, ignore_errors=True)
    ops: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    for op, status, seconds in calls:
        ops.setdefault(op, []).append(seconds)
        statuses[status] = statuses.get(status, 0) + 1
    return {"side": side, "late": late, "pending": pending, "requests": len(calls), "load_seconds": load_seconds,
            "statuses": statuses, "errors": errors[:10], "ops": {op: sorted(v) for op, v in ops.items()},
            "worker_status": worker_status, "worker_tail": worker_out.strip().splitlines()[-3:]}


# --- the sweep of many due timers ----------------------------------------------------------------------
def make_due_timers(url: str, users: dict[str, int], count: int) -> None:
    """`count` dossiers waiting at a timer due an hour ago: one through the use cases, the others copied
    from it in SQL with fresh SpiffWorkflow task ids (they key the inbox rows), with its first step."""
    from sqlalchemy import insert, select, text

    from engine import dossiers
    from engine.store.db import make_engine, make_sessionmaker
    from engine.store.models import Dossier, HumanTask

    eng = make_engine(url)
    then = datetime.now(timezone.utc) - timedelta(hours=1)
    with make_sessionmaker(eng)() as s:
        d = dossiers.receive_dossier(s, actor_id=users["bench_mc"], procedure_code=PROCEDURE, channel="counter",
                                     applicant=APPLICANT, components=[{"code": "DON", "filename": "don.pdf",
                                                                       "content": PDF}], now=then)
        task_id = s.scalar(select(HumanTask.id).where(HumanTask.dossier_id == d.id))
        s.rollback()
        dossiers.complete_task(s, actor_id=users["bench_mc"], task_id=task_id, now=then + timedelta(minutes=1))
        row = dict(s.execute(select(Dossier.__table__).where(Dossier.id == d.id)).one()._mapping)
        task = dict(s.execute(select(HumanTask.__table__).where(HumanTask.dossier_id == d.id)).one()._mapping)
        s.rollback()
    chunk = 2000
    for start in range(1, count, chunk):
        rows, tasks = [], []
        for i in range(start, min(count, start + chunk)):
            fresh: dict[str, str] = {}
            state = UUID.sub(lambda m, fresh=fresh: fresh.setdefault(m.group(0), str(uuid.uuid4())),
                             row["workflow_state"])
            values = {k: v for k, v in row.items() if k != "id"}
            values.update(code=f"{row['code']}-{i:05d}", workflow_state=state, register_no=None)
            rows.append(values)
            tasks.append({**task, "id": fresh.get(task["id"], str(uuid.uuid4()))})
        with eng.begin() as conn:
            ids = conn.execute(insert(Dossier.__table__).returning(Dossier.__table__.c.id, sort_by_parameter_order=True),
                               rows).scalars().all()
            for t, dossier_id in zip(tasks, ids):
                t["dossier_id"] = dossier_id
            conn.execute(insert(HumanTask.__table__), tasks)
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE dossiers"))
        conn.execute(text("VACUUM ANALYZE human_tasks"))
        conn.execute(text("CHECKPOINT"))
    eng.dispose()


def child_sweep(args) -> dict:
    """In a child process of one tree: one `run_once` at the given `now`, timed (wall and CPU)."""
    tree = Path(args.tree).resolve()
    _isolate_imports(tree)
    from sqlalchemy import select

    from engine import clock
    from engine.catalog.calendar import working_calendar
    from engine.dossiers import aggregate, timers
    from engine.store.db import make_engine, make_sessionmaker
    from engine.store.models import Dossier
    from engine.workflow import runtime

    url = os.environ["DATABASE_URL"]
    now = datetime.fromtimestamp(args.now, tz=timezone.utc)
    eng = make_engine(url)
    factory = make_sessionmaker(eng)
    # No statement listeners: they would switch off the engine's prepared-statement shortcut (engine.store.db).
    with factory() as s:  # connect and warm the caches (spec, calendar) before the clock starts
        s.execute(select(Dossier.id).limit(1)).all()
        s.rollback()
    spiff_ms = None
    if args.spiff:
        with factory() as s:
            d = s.execute(select(Dossier.workflow_state, Dossier.version_id).limit(1)).one()
            _, spec_hash = aggregate.version_meta(s, d.version_id)
            calendar = working_calendar(s)
            loader = aggregate.spec_loader(s)
            runtime.Instance.load(d.workflow_state, spec_hash, loader, calendar)  # parse the spec once
            times = []
            for _ in range(200):
                t0 = time.process_time()
                with clock.frozen(now):
                    inst = runtime.Instance.load(d.workflow_state, spec_hash, loader, calendar)
                    inst.fire_timers()
                    inst.ready_user_tasks()
                    inst.next_timer_due()
                    inst.dump()
                times.append(time.process_time() - t0)
            s.rollback()
        spiff_ms = statistics.mean(times) * 1000
    while time.time() < args.start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    report = timers.run_once(factory, now)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    eng.dispose()
    foreign = _foreign_modules(tree)
    if foreign:
        raise RuntimeError("modules imported from outside the measured tree: " + "; ".join(foreign))
    return {"seconds": seconds, "cpu": cpu, "fired": report.timers_fired, "failures": report.failures[:5],
            "spiff_ms": spiff_ms}


def run_sweep(variant: str, tree: Path, processes: int, url: str, args) -> dict:
    reset_pg(url)
    users = set_up(url, "PT1M")
    t0 = time.perf_counter()
    make_due_timers(url, users, args.timers)
    made = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="motcua-ts-"))
    now = time.time()
    start_at = now + 4  # children import and connect first, then start together
    procs = [subprocess.Popen([sys.executable, str(HERE), "--child-sweep", "--tree", str(tree), "--now", repr(now),
                               "--start-at", repr(start_at)] + (["--spiff"] if variant == "current" and i == 0 else []),
                              cwd=tree, env=child_env(tree, url, tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(processes)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=args.timeout)
        found = [json.loads(line[len(MARKER):]) for line in stdout.splitlines() if line.startswith(MARKER)]
        outs.append(found[0] if found else {"error": f"exit {proc.returncode}: {stderr.strip()[-500:]}"})
    shutil.rmtree(tmp, ignore_errors=True)
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.connect() as conn:
        per = conn.execute(text(
            "SELECT d.id, (SELECT count(*) FROM audit_events a WHERE a.dossier_id = d.id AND a.kind = 'timer_fired'),"
            " (SELECT count(*) FROM human_tasks t WHERE t.dossier_id = d.id AND t.spec_name = 'Task_B')"
            " FROM dossiers d")).all()
    eng.dispose()
    fired_once = sum(1 for _, fired, steps in per if fired == 1 and steps == 1)
    return {"variant": variant, "processes": processes, "children": outs, "dossiers": len(per),
            "fired_once": fired_once, "not_once": len(per) - fired_once, "setup_seconds": made,
            "wall": max((o.get("seconds", 0) for o in outs), default=0)}


# --- report ----------------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))]


def fmt(value, digits=2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def latency_lines(results: list[dict]) -> list[str]:
    lines = ["| worker | timers fired | not fired | p50 s late | p95 s late | max s late | within 1 s | "
             "requests/s | 5xx | receive p95 s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error']} |||||||||")
            continue
        late = r["late"]
        within = sum(1 for x in late if x <= 1.0) / len(late) * 100 if late else None
        server_errors = sum(n for status, n in r["statuses"].items() if int(status) >= 500)
        lines.append(f"| {r['label']} | {len(late):,} | {r['pending']} | {fmt(pct(late, .5))} | {fmt(pct(late, .95))} | "
                     f"{fmt(max(late) if late else None)} | {fmt(within, 1)} % | "
                     f"{fmt(r['requests'] / r['load_seconds'], 1)} | {server_errors} | "
                     f"{fmt(pct(r['ops'].get('receive', []), .95))} |")
    return lines


def sweep_lines(results: list[dict], timers_count: int) -> list[str]:
    lines = ["| sweep | processes | seconds | timers/s | ms per timer (wall × processes / timers) | "
             "exactly once | × baseline |", "|---|---:|---:|---:|---:|---:|---:|"]
    base = next((r["wall"] for r in results if r["variant"] == "baseline" and r["wall"]), None)
    for r in results:
        errors = [c["error"] for c in r["children"] if "error" in c]
        if errors:
            lines.append(f"| {r['label']} | {r['processes']} | failed: {errors[0][-200:]} |||||")
            continue
        fired = sum(c["fired"] for c in r["children"])
        lines.append(f"| {r['label']} | {r['processes']} | {fmt(r['wall'])} | {fmt(fired / r['wall'], 0)} | "
                     f"{fmt(r['wall'] * r['processes'] / max(fired, 1) * 1000)} | "
                     f"{r['fired_once']:,} of {r['dossiers']:,} | {fmt(r['wall'] / base if base else None)} |")
    return lines


def where_lines(results: list[dict]) -> list[str]:
    """Where a current-tree sweep's time goes: SpiffWorkflow, the rest of the process's CPU, waiting."""
    one = next((r for r in results if r["variant"] == "current" and r["processes"] == 1
                and "error" not in r["children"][0]), None)
    if one is None:
        return []
    c = one["children"][0]
    per = 1000 / max(c["fired"], 1)
    spiff, cpu, total = c["spiff_ms"] or 0, c["cpu"] * per, c["seconds"] * per
    return ["", "Where one process's time goes, per timer (current tree, one process):", "",
            "| part | ms |", "|---|---:|",
            f"| SpiffWorkflow: load the instance, fire, engine steps, dump (CPU, timed alone on the same state) | "
            f"{spiff:.2f} |",
            f"| the rest of the process's CPU: SQLAlchemy and psycopg, the unit of work (audit chain, counters) | "
            f"{max(0.0, cpu - spiff):.2f} |",
            f"| waiting: PostgreSQL executing the statements and committing, round trips, the CPU given to "
            f"other processes | {max(0.0, total - cpu):.2f} |",
            f"| total (wall) | {total:.2f} |"]


SECTION = "## Timers: lateness under load and the sweep (`bench/timer_latency.py`)"


def git(*argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("MOTCUA_BENCH_PG_URL", DEFAULT_PG),
                    help="PostgreSQL URL of a database this benchmark may wipe (default %(default)s)")
    ap.add_argument("--parts", default="latency,sweep", help="comma-separated: latency, sweep")
    ap.add_argument("--clients", type=int, default=32, help="client threads loading the server (default %(default)s)")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of load per side (default %(default)s)")
    ap.add_argument("--server-workers", type=int, default=3, help="gunicorn worker processes (default %(default)s)")
    ap.add_argument("--timers", type=int, default=10000, help="due timers in the sweep (default %(default)s)")
    ap.add_argument("--baseline", default="HEAD", help="revision whose timer code is the baseline (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per sweep child")
    ap.add_argument("--write", default=None, help="append the results to this Markdown file")
    ap.add_argument("--json", default=None, help="also save every figure to this JSON file")
    ap.add_argument("--child-sweep", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--spiff", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_sweep:
        print(MARKER + json.dumps(child_sweep(args)), flush=True)
        return
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"latency", "sweep"}:
        raise SystemExit("--parts: latency, sweep")
    ensure_pg_database(args.pg)
    started = time.perf_counter()
    base_sha = git("rev-parse", "--short", f"{args.baseline}^{{commit}}").strip()
    head_sha = git("rev-parse", "--short", "HEAD").strip()
    work = Path(tempfile.mkdtemp(prefix="motcua-tl-trees-"))
    latency, sweeps = [], []
    try:
        current, baseline = work / "current", work / "baseline"
        current.mkdir()
        snapshot_working_tree(current)
        shutil.copytree(current, baseline)
        for name in TIMER_CODE:
            (baseline / name).write_text(git("show", f"{base_sha}:{name}"), encoding="utf-8")
        if "latency" in parts:
            for side, tree, label in (("current", current, "new worker (sleeps until due, woken by NOTIFY)"),
                                      ("baseline", baseline, f"old worker ({base_sha}: sweeps every 30 s)")):
                try:
                    r = run_latency(side, tree, current, args.pg, args)
                except Exception as exc:  # report and go on with the other side
                    r = {"side": side, "error": f"{exc.__class__.__name__}: {exc}"}
                r["label"] = label
                latency.append(r)
                late = r.get("late") or []
                print(f"[latency, {side}] {len(late)} timers, p95 {fmt(pct(late, .95))} s, "
                      f"{r.get('requests', 0)} requests, errors: {r.get('errors', r.get('error'))}", file=sys.stderr)
        if "sweep" in parts:
            for variant, tree, processes, label in (
                    ("baseline", baseline, 1, f"baseline ({base_sha})"),
                    ("current", current, 1, "current"),
                    ("current", current, 2, "current, two workers")):
                r = run_sweep(variant, tree, processes, args.pg, args)
                r["label"] = label
                sweeps.append(r)
                print(f"[sweep, {label}] {fmt(r['wall'])} s, {r['fired_once']} of {r['dossiers']} fired exactly once, "
                      f"{[c.get('error') for c in r['children'] if 'error' in c]}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        reset_pg(args.pg)

    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/screenshots").strip())
    command = ".venv/bin/python bench/timer_latency.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [f"Run {datetime.now(VN):%Y-%m-%d %H:%M} on {platform.node() or 'this machine'} ({os.cpu_count()} cores, "
             f"Python {platform.python_version()}, load average at the end "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}): `{command}` ({time.perf_counter() - started:.0f} s). "
             f"Current: working tree at {head_sha}{' with uncommitted changes' if dirty else ''}; baseline: the same "
             f"with the timer code of {base_sha}."]
    if latency:
        lines += ["", f"Lateness of timers fired while {args.clients} clients loaded `motcua serve` "
                      f"({args.server_workers} gunicorn workers) for {args.seconds:g} s each:", ""] + latency_lines(latency)
    if sweeps:
        lines += ["", f"A sweep of {args.timers:,} due timers:", ""] + sweep_lines(sweeps, args.timers) + where_lines(sweeps)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": latency, "sweeps": sweeps}, indent=1, default=str),
                                   encoding="utf-8")
    if args.write:
        write_section(Path(args.write), SECTION, lines)


if __name__ == "__main__":
    main()
