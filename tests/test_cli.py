"""The `motcua` command line, run against SQLite and PostgreSQL."""
from click.testing import CliRunner
from conftest import ROOT
from sqlalchemy import func, select

from engine.store.models import ProcedureVersion, User
from motcua.cli import main


def run(args, db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result


def test_init_db_creates_the_schema_on_a_fresh_sqlite_file(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = run(["init-db"], url, monkeypatch)
    assert result.exit_code == 0, result.output
    from sqlalchemy import create_engine, inspect
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"dossiers", "human_tasks", "audit_events", "procedure_versions", "alembic_version"} <= tables


def test_load_processes_is_idempotent_and_users_get_roles(db_url, session, monkeypatch):
    first = run(["load-processes", str(ROOT / "processes")], db_url, monkeypatch)
    assert first.exit_code == 0 and "published version 1" in first.output
    second = run(["load-processes", str(ROOT / "processes")], db_url, monkeypatch)
    assert second.exit_code == 0 and second.output.count("up to date") == 3
    assert session.scalar(select(func.count()).select_from(ProcedureVersion)) == 3

    assert run(["units", "add", "H40.9", "UBND xã Thử"], db_url, monkeypatch).exit_code == 0
    ok = run(["users", "add", "mai", "--password", "mat-khau-dai", "--unit", "H40.9", "--role", "mot_cua",
              "--role", "van_thu"], db_url, monkeypatch)
    assert ok.exit_code == 0, ok.output
    session.rollback()  # new snapshot: see what the CLI committed
    user = session.scalar(select(User).where(User.username == "mai"))
    assert sorted(g.role for g in user.grants) == ["mot_cua", "van_thu"]
    dup = run(["users", "add", "mai", "--password", "mat-khau-dai", "--unit", "H40.9", "--role", "mot_cua"],
              db_url, monkeypatch)
    assert dup.exit_code == 2 and "already exists" in dup.output
    bad_role = run(["users", "add", "lan", "--password", "mat-khau-dai", "--unit", "H40.9", "--role", "giam_doc"],
                   db_url, monkeypatch)
    assert bad_role.exit_code == 2 and "no role giam_doc" in bad_role.output
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "lan")) == 0


def test_timers_run_once_at_a_given_time(db_url, office, session, monkeypatch):
    from conftest import receive
    receive(session, office)
    result = run(["timers", "run", "--once", "--now", "2026-11-06T08:00:00+07:00"], db_url, monkeypatch)
    assert result.exit_code == 0
    assert "1 dossiers overdue, 1 steps late" in result.output


def test_the_readme_demo_seeds_its_office_and_prints_intact_control_slips(tmp_path, monkeypatch):
    """`make demo` runs `motcua demo`: the seeding must walk its dossiers to the end without an error."""
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "demo.sqlite3"
    result = CliRunner().invoke(main, ["demo", "--no-serve", "--database", str(database)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Phiếu kiểm soát quá trình giải quyết hồ sơ (mẫu 06)" in result.output
    assert "Nhật ký kiểm toán: nguyên vẹn" in result.output and "BỊ SỬA ĐỔI" not in result.output
    assert "yêu cầu bổ sung lần hai bị từ chối" in result.output
