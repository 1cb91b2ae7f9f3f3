"""Benchmark: every write use case of the engine, per call, the current code against a baseline revision.

    .venv/bin/python bench/use_cases.py [--baseline 007de06] [--dossiers 30] [--repeat 3]
                                        [--db sqlite,postgresql] [--pg URL] [--write docs/benchmarks.md]

Both sides are measured in the same run. The baseline revision is checked out with `git worktree add
--detach` in a temporary directory (removed at the end); the current side is a snapshot of this working
tree taken at start (tracked and untracked, non-ignored files, uncommitted changes included), so edits
made while the benchmark runs cannot mix two versions of the code into one run. `--current-rev REV`
measures a revision instead of the working tree (`--baseline HEAD --current-rev HEAD` compares HEAD
with itself: every ratio should be near 1.00).

Each measurement runs in a child process whose `engine` is imported from one tree only (the tree first
on PYTHONPATH, and the editable install's finder removed so a module missing from that tree cannot be
picked up from this working tree). For each repeat and database, the two sides run back to back (the
order alternates between repeats), each on a fresh database: a new SQLite file (WAL) or the `public`
schema of the PostgreSQL database `bench` dropped and recreated (the database is created if missing;
the tests' database `test` is refused).

A child sets up an office with the CLI (`init-db`, `load-processes`, `units add`, `users add`, run
in-process through `motcua.cli`), then drives 4 × N dossiers of the shipped procedure 1.001612 (2.000720)
(mot_cua → chuyen_vien → lanh_dao_phong → lanh_dao → van_thu) through every write use case with fixed
`now=` times from Monday 2 November 2026 (Asia/Ho_Chi_Minh):

    group A: receive → first step → three approvals → last step (result ready) → return_result → rate_service
    group B: receive → first step → request_supplement (at appraisal) → deliver_supplement → overdue (sweep)
    group C: receive → first step → issue_apology → refuse_dossier
    group D: receive → first step → withdraw_dossier

Group B's supplements arrive on three Mondays a week apart (a third each); three timer sweeps
(`run_once(factory, now)`), each on the following Monday, flag one third each overdue (and their
reopened appraisal steps late); the sweep's figure is its time divided by the dossiers it flagged,
median of the three. Each use case call is timed alone, with a raw SpiffWorkflow cycle (as in
bench/engine_cycle.py: stock serializer, deserialize → complete one user task → engine steps →
serialize, in memory) timed right before it; the "× raw cycle" column is the median of those
per-call ratios. Figures are medians over the calls of a child, then medians over the repeats;
current / baseline is the median over the repeats of the ratio of the two sides' × raw figures
(robust to the shared machine's drifts between two child runs; the ms columns give the plain ratio).
`--json FILE` keeps every child's figures.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from raw_cycle import RawCycler, ten_step_process  # this folder; imports no engine code

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
VN = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_BASELINE = "007de06"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
MARKER = "USE_CASES_JSON "
# The shipped business-household procedure: 1.001612 since issue #10, 2.000720 in older revisions.
PROCEDURES = ("1.001612", "2.000720")
UNIT = "H40.1"
ROLES = ("mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu")
APPLICANT = {"name": "Nguyễn Văn An", "id_number": "017090001234", "phone": "0912345678",
             "email": "an@example.vn", "address": "Xóm Đồng, xã Tân Lạc, tỉnh Phú Thọ"}
SWEEP = "timer sweep, per overdue dossier"
# Group B's supplements arrive on these Mondays (day of November 2026) and the sweep that finds them
# overdue runs on the Monday after (08:00), before the next week's dossiers have a late step.
SWEEP_DAYS = [(2, 9), (9, 16), (16, 23)]
# (key in the child's JSON, label in the table), in table order.
CASES = [
    ("receive_dossier", "receive_dossier"),
    ("complete_task", "complete_task (approve, middle step)"),
    ("complete_task_first", "complete_task (first step: received → processing)"),
    ("complete_task_last", "complete_task (last step: → result ready)"),
    ("request_supplement", "request_supplement (complete_task, decision request_supplement)"),
    ("deliver_supplement", "deliver_supplement"),
    ("issue_apology", "issue_apology"),
    ("refuse_dossier", "refuse_dossier"),
    ("withdraw_dossier", "withdraw_dossier"),
    ("return_result", "return_result"),
    ("rate_service", "rate_service"),
    ("timer_sweep", SWEEP),
]
DB_LABELS = {"sqlite": "SQLite (file, WAL)", "postgresql": "PostgreSQL (local)"}


def vn(*args) -> datetime:
    return datetime(*args, tzinfo=VN)


def pdf(tag: str) -> bytes:
    return b"%PDF-1.4\n" + tag.encode() + b"\n%%EOF\n"


# --- child: one side, one database ---------------------------------------------------------------------
def _isolate_imports(tree: Path) -> None:
    """Import `engine` (and `motcua`) from `tree` only. The editable install's meta-path finder would
    otherwise resolve a sub-module that `tree` lacks (say `engine.store`) from this working tree."""
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE.parent]
    if str(tree) not in sys.path:
        sys.path.insert(0, str(tree))
    importlib.invalidate_caches()


def _first_module(*names: str):
    """The first of `names` that exists; a module that exists but fails to import is an error."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
    raise ModuleNotFoundError(f"none of {', '.join(names)} in this tree")


def _foreign_modules(tree: Path) -> list[str]:
    out = []
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] in ("engine", "motcua", "webapp"):
            path = getattr(mod, "__file__", None)
            if path and not Path(path).resolve().is_relative_to(tree):
                out.append(f"{name} from {path}")
    return out


def _cli(*argv: str) -> None:
    """The `motcua` command line, in-process (the same click group the console entry runs)."""
    from motcua.cli import main as cli_main

    with contextlib.redirect_stdout(sys.stderr):
        try:
            cli_main.main(args=list(argv), prog_name="motcua", standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"motcua {' '.join(argv)} exited with status {exc.code}") from None


class Timer:
    """Times one call, right after a raw cycle; keeps ms and the per-call ratio to that raw cycle."""

    def __init__(self, raw: RawCycler):
        self.raw = raw
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.ratio: dict[str, list[float]] = defaultdict(list)
        self.raw_s: list[float] = []

    def __call__(self, case: str, fn, *args, **kwargs):
        raw_s = self.raw()
        self.raw_s.append(raw_s)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter() - t0
        self.ms[case].append(elapsed * 1000)
        self.ratio[case].append(elapsed / raw_s)
        return result


def child(args) -> dict:
    tree = Path(args.tree).resolve()
    _isolate_imports(tree)
    started = time.perf_counter()
    url = os.environ["DATABASE_URL"]

    # Office and catalog through the CLI, on the fresh database the parent prepared.
    _cli("init-db")
    _cli("load-processes", str(tree / "processes"))
    _cli("units", "add", UNIT, "UBND xã Tân Lạc")
    for role in ROLES:
        _cli("users", "add", f"bench_{role}", "--password", "mat-khau-do-hieu-nang", "--unit", UNIT, "--role", role)

    from sqlalchemy import select

    from engine import dossiers

    models = _first_module("engine.store.models", "engine.models")
    db = _first_module("engine.store.db", "engine.db")
    timers = _first_module("engine.dossiers.timers", "engine.timers")
    HumanTask, User = models.HumanTask, models.User

    eng = db.make_engine(url)
    factory = db.make_sessionmaker(eng)
    raw = RawCycler(ten_step_process())
    for _ in range(20):  # warm the raw cycle up
        raw()
    timed = Timer(raw)
    n = args.dossiers
    sweeps = min(len(SWEEP_DAYS), n)
    components = [{"code": "GIAYDENGHI", "filename": "giaydenghi.pdf", "content": pdf("GIAYDENGHI"),
                   "content_type": "application/pdf"}]
    supplement = [{"code": "GIAYDENGHI", "filename": "giaydenghi-2.pdf", "content": pdf("GIAYDENGHI-2"),
                   "content_type": "application/pdf"}]

    with factory() as s:
        users = {name: uid for uid, name in s.execute(select(User.id, User.username))}
        shipped = set(s.scalars(select(models.Procedure.code)))
        s.rollback()
        procedure = next(code for code in PROCEDURES if code in shipped)
        # Supplement items name a component since issue #10; older revisions take plain text.
        item = ({"component": "GIAYDENGHI", "problem": "Giấy đề nghị có chữ ký chủ hộ"}
                if hasattr(_first_module("engine.dossiers.processing", "engine.dossiers"), "supplement_items")
                else "Giấy đề nghị có chữ ký chủ hộ")
        actor = {role: users[f"bench_{role}"] for role in ROLES}

        def task_id(dossier_id, role) -> str:
            found = s.scalar(select(HumanTask.id).where(
                HumanTask.dossier_id == dossier_id, HumanTask.completed_at.is_(None), HumanTask.role == role))
            s.rollback()  # the use case must start its own transaction
            if found is None:
                raise RuntimeError(f"dossier {dossier_id} has no open {role} step")
            return found

        # The shipped process's signing step attaches the signed PDF, its register step records the number
        # and date (engine/dossiers/results.py).
        results = {"lanh_dao": {"file": {"filename": "ket-qua.pdf", "content": b"%PDF-1.4\n% ket qua\n%%EOF\n"}},
                   "van_thu": {"number": "01/KQ", "signed_on": "2026-11-02"}}

        def approve(case, dossier_id, role, when):
            timed(case, dossiers.complete_task, s, actor_id=actor[role], task_id=task_id(dossier_id, role),
                  data={"decision": "approve"}, result=results.get(role), now=when)

        # Receive 4N dossiers, dealt round-robin to the four groups.
        groups: dict[str, list[tuple[int, str]]] = {g: [] for g in "ABCD"}
        for i in range(4 * n):
            d = timed("receive_dossier", dossiers.receive_dossier, s, actor_id=actor["mot_cua"], procedure_code=procedure,
                      channel="counter", applicant=APPLICANT, components=components, now=vn(2026, 11, 2, 9, 0))
            groups["ABCD"[i % 4]].append((d.id, d.code))
            s.rollback()  # in case reading the result began a transaction
        del d
        for i in range(n):
            for g in "ABCD":
                approve("complete_task_first", groups[g][i][0], "mot_cua", vn(2026, 11, 2, 9, 30))

        # Round 1: each group's own use case, interleaved so all see the same moments of the machine.
        for i in range(n):
            (a_id, _), (b_id, _), (_, c_code), (_, d_code) = (groups[g][i] for g in "ABCD")
            approve("complete_task", a_id, "chuyen_vien", vn(2026, 11, 2, 10, 0))
            timed("request_supplement", dossiers.complete_task, s, actor_id=actor["chuyen_vien"],
                  task_id=task_id(b_id, "chuyen_vien"),
                  data={"decision": "request_supplement", "items": [item]},
                  note="Giấy đề nghị thiếu chữ ký", now=vn(2026, 11, 2, 10, 0))
            timed("issue_apology", dossiers.issue_apology, s, actor_id=actor["lanh_dao"], dossier_code=c_code,
                  reason="Chờ xác minh", new_due_at=vn(2026, 11, 10, 17, 0), now=vn(2026, 11, 2, 11, 0))
            timed("withdraw_dossier", dossiers.withdraw_dossier, s, actor_id=actor["mot_cua"], dossier_code=d_code,
                  reason="Công dân rút hồ sơ", now=vn(2026, 11, 2, 12, 0))
        # Round 2.
        for i in range(n):
            (a_id, _), (_, b_code), (_, c_code) = (groups[g][i] for g in "ABC")
            approve("complete_task", a_id, "lanh_dao_phong", vn(2026, 11, 2, 11, 0))
            timed("deliver_supplement", dossiers.deliver_supplement, s, actor_id=actor["mot_cua"], dossier_code=b_code,
                  components=supplement, now=vn(2026, 11, SWEEP_DAYS[i % sweeps][0], 14, 0))
            timed("refuse_dossier", dossiers.refuse_dossier, s, actor_id=actor["lanh_dao"], dossier_code=c_code,
                  reason="Ngành nghề cấm kinh doanh", now=vn(2026, 11, 2, 15, 0))
        # Group A to the end.
        for dossier_id, _ in groups["A"]:
            approve("complete_task", dossier_id, "lanh_dao", vn(2026, 11, 2, 14, 0))
        for dossier_id, _ in groups["A"]:
            approve("complete_task_last", dossier_id, "van_thu", vn(2026, 11, 2, 15, 0))
        for _, code in groups["A"]:
            timed("return_result", dossiers.return_result, s, actor_id=actor["mot_cua"], dossier_code=code,
                  now=vn(2026, 11, 2, 16, 0))
        for _, code in groups["A"]:
            timed("rate_service", dossiers.rate_service, s, dossier_code=code, id_number=APPLICANT["id_number"],
                  rating="satisfied", now=vn(2026, 11, 2, 16, 30))

    # The sweeps: only group B is still open; each sweep finds one delivery week's dossiers overdue and
    # their reopened appraisal steps late, and nothing of the later weeks yet.
    swept = []
    for k in range(sweeps):
        expected = len(range(k, n, sweeps))
        raw_s = raw()
        t0 = time.perf_counter()
        report = timers.run_once(factory, vn(2026, 11, SWEEP_DAYS[k][1], 8, 0))
        elapsed = time.perf_counter() - t0
        flagged = getattr(report, "dossiers_overdue", 0)
        swept.append({"seconds": elapsed, "raw_s": raw_s, "dossiers_overdue": flagged, "expected": expected,
                      "steps_late": getattr(report, "steps_late", None),
                      "timers_fired": getattr(report, "timers_fired", None),
                      "failures": list(getattr(report, "failures", []) or [])[:5]})
    eng.dispose()

    foreign = _foreign_modules(tree)
    if foreign:
        raise RuntimeError("modules imported from outside the measured tree: " + "; ".join(foreign))
    med = statistics.median
    cases = {case: {"ms": med(ms), "x_raw": med(timed.ratio[case]), "n": len(ms)} for case, ms in timed.ms.items()}
    per = [sw["seconds"] / sw["dossiers_overdue"] for sw in swept if sw["dossiers_overdue"]]
    if per:
        # Three sweeps are too few for ratios to one raw cycle each: against the process's median raw cycle.
        raw_all = timed.raw_s + [sw["raw_s"] for sw in swept]
        cases["timer_sweep"] = {"ms": med(per) * 1000, "n": len(per), "x_raw": med(per) / med(raw_all)}
    return {
        "tree": str(tree), "engine": importlib.import_module("engine").__file__, "db": url.split(":")[0],
        "raw_ms": med(timed.raw_s) * 1000, "cases": cases, "sweeps": swept, "seconds": time.perf_counter() - started,
    }


# --- parent ----------------------------------------------------------------------------------------------
def git(*argv: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def snapshot_working_tree(dest: Path) -> None:
    """Copy this working tree's files (tracked and untracked, not ignored; deleted ones skipped)."""
    names = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def pg_url_checked(url: str):
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.database in (None, "", "test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing PostgreSQL database {parsed.database!r}: this benchmark drops its schema; "
                         "use a database of its own (default: bench)")
    return parsed


def ensure_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    parsed = pg_url_checked(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}):
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    pg_url_checked(url)
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Start every run from a settled server: the previous run's writes and the dropped schema
            # flushed now rather than by the checkpointer in the middle of the next measurement.
            with contextlib.suppress(Exception):
                conn.execute(text("CHECKPOINT"))
    finally:
        eng.dispose()


def run_child(tree: Path, db: str, pg: str, dossiers: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="motcua-uc-") as tmp:
        if db == "sqlite":
            url = f"sqlite:///{tmp}/bench.sqlite3"
        else:
            reset_pg(pg)
            url = pg
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME")}
        env.update(PYTHONPATH=str(tree), DATABASE_URL=url, MOTCUA_UPLOAD_DIR=f"{tmp}/uploads",
                   MOTCUA_DATA_DIR=f"{tmp}/var")
        cmd = [sys.executable, str(HERE), "--child", "--tree", str(tree), "--dossiers", str(dossiers)]
        try:
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
    return {"error": f"exit status {proc.returncode}: {tail}"}


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(results: dict[str, list[dict]], n_dossiers: int) -> list[str]:
    """results: side → list of child outputs (one per repeat, same order)."""
    med = statistics.median

    def values(side, case, field):
        return [r["cases"][case][field] for r in results[side] if "cases" in r and case in r["cases"]]

    def paired(case):
        pairs = [(b["cases"][case]["x_raw"], c["cases"][case]["x_raw"])
                 for b, c in zip(results["baseline"], results["current"])
                 if case in b.get("cases", {}) and case in c.get("cases", {})]
        return med([c / b for b, c in pairs]) if pairs else None

    lines = ["| use case | baseline ms | current ms | current / baseline | current × raw cycle |",
             "|---|---:|---:|---:|---:|"]
    for case, label in CASES:
        base, cur, x_raw = values("baseline", case, "ms"), values("current", case, "ms"), values("current", case, "x_raw")
        lines.append(f"| {label} | {fmt_ms(med(base) if base else None)} | {fmt_ms(med(cur) if cur else None)} | "
                     f"{fmt_ratio(paired(case))} | {fmt_ratio(med(x_raw) if x_raw else None)} |")
    raw = {side: [r["raw_ms"] for r in results[side] if "raw_ms" in r] for side in ("baseline", "current")}
    raw_pairs = [c["raw_ms"] / b["raw_ms"] for b, c in zip(results["baseline"], results["current"])
                 if "raw_ms" in b and "raw_ms" in c]
    lines.append(f"| raw SpiffWorkflow cycle (stock serializer, in memory) | "
                 f"{fmt_ms(med(raw['baseline']) if raw['baseline'] else None)} | "
                 f"{fmt_ms(med(raw['current']) if raw['current'] else None)} | "
                 f"{fmt_ratio(med(raw_pairs) if raw_pairs else None)} | {fmt_ratio(1.0 if raw['current'] else None)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare against (default %(default)s)")
    ap.add_argument("--current-rev", default=None,
                    help="measure this revision as the current side instead of a snapshot of the working tree")
    ap.add_argument("--dossiers", type=int, default=30, help="dossiers per group (4 groups; default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats (default %(default)s)")
    ap.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--pg", default=os.environ.get("MOTCUA_BENCH_PG_URL", DEFAULT_PG),
                    help="PostgreSQL URL of a database this benchmark may wipe (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per child run")
    ap.add_argument("--write", default=None, help="append the results to this Markdown file")
    ap.add_argument("--json", default=None, help="also save every child's figures to this JSON file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(MARKER + json.dumps(child(args)), flush=True)
        return
    if args.dossiers < 1 or args.repeat < 1:
        raise SystemExit("--dossiers and --repeat must be at least 1")

    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    unknown = set(dbs) - set(DB_LABELS)
    if unknown or not dbs:
        raise SystemExit(f"--db: unknown {', '.join(sorted(unknown)) or '(none)'}; use sqlite, postgresql")
    if "postgresql" in dbs:
        ensure_pg_database(args.pg)
    base_sha = git("rev-parse", "--short", f"{args.baseline}^{{commit}}")
    head_sha = git("rev-parse", "--short", "HEAD")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="motcua-uc-trees-"))
    worktrees: list[Path] = []
    try:
        base_tree = work / "baseline"
        git("worktree", "add", "--detach", str(base_tree), base_sha)
        worktrees.append(base_tree)
        cur_tree = work / "current"
        if args.current_rev:
            cur_sha = git("rev-parse", "--short", f"{args.current_rev}^{{commit}}")
            git("worktree", "add", "--detach", str(cur_tree), cur_sha)
            worktrees.append(cur_tree)
            current_label = f"revision {args.current_rev} ({cur_sha})"
        else:
            cur_tree.mkdir()
            snapshot_working_tree(cur_tree)
            dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/screenshots"))
            current_label = f"working tree at {head_sha}" + (" with uncommitted changes" if dirty else "")
        trees = {"baseline": base_tree, "current": cur_tree}

        results: dict[str, dict[str, list[dict]]] = {db: {"baseline": [], "current": []} for db in dbs}
        for rep in range(args.repeat):
            order = ["baseline", "current"] if rep % 2 == 0 else ["current", "baseline"]
            for db in dbs:
                for side in order:
                    if any("error" in r for r in results[db][side]):
                        results[db][side].append({"error": "skipped: this side failed in an earlier repeat"})
                        continue
                    out = run_child(trees[side], db, args.pg, args.dossiers, args.timeout)
                    results[db][side].append(out)
                    if "error" in out:
                        print(f"[{db}, {side}, repeat {rep + 1}] failed: {out['error']}", file=sys.stderr)
                    else:
                        odd = [sw for sw in out["sweeps"] if sw["dossiers_overdue"] != sw["expected"] or sw["failures"]]
                        note = "".join(f" — a sweep flagged {sw['dossiers_overdue']} of {sw['expected']} overdue dossiers"
                                       f"{', failures: ' + '; '.join(sw['failures']) if sw['failures'] else ''}"
                                       for sw in odd)
                        print(f"[{db}, {side}, repeat {rep + 1}] {out['seconds']:.1f} s{note}", file=sys.stderr)
            if "postgresql" in dbs:
                reset_pg(args.pg)
    finally:
        for tree in worktrees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    command = ".venv/bin/python bench/use_cases.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        f"Run {datetime.now(VN):%Y-%m-%d %H:%M} on {platform.node() or 'this machine'} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}): `{command}`, procedure 1.001612 (2.000720 before issue #10), "
        f"{args.dossiers} dossiers per "
        f"group (4 groups), medians of {args.repeat} interleaved repeats ({time.perf_counter() - started:.0f} s). "
        f"Baseline: {args.baseline} ({base_sha}); current: {current_label}.",
    ]
    for db in dbs:
        lines += ["", f"{DB_LABELS[db]}:", ""] + table(results[db], args.dossiers)
        errors = [f"{side} repeat {i + 1}: {r['error'].splitlines()[-1]}" for side in ("baseline", "current")
                  for i, r in enumerate(results[db][side]) if "error" in r and not r["error"].startswith("skipped")]
        if errors:
            lines += ["", "Failed runs (— above; later repeats of a failed side were skipped): " + " | ".join(errors)]
    lines += ["", "ms: median per call (a sweep: its time over the dossiers it flagged overdue; three sweeps), then "
              "median of the repeats. × raw cycle: median of per-call ratios to a raw SpiffWorkflow cycle timed just "
              "before each call in the same process (sweeps: against that process's median raw cycle). "
              "current / baseline: median over the repeats of the two sides' × raw cycle figures divided, which cancels "
              "the shared machine's drifts between two child runs (the ms columns give the plain ratio); on the raw "
              "cycle row it is the plain ratio, i.e. how much slower the machine was during the current side's runs."]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n### Use cases per call (`bench/use_cases.py`)\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
