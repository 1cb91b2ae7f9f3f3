"""Database plumbing: engine/session factory, the declarative base and a UTC datetime type."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timezone

from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from engine import config


class UTCDateTime(TypeDecorator):
    """Stores UTC; always returns timezone-aware UTC datetimes (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or config.database_url()
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        eng = create_engine(url, **kwargs)
        event.listen(eng, "connect", _sqlite_pragmas)

        # pysqlite's own transaction handling is bypassed so we choose the BEGIN: a use case that
        # writes takes SQLite's write lock up front with BEGIN IMMEDIATE (the SQLite analogue of
        # SELECT … FOR UPDATE, see begin_write); reads stay deferred and never block writers (WAL).
        @event.listens_for(eng, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        @event.listens_for(eng, "begin")
        def _begin(conn):
            immediate = conn.get_execution_options().get(WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return eng
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


WRITE_OPTION = "motcua_write"


class PendingChanges(RuntimeError):
    """A use case was called while the caller's session held changes of its own."""


def begin_write(session: Session) -> None:
    """Start the use case's own write transaction (with SQLite's write lock up front). A use case
    owns its transaction: the caller's open read transaction is ended (rolled back: it wrote
    nothing), and pending ORM changes are refused instead of being committed by surprise."""
    if session.in_transaction():
        if session.new or session.deleted or any(session.is_modified(o) for o in session.dirty):
            raise PendingChanges("commit or roll back the session's own changes before calling a use case")
        session.rollback()
    session.connection(execution_options={WRITE_OPTION: True})


@contextmanager
def write_transaction(session: Session):
    """A use case's transaction: begun with `begin_write`, committed once on success, rolled back on any error."""
    begin_write(session)
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)

