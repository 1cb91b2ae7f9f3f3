"""Database plumbing: engine/session factory, the declarative base and a UTC datetime type."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from datetime import timezone

from sqlalchemy import DateTime, bindparam, create_engine, event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
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

        queue = _WriterQueue(eng.url.database) if eng.url.database not in (None, "", ":memory:") else None

        @event.listens_for(eng, "begin")
        def _begin(conn):
            write = conn.get_execution_options().get(WRITE_OPTION)
            statement = "BEGIN IMMEDIATE" if write else "BEGIN"
            if conn.get_execution_options().get(AUTOCOMMIT_OPTION):
                return  # one statement, no transaction (see `single_read`)
            if write and queue is not None:
                queue.enter(conn.connection.info)
            if not Prepared._shortcut(conn):  # statement listeners (tests) see it
                conn.exec_driver_sql(statement)
                return
            try:
                conn.connection.driver_connection.execute(statement)
            except sqlite3.Error as exc:  # "database is locked" after the busy timeout: wrapped as always
                conn._handle_dbapi_exception(exc, statement, (), None, None)

        if queue is not None:
            for name in ("checkin", "invalidate", "soft_invalidate"):
                event.listen(eng.pool, name, lambda _dbapi, record, *_: queue.leave(record.info))
            event.listen(eng.pool, "close", lambda _dbapi, record: queue.forget(record.info))
        return eng
    # Last in, first out: a request takes the connection the previous one just gave back, whose
    # server-side caches and prepared statements are warm; the others stay idle and age out.
    kwargs.setdefault("pool_use_lifo", True)
    eng = create_engine(url, **kwargs)
    if "pool_pre_ping" not in kwargs:
        _ping_when_idle(eng)
    return eng


PING_AFTER_IDLE = 5.0  # seconds


def _ping_when_idle(eng: Engine) -> None:
    """Check a pooled PostgreSQL connection before use only when it has sat in the pool for more than
    PING_AFTER_IDLE seconds (SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip per
    transaction, two per API request). A dead connection found here is replaced, as with pre-ping; one
    that died within the last seconds fails its statement instead, and SQLAlchemy then recycles the
    whole pool, so after a server restart at most that one request per worker sees an error."""
    key = "motcua.idle_since"

    @event.listens_for(eng.pool, "checkin")
    def _checkin(dbapi_conn, record):
        if dbapi_conn is not None:
            record.info[key] = (id(dbapi_conn), time.monotonic())

    @event.listens_for(eng.pool, "checkout")
    def _checkout(dbapi_conn, record, _proxy):
        since = record.info.get(key)
        if since is None or since[0] != id(dbapi_conn) or time.monotonic() - since[1] <= PING_AFTER_IDLE:
            return  # just connected, or used moments ago
        try:
            eng.dialect.do_ping(dbapi_conn)
        except eng.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"connection lost while idle: {exc}") from exc


WRITE_OPTION = "motcua_write"
AUTOCOMMIT_OPTION = "motcua_autocommit"


def single_read(session: Session):
    """A connection for one read outside any transaction, or None when the session is in one already
    (read with `connection(session)` then). The caller runs its one statement and calls
    `session.rollback()`, which gives the connection back. An API request's token look-up reads
    this way: no BEGIN and ROLLBACK around it (two round trips on PostgreSQL), and on SQLite no read
    transaction left open when the use case begins its write."""
    if session.in_transaction():
        return None
    if session.get_bind().dialect.name == "sqlite":
        return session.connection(execution_options={AUTOCOMMIT_OPTION: True})
    return session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


class _WriterQueue:
    """Writers to one SQLite file wait for each other on a lock file next to it (`flock`), taken just
    before BEGIN IMMEDIATE and let go when the connection goes back to the pool after its commit or
    rollback. SQLite alone makes a writer that finds the database locked sleep 1, 2, 5, 10, 15, 20 …
    ms between tries (its busy handler), so with two server workers the second writer mostly sleeps
    while the first has long finished; a writer blocked in `flock` is woken the moment the lock is
    free. It waits at most the busy timeout (10 s), then leaves the decision to SQLite, as before. A
    thread that already writes through another connection does not queue (it would wait for itself)."""

    FD, HELD = "motcua.writers_fd", "motcua.writers_held"
    TIMEOUT = 10.0

    _holders_by_path: dict[str, set[int]] = {}  # threads of this process holding each lock (all engines)
    _guard = threading.Lock()

    def __init__(self, database: str):
        self.path = os.path.abspath(f"{database}-writers.lock")
        with self._guard:
            self._holders = self._holders_by_path.setdefault(self.path, set())

    # `info`: the pooled connection's info dict (the same in pool events and on a checked-out connection).
    def enter(self, info: dict) -> None:
        me = threading.get_ident()
        with self._guard:
            if me in self._holders:
                return
        fd = info.get(self.FD)
        if fd is None:
            fd = info[self.FD] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not self._wait(fd):
                return
        info[self.HELD] = me
        with self._guard:
            self._holders.add(me)

    def _wait(self, fd: int) -> bool:
        """Block in `flock` — in a helper thread, so that the wait can end at the timeout."""
        state = {"got": False, "gave_up": False}
        got, guard = threading.Event(), threading.Lock()

        def block():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                with guard:
                    if state["gave_up"]:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                        return
                    state["got"] = True
                got.set()
            except OSError:
                return  # the connection was closed meanwhile (its descriptor with it)

        threading.Thread(target=block, name="sqlite-writers-queue", daemon=True).start()
        got.wait(self.TIMEOUT)
        with guard:
            state["gave_up"] = not state["got"]
            return state["got"]

    def leave(self, info: dict) -> None:
        holder = info.pop(self.HELD, None)
        if holder is not None:
            fcntl.flock(info[self.FD], fcntl.LOCK_UN)
            with self._guard:
                self._holders.discard(holder)

    def forget(self, info: dict) -> None:
        self.leave(info)
        fd = info.pop(self.FD, None)
        if fd is not None:
            os.close(fd)


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


_CONNECTION = "motcua.connection"


def connection(session: Session):
    """`session.connection()`, remembered for the session's current transaction: the hot path asks for
    it once per statement, and the ORM's way there costs ≈ 20 µs a time."""
    tx = session.get_transaction()
    cached = session.info.get(_CONNECTION)
    if cached is not None and tx is not None and cached[0] is tx and tx.is_active:
        return cached[1]
    conn = session.connection()
    session.info[_CONNECTION] = (session.get_transaction(), conn)
    return conn


# psycopg caches its parsing of a statement of at most this many parameters (psycopg._queries).
_PSYCOPG_CACHED_PARAMS = 50


class Prepared:
    """A Core statement for the hot path (a task completion runs ten of them): compiled once per
    database and set of parameter names, then run straight on the DBAPI cursor with SQLAlchemy's own
    bind and result processors, which skips SQLAlchemy's per-execution bookkeeping (≈ 40 µs a statement,
    as much as SQLite takes to run one). Anything the shortcut does not reproduce goes through
    `Connection.execute` instead: a statement with computed Python-side defaults, expanding parameters
    or RETURNING, and any connection with statement-level event listeners or echo (tests count
    statements that way).

    `all(conn, params)` returns the rows as dicts (column key → processed value); `run(conn, params)`
    executes (a list of dicts: executemany) and returns the row count."""

    def __init__(self, statement):
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # dialect → {keys: plan}

    def _plan(self, dialect, keys: frozenset):
        plans = self._plans.get(dialect)
        if plans is None:
            plans = self._plans[dialect] = {}
        plan = plans.get(keys)
        if plan is None:
            # An INSERT is compiled as for executemany: without the RETURNING of the new row's key that
            # PostgreSQL would otherwise add (callers of `run` do not ask for it).
            compiled = self.statement.compile(dialect=dialect, column_keys=sorted(keys),
                                              for_executemany=bool(self.statement.is_insert))
            # Python-side defaults of columns not given: constants are filled in here as SQLAlchemy would;
            # anything computed (a callable, a SQL expression) leaves the statement to SQLAlchemy.
            prefetch = [(c, c.default) for c in compiled.insert_prefetch] + \
                [(c, c.onupdate) for c in compiled.update_prefetch]
            defaults = {c.key: d.arg for c, d in prefetch if d is not None and d.is_scalar}
            eligible = len(defaults) == len(prefetch) and not (
                compiled.literal_execute_params or compiled.post_compile_params or compiled.schema_translate_map
                or compiled.effective_returning)
            plan = plans[keys] = (compiled, eligible, {"defaults": defaults})
        return plan

    @staticmethod
    def _shortcut(conn) -> bool:
        if conn._echo:
            return False
        # Listeners sit on the engine (or its class); the connection's joined view of them costs ≈ 4 µs
        # to ask, so it is asked only when the connection has listeners of its own.
        d = conn.dispatch if conn._has_events else conn.engine.dispatch
        return not (d.before_cursor_execute or d.after_cursor_execute or d.before_execute or d.after_execute)

    @staticmethod
    def _args(compiled, params: dict, defaults: dict | None):
        if defaults:
            params = {**defaults, **params}
        processors, values = compiled._bind_processors, compiled.construct_params(params, escape_names=False)
        if compiled.positional:
            return tuple(processors[k](values[k]) if k in processors else values[k] for k in compiled.positiontup)
        escaped = compiled.escaped_bind_names or {}
        return {escaped.get(k, k): processors[k](v) if k in processors else v for k, v in values.items()}

    def _cursor(self, conn, compiled, args, many: bool):
        cursor = None
        try:
            cursor = conn.connection.dbapi_connection.cursor()
            if many:
                cursor.executemany(compiled.string, args)
            else:
                cursor.execute(compiled.string, args)
            return cursor
        except conn.dialect.loaded_dbapi.Error as exc:
            # SQLAlchemy's own handling: the wrapped exception (IntegrityError …), disconnects invalidated.
            conn._handle_dbapi_exception(exc, compiled.string, args, cursor, None)

    def all(self, conn, params: dict | None = None) -> list[dict]:
        params = params or {}
        compiled, eligible, results = self._plan(conn.dialect, frozenset())
        if not (eligible and self._shortcut(conn)):
            return [dict(row._mapping) for row in conn.execute(self.statement, params)]
        cursor = self._cursor(conn, compiled, self._args(compiled, params, None), many=False)
        try:
            return self._rows(conn, compiled, results, cursor, cursor.fetchall())
        finally:
            cursor.close()

    @staticmethod
    def _rows(conn, compiled, results: dict, cursor, rows) -> list[dict]:
        if not rows:
            return []
        shape = results.get("shape")
        if shape is None:
            dialect = conn.dialect
            processors = [(i, rc.type._cached_result_processor(dialect, d[1]))
                          for i, (rc, d) in enumerate(zip(compiled._result_columns, cursor.description))]
            shape = results["shape"] = ([rc.keyname for rc in compiled._result_columns],
                                        [(i, p) for i, p in processors if p is not None])
        keys, processors = shape
        out = []
        for row in rows:
            if processors:
                row = list(row)
                for i, p in processors:
                    row[i] = p(row[i])
            out.append(dict(zip(keys, row)))
        return out

    def run(self, conn, params) -> int:
        if isinstance(params, list) and len(params) == 1:
            params = params[0]  # one row: a plain execute (psycopg's executemany sets up a pipeline)
        many = isinstance(params, list)
        keys = frozenset(params[0] if many else params)
        compiled, eligible, extra = self._plan(conn.dialect, keys)
        if not (eligible and self._shortcut(conn)):
            return conn.execute(self.statement, params).rowcount
        defaults, values = extra["defaults"], None
        if many and conn.dialect.driver == "psycopg" and self.statement.is_insert \
                and len(params) * len(keys | frozenset(defaults)) <= _PSYCOPG_CACHED_PARAMS:
            # A few rows to PostgreSQL: one INSERT … VALUES (…), (…) instead of psycopg's executemany,
            # which sends a statement per row through a pipeline of its own. Not for many: psycopg parses
            # a statement of more parameters than it caches anew on every call (a batch of the timer
            # sweep: ≈ 15 ms for 100 audit rows), where executemany parses its one-row statement once.
            values = self._values_plan(conn.dialect, keys | frozenset(defaults), len(params))
        if many and values is not None:
            flat = {f"{k}__{i}": v for i, p in enumerate(params) for k, v in {**defaults, **p}.items()}
            compiled, args, many = values, self._args(values, flat, None), False
        elif many:
            args = [self._args(compiled, p, defaults) for p in params]
        else:
            args = self._args(compiled, params, defaults)
        cursor = self._cursor(conn, compiled, args, many)
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    def _values_plan(self, dialect, keys: frozenset, n: int):
        plans = self._plans[dialect]
        if (keys, n) not in plans:
            table = self.statement.table
            columns = [table.c[k] for k in sorted(keys)]
            compiled = insert(table).values(
                [{c: bindparam(f"{c.key}__{i}", type_=c.type) for c in columns} for i in range(n)]
            ).compile(dialect=dialect)
            plans[(keys, n)] = None if compiled.insert_prefetch else compiled  # None: executemany
        return plans[(keys, n)]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)

