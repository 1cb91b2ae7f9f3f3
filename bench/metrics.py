"""Benchmark: the dashboard's queries on 1,000,000 dossiers in PostgreSQL.

    .venv/bin/python bench/metrics.py [--dossiers 1000000] [--pg URL] [--write docs/benchmarks.md]

Generates a province with 100 communes, the three shipped procedures and N dossiers spread over
two years (channels, outcomes, supplements, apologies and ratings in realistic shares) with one
INSERT … SELECT generate_series, then times every query the dashboard and the metrics API run.
The database is dropped and recreated (it must be a scratch database such as `test`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine_cycle import reset_pg  # noqa: E402  (same folder)
from sqlalchemy import text  # noqa: E402

from engine import catalog  # noqa: E402
from engine.access import directory  # noqa: E402
from engine.clock import VN_TZ  # noqa: E402
from engine.reporting import metrics  # noqa: E402
from engine.store import schema  # noqa: E402
from engine.store.db import make_engine, make_sessionmaker  # noqa: E402

GENERATE = """
INSERT INTO dossiers (code, procedure_id, version_id, unit_id, channel, applicant, applicant_id_number, search_text,
  status, received_at, handed_on_at, due_at, original_due_at, overdue, late_without_apology, apologized,
  finished_at, returned_at, serializer_version, workflow_state, lock_version, audit_seq, audit_head,
  received_on, finished_on, finish_result, steps_result, digitised)
SELECT 'B-' || g, p.id, p.version_id, u.id,
  (ARRAY['counter','counter','online','post'])[1 + g % 4],
  '{"name": "Nguyễn Văn Thử", "id_number": "000000000001"}', '000000000001', 'b-' || g || ' nguyen van thu',
  CASE WHEN g % 20 = 0 THEN 'processing' WHEN g % 53 = 0 THEN 'awaiting_supplement' WHEN g % 97 = 0 THEN 'withdrawn'
       WHEN g % 31 = 0 THEN 'refused' WHEN g % 3 = 0 THEN 'result_ready' ELSE 'returned' END,
  r.received_at, r.received_at, r.received_at + interval '5 days', r.received_at + interval '5 days',
  (g % 20 = 0 AND g % 40 = 0), (g % 20 = 0 AND g % 40 = 0 AND g % 80 <> 0), (g % 80 = 0),
  CASE WHEN g % 20 = 0 OR g % 53 = 0 THEN NULL ELSE r.received_at + ((g % 7) || ' days')::interval END,
  NULL, 'bench', '', 1, 0, repeat('0', 64),
  (r.received_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
  CASE WHEN g % 20 = 0 OR g % 53 = 0 THEN NULL
       ELSE ((r.received_at + ((g % 7) || ' days')::interval) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date END,
  CASE WHEN g % 20 = 0 OR g % 53 = 0 OR g % 97 = 0 THEN NULL WHEN g % 7 < 4 THEN 'early'
       WHEN g % 7 = 4 THEN 'on_time' ELSE 'late' END,
  CASE WHEN g % 20 = 0 OR g % 53 = 0 OR g % 97 = 0 THEN NULL WHEN g % 7 < 3 THEN 'early'
       WHEN g % 7 < 5 THEN 'on_time' ELSE 'late' END,
  true
FROM generate_series(1, :n) AS g
CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01 08:00+07' + ((g::bigint * 7919) % (730 * 24 * 60)) * interval '1 minute'
                    AS received_at) r
JOIN LATERAL (SELECT id FROM units WHERE parent_id IS NOT NULL ORDER BY id OFFSET (g % 100) LIMIT 1) u ON true
JOIN LATERAL (SELECT pr.id, v.id AS version_id FROM procedures pr JOIN procedure_versions v ON v.procedure_id = pr.id
              ORDER BY pr.id OFFSET (g % 3) LIMIT 1) p ON true
"""


def build(url: str, n: int) -> float:
    reset_pg(url)
    eng = make_engine(url)
    schema.upgrade(url)
    factory = make_sessionmaker(eng)
    with factory() as s:
        directory.add_unit(s, "T40", "UBND tỉnh")
        for i in range(100):
            directory.add_unit(s, f"T40.{i:03d}", f"UBND xã {i}", parent_code="T40")
        catalog.load_processes(s, ROOT / "processes", actor_id=None)
        s.commit()
        user_id = directory.add_user(s, "bench", "bench-password", [("T40", "admin")]).id
    t0 = time.perf_counter()
    with eng.begin() as conn:
        conn.execute(text(GENERATE), {"n": n})
        conn.execute(text("INSERT INTO supplement_requests (dossier_id, requested_at, requested_by_id, step, reason, "
                          "items, within_window, previous_due_at, received_note) SELECT id, received_at, :u, "
                          "'Task_ThamDinh', 'x', '[]', true, due_at, '' FROM dossiers WHERE id % 9 = 0"), {"u": user_id})
        conn.execute(text("INSERT INTO service_ratings (dossier_id, rating, comment, created_at) SELECT id, "
                          "(ARRAY['very_satisfied','satisfied','not_satisfied'])[1 + id % 3], '', finished_at "
                          "FROM dossiers WHERE status = 'returned' AND id % 4 = 0"))
        conn.execute(text("UPDATE dossiers SET supplemented = true WHERE id % 9 = 0"))
        conn.execute(text("UPDATE dossiers d SET rating = r.rating FROM service_ratings r WHERE r.dossier_id = d.id"))
    with factory() as s:
        from engine.reporting import counters

        counters.rebuild(s)  # the counters the use cases keep, built here in one pass
        s.commit()
    with eng.connect() as conn:  # VACUUM cannot run in a transaction; it sets the visibility map
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    eng.dispose()
    return time.perf_counter() - t0


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dossiers", type=int, default=1_000_000)
    ap.add_argument("--pg", default=os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    build_s = build(args.pg, args.dossiers)
    factory = make_sessionmaker(make_engine(args.pg))
    month, year = (date(2026, 10, 1), date(2026, 10, 31)), (date(2025, 11, 1), date(2026, 10, 31))
    now = datetime(2026, 10, 31, 12, tzinfo=VN_TZ)
    with factory() as s:
        communes = metrics.units_under(s, "T40.007")
        cases = [
            ("headline, province, one month", lambda: metrics.summary(s, *month, unit_code="T40")),
            ("headline, province, twelve months", lambda: metrics.summary(s, *year, unit_code="T40")),
            ("headline, one commune, twelve months", lambda: metrics.summary(s, *year, unit_code="T40.007")),
            ("headline, one procedure, twelve months", lambda: metrics.summary(s, *year, procedure_code="1.001612")),
            ("table per unit (101 rows), one month", lambda: metrics.by_unit(s, *month)),
            ("table per unit, twelve months", lambda: metrics.by_unit(s, *year)),
            ("table per procedure, twelve months", lambda: metrics.by_procedure(s, *year, unit_code="T40")),
            ("trend, twelve months", lambda: metrics.monthly(s, *year, unit_code="T40")),
            ("drill-down: late in a month, first page", lambda: metrics.dossier_list(s, "finished_late", *month, "T40")),
            ("today: overdue and due soon, one commune", lambda: metrics.due_soon(s, communes, now)),
        ]
        rows = [(label, timed(fn)) for label, fn in cases]
    lines = [f"Run {datetime.now(VN_TZ):%Y-%m-%d %H:%M}, PostgreSQL, {args.dossiers:,} dossiers "
             f"(generated in {build_s:.0f} s), median of 3:", "", "| query | seconds |", "|---|---:|"]
    lines += [f"| {label} | {seconds:.3f} |" for label, seconds in rows]
    print("\n".join(lines))
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
