"""Anchors of the audit chains: periodic seals of the dossiers' chain heads, kept outside the database.

Someone with write access to the database can cut a dossier's log back — delete its last events and set
the head recorded on the dossier back to the surviving last event, whose keyed hash is valid — and the
chain alone cannot show it (engine/dossiers/audit.py). An anchor records, as of one audit event id, the
head (seq, hash) of every dossier whose log grew since the previous anchor; a log that no longer holds the
head its latest anchor recorded was cut back (`audit.TRUNCATED_AFTER_ANCHOR`).

The anchors must not be rewritable by the same hand, so each one is
- chained: its HMAC (with the audit key) covers the previous anchor's hash, its id, time, the event id it
  covers, its number of heads and `root`, an HMAC over its heads in dossier order;
- sent through the outbox (event `audit_anchor`) to whoever receives it;
- appended as one JSON line to `anchors-YYYY-MM.jsonl` in MOTCUA_AUDIT_ANCHOR_DIR (config.audit_anchor_dir),
  after its transaction committed (a line never names an anchor the database lost), fsync'd. The writer
  is idempotent: every run appends every anchor newer than the files' last line, so a process that died
  between the commit and the write is caught up by the next run.

`verify` checks the anchors' own chain and roots, each dossier's latest anchored head against its log
(also for a dossier removed altogether), and every file line against its row: removing the latest
anchors along with the events shows as `anchor_missing`. What stays open: the events since the latest
anchor, and everything, for someone who can also rewrite the files (docs/audit.md).

One anchoring at a time: on PostgreSQL a transaction-level advisory lock (the loser gets None); SQLite's
writers are serialized already (store.db.begin_write). On PostgreSQL, event ids are drawn before their
transactions commit, possibly out of order; an anchor covers up to the highest id only once every
transaction that was writing audit events when it was read has ended, so no event below it can commit
later and be missed by the next anchor (which starts above it).
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Integer, and_, func, insert, literal, select, text, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from engine import clock, config
from engine.dossiers import audit, outbox
from engine.store.db import begin_write
from engine.store.models import AuditAnchor, AuditAnchorHead, AuditEvent, Dossier

log = logging.getLogger("motcua.audit")

EVENT_KIND = "audit_anchor"   # the outbox event
FILE_PREFIX, FILE_SUFFIX = "anchors-", ".jsonl"
# pg_try_advisory_xact_lock's key: one number for "anchoring the audit chains" across every process.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"motcua.audit_anchor").digest()[:8], "big", signed=True)
SETTLE_SECONDS = 10.0   # how long an anchoring waits for the transactions writing audit events to end
SETTLE_POLL = 0.01
TAIL_BYTES = 65536      # what is read from the end of a file to find its last line
_ROOT_PREFIX = b"motcua audit anchor root v1\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Why a verification fails (reason codes, stable for the CLI and the screens).
TRUNCATED, ANCHOR_MISSING, ANCHOR_MISMATCH, ANCHOR_BROKEN, ROOT_MISMATCH, FILE_INVALID = (
    "truncated", "anchor_missing", "anchor_mismatch", "anchor_broken", "root_mismatch", "file_invalid")
REASONS = {
    TRUNCATED: "events recorded at an anchor are missing (the log was cut back, or the dossier removed)",
    ANCHOR_MISSING: "a line of the anchor files names an anchor the database no longer has",
    ANCHOR_MISMATCH: "an anchor differs from its line in the anchor files",
    ANCHOR_BROKEN: "the anchors' own chain is broken: an anchor was changed, inserted or removed",
    ROOT_MISMATCH: "an anchor's recorded heads do not match its root: a head was changed, added or removed",
    FILE_INVALID: "a line of the anchor files cannot be read or does not match its own hash",
}


class AnchorDeferred(RuntimeError):
    """Transactions writing audit events did not end in time: nothing was anchored; try again later."""


class AnchorFileError(RuntimeError):
    """The anchor was committed but its line could not be written; the next anchoring writes it (unless the
    cause is `FilesAhead`: the files end at an anchor the database does not hold as they do)."""

    def __init__(self, anchor: Anchor | None, cause: OSError):
        super().__init__(f"cannot write the anchor files: {cause}")
        self.anchor, self.cause = anchor, cause


@dataclass(frozen=True)
class Anchor:
    id: int
    created_at: datetime
    up_to_event_id: int
    dossiers: int
    root: str
    prev_hash: str
    hash: str

    def record(self) -> dict:
        """What the file line and the outbox event carry (the created_at in UTC, as hashed)."""
        return {"id": self.id, "created_at": self.created_at.isoformat(), "up_to_event_id": self.up_to_event_id,
                "dossiers": self.dossiers, "root": self.root, "prev_hash": self.prev_hash, "hash": self.hash}

    @classmethod
    def of(cls, row) -> Anchor:
        return cls(row.id, row.created_at, row.up_to_event_id, row.dossiers, row.root, row.prev_hash, row.hash)


def _digest(key: bytes, prev_hash: str, anchor_id: int, created_at: datetime, up_to_event_id: int, dossiers: int,
            root: str) -> str:
    return hmac.new(key, audit._json({"v": "anchor", "prev": prev_hash, "id": anchor_id,
                                      "created_at": created_at.isoformat(), "up_to_event_id": up_to_event_id,
                                      "dossiers": dossiers, "root": root}), hashlib.sha256).hexdigest()


def _root_mac(key: bytes) -> hmac.HMAC:
    return hmac.new(key, _ROOT_PREFIX, hashlib.sha256)


def _add_head(mac: hmac.HMAC, dossier_id: int, seq: int, head: str) -> None:
    mac.update(f"{dossier_id} {seq} {head}\n".encode("ascii"))


def _utc_ms(at: datetime) -> datetime:
    at = at.astimezone(timezone.utc)
    return at.replace(microsecond=(at.microsecond // 1000) * 1000)  # what both databases give back


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _try_lock(conn: Connection) -> bool:
    return not _postgres(conn) or bool(conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}))


_COLUMNS = (AuditAnchor.id, AuditAnchor.created_at, AuditAnchor.up_to_event_id, AuditAnchor.dossiers,
            AuditAnchor.root, AuditAnchor.prev_hash, AuditAnchor.hash)


def latest(session: Session) -> Anchor | None:
    """The newest anchor, or None."""
    row = session.execute(select(*_COLUMNS).order_by(AuditAnchor.id.desc()).limit(1)).first()
    return Anchor.of(row) if row is not None else None


# --- anchoring -----------------------------------------------------------------------------------
def unsealed_since(session: Session) -> datetime | None:
    """When the oldest audit event no anchor covers yet was written (None: every event is sealed). Read only."""
    sealed = select(func.coalesce(func.max(AuditAnchor.up_to_event_id), 0)).scalar_subquery()
    try:
        at = session.scalar(select(AuditEvent.at).where(AuditEvent.id > sealed).order_by(AuditEvent.id).limit(1))
    finally:
        session.rollback()
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def waited_too_long(since: datetime | None, now: datetime, every: float | None = None) -> bool:
    """Whether events unsealed since `since` have waited more than three anchoring intervals (`every`
    seconds; by default the configured one; 0, anchoring by hand or cron, is judged on the default): the
    window the anchors leave open is growing — no timer worker anchors, or someone holds the anchoring lock."""
    if since is None:
        return False
    if every is None:
        try:
            every = config.audit_anchor_seconds()
        except config.ConfigError:
            every = 0.0  # judged on the default; the worker itself refuses the bad value
    return (now - since).total_seconds() > 3 * (every or config.AUDIT_ANCHOR_SECONDS)


def anchor(session: Session, now: datetime | None = None, *, directory: Path | None = None) -> Anchor | None:
    """Seal the heads of the dossiers whose logs grew since the previous anchor (one transaction), then
    append every anchor not yet in the files to them. None when there was nothing new, or another process
    is anchoring now (PostgreSQL). Raises AnchorDeferred when transactions writing audit events did not end
    within SETTLE_SECONDS (nothing written), AnchorFileError when the anchor was committed but the files
    could not be written (the next call writes the line)."""
    key = config.audit_key()
    begin_write(session)
    try:
        conn = session.connection()
        if not _try_lock(conn):
            session.rollback()
            return None  # another process anchors (and then writes the files)
        made = _anchor(session, conn, key, now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    try:
        export(session, directory)
    except OSError as exc:
        raise AnchorFileError(made, exc) from exc
    return made


def _anchor(session: Session, conn: Connection, key: bytes, given: datetime | None) -> Anchor | None:
    prev = latest(session)
    after = prev.up_to_event_id if prev is not None else 0
    up_to = _settled_max_event_id(conn)
    now = _utc_ms(given or clock.now())  # after the wait for writers: no event it covers is later than it
    if up_to is None or up_to <= after:
        return None
    anchor_id, prev_hash = (prev.id + 1, prev.hash) if prev is not None else (1, audit.GENESIS)
    conn.execute(insert(AuditAnchor).values(id=anchor_id, created_at=now, up_to_event_id=up_to, dossiers=0, root="",
                                            prev_hash=prev_hash, hash=""))
    # Each dossier's head as of event `up_to`: its event of the highest seq among its new ones (a dossier's
    # events are written under its row lock, so their ids rise with their seq).
    grown = (select(AuditEvent.dossier_id, func.max(AuditEvent.seq).label("seq"))
             .where(AuditEvent.id > after, AuditEvent.id <= up_to).group_by(AuditEvent.dossier_id).subquery())
    # Never seal a log that no longer holds its previously sealed head (cut back below it, the event
    # replaced or renumbered): the new head would launder the cut. Such a dossier keeps its old head as its
    # latest, so every check keeps reporting it.
    previous, event = aliased(AuditAnchorHead), aliased(AuditEvent)
    last_sealed = (select(func.max(AuditAnchorHead.anchor_id))
                   .where(AuditAnchorHead.dossier_id == grown.c.dossier_id, AuditAnchorHead.anchor_id < anchor_id)
                   .scalar_subquery())
    broken = (select(literal(1)).select_from(previous)
              .outerjoin(event, and_(event.dossier_id == previous.dossier_id, event.seq == previous.seq))
              .where(previous.dossier_id == grown.c.dossier_id, previous.anchor_id == last_sealed,
                     event.hash.is_(None) | (event.hash != previous.head) | (previous.seq > grown.c.seq))
              .exists())
    heads = (select(literal(anchor_id, Integer), AuditEvent.dossier_id, AuditEvent.seq, AuditEvent.hash)
             .join(grown, and_(AuditEvent.dossier_id == grown.c.dossier_id, AuditEvent.seq == grown.c.seq))
             .where(~broken))
    conn.execute(insert(AuditAnchorHead).from_select(["anchor_id", "dossier_id", "seq", "head"], heads))
    mac, count = _root_mac(key), 0
    rows = conn.execute(select(AuditAnchorHead.dossier_id, AuditAnchorHead.seq, AuditAnchorHead.head)
                        .where(AuditAnchorHead.anchor_id == anchor_id).order_by(AuditAnchorHead.dossier_id)
                        .execution_options(yield_per=5000))
    for dossier_id, seq, head in rows:
        _add_head(mac, dossier_id, seq, head)
        count += 1
    root = mac.hexdigest()
    made = Anchor(anchor_id, now, up_to, count, root, prev_hash,
                  _digest(key, prev_hash, anchor_id, now, up_to, count, root))
    conn.execute(update(AuditAnchor).where(AuditAnchor.id == anchor_id)
                 .values(dossiers=count, root=root, hash=made.hash))
    event_id = str(uuid.uuid4())
    outbox.write(session, [{"event_id": event_id, "dossier_id": None, "kind": EVENT_KIND, "occurred_at": now,
                            "payload": {"event_id": event_id, "event": EVENT_KIND,
                                        "occurred_at": clock.local(now).isoformat(), "anchor": made.record()}}])
    return made


_WRITERS = text("SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND relation = 'audit_events'::regclass AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()")


def _settled_max_event_id(conn: Connection) -> int | None:
    """The highest audit event id, once no event at or below it can still commit. On PostgreSQL ids are
    drawn (by an INSERT holding the table's ROW EXCLUSIVE lock till its transaction ends) before commit,
    so an id below the highest committed one may belong to a transaction in flight: wait for those."""
    up_to = conn.scalar(select(func.max(AuditEvent.id)))
    if not _postgres(conn):
        return up_to  # BEGIN IMMEDIATE: no other writer is in flight
    waiting = set(conn.scalars(_WRITERS))
    deadline = time.monotonic() + SETTLE_SECONDS
    while waiting:
        if time.monotonic() > deadline:
            raise AnchorDeferred(f"{len(waiting)} transaction(s) writing audit events did not end within "
                                 f"{SETTLE_SECONDS:g} s; nothing anchored")
        time.sleep(SETTLE_POLL)
        waiting &= set(conn.scalars(_WRITERS))
    return up_to


# --- the files -----------------------------------------------------------------------------------
def file_name(at: datetime) -> str:
    return f"{FILE_PREFIX}{clock.local(at):%Y-%m}{FILE_SUFFIX}"


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.startswith(FILE_PREFIX) and p.name.endswith(FILE_SUFFIX) and p.is_file())


def _last_record(key: bytes, path: Path) -> dict | None:
    """The last line of an anchor file that verifies with the key (None: none does). A line that is not
    ours — another installation's, or a forged `{"id": 999999999}` — must not stop the writer."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        for start in (max(0, size - TAIL_BYTES), 0):
            fh.seek(start)
            lines = fh.read().split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first may be cut
            for line in reversed(lines):
                if line.strip():
                    record = _parse_line(key, line)
                    if isinstance(record, dict):
                        return record
            if start == 0:
                break
    return None


def _line_id(line: bytes) -> int | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    anchor_id = value.get("id") if isinstance(value, dict) else None
    return anchor_id if isinstance(anchor_id, int) and not isinstance(anchor_id, bool) else None


def _files_end(key: bytes, directory: Path) -> dict | None:
    """The newest anchor the files hold (a verified line; None: none): each file is appended in id order."""
    ends = [r for r in (_last_record(key, p) for p in _files(directory)) if r is not None]
    return max(ends, key=lambda r: r["id"], default=None)


class FilesAhead(OSError):
    """The files end at an anchor the database does not have, or holds differently (a restore from backup)."""


@contextmanager
def _directory_lock(directory: Path):
    """Processes of one host writing the same directory take turns (PostgreSQL's advisory lock orders hosts)."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def directory_for(session: Session) -> Path:
    """The anchor files' directory of the session's database (config.audit_anchor_dir)."""
    return config.audit_anchor_dir(session.get_bind().url.render_as_string(hide_password=True))


def export(session: Session, directory: Path | None = None, *, batch: int = 1000) -> int:
    """Append to the anchor files every anchor newer than their last line (in id order, each to the file
    of its month, fsync'd); returns the lines written. Skipped (0) while another process anchors or
    writes on PostgreSQL: that one writes them."""
    directory = Path(directory or directory_for(session))
    key = config.audit_key()
    if session.in_transaction():
        session.rollback()
    written = 0
    try:
        conn = session.connection()
        if not _try_lock(conn):
            return 0
        directory.mkdir(parents=True, exist_ok=True)
        with _directory_lock(directory):
            end = _files_end(key, directory)
            after = end["id"] if end is not None else 0
            if end is not None:
                held = conn.scalar(select(AuditAnchor.hash).where(AuditAnchor.id == after))
                if held != end["hash"]:
                    raise FilesAhead(
                        f"the anchor files end at anchor {after}, which the database "
                        + ("does not have" if held is None else "holds differently")
                        + " (restored from a backup?): move the files aside and anchor again")
            while True:
                rows = conn.execute(select(*_COLUMNS).where(AuditAnchor.id > after)
                                    .order_by(AuditAnchor.id).limit(batch)).all()
                if not rows:
                    break
                by_file: dict[str, list[bytes]] = {}
                for row in rows:
                    line = json.dumps(Anchor.of(row).record(), sort_keys=True, separators=(",", ":")) + "\n"
                    by_file.setdefault(file_name(row.created_at), []).append(line.encode("ascii"))
                for name, lines in by_file.items():
                    _append(directory / name, lines)
                    written += len(lines)
                after = rows[-1].id
    finally:
        session.rollback()  # read only; ends the advisory lock's transaction
    return written


def _append(path: Path, lines: list[bytes]) -> None:
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        size = os.fstat(fd).st_size
        data = b"".join(lines)
        if size and _last_byte(path, size) != b"\n":
            data = b"\n" + data  # a line cut by a crash stays a line of its own, not glued to this one
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # a full disk leaves no half line behind (verify would fail on it forever)
            raise
    finally:
        os.close(fd)
    if new:  # the new file's name must survive a crash too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)


# --- verifying -----------------------------------------------------------------------------------
@dataclass
class AnchorFailure:
    reason: str                    # one of REASONS
    anchor_id: int | None = None
    dossier_id: int | None = None
    code: str | None = None        # the dossier's code, while the dossier exists
    seq: int | None = None         # truncated: the event the anchor recorded
    detail: str = ""

    def line(self) -> str:
        """One line for a terminal."""
        what = f"anchor {self.anchor_id}" if self.anchor_id is not None else "anchors"
        if self.dossier_id is not None:
            what += f", dossier {self.code or f'id {self.dossier_id} (removed)'}"
        return f"{what}: {self.reason} — {self.detail or REASONS[self.reason]}"


@dataclass
class AnchorVerdict:
    latest: Anchor | None = None
    anchors: int = 0              # anchors whose own chain was checked
    roots: int = 0                # anchors whose root was recomputed from their heads
    heads: int = 0                # dossiers whose latest anchored head was checked against their log
    lines: int = 0                # file lines read
    files: int = 0
    exported_up_to: int = 0       # the highest anchor id in the files
    unexported: list[tuple[int, int]] = field(default_factory=list)  # ranges of anchor ids in no file
    failures: list[AnchorFailure] = field(default_factory=list)
    unsealed_since: datetime | None = None  # when the oldest event no anchor covers yet was written

    def overdue(self, now: datetime) -> bool:
        """`waited_too_long` for the oldest unsealed event, at the configured interval."""
        return waited_too_long(self.unsealed_since, now)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify(session: Session, *, directory: Path | None = None, batch: int = 1000, chain: bool = True,
           roots: bool = True, roots_limit: int | None = None, heads: bool = True, files: bool = True,
           recent: int | None = None) -> AnchorVerdict:
    """Verify the anchors, in batches (each its own short read; a province has millions of dossiers):
    - `files`: every line of the anchor files matches its own hash and an anchor row (read first: a line
      is written only after its row committed);
    - `chain`: the anchors' own chain (HMAC, links, consecutive ids);
    - `roots`: each anchor's root recomputed from its heads (`roots_limit`: the newest so many only);
    - `heads`: for each dossier's latest anchored head, the dossier still has that event with that hash,
      and its recorded head is not below it (a dossier removed with its log fails here too).
    `recent`: the chain, the roots and the files for the newest so many anchors only (their links to each
    other and to the anchor before them; the two newest files) — a page's quick look, in constant time
    after years of anchors (one every 5 minutes is 105,000 a year); `motcua audit verify` checks them all.
    Anchors made while it runs are left for the next verification."""
    key = config.audit_key()
    directory = Path(directory or directory_for(session))
    verdict = AnchorVerdict()
    lines = _read_files(key, directory, verdict, newest=2 if recent else None) if files else {}
    verdict.latest = latest(session)
    session.rollback()
    verdict.unsealed_since = unsealed_since(session)
    top = verdict.latest.id if verdict.latest is not None else 0
    first = max(1, top - recent + 1) if recent else 1
    lines = {i: line for i, line in lines.items() if i >= first}
    if chain or lines:
        _check_chain(session, key, top, batch, lines, verdict, chain, first)
    if files:
        verdict.unexported = _gaps(sorted(i for i in lines if i <= top), top, first)
    if roots and top:
        _check_roots(session, key, top, batch, recent if recent else roots_limit, verdict)
    if heads and top:
        _check_heads(session, top, batch, verdict)
    return verdict


def _read_files(key: bytes, directory: Path, verdict: AnchorVerdict,
                newest: int | None = None) -> dict[int, tuple[dict, str]]:
    """Every readable, self-consistent line of the anchor files (the `newest` so many files only, when
    given) by anchor id (the first line of each id)."""
    found: dict[int, tuple[dict, str]] = {}
    try:
        paths = _files(directory)
    except OSError as exc:  # a failing disk, a stale mount, a directory this user may not read
        verdict.failures.append(AnchorFailure(FILE_INVALID, detail=f"{directory}: cannot be read: {exc}"))
        return found
    for path in paths[-newest:] if newest else paths:
        verdict.files += 1
        try:
            _read_file(key, path, verdict, found)
        except OSError as exc:
            verdict.failures.append(AnchorFailure(FILE_INVALID, detail=f"{path.name}: cannot be read: {exc}"))
    return found


def _read_file(key: bytes, path: Path, verdict: AnchorVerdict, found: dict[int, tuple[dict, str]]) -> None:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            verdict.lines += 1
            where = f"{path.name} line {number}"
            record = _parse_line(key, raw)
            if isinstance(record, str):
                verdict.failures.append(AnchorFailure(FILE_INVALID, _line_id(raw), detail=f"{where}: {record}"))
                continue
            verdict.exported_up_to = max(verdict.exported_up_to, record["id"])
            if record["id"] in found and found[record["id"]][0]["hash"] != record["hash"]:
                verdict.failures.append(AnchorFailure(ANCHOR_MISMATCH, record["id"], detail=(
                    f"{where} differs from {found[record['id']][1]} for the same anchor")))
            # Only what the checks compare is kept (a year of anchors is 105,000 lines): the hash, and where.
            found.setdefault(record["id"], ({"hash": record["hash"]}, where))


def _parse_line(key: bytes, raw: bytes) -> dict | str:
    """A file line as a record, or why it is not one."""
    try:
        record = json.loads(raw)
        created_at = datetime.fromisoformat(record["created_at"])
        ints = [record[k] for k in ("id", "up_to_event_id", "dossiers")]
        strings = [record[k] for k in ("root", "prev_hash", "hash")]
    except (ValueError, KeyError, TypeError):
        return "not an anchor record"
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or \
            not all(isinstance(v, str) for v in strings) or created_at.tzinfo is None:
        return "not an anchor record"
    expected = _digest(key, record["prev_hash"], record["id"], created_at, record["up_to_event_id"],
                       record["dossiers"], record["root"])
    if not hmac.compare_digest(expected, record["hash"]):
        return f"the line of anchor {record['id']} does not match its own hash: it was changed after it was written"
    return record


def _batches(session: Session, make_query, start, batch: int, position) -> Iterator:
    """Rows of a keyset-paginated query, each batch its own short read."""
    after = start
    while True:
        rows = session.execute(make_query(after).limit(batch)).all()
        session.rollback()
        yield from rows
        if len(rows) < batch:
            return
        after = position(rows[-1])


def _check_chain(session, key, top, batch, lines, verdict, chain: bool, first: int = 1) -> None:
    """The anchors' own chain from anchor `first` (when `chain`; its link to the anchor before it too) and
    each anchor of the files against its row."""
    prev_id, prev_hash, seen = first - 1, audit.GENESIS, set()
    if first > 1:
        prev_hash = session.execute(select(AuditAnchor.hash).where(AuditAnchor.id == first - 1)).scalar()
        session.rollback()
        if prev_hash is None:
            verdict.failures.append(AnchorFailure(ANCHOR_BROKEN, first - 1, detail=f"anchor {first - 1} is missing"))
    rows = _batches(session, lambda after: select(*_COLUMNS).where(AuditAnchor.id > after, AuditAnchor.id <= top)
                    .order_by(AuditAnchor.id), first - 1, batch, lambda r: r.id)
    for row in rows:
        record = lines.get(row.id)
        if record is not None:
            seen.add(row.id)
        if record is not None and record[0]["hash"] != row.hash:
            verdict.failures.append(AnchorFailure(ANCHOR_MISMATCH, row.id, detail=(
                f"the database's anchor {row.id} is not the one in {record[1]} (hash {row.hash[:16]}… there "
                f"{record[0]['hash'][:16]}…)")))
        if not chain:
            continue
        verdict.anchors += 1
        if row.id != prev_id + 1 or row.prev_hash != prev_hash:
            verdict.failures.append(AnchorFailure(ANCHOR_BROKEN, row.id, detail=(
                f"anchor {row.id} does not follow anchor {prev_id}" + (" (anchors between them are missing)"
                                                                       if row.id != prev_id + 1 else ""))))
        elif not hmac.compare_digest(_digest(key, row.prev_hash, row.id, row.created_at, row.up_to_event_id,
                                             row.dossiers, row.root), row.hash):
            verdict.failures.append(AnchorFailure(ANCHOR_BROKEN, row.id, detail=(
                f"anchor {row.id} does not match its hash: it was changed after it was made")))
        prev_id, prev_hash = row.id, row.hash
    if chain and prev_id != top:
        verdict.failures.append(AnchorFailure(ANCHOR_BROKEN, top, detail=f"anchors {prev_id + 1}–{top} are missing"))
    for anchor_id in sorted(i for i in lines if i not in seen):
        verdict.failures.append(AnchorFailure(ANCHOR_MISSING, anchor_id, detail=(
            f"{lines[anchor_id][1]} names anchor {anchor_id}, which the database does not have"
            + (f" (its newest is {top or 'none'})" if anchor_id > top else ""))))


def _gaps(ids: list[int], top: int, first: int = 1) -> list[tuple[int, int]]:
    gaps, expected = [], first
    for i in ids:
        if i > expected:
            gaps.append((expected, i - 1))
        expected = i + 1
    if expected <= top:
        gaps.append((expected, top))
    return gaps


def _check_roots(session, key, top, batch, roots_limit, verdict) -> None:
    first = 1 if roots_limit is None else max(1, top - roots_limit + 1)
    anchors = _batches(session, lambda after: select(*_COLUMNS).where(AuditAnchor.id > after, AuditAnchor.id <= top)
                       .order_by(AuditAnchor.id), first - 1, batch, lambda r: r.id)
    head_rows = _batches(
        session,
        lambda after: select(AuditAnchorHead.anchor_id, AuditAnchorHead.dossier_id, AuditAnchorHead.seq,
                             AuditAnchorHead.head)
        .where(AuditAnchorHead.anchor_id <= top,
               tuple_(AuditAnchorHead.anchor_id, AuditAnchorHead.dossier_id) > tuple_(after[0], after[1]))
        .order_by(AuditAnchorHead.anchor_id, AuditAnchorHead.dossier_id),
        (first - 1, 0), batch, lambda r: (r.anchor_id, r.dossier_id))
    pending = next(head_rows, None)
    for row in anchors:
        mac, count, malformed = _root_mac(key), 0, False
        while pending is not None and pending.anchor_id <= row.id:
            if pending.anchor_id == row.id:
                # A head is 64 hex digits: a longer one could hide a removed neighbour's line in the root's bytes.
                malformed |= _HEX64.fullmatch(pending.head or "") is None
                _add_head(mac, pending.dossier_id, pending.seq, pending.head)
                count += 1
            pending = next(head_rows, None)
        verdict.roots += 1
        if malformed or count != row.dossiers or not hmac.compare_digest(mac.hexdigest(), row.root):
            verdict.failures.append(AnchorFailure(ROOT_MISMATCH, row.id, detail=(
                f"anchor {row.id} sealed {row.dossiers} dossiers' heads; the {count} recorded now do not match "
                "its root: a head was changed, added or removed")))


def _check_heads(session, top, batch, verdict) -> None:
    """Every anchored head, not only each dossier's latest: a log cut back below an older anchor and then
    sealed again (before anchoring refused to) still shows. The first failing anchor per dossier is reported."""
    def query(after):
        return (select(AuditAnchorHead.dossier_id, AuditAnchorHead.anchor_id, AuditAnchorHead.seq,
                       AuditAnchorHead.head, Dossier.code, Dossier.audit_seq, AuditEvent.hash)
                .outerjoin(Dossier, Dossier.id == AuditAnchorHead.dossier_id)
                .outerjoin(AuditEvent, and_(AuditEvent.dossier_id == AuditAnchorHead.dossier_id,
                                            AuditEvent.seq == AuditAnchorHead.seq))
                .where(AuditAnchorHead.anchor_id <= top,
                       tuple_(AuditAnchorHead.dossier_id, AuditAnchorHead.anchor_id) > tuple_(after[0], after[1]))
                .order_by(AuditAnchorHead.dossier_id, AuditAnchorHead.anchor_id))

    reported, last_dossier = set(), None
    for row in _batches(session, query, (0, 0), batch, lambda r: (r.dossier_id, r.anchor_id)):
        if row.dossier_id != last_dossier:
            verdict.heads += 1
            last_dossier = row.dossier_id
        if row.dossier_id in reported:
            continue
        problems = []
        if row.code is None:
            problems.append("the dossier was removed, its log with it")
        elif row.hash is None:
            problems.append(f"its event {row.seq} is gone")
        elif row.hash != row.head:
            problems.append(f"its event {row.seq} is not the one recorded")
        if row.code is not None and row.audit_seq < row.seq:
            problems.append(f"the head recorded on the dossier was set back to event {row.audit_seq}")
        if problems:
            reported.add(row.dossier_id)
            verdict.failures.append(AnchorFailure(TRUNCATED, row.anchor_id, row.dossier_id, row.code, row.seq, (
                f"events recorded at anchor {row.anchor_id} are missing: {', and '.join(problems)}")))
