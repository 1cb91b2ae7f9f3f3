"""The database plumbing of the hot path (engine/store/db.py), on SQLite and PostgreSQL: statements run
straight on the driver give what SQLAlchemy gives, fail as SQLAlchemy fails; SQLite writers queue on a
lock file; idle PostgreSQL connections are checked before use; an API token is read outside a transaction."""
from __future__ import annotations

import fcntl
import os
import threading
from datetime import datetime, timezone

import pytest
from conftest import receive, vn
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.access import directory, tokens
from engine.store import db as store_db
from engine.store.db import Prepared, begin_write, connection, make_engine, make_sessionmaker
from engine.store.models import OutboxEvent, Procedure, Unit

UNITS = Unit.__table__
EVENTS = OutboxEvent.__table__


def _unit(session, code="U1"):
    unit = directory.add_unit(session, code, "Đơn vị")
    session.commit()
    return unit.id


def test_prepared_reads_and_writes_what_sqlalchemy_does(session, office):
    """Same rows, same Python types (UTC-aware datetimes, JSON, booleans) with and without the shortcut;
    a constant Python default filled in; several rows in one call."""
    dossier = receive(session, office)
    session.commit()
    unit = dossier.unit_id
    at = vn(2026, 11, 2, 9, 30)
    rows = [{"event_id": f"e{i}", "dossier_id": dossier.id, "kind": "test", "payload": {"n": i, "văn bản": "có dấu"},
             "occurred_at": at} for i in range(3)]
    write = Prepared(insert(EVENTS))
    conn = connection(session)
    assert write.run(conn, rows[:1]) == 1
    write.run(conn, rows[1:])                       # two rows: one multi-row INSERT on PostgreSQL
    read = Prepared(select(EVENTS).where(EVENTS.c.kind == bindparam("kind")).order_by(EVENTS.c.id))
    fast = read.all(conn, {"kind": "test"})
    assert [r["attempts"] for r in fast] == [0, 0, 0]  # the column's Python default
    assert fast[2]["payload"] == {"n": 2, "văn bản": "có dấu"}
    assert fast[0]["occurred_at"] == at and fast[0]["occurred_at"].tzinfo is not None
    assert fast[0]["occurred_at"].utcoffset().total_seconds() == 0
    plain = [dict(r._mapping) for r in conn.execute(select(EVENTS).where(EVENTS.c.kind == "test").order_by(EVENTS.c.id))]
    assert fast == plain
    # With a statement listener attached (tests count statements so) the statement goes through SQLAlchemy.
    seen = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listener)
    try:
        assert read.all(conn, {"kind": "test"}) == fast
        assert Prepared(select(UNITS.c.code).where(UNITS.c.id == bindparam("id"))).all(conn, {"id": unit}) == \
            [{"code": office.unit}]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert len(seen) == 2
    session.rollback()


def test_prepared_fails_as_sqlalchemy_does(session):
    _unit(session)
    conn = connection(session)
    with pytest.raises(IntegrityError):
        Prepared(insert(UNITS)).run(conn, {"code": "U1", "name": "again", "active": True})
    session.rollback()


def test_what_the_shortcut_cannot_do_goes_through_sqlalchemy(session):
    """A computed Python default (procedures.components: a new list) and an expanding IN parameter."""
    unit = _unit(session)
    conn = connection(session)
    procedures = Procedure.__table__
    write = Prepared(insert(procedures))
    write.run(conn, {"code": "9.000001", "name": "Thử", "field": "Thử", "level": "xa", "statutory_days": 1,
                     "online_level": "mot_phan", "created_at": vn(2026, 11, 2, 9)})
    assert not write._plan(conn.dialect, frozenset({"code", "name", "field", "level", "statutory_days",
                                                    "online_level", "created_at"}))[1]
    assert conn.execute(select(procedures.c.components, procedures.c.fee)).one() == ([], "")
    read = Prepared(select(UNITS.c.id).where(UNITS.c.id.in_(bindparam("ids", expanding=True))))
    assert read.all(conn, {"ids": [unit, 999]}) == [{"id": unit}]
    assert not read._plan(conn.dialect, frozenset())[1]
    session.rollback()


@pytest.mark.sqlite_only
def test_sqlite_writers_queue_on_the_lock_file(factory, db_url):
    """The write transaction holds the lock file from BEGIN IMMEDIATE until the connection is back in the
    pool; another writer waits there and goes on as soon as it is free."""
    path = db_url.removeprefix("sqlite:///") + "-writers.lock"

    def locked() -> bool:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    first = factory()
    begin_write(first)
    assert locked()
    done = threading.Event()

    def second_writer():
        with factory() as s:
            begin_write(s)
            s.execute(text("UPDATE settings SET key = key WHERE 1 = 0"))
            s.commit()
        done.set()

    worker = threading.Thread(target=second_writer)
    worker.start()
    assert not done.wait(0.3)  # queued behind the first
    first.commit()
    first.close()
    assert done.wait(5)
    worker.join()
    assert not locked()
    # A thread that writes through a second connection while holding the lock does not wait for itself:
    # SQLite answers, after its busy timeout (50 ms here); a writer in another thread waits up to the
    # queue's timeout, then SQLite answers too.
    impatient = make_engine(db_url)
    event.listen(impatient, "connect", lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA busy_timeout=50"))
    holder = factory()
    begin_write(holder)
    outcome = []

    def other_thread():
        with make_sessionmaker(impatient)() as s:
            try:
                begin_write(s)
            except OperationalError:
                outcome.append("locked")

    try:
        with make_sessionmaker(impatient)() as same_thread, pytest.raises(OperationalError):
            begin_write(same_thread)
        store_db._WriterQueue.TIMEOUT = 0.2
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(5)
        assert outcome == ["locked"]
    finally:
        store_db._WriterQueue.TIMEOUT = 10.0
        holder.rollback()
        holder.close()
        impatient.dispose()
    assert not locked()


@pytest.mark.postgres_only
def test_an_idle_postgresql_connection_is_checked_before_use(db_url, monkeypatch):
    eng = make_engine(db_url, pool_size=1, max_overflow=0)
    try:
        with eng.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killer = make_engine(db_url)
        with killer.connect() as k:
            k.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        monkeypatch.setattr(store_db, "PING_AFTER_IDLE", 0.0)  # it has been idle: checked, found dead, replaced
        with eng.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killer = make_engine(db_url)
        with killer.connect() as k:
            k.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        monkeypatch.setattr(store_db, "PING_AFTER_IDLE", 3600.0)  # used moments ago: not checked
        with pytest.raises(OperationalError), eng.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        with eng.connect() as conn:  # the pool was recycled after the failure
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        eng.dispose()


def test_the_token_is_read_outside_a_transaction(session, factory):
    directory.add_unit(session, "U1", "Đơn vị")
    directory.add_user(session, "thu", "mat-khau-dai", [("U1", "mot_cua")], "Người thử")
    session.commit()
    token, _ = tokens.issue_token(session, "thu", "mat-khau-dai")
    with factory() as s:
        actor = tokens.actor_for_token(s, token)
        assert actor.username == "thu" and actor.grants
        assert not s.in_transaction()  # nothing left open for the use case to roll back
        s.connection()
        assert tokens.actor_for_token(s, token).username == "thu"  # inside a transaction: read in it
        assert s.in_transaction()
    assert tokens.actor_for_token(session, "forged") is None
    assert tokens.actor_for_token(session, token, now=datetime(2100, 1, 1, tzinfo=timezone.utc)) is None


def test_the_models_say_what_the_migrations_build(engine_):
    """The schema the migrations build (every test database is upgraded to head) is the one the models
    declare: no table, column, type or index only one of them has (Alembic's autogenerate comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from engine.store.models import Base

    with engine_.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []
