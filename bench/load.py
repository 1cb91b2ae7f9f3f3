"""Benchmark: task completions per second through the HTTP API of a running server, 1 to 32 clients.

    .venv/bin/python bench/load.py [--db sqlite,postgresql] [--clients 1,8,32] [--seconds 10]
                                   [--workers 2] [--threads 1] [--pg URL] [--profile] [--tree PATH]
                                   [--write docs/benchmarks.md]

For each database it prepares a fresh one (a temporary SQLite file in WAL mode, or the `public` schema of
the PostgreSQL database named by --pg, dropped and recreated: never the tests' `test`), seeds one unit,
32 desk clerks (role mot_cua) each with an API token, and the 10-step process of bench/raw_cycle.py,
then starts the server the way an operator does — `motcua serve` (gunicorn) on 127.0.0.1 on a free port.
For each client count it receives fresh dossiers (in this process, through the use case, not timed) and
gives each client its own: a client is a thread with one HTTP connection and its own token that
completes the open step of its dossier (`POST /api/v1/tasks/{id}/complete`), takes the next step's id
from the answer, and goes on to its next dossier when one is finished, until `--seconds` have passed.
Two seconds of warm-up with 8 clients come first (not counted).

Reported per client count: completions per second (answered 200 within the window), the median and
95th percentile latency of the requests, errors, and where the two cores went during the window — the
server's processes (gunicorn master and workers), PostgreSQL's backends serving this database, this
process (the load generator: its HTTP clients and, on PostgreSQL, a sampler of pg_stat_activity every
20 ms), and everything else on the machine — from /proc, as cores busy on average and as CPU ms per
completion. On PostgreSQL the sampler also gives what the backends were doing: running, waiting for a
row lock, for the WAL flush or other I/O, or idle in a transaction while the application works.

`--profile` runs the levels again with cProfile (wall clock) in the server's first worker and prints
where a request's time goes there (this slows that worker: its figures are not the throughput).
`--tree PATH` serves and seeds from another copy of motcua (an earlier commit, say), for before/after.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
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
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from engine_cycle import reset_pg, use_tree  # noqa: E402  (this folder; imports no engine code)

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
PASSWORD = "load-bench-password"
USERS = 32
WARMUP_CLIENTS, WARMUP_SECONDS = 8, 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the database ---------------------------------------------------------------------------------
class Office:
    """The seeded office: the clerks' ids and tokens, and a way to receive more dossiers."""

    def __init__(self, url: str):
        from argon2 import PasswordHasher
        from raw_cycle import ten_step_process

        from engine import catalog
        from engine.access import directory, passwords, tokens
        from engine.store import schema
        from engine.store.db import make_engine, make_sessionmaker

        # Hashes carry their parameters, so the server verifies these too; only seeding gets cheaper.
        passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        schema.upgrade(url)
        self.engine = make_engine(url)
        self.factory = make_sessionmaker(self.engine)
        with self.factory() as s:
            directory.add_unit(s, "BENCH", "Đơn vị đo tải")
            self.users = [directory.add_user(s, f"load{i:02d}", PASSWORD, [("BENCH", "mot_cua")],
                                             f"Cán bộ {i:02d}").id for i in range(USERS)]
            catalog.create_procedure(s, actor_id=None, data={
                "code": "3.999998", "name": "Thủ tục đo tải", "field": "Đo", "level": "xa", "statutory_days": 5,
                "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}]})
            version, _ = catalog.submit_version(s, actor_id=None, procedure_code="3.999998", bpmn=ten_step_process())
            catalog.publish_version(s, actor_id=None, procedure_code="3.999998", number=version.number,
                                    effective_from=datetime(2020, 1, 1).date())
            s.commit()
            self.tokens = [tokens.issue_token(s, f"load{i:02d}", PASSWORD)[0] for i in range(USERS)]

    def receive(self, n: int) -> list[str]:
        """`n` new dossiers: the id of each one's open step."""
        from sqlalchemy import select

        from engine import dossiers
        from engine.store.models import HumanTask

        with self.factory() as s:
            ids = [dossiers.receive_dossier(
                s, actor_id=self.users[0], procedure_code="3.999998", channel="online",
                applicant={"name": "Người thử tải", "id_number": "000000000002"},
                components=[{"code": "DON", "filename": "don.pdf", "content": b"%PDF-1.4 load"}]).id
                for _ in range(n)]
            rows = dict(s.execute(select(HumanTask.dossier_id, HumanTask.id).where(
                HumanTask.dossier_id.in_(ids), HumanTask.completed_at.is_(None))).all())
            s.rollback()
        return [rows[i] for i in ids]


# --- the server ----------------------------------------------------------------------------------
PROFILE_CONF = '''
import cProfile, os, time
def post_fork(server, worker):
    if not os.path.exists(os.path.join({out!r}, "claimed")):
        open(os.path.join({out!r}, "claimed"), "w").close()
        worker.motcua_profile = cProfile.Profile(time.perf_counter)
        worker.motcua_profile.enable()
def worker_exit(server, worker):
    profile = getattr(worker, "motcua_profile", None)
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.path.join({out!r}, "worker.prof"))
'''


class Server:
    """`motcua serve` on 127.0.0.1 in a directory of its own (its var/, uploads and log)."""

    def __init__(self, tree: Path, url: str, workers: int, threads: int, workdir: Path, profile_dir: Path | None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        workdir.mkdir(parents=True, exist_ok=True)
        if profile_dir is not None:  # gunicorn reads ./gunicorn.conf.py from its working directory
            profile_dir.mkdir(parents=True, exist_ok=True)
            (workdir / "gunicorn.conf.py").write_text(PROFILE_CONF.format(out=str(profile_dir)))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(PYTHONPATH=str(tree), DATABASE_URL=url, MOTCUA_DATA_DIR=str(workdir / "var"),
                   MOTCUA_UPLOAD_DIR=str(workdir / "uploads"), MOTCUA_SECRET_KEY="load-bench-secret",
                   MOTCUA_AUDIT_KEY=os.environ["MOTCUA_AUDIT_KEY"])
        self.command = [sys.executable, "-m", "motcua.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                        "--workers", str(workers)]
        if threads > 1:
            self.command += ["--threads", str(threads)]
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(self.command, cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/v1/procedures")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start: see {workdir / 'server.log'}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        """The gunicorn master (this process, after exec) and its workers."""
        out = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    out.append(int(entry.name))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: workers finish and run worker_exit
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- measuring the machine -----------------------------------------------------------------------
def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK, sum(fields[:8]) / CLK_TCK


class PgWatch:
    """The PostgreSQL side: backend pids of the database, and a sampler of what they are doing."""

    def __init__(self, url: str):
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(url)
        self.database = u.database
        self.conn = psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                    dbname=u.database, autocommit=True)
        self.samples: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backend_pids(self) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,))]

    def start(self) -> None:
        self.samples = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return dict(self.samples)

    def _run(self) -> None:
        query = ("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                 "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        while not self._stop.wait(0.02):
            for state, wait_type, wait in self.conn.execute(query, (self.database,)):
                if state == "active":
                    if wait_type is None:
                        what = "running"
                    elif wait_type == "Lock":
                        what = "waiting for a lock"
                    elif (wait or "").startswith("WAL"):
                        what = "WAL write/flush"
                    else:
                        what = f"{wait_type}:{wait}"
                elif state == "idle in transaction":
                    what = "idle in transaction (the application works)"
                else:
                    what = "idle"
                self.samples[what] = self.samples.get(what, 0) + 1


# --- the clients ---------------------------------------------------------------------------------
def run_level(port: int, tokens: list[str], dossiers: list[list[str]], seconds: float) -> dict:
    """One client per list in `dossiers` (each its own token); returns the requests made."""
    body = json.dumps({"data": {"decision": "approve"}, "note": ""})
    start = time.perf_counter() + 0.05
    deadline = start + seconds
    records: list[list] = [[] for _ in dossiers]
    ran_out = []

    def client(i: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out = records[i]
        while time.perf_counter() < start:
            time.sleep(0.001)
        for task in dossiers[i]:
            while task is not None and time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    conn.request("POST", f"/api/v1/tasks/{task}/complete", body, headers)
                    response = conn.getresponse()
                    data = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    status, data = 0, b""
                t1 = time.perf_counter()
                out.append((t0, t1, status))
                if status != 200:
                    task = None
                    break
                following = json.loads(data)["next_tasks"]
                task = following[0]["id"] if following else None
            if time.perf_counter() >= deadline:
                break
        else:
            ran_out.append(i)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(dossiers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"records": [r for rs in records for r in rs], "start": start, "deadline": deadline, "ran_out": ran_out}


def measure(server: Server, pg: PgWatch | None, tokens: list[str], dossiers: list[list[str]], seconds: float) -> dict:
    server_pids = server.pids()
    pg_pids = pg.backend_pids() if pg else []
    busy0, total0 = machine_busy()
    srv0, pg0, gen0 = cpu_seconds(server_pids), cpu_seconds(pg_pids), time.process_time()
    if pg:
        pg.start()
    t0 = time.perf_counter()
    run = run_level(server.port, tokens, dossiers, seconds)
    wall = time.perf_counter() - t0
    samples = pg.stop() if pg else {}
    pg_pids = sorted(set(pg_pids) | set(pg.backend_pids())) if pg else []
    srv, pgc, gen = cpu_seconds(server_pids) - srv0, cpu_seconds(pg_pids) - pg0, time.process_time() - gen0
    busy1, total1 = machine_busy()
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / ((total1 - total0) / cores) if total1 > total0 else 0.0  # cores busy

    records, deadline = run["records"], run["deadline"]
    done = [r for r in records if r[2] == 200 and r[1] <= deadline]
    latencies = sorted((r[1] - r[0]) * 1000 for r in records)
    n = len(done)
    return {
        "clients": len(dossiers), "completions": n, "per_second": n / seconds,
        "p50": statistics.median(latencies) if latencies else math.nan,
        "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else math.nan,
        "errors": sum(1 for r in records if r[2] != 200), "ran_out": len(run["ran_out"]),
        # cores busy on average over the window (wall: this thread's, covering the clients' run)
        "server_cores": srv / wall, "pg_cores": pgc / wall, "generator_cores": gen / wall,
        "machine_cores": machine, "wall": wall,
        "server_ms": srv / n * 1000 if n else math.nan, "pg_ms": pgc / n * 1000 if n else math.nan,
        "generator_ms": gen / n * 1000 if n else math.nan, "pg_states": samples,
    }


# --- the profile of one worker -------------------------------------------------------------------
PARTS = [
    ("a request in the worker (gunicorn's handle)", "gunicorn/workers/", "handle_request"),
    ("  Flask dispatch of the view", "flask/app.py", "dispatch_request"),
    ("    authentication (token → actor)", "webapp/auth.py", "current_actor"),
    ("    parse the body", "webapp/api/routes.py", "body"),
    ("    the use case (complete_task)", "engine/dossiers/processing.py", "complete_task"),
    ("      start the write transaction", "engine/store/db.py", "begin_write"),
    ("      load the process instance", "engine/workflow/runtime.py", "load"),
    ("      complete + engine steps", "engine/workflow/runtime.py", "complete"),
    ("      serialize the instance", "engine/workflow/runtime.py", "dump"),
    ("      commit", "sqlalchemy/orm/session.py", "commit"),
    ("    answer (JSON)", "webapp/api/routes.py", "answer"),
    ("  SQLite: statements (in the library)", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ("  SQLite: commit (in the library)", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("  PostgreSQL: waiting for the server", "psycopg/connection.py", "wait"),
]


def profile_summary(path: Path) -> list[str]:
    import pstats

    stats = pstats.Stats(str(path)).stats
    requests = sum(cc for (f, _, name), (cc, *_rest) in stats.items() if "flask/app.py" in f and name == "wsgi_app")
    if not requests:
        return ["(the profiled worker served no request)"]
    lines = [f"Profiled worker: {requests} requests; wall-clock ms per request (cumulative, cProfile on):", "",
             "| part | ms per request |", "|---|---:|"]
    for label, where, name in PARTS:
        total = max((ct for (f, _, n), (_cc, _nc, _tt, ct, _) in stats.items()
                     if n == name and (where == "~" and f == "~" or where != "~" and where in f)), default=0)
        if total:
            lines.append(f"| {label} | {total / requests * 1000:.2f} |")
    return lines


# --- main ----------------------------------------------------------------------------------------
def fmt_states(samples: dict[str, int]) -> str:
    busy = {k: v for k, v in samples.items() if k != "idle"}
    total = sum(busy.values())
    if not total:
        return "—"
    return ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--clients", default="1,8,32", help="comma-separated client counts (at most 32)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per client count")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (motcua serve --workers)")
    ap.add_argument("--threads", type=int, default=1, help="threads per worker (motcua serve --threads)")
    ap.add_argument("--rate-guess", type=float, default=500.0,
                    help="completions/s to receive dossiers for (more is only slower to seed)")
    ap.add_argument("--pg", default=os.environ.get("MOTCUA_BENCH_PG_URL", PG_DEFAULT),
                    help="PostgreSQL URL of a database this benchmark may wipe (default %(default)s)")
    ap.add_argument("--profile", action="store_true", help="also profile one worker and print where time goes")
    ap.add_argument("--tree", default=None, help="serve and seed from the motcua tree at this path")
    ap.add_argument("--write", default=None, help="append the results to this Markdown file")
    args = ap.parse_args()
    tree = Path(args.tree).resolve() if args.tree else ROOT
    use_tree(tree)
    levels = [int(c) for c in args.clients.split(",")]
    if not all(1 <= c <= USERS for c in levels):
        raise SystemExit(f"--clients: each between 1 and {USERS}")
    os.environ.setdefault("MOTCUA_AUDIT_KEY", "load-bench-audit-key-0123456789abcdefghijklmnop")
    work = Path(tempfile.mkdtemp(prefix="motcua-load-"))
    os.environ["MOTCUA_UPLOAD_DIR"] = str(work / "seed-uploads")
    dbs = [d for d in ("sqlite", "postgresql") if d in args.db.split(",")]
    load_before = os.getloadavg()
    try:
        results, profiles = run_all(args, tree, work, dbs, levels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, tree, results, profiles, load_before)


def run_all(args, tree: Path, work: Path, dbs: list[str], levels: list[int]) -> tuple[dict, dict]:
    results: dict[str, list[dict]] = {}
    profiles: dict[str, list[str]] = {}
    for db in dbs:
        url = f"sqlite:///{work}/{db}.sqlite3" if db == "sqlite" else args.pg
        for profiling in ([False, True] if args.profile else [False]):
            if db == "postgresql":
                reset_pg(url)
            elif Path(f"{work}/{db}.sqlite3").exists():
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{work}/{db}.sqlite3{suffix}").unlink(missing_ok=True)
            office = Office(url)
            server = Server(tree, url, args.workers, args.threads, work / f"server-{db}-{int(profiling)}",
                            work / f"profile-{db}" if profiling else None)
            pg = PgWatch(url) if db == "postgresql" else None
            try:
                warm = office.receive(WARMUP_CLIENTS * 2)
                run_level(server.port, office.tokens, [warm[i::WARMUP_CLIENTS] for i in range(WARMUP_CLIENTS)],
                          WARMUP_SECONDS)
                for clients in levels:
                    per_client = math.ceil(args.rate_guess * args.seconds / 10 * 1.3 / clients) + 1
                    tasks = office.receive(per_client * clients)
                    out = measure(server, pg, office.tokens, [tasks[i::clients] for i in range(clients)], args.seconds)
                    print(f"[{db}{', profiled' if profiling else ''}] {clients} clients: {out['per_second']:.1f}/s, "
                          f"p50 {out['p50']:.1f} ms, p95 {out['p95']:.1f} ms, errors {out['errors']}"
                          f"{', a client ran out of dossiers' if out['ran_out'] else ''}", file=sys.stderr)
                    if not profiling:
                        results.setdefault(db, []).append(out)
            finally:
                server.stop()
                if pg:
                    pg.conn.close()
                office.engine.dispose()
            if profiling:
                profiles[db] = profile_summary(work / f"profile-{db}" / "worker.prof")
        if db == "postgresql":
            reset_pg(url)
    return results, profiles


def report(args, tree: Path, results: dict, profiles: dict, load_before) -> None:
    command = "bench/load.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    la = f"{load_before[0]:.1f}"
    from engine.clock import VN_TZ

    lines = [f"Run {datetime.now(VN_TZ):%Y-%m-%d %H:%M} on {platform.node() or 'this machine'} ({os.cpu_count()} cores, "
             f"Python {platform.python_version()}{'' if tree == ROOT else f', the tree at {tree}'}): "
             f"`.venv/bin/python {command}` — `motcua serve --workers {args.workers}"
             f"{f' --threads {args.threads}' if args.threads > 1 else ''}`, {args.seconds:g} s per level, "
             f"load average {la} when it began.", ""]
    labels = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    for db, outs in results.items():
        lines += [f"{labels[db]}:", "",
                  "| clients | completions/s | p50 ms | p95 ms | errors | server cores | PostgreSQL cores "
                  "| load generator cores | rest of the machine | CPU ms per completion: server / PostgreSQL / generator |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for o in outs:
            rest = max(0.0, o["machine_cores"] - o["server_cores"] - o["pg_cores"] - o["generator_cores"])
            pgc = f"{o['pg_cores']:.2f}" if db == "postgresql" else "—"
            pgms = f"{o['pg_ms']:.2f}" if db == "postgresql" else "—"
            ran_out = " (a client ran out of dossiers: raise --rate-guess)" if o["ran_out"] else ""
            lines.append(f"| {o['clients']} | {o['per_second']:.1f}{ran_out} | {o['p50']:.1f} | {o['p95']:.1f} | {o['errors']} | "
                         f"{o['server_cores']:.2f} | {pgc} | {o['generator_cores']:.2f} | {rest:.2f} | "
                         f"{o['server_ms']:.2f} / {pgms} / {o['generator_ms']:.2f} |")
        if db == "postgresql":
            lines += ["", "What PostgreSQL's backends were doing (share of samples not idle): "
                      + "; ".join(f"{o['clients']} clients: {fmt_states(o['pg_states'])}" for o in outs)]
        if db in profiles:
            lines += [""] + profiles[db]
        lines.append("")
    print("\n".join(lines))
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
