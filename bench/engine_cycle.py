"""Benchmark: one persisted task completion against the raw SpiffWorkflow cycle of the same process.

    .venv/bin/python bench/engine_cycle.py [--dossiers 30] [--pg URL] [--write docs/benchmarks.md]

Raw cycle (in memory, no database): deserialize → complete one user task → engine steps → serialize,
with Spiff's stock serializer (spec embedded) and with motcua's spec-by-reference serializer.
Persisted cycle: `engine.dossiers.complete_task` — lock the dossier row, load, complete, engine
steps, update the inbox and audit log, one commit — on SQLite (file, WAL) and on PostgreSQL.
Every figure comes from the same run; ratios are against the raw cycle measured in that run.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raw_cycle import STEPS, RawCycler, ten_step_process  # noqa: E402  (this folder)
from sqlalchemy import create_engine, select, text  # noqa: E402

from engine import catalog, dossiers  # noqa: E402
from engine.access import directory  # noqa: E402
from engine.clock import VN_TZ  # noqa: E402
from engine.store import schema  # noqa: E402
from engine.store.db import make_engine, make_sessionmaker  # noqa: E402
from engine.store.models import HumanTask  # noqa: E402
from engine.workflow import bpmn_xml, runtime  # noqa: E402
from engine.workflow.workcal import WorkingCalendar  # noqa: E402


def raw_cycles(xml: str, rounds: int) -> tuple[float, float]:
    """Seconds per raw cycle: (stock serializer with embedded spec, spec by reference)."""
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
    from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
    from SpiffWorkflow.util.task import TaskState

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


def persisted_cycle(url: str, xml: str, n_dossiers: int, raw: RawCycler) -> tuple[float, float, float]:
    """(median persisted completion, median of per-pair ratios persisted / raw stock cycle, median CPU
    time of this process per completion — immune to the shared machine's other load)."""
    schema.upgrade(url)
    eng = make_engine(url)
    factory = make_sessionmaker(eng)
    with factory() as s:
        directory.add_unit(s, "BENCH", "Đơn vị đo")
        user = directory.add_user(s, "bench", "bench-password", [("BENCH", "mot_cua")]).id
        catalog.create_procedure(s, actor_id=None, data={
            "code": "3.999999", "name": "Thủ tục đo hiệu năng", "field": "Đo", "level": "xa", "statutory_days": 5,
            "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn", "required": True}]})
        v, _ = catalog.submit_version(s, actor_id=None, procedure_code="3.999999", bpmn=xml)
        catalog.publish_version(s, actor_id=None, procedure_code="3.999999", number=v.number, effective_from=date(2020, 1, 1))
        s.commit()
        now = datetime(2026, 11, 2, 9, 0, tzinfo=VN_TZ)
        codes = [dossiers.receive_dossier(
            s, actor_id=user, procedure_code="3.999999", channel="online",
            applicant={"name": "Người đo", "id_number": "000000000001"},
            components=[{"code": "DON", "filename": "don.pdf", "content": b"%PDF-1.4 bench"}], now=now).id
            for _ in range(n_dossiers)]
    timings, ratios, cpu = [], [], []
    with factory() as s:
        for _ in range(STEPS):
            for dossier_id in codes:
                task_id = s.scalar(select(HumanTask.id).where(HumanTask.dossier_id == dossier_id,
                                                               HumanTask.completed_at.is_(None)))
                s.rollback()
                raw_seconds = raw()
                t0, c0 = time.perf_counter(), time.process_time()
                dossiers.complete_task(s, actor_id=user, task_id=task_id, now=now)
                timings.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                ratios.append(timings[-1] / raw_seconds)
    eng.dispose()
    return statistics.median(timings), statistics.median(ratios), statistics.median(cpu)


def reset_pg(url: str) -> None:
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dossiers", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats of the whole measurement")
    ap.add_argument("--pg", default=os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--write", default=None, help="append the results table to this Markdown file")
    args = ap.parse_args()
    os.environ.setdefault("MOTCUA_UPLOAD_DIR", tempfile.mkdtemp(prefix="motcua-bench-"))
    xml = ten_step_process()
    # Interleave repeats of every measurement so a noisy moment on the shared machine hits all of
    # them alike; report the median of the repeats.
    samples: dict[str, list[float]] = {k: [] for k in ("stock", "ref", "sqlite", "pg", "sqlite_ratio", "pg_ratio",
                                                       "sqlite_cpu", "pg_cpu")}
    raw = RawCycler(xml)
    for _ in range(args.repeat):
        stock_s, ref_s = raw_cycles(xml, args.rounds)
        samples["stock"].append(stock_s)
        samples["ref"].append(ref_s)
        with tempfile.TemporaryDirectory() as tmp:
            cycle, ratio, cpu = persisted_cycle(f"sqlite:///{tmp}/bench.sqlite3", xml, args.dossiers, raw)
        samples["sqlite"].append(cycle)
        samples["sqlite_ratio"].append(ratio)
        samples["sqlite_cpu"].append(cpu)
        reset_pg(args.pg)
        cycle, ratio, cpu = persisted_cycle(args.pg, xml, args.dossiers, raw)
        samples["pg"].append(cycle)
        samples["pg_ratio"].append(ratio)
        samples["pg_cpu"].append(cpu)
        reset_pg(args.pg)
    med = {k: statistics.median(v) for k, v in samples.items()}
    stock, ref, sqlite_cycle, pg_cycle = med["stock"], med["ref"], med["sqlite"], med["pg"]

    rows = [
        ("raw Spiff cycle, stock serializer (spec embedded)", stock),
        ("raw Spiff cycle, spec by reference", ref),
        ("persisted completion, SQLite", sqlite_cycle),
        ("persisted completion, PostgreSQL", pg_cycle),
    ]
    lines = [
        f"Run {datetime.now(VN_TZ):%Y-%m-%d %H:%M} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), {STEPS}-step process, "
        f"{args.dossiers} dossiers, medians of {args.repeat} interleaved repeats:",
        "",
        "| cycle | ms | per second | × raw (stock), paired |",
        "|---|---:|---:|---:|",
    ]
    paired = {"persisted completion, SQLite": med["sqlite_ratio"], "persisted completion, PostgreSQL": med["pg_ratio"]}
    for label, seconds in rows:
        ratio = paired.get(label, seconds / stock)
        lines.append(f"| {label} | {seconds * 1000:.2f} | {1 / seconds:,.0f} | {ratio:.2f} |")
    lines += ["", "Ratios of persisted completions are medians of per-completion ratios against a raw stock cycle",
              "timed immediately before each completion (robust to the shared machine's drifts).",
              f"CPU time of this process per completion (one core): SQLite {med['sqlite_cpu'] * 1000:.2f} ms "
              f"(= {1 / med['sqlite_cpu']:,.0f}/s), PostgreSQL {med['pg_cpu'] * 1000:.2f} ms (client side only)."]
    print("\n".join(lines))
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
