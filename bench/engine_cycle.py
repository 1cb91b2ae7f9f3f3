"""Benchmark: one persisted task completion against the raw SpiffWorkflow cycle of the same process.

    .venv/bin/python bench/engine_cycle.py [--dossiers 30] [--repeat 3] [--db sqlite,postgresql]
                                           [--tiers engine,http] [--pg URL] [--tree PATH] [--write docs/benchmarks.md]

Raw cycle (in memory, no database): deserialize → complete one user task → engine steps → serialize,
with Spiff's stock serializer (spec embedded) and with motcua's spec-by-reference serializer.
Persisted cycle, two tiers, each on SQLite (file, WAL) and on PostgreSQL:

- engine: `engine.dossiers.complete_task` called in-process — the unit of work: lock the dossier row,
  load, complete, engine steps, update the inbox and audit log, one commit;
- http: `POST /api/v1/tasks/{id}/complete` with a bearer token, through the Flask test client in this
  process (no network, no server): token look-up, JSON body in and out, the same use case.

Every persisted completion is paired with a raw stock cycle timed immediately before it; the ratio
reported is the median of those per-completion ratios, so the shared machine's drifts cancel out.

`--tree PATH` measures another copy of motcua (say, a checkout of an earlier commit) with this very
benchmark: `engine` and `webapp` are imported from PATH only.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
SECTION = "## Engine cycle (`bench/engine_cycle.py`)"  # where --write puts a run in docs/benchmarks.md


def use_tree(tree: Path) -> None:
    """Import `engine` and `webapp` from `tree` only (not through the editable install's finder)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    sys.path.insert(0, str(tree))
    sys.path.insert(0, str(HERE))
    importlib.invalidate_caches()


def raw_cycles(xml: str, rounds: int) -> tuple[float, float]:
    """Seconds per raw cycle: (stock serializer with embedded spec, spec by reference)."""
    from raw_cycle import STEPS
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
    from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
    from SpiffWorkflow.util.task import TaskState

    from engine.workflow import bpmn_xml, runtime
    from engine.workflow.workcal import WorkingCalendar

    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(xml.encode())
    spec = parser.get_spec("Process_bench")
    stock = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

    def stock_run():
        wf = BpmnWorkflow(spec)
        wf.do_engine_steps()
        state = stock.serialize_json(wf)
        t0 = time.perf_counter()
        for _ in range(STEPS):
            wf = stock.deserialize_json(state)
            task = next(t for t in wf.tasks.values() if t.state == TaskState.READY and t.task_spec.manual)
            task.data.update({"decision": "approve"})
            task.run()
            wf.do_engine_steps()
            state = stock.serialize_json(wf)
        return (time.perf_counter() - t0) / STEPS

    root = bpmn_xml.parse_safely(xml)
    parsed = runtime.parse(root, "Process_bench")
    store = {parsed.spec_hash: parsed.spec_json}
    cal = WorkingCalendar()

    def ref_run():
        inst = runtime.Instance.start(parsed.spec_hash, store.__getitem__, cal, {})
        state = inst.dump()
        t0 = time.perf_counter()
        for _ in range(STEPS):
            inst = runtime.Instance.load(state, parsed.spec_hash, store.__getitem__, cal)
            inst.complete(inst.ready_user_tasks()[0].id, {"decision": "approve"})
            state = inst.dump()
        return (time.perf_counter() - t0) / STEPS

    stock_times = [stock_run() for _ in range(rounds)]
    ref_times = [ref_run() for _ in range(rounds)]
    return statistics.median(stock_times), statistics.median(ref_times)


NOW = (2026, 11, 2, 9, 0)


def seed(url: str, xml: str, n_dossiers: int) -> tuple[int, list[int]]:
    """A unit, one desk clerk, the bench procedure published, `n_dossiers` received: (user id, dossier ids)."""
    from engine import catalog, dossiers
    from engine.access import directory
    from engine.clock import VN_TZ
    from engine.store import schema
    from engine.store.db import make_engine, make_sessionmaker

    schema.upgrade(url)
    eng = make_engine(url)
    with make_sessionmaker(eng)() as s:
        directory.add_unit(s, "BENCH", "Đơn vị đo")
        user = directory.add_user(s, "bench", "bench-password", [("BENCH", "mot_cua")]).id
        catalog.create_procedure(s, actor_id=None, data={
            "code": "3.999999", "name": "Thủ tục đo hiệu năng", "field": "Đo", "level": "xa", "statutory_days": 5,
            "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}]})
        v, _ = catalog.submit_version(s, actor_id=None, procedure_code="3.999999", bpmn=xml)
        catalog.publish_version(s, actor_id=None, procedure_code="3.999999", number=v.number,
                                effective_from=date(2020, 1, 1))
        s.commit()
        now = datetime(*NOW, tzinfo=VN_TZ)
        ids = [dossiers.receive_dossier(
            s, actor_id=user, procedure_code="3.999999", channel="online",
            applicant={"name": "Người đo", "id_number": "000000000001"},
            components=[{"code": "DON", "filename": "don.pdf", "content": b"%PDF-1.4 bench"}], now=now).id
            for _ in range(n_dossiers)]
    eng.dispose()
    return user, ids


def open_task_ids(url: str, dossier_ids: list[int]) -> dict[int, str]:
    from sqlalchemy import select

    from engine.store.db import make_engine
    from engine.store.models import HumanTask

    eng = make_engine(url)
    with eng.connect() as conn:
        rows = conn.execute(select(HumanTask.dossier_id, HumanTask.id).where(
            HumanTask.dossier_id.in_(dossier_ids), HumanTask.completed_at.is_(None))).all()
    eng.dispose()
    return dict(rows)


def engine_tier(url: str, xml: str, n_dossiers: int, raw) -> tuple[list[float], ...]:
    """Per completion: seconds, ratio to the paired raw cycle, CPU seconds of this process, and the
    ratio of those CPU seconds to the paired raw cycle's."""
    from raw_cycle import STEPS

    from engine import dossiers
    from engine.clock import VN_TZ
    from engine.store.db import make_engine, make_sessionmaker

    user, ids = seed(url, xml, n_dossiers)
    tasks = open_task_ids(url, ids)
    now = datetime(*NOW, tzinfo=VN_TZ)
    eng = make_engine(url)
    timings, ratios, cpu, cpu_ratios = [], [], [], []
    with make_sessionmaker(eng)() as s:
        for _ in range(STEPS):
            for dossier_id in ids:
                raw_seconds = raw()
                t0, c0 = time.perf_counter(), time.process_time()
                done = dossiers.complete_task(s, actor_id=user, task_id=tasks[dossier_id], now=now)
                timings.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                ratios.append(timings[-1] / raw_seconds)
                cpu_ratios.append(cpu[-1] / max(raw.last_cpu, 1e-6))
                if done.next_tasks:
                    tasks[dossier_id] = done.next_tasks[0].id
    eng.dispose()
    return timings, ratios, cpu, cpu_ratios


def http_tier(url: str, xml: str, n_dossiers: int, raw) -> tuple[list[float], ...]:
    """The same completions through `POST /api/v1/tasks/{id}/complete` (Flask test client, in-process)."""
    from raw_cycle import STEPS

    from webapp import create_app

    _, ids = seed(url, xml, n_dossiers)
    tasks = open_task_ids(url, ids)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret",
                      "MOTCUA_NOW": datetime(*NOW).isoformat() + "+07:00"})
    client = app.test_client()
    answer = client.post("/api/v1/auth/token", json={"username": "bench", "password": "bench-password"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {answer.get_json()['token']}"}
    body = {"data": {"decision": "approve"}, "note": ""}
    timings, ratios, cpu, cpu_ratios = [], [], [], []
    for _ in range(STEPS):
        for dossier_id in ids:
            raw_seconds = raw()
            t0, c0 = time.perf_counter(), time.process_time()
            response = client.post(f"/api/v1/tasks/{tasks[dossier_id]}/complete", json=body, headers=headers)
            timings.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            ratios.append(timings[-1] / raw_seconds)
            cpu_ratios.append(cpu[-1] / max(raw.last_cpu, 1e-6))
            assert response.status_code == 200, response.get_data(as_text=True)
            following = response.get_json()["next_tasks"]
            if following:
                tasks[dossier_id] = following[0]["id"]
    app.extensions["motcua.sessionmaker"].kw["bind"].dispose()
    return timings, ratios, cpu, cpu_ratios


def reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if make_url(url).database in (None, "", "test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing to wipe the PostgreSQL database of {url}: give one of this benchmark's own")
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


LABELS = {
    ("engine", "sqlite"): "completion in-process (use case), SQLite",
    ("engine", "postgresql"): "completion in-process (use case), PostgreSQL",
    ("http", "sqlite"): "completion through the HTTP API (Flask test client), SQLite",
    ("http", "postgresql"): "completion through the HTTP API (Flask test client), PostgreSQL",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dossiers", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=15, help="rounds of the unpaired raw cycles (first two rows)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats of the whole measurement")
    ap.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--tiers", default="engine,http", help="comma-separated: engine, http")
    ap.add_argument("--pg", default=os.environ.get("MOTCUA_BENCH_PG_URL", PG_DEFAULT),
                    help="PostgreSQL URL of a database this benchmark may wipe (default %(default)s)")
    ap.add_argument("--tree", default=None, help="measure the motcua tree at this path instead of this one")
    ap.add_argument("--write", default=None, help="append the results table to this Markdown file")
    args = ap.parse_args()
    tree = Path(args.tree).resolve() if args.tree else ROOT
    use_tree(tree)
    from raw_cycle import STEPS, RawCycler, ten_step_process

    from engine.clock import VN_TZ

    uploads = tempfile.TemporaryDirectory(prefix="motcua-bench-")  # removed at exit
    os.environ.setdefault("MOTCUA_UPLOAD_DIR", uploads.name)
    os.environ.setdefault("MOTCUA_SECRET_KEY", "bench-secret")
    # PostgreSQL instances need an audit key of their own (engine/config.py); a SQLite one would write
    # var/audit.key into this tree.
    os.environ.setdefault("MOTCUA_AUDIT_KEY", "engine-cycle-bench-audit-key-0123456789abcdef")
    dbs = [d for d in ("sqlite", "postgresql") if d in args.db.split(",")]
    tiers = [t for t in ("engine", "http") if t in args.tiers.split(",")]
    runs = {"engine": engine_tier, "http": http_tier}
    xml = ten_step_process()
    raw = RawCycler(xml)
    # Interleave repeats of every measurement so a noisy moment on the shared machine hits all of
    # them alike; report the median of the repeats.
    samples: dict = {"stock": [], "ref": []}
    for _ in range(args.repeat):
        stock_s, ref_s = raw_cycles(xml, args.rounds)
        samples["stock"].append(stock_s)
        samples["ref"].append(ref_s)
        for tier in tiers:
            for db in dbs:
                if db == "sqlite":
                    with tempfile.TemporaryDirectory() as tmp:
                        out = runs[tier](f"sqlite:///{tmp}/bench.sqlite3", xml, args.dossiers, raw)
                else:
                    reset_pg(args.pg)
                    out = runs[tier](args.pg, xml, args.dossiers, raw)
                    reset_pg(args.pg)
                for key, values in zip(("s", "ratio", "cpu", "cpu_ratio"), out):
                    samples.setdefault((tier, db, key), []).append(statistics.median(values))
    med = {k: statistics.median(v) for k, v in samples.items()}
    stock = med["stock"]
    where = "this tree" if tree == ROOT else f"the tree at {tree}"
    lines = [
        f"Run {datetime.now(VN_TZ):%Y-%m-%d %H:%M} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, {where}), {STEPS}-step process, "
        f"{args.dossiers} dossiers, medians of {args.repeat} interleaved repeats:",
        "",
        "| cycle | ms | per second | × raw (stock), paired | CPU ms of this process | × raw, CPU, paired |",
        "|---|---:|---:|---:|---:|---:|",
        f"| raw Spiff cycle, stock serializer (spec embedded) | {stock * 1000:.2f} | {1 / stock:,.0f} | 1.00 | | 1.00 |",
        f"| raw Spiff cycle, spec by reference | {med['ref'] * 1000:.2f} | {1 / med['ref']:,.0f} | "
        f"{med['ref'] / stock:.2f} | | |",
    ]
    for tier in tiers:
        for db in dbs:
            s, ratio, cpu = med[(tier, db, "s")], med[(tier, db, "ratio")], med[(tier, db, "cpu")]
            lines.append(f"| {LABELS[(tier, db)]} | {s * 1000:.2f} | {1 / s:,.0f} | {ratio:.2f} | {cpu * 1000:.2f} | "
                         f"{med[(tier, db, 'cpu_ratio')]:.2f} |")
    lines += ["", "× raw: median of per-completion ratios against a raw stock cycle timed immediately before each "
              "completion (robust to the shared machine's drifts); × raw, CPU: the same with this process's CPU "
              "time on both sides (blind to waiting, so on PostgreSQL it leaves out the server's work and the "
              "commit's flush)."]
    print("\n".join(lines))
    if args.write:
        write_section(Path(args.write), SECTION, lines)


def write_section(path: Path, header: str, lines: list[str]) -> None:
    """Append a run at the end of a benchmark's section (`header`) of the Markdown file, the section added
    at the end of the file when it is missing — not after whatever section happens to be last."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = "\n" + "\n".join(lines) + "\n"
    if header not in text:
        text = text.rstrip("\n") + "\n\n" + header + "\n" + block
    else:
        start = text.index(header) + len(header)
        following = text.find("\n## ", start)
        end = len(text) if following < 0 else following
        text = text[:end].rstrip("\n") + "\n" + block + text[end:]
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
