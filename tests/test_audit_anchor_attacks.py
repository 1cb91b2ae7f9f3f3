"""The audit anchors (engine/dossiers/anchors.py) against attacks by someone with write access to the
database (not the key, not the anchor files), failures of the files, concurrency and time. On SQLite and
PostgreSQL."""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from conftest import login, receive, vn
from sqlalchemy import delete, func, insert, select, text, update
from test_audit_anchors import cut_back, file_records, reasons
from test_audit_chain import advance, events_of

from engine.dossiers import anchors, audit, timer_worker
from engine.dossiers.timer_worker import TimerWorker
from engine.store.db import Base, begin_write
from engine.store.models import AuditAnchor, AuditAnchorHead, AuditEvent, Dossier, OutboxEvent
from motcua.cli import main

AT = vn(2026, 11, 2, 12, 0)


def check(session, d) -> audit.ChainCheck:
    session.rollback()
    return audit.check_chain(session, d.id)


def seen(session, d, directory) -> tuple:
    """What the dossier's check and the full verification (files included) report."""
    reason = check(session, d).reason
    session.rollback()
    return reason, reasons(anchors.verify(session, directory=directory))


# --- integrity: a cut-back log sealed again by the next anchor --------------------------------------
def test_a_cut_back_log_is_not_sealed_again_when_the_office_works_on(session, office, audit_anchor_dir):
    """The attacker cuts the log back (events and head) below what anchor 1 sealed; the office goes on with
    the dossier, and the next anchoring seals the new, shorter-history head. The anchored event n must still
    be missing from the log for every check."""
    d = receive(session, office)
    advance(session, office, d, 2)
    n = d.audit_seq
    anchors.anchor(session, AT)
    receive(session, office, at=vn(2026, 11, 2, 13, 0))  # the office's day goes on: later event ids
    cut_back(session, d, n - 2)
    assert check(session, d).reason == audit.TRUNCATED_AFTER_ANCHOR  # caught so far
    advance(session, office, d, 1, start=vn(2026, 11, 2, 14, 0))  # the office works on (events n-1', n')
    anchors.anchor(session, AT + timedelta(hours=3))  # the timer worker's next anchor
    assert seen(session, d, audit_anchor_dir) == (audit.TRUNCATED_AFTER_ANCHOR, [(anchors.TRUNCATED, 1)])


def test_a_cut_back_log_is_not_sealed_again_by_renumbering_its_last_event(session, office, audit_anchor_dir):
    """No office work needed: after the cut, the attacker gives the surviving last event a fresh id, so the
    next anchoring (the timer worker, within 5 minutes) takes it for a new event and seals the short head."""
    d = receive(session, office)
    advance(session, office, d, 2)
    n = d.audit_seq
    anchors.anchor(session, AT)
    cut_back(session, d, n - 2)
    session.execute(update(AuditEvent).where(AuditEvent.dossier_id == d.id, AuditEvent.seq == n - 2)
                    .values(id=fresh_event_id(session)))
    session.commit()
    anchors.anchor(session, AT + timedelta(hours=3))
    assert seen(session, d, audit_anchor_dir) == (audit.TRUNCATED_AFTER_ANCHOR, [(anchors.TRUNCATED, 1)])


def fresh_event_id(session) -> int:
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(text("SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))"))
    # SQLite reuses the highest rowid after a delete: above the latest anchor's events too
    return max(session.scalar(select(func.max(AuditEvent.id))), anchors.latest(session).up_to_event_id) + 1


def test_a_head_row_folded_into_its_neighbours_line_breaks_the_root(session, office, audit_anchor_dir):
    """The root is an HMAC over "<dossier_id> <seq> <head>\\n" lines: a head column holding a newline can carry
    the next dossier's whole line, so that dossier's head row can be deleted with the root unchanged. The
    anchor's own `dossiers` count (under its HMAC) says one head is missing: verify must compare it (and the
    heads' form).
    SQLite does not enforce String(64); on PostgreSQL the tables' owner — the application's user, which runs
    the migrations — widens the column first."""
    a = receive(session, office)
    advance(session, office, a, 1)
    b = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    advance(session, office, b, 2)
    n = b.audit_seq
    first = anchors.anchor(session, AT)
    advance(session, office, a, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))  # a's latest head is anchor 2's: anchor 1's row of a is
    session.rollback()                                  # checked by the root only
    postgres = session.get_bind().dialect.name == "postgresql"
    try:
        if postgres:
            session.execute(text("ALTER TABLE audit_anchor_heads ALTER COLUMN head TYPE varchar(200)"))
        row_a = session.execute(select(AuditAnchorHead).where(AuditAnchorHead.anchor_id == 1,
                                                              AuditAnchorHead.dossier_id == a.id)).scalar_one()
        row_b = session.execute(select(AuditAnchorHead).where(AuditAnchorHead.anchor_id == 1,
                                                              AuditAnchorHead.dossier_id == b.id)).scalar_one()
        folded = f"{row_a.head}\n{b.id} {row_b.seq} {row_b.head}"
        session.execute(delete(AuditAnchorHead).where(AuditAnchorHead.anchor_id == 1,
                                                      AuditAnchorHead.dossier_id == b.id))
        session.execute(update(AuditAnchorHead).where(AuditAnchorHead.anchor_id == 1,
                                                      AuditAnchorHead.dossier_id == a.id).values(head=folded))
        session.commit()
        cut_back(session, b, n - 2)
        assert first.dossiers == 2
        reason, found = seen(session, b, audit_anchor_dir)
        assert reason is None  # b has no anchored head left: only the anchors' verification can tell
        assert (anchors.ROOT_MISMATCH, 1) in found
    finally:
        if postgres:
            session.rollback()
            session.execute(update(AuditAnchorHead).values(head=func.left(AuditAnchorHead.head, 64)))
            session.execute(text("ALTER TABLE audit_anchor_heads ALTER COLUMN head TYPE varchar(64)"))
            session.commit()


# --- the files ---------------------------------------------------------------------------------------
def foreign_line(anchor_id: int) -> str:
    """A well-formed anchor line made with another installation's key."""
    record = {"id": anchor_id, "created_at": "2026-11-02T05:00:00+00:00", "up_to_event_id": 90817, "dossiers": 3,
              "root": "a" * 64, "prev_hash": "b" * 64}
    record["hash"] = anchors._digest(b"another-installation-key-0123456789abcdef", record["prev_hash"], anchor_id,
                                     datetime.fromisoformat(record["created_at"]), 90817, 3, "a" * 64)
    return json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"


def test_a_line_that_is_not_ours_does_not_stop_the_writer(session, office, audit_anchor_dir):
    """Another installation's line (a shared or copied directory), or one appended by whoever may append to
    an append-only (`chattr +a`) file: the writer must not take its id for the files' last anchor (it did,
    and silently wrote no anchor up to that id)."""
    d = receive(session, office)
    anchors.anchor(session, AT)
    path = audit_anchor_dir / "anchors-2026-11.jsonl"
    with open(path, "a") as fh:
        fh.write(foreign_line(10_000))
    advance(session, office, d, 1, start=vn(2026, 11, 2, 14, 0))
    made = anchors.anchor(session, AT + timedelta(hours=3))
    assert [r["id"] for r in file_records(audit_anchor_dir)] == [1, 10_000, made.id]
    verdict = anchors.verify(session, directory=audit_anchor_dir)
    assert reasons(verdict) == [(anchors.FILE_INVALID, 10_000)] and verdict.unexported == []


def test_a_full_disk_leaves_no_broken_line_behind(session, office, audit_anchor_dir, monkeypatch):
    """ENOSPC in the middle of a write: the anchor is committed, AnchorFileError says so, and the next
    anchoring writes the line. Nothing was tampered with, so the files must verify afterwards (a half line
    left in the file would fail every `motcua audit verify` from then on: exit status 1, file_invalid)."""
    d = receive(session, office)
    real, calls = anchors.os.write, []

    def full(fd, data):
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            return real(fd, data)  # not an anchor file
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[: len(data) // 2]))  # what fitted
        raise OSError(errno.ENOSPC, "No space left on device")
    with monkeypatch.context() as patch:
        patch.setattr(anchors.os, "write", full)
        with pytest.raises(anchors.AnchorFileError):
            anchors.anchor(session, AT)
    advance(session, office, d, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))  # space again: the missing lines are written
    verdict = anchors.verify(session, directory=audit_anchor_dir)
    assert reasons(verdict) == [] and verdict.unexported == []


def test_a_file_the_server_cannot_read_is_reported_not_raised(session, office, audit_anchor_dir):
    """An anchor file that cannot be read (EIO from a failing disk or a stale NFS mount — here a file that
    answers every read with EIO; EACCES when the web server's user may not read the worker's files): verify
    says which file, the CLI and the admin page do not die on it."""
    receive(session, office)
    anchors.anchor(session, AT)
    (audit_anchor_dir / "anchors-2026-10.jsonl").symlink_to("/proc/self/mem")  # every read: EIO
    verdict = anchors.verify(session, directory=audit_anchor_dir)
    assert [f.reason for f in verdict.failures] == [anchors.FILE_INVALID]
    assert "anchors-2026-10.jsonl" in verdict.failures[0].detail


def test_duplicate_lines_and_a_last_line_without_newline_verify(session, office, audit_anchor_dir):
    d = receive(session, office)
    anchors.anchor(session, AT)
    path = audit_anchor_dir / "anchors-2026-11.jsonl"
    line = path.read_text()
    path.write_text(line + line.rstrip("\n"))  # the same line twice, the last one without its newline
    advance(session, office, d, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))
    assert [r["id"] for r in file_records(audit_anchor_dir)] == [1, 1, 2]
    assert anchors.verify(session, directory=audit_anchor_dir).ok


def test_lines_missed_by_a_crash_are_written_once_in_order_into_their_months(session, office, audit_anchor_dir,
                                                                              monkeypatch):
    """Crash between commit and write for two anchors either side of a month's end (local time), then the
    next anchoring: each line once, in order, in its month's file."""
    d = receive(session, office)
    with monkeypatch.context() as patch:
        patch.setattr(anchors, "export", lambda *a, **k: None)  # the process died after the commit
        anchors.anchor(session, vn(2026, 11, 30, 23, 50))
        advance(session, office, d, 1, start=vn(2026, 11, 30, 23, 55))
        anchors.anchor(session, vn(2026, 12, 1, 0, 5))
    advance(session, office, d, 1, start=vn(2026, 12, 1, 0, 10))
    anchors.anchor(session, vn(2026, 12, 1, 0, 15))
    anchors.anchor(session, vn(2026, 12, 1, 0, 20))  # nothing new: writes nothing twice
    files = {p.name: [json.loads(x)["id"] for x in p.read_text().splitlines()]
             for p in sorted(audit_anchor_dir.glob("anchors-*.jsonl"))}
    assert files == {"anchors-2026-11.jsonl": [1], "anchors-2026-12.jsonl": [2, 3]}
    assert anchors.verify(session, directory=audit_anchor_dir).ok


# --- time ------------------------------------------------------------------------------------------
def test_an_anchor_at_2330_utc_on_the_31st_goes_to_the_next_months_file(session, office, audit_anchor_dir, ui):
    """23:30 UTC on 31 October is 06:30 on 1 November in Vietnam: the November file (local month, as
    documented), and both verifications find it there; the register prints the local time."""
    receive(session, office)
    at = datetime(2026, 10, 31, 23, 30, tzinfo=timezone.utc)
    made = anchors.anchor(session, at)
    assert [p.name for p in audit_anchor_dir.glob("*.jsonl")] == ["anchors-2026-11.jsonl"]
    assert file_records(audit_anchor_dir)[0]["created_at"] == "2026-10-31T23:30:00+00:00"
    assert anchors.verify(session, directory=audit_anchor_dir).ok
    quick = anchors.verify(session, directory=audit_anchor_dir, heads=False, recent=12)
    assert quick.ok and quick.lines == 1
    page = login(ui, "mot_cua1").get("/so-theo-doi?tu=2026-11-01&den=2026-11-30").get_data(as_text=True)
    assert f"Mốc niêm phong nhật ký: số 1, lúc 06:30 01/11/2026, mã {made.hash[:16]}" in page


# --- concurrency -----------------------------------------------------------------------------------
def pending_event(factory, dossier_id: int, at):
    """A use case's transaction that has written its audit event (drawing its id) and not yet committed."""
    late = factory()
    begin_write(late)
    d = late.execute(select(Dossier).where(Dossier.id == dossier_id).with_for_update()).scalar_one()
    row = audit.chain(d, "note_added", at)
    audit.write(late, [row])
    late.flush()
    return late, row


@pytest.mark.postgres_only
def test_anchoring_waits_for_writers_without_blocking_the_others(session, factory, office, audit_anchor_dir,
                                                                  monkeypatch):
    """While the anchoring waits for a transaction that wrote an event, other use cases (audit events
    included) run at their usual speed, and no event is left out of both this anchor and the next."""
    monkeypatch.setattr(anchors, "SETTLE_SECONDS", 5.0)
    d = receive(session, office)
    late, row = pending_event(factory, d.id, AT)
    done, worker = {}, threading.Thread(target=lambda: done.setdefault("made", anchors.anchor(factory(), AT)))
    try:
        receive(session, office, at=vn(2026, 11, 2, 9, 5))  # a higher id, committed
        worker.start()
        time.sleep(0.2)
        assert worker.is_alive()
        started = time.monotonic()
        during = receive(session, office, at=vn(2026, 11, 2, 9, 10))  # a use case while the anchoring waits
        advance(session, office, during, 1, start=vn(2026, 11, 2, 9, 20))
        assert time.monotonic() - started < 1.0 and worker.is_alive()
        late.commit()
    finally:
        late.close()  # rolls back what an assertion left open
        if worker.ident is not None:
            worker.join(10)
    first = done["made"]
    heads = dict(session.execute(select(AuditAnchorHead.dossier_id, AuditAnchorHead.seq)
                                 .where(AuditAnchorHead.anchor_id == first.id)).all())
    assert heads[d.id] == row["seq"]  # the late event is in it
    second = anchors.anchor(session, AT + timedelta(minutes=5))
    assert second is not None and session.scalar(select(func.max(AuditEvent.id))) == second.up_to_event_id
    assert latest_heads(session) == current_heads(session)


def latest_heads(session) -> dict:
    latest = (select(AuditAnchorHead.dossier_id, func.max(AuditAnchorHead.anchor_id).label("a"))
              .group_by(AuditAnchorHead.dossier_id).subquery())
    rows = session.execute(select(AuditAnchorHead.dossier_id, AuditAnchorHead.seq, AuditAnchorHead.head)
                           .join(latest, (latest.c.dossier_id == AuditAnchorHead.dossier_id)
                                 & (latest.c.a == AuditAnchorHead.anchor_id))).all()
    session.rollback()
    return {r.dossier_id: (r.seq, r.head) for r in rows}


def current_heads(session) -> dict:
    rows = session.execute(select(Dossier.id, Dossier.audit_seq, Dossier.audit_head)).all()
    session.rollback()
    return {r.id: (r.audit_seq, r.audit_head) for r in rows}


def recomputed_heads(session) -> list[tuple]:
    """Every anchor's heads as they should be, from the events as they are now: (anchor, dossier, seq, hash)."""
    out, after = [], 0
    for a in session.execute(select(AuditAnchor.id, AuditAnchor.up_to_event_id).order_by(AuditAnchor.id)).all():
        grown = session.execute(select(AuditEvent.dossier_id, func.max(AuditEvent.seq))
                                .where(AuditEvent.id > after, AuditEvent.id <= a.up_to_event_id)
                                .group_by(AuditEvent.dossier_id)).all()
        for dossier_id, seq in grown:
            head = session.scalar(select(AuditEvent.hash).where(AuditEvent.dossier_id == dossier_id,
                                                                AuditEvent.seq == seq))
            out.append((a.id, dossier_id, seq, head))
        after = a.up_to_event_id
    session.rollback()
    return sorted(out)


def test_no_event_is_missed_while_writers_race_the_anchoring(session, factory, office, audit_anchor_dir):
    """Four writers, each on dossiers of its own (no lock shared: ids are drawn and committed out of order),
    each holding its transaction open a random moment after its audit INSERT, while anchors are made back
    to back: every anchor's heads are exactly those the events below its id give, every event ends up
    covered, the files hold each anchor once, in order, and everything verifies."""
    owned = [[receive(session, office, at=vn(2026, 11, 2, 8, 4 * k + j)).id for j in range(4)] for k in range(4)]
    stop, errors = threading.Event(), []

    def writer(k):
        i = 0
        while not stop.is_set():
            try:
                late, _ = pending_event(factory, owned[k][i % 4], AT + timedelta(seconds=i))
                time.sleep(random.random() * 0.02)  # committed late: a higher id may have committed already
                late.commit()
                late.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
                return
            i += 1

    def anchorer():
        with factory() as s:
            while not stop.is_set():
                try:
                    anchors.anchor(s, AT)
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
                    return
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [threading.Thread(target=anchorer)]
    try:
        for t in threads:
            t.start()
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not errors, errors
    anchors.anchor(session, AT + timedelta(minutes=5))
    count = session.scalar(select(func.count()).select_from(AuditAnchor))
    assert count > 3
    recorded = sorted(tuple(r) for r in session.execute(select(AuditAnchorHead.anchor_id, AuditAnchorHead.dossier_id,
                                                               AuditAnchorHead.seq, AuditAnchorHead.head)).all())
    assert recorded == recomputed_heads(session)
    assert latest_heads(session) == current_heads(session)
    assert [r["id"] for r in file_records(audit_anchor_dir)] == list(range(1, count + 1))
    assert anchors.verify(session, directory=audit_anchor_dir).ok


def test_two_timer_workers_anchoring_at_once(session, factory, office, audit_anchor_dir):
    """Two timer workers with a short interval, one shared directory, dossiers being received meanwhile:
    consecutive anchors, each line once and in order, everything verifies."""
    workers = [TimerWorker(factory, max_sleep=0.2, anchor_every=0.2) for _ in range(2)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        for i in range(12):
            receive(session, office, at=vn(2026, 11, 2, 9, i))
            time.sleep(0.1)
        time.sleep(0.6)
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(10)
    session.rollback()  # a fresh read (receive left one open)
    count = session.scalar(select(func.count()).select_from(AuditAnchor))
    assert count >= 2 and sum(w.anchors_made for w in workers) == count
    anchors.anchor(session, AT)
    count = session.scalar(select(func.count()).select_from(AuditAnchor))
    assert [r["id"] for r in file_records(audit_anchor_dir)] == list(range(1, count + 1))
    assert latest_heads(session) == current_heads(session)
    assert anchors.verify(session, directory=audit_anchor_dir).ok


@pytest.mark.postgres_only
def test_anchoring_stopped_by_a_held_lock_is_not_silent(session, factory, office, caplog):
    """Anyone who can connect to the database can take the anchoring's advisory lock and keep it: every
    anchoring then finds "another process anchoring" and returns None. The window the docs bound by
    MOTCUA_AUDIT_ANCHOR_SECONDS then grows without limit: the timer worker must say so."""
    receive(session, office)
    holder = session.get_bind().connect()
    holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": anchors.LOCK_KEY})
    holder.commit()
    worker = TimerWorker(factory, max_sleep=0.2, anchor_every=0.2)
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        with caplog.at_level(logging.INFO, logger="motcua.timers"):
            thread.start()
            time.sleep(2.0)
            worker.stop()
            thread.join(10)
    finally:
        holder.execute(text("SELECT pg_advisory_unlock_all()"))
        holder.close()
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 0
    assert any(r.levelno >= logging.WARNING and "anchor" in r.getMessage() for r in caplog.records), \
        "no anchor for ten intervals, and not a word"



# --- tampering: what each check reports (regressions) ----------------------------------------------
def two_anchors(session, office):
    """Dossiers a and b, anchored at 1; a grows and is anchored again at 2; b is cut back below anchor 1."""
    a = receive(session, office)
    b = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    advance(session, office, b, 2)
    anchors.anchor(session, AT)
    advance(session, office, a, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))
    n = b.audit_seq
    cut_back(session, b, n - 2)
    return a, b, n


def tamper(session, *statements) -> None:
    session.rollback()
    for statement in statements:
        session.execute(statement)
    session.commit()


def test_what_each_check_reports_when_the_anchors_are_tampered_with(session, office, audit_anchor_dir):
    a, b, n = two_anchors(session, office)
    head_b = (AuditAnchorHead.anchor_id == 1) & (AuditAnchorHead.dossier_id == b.id)
    cut_hash = events_of(session, b)[-1].hash
    # b's anchored head set back to the cut: the root of anchor 1
    tamper(session, update(AuditAnchorHead).where(head_b).values(seq=n - 2, head=cut_hash))
    assert seen(session, b, audit_anchor_dir) == (None, [(anchors.ROOT_MISMATCH, 1)])
    # b's head removed altogether: the root again (b now looks never anchored)
    tamper(session, delete(AuditAnchorHead).where(head_b))
    assert seen(session, b, audit_anchor_dir) == (None, [(anchors.ROOT_MISMATCH, 1)])
    # b's head moved onto another dossier id: the root
    tamper(session, insert(AuditAnchorHead).values(anchor_id=1, dossier_id=b.id + 1000, seq=n, head="c" * 64))
    assert seen(session, b, audit_anchor_dir)[1] == [(anchors.ROOT_MISMATCH, 1), (anchors.TRUNCATED, 1)]


def test_the_newest_anchors_removed_with_their_outbox_rows_show_in_the_files(session, office, audit_anchor_dir):
    a, b, n = two_anchors(session, office)
    tamper(session, delete(OutboxEvent).where(OutboxEvent.kind == anchors.EVENT_KIND),
           delete(AuditAnchorHead), delete(AuditAnchor))
    assert seen(session, b, audit_anchor_dir) == (None, [(anchors.ANCHOR_MISSING, 1), (anchors.ANCHOR_MISSING, 2)])
    # a forged anchor row in their place (no key: any hash) — the chain, and the files
    tamper(session, insert(AuditAnchor).values(id=1, created_at=AT, up_to_event_id=10**6, dossiers=0, root="0" * 64,
                                               prev_hash=audit.GENESIS, hash="d" * 64))
    found = seen(session, b, audit_anchor_dir)[1]
    assert (anchors.ANCHOR_BROKEN, 1) in found and (anchors.ANCHOR_MISMATCH, 1) in found


def test_swapped_anchor_ids_and_a_head_set_above_break_the_chain(session, office, audit_anchor_dir):
    a, b, n = two_anchors(session, office)
    # the dossier's recorded head put back up to the anchored seq over a cut log: the dossier's own check
    tamper(session, update(Dossier).where(Dossier.id == b.id).values(audit_seq=n))
    assert seen(session, b, audit_anchor_dir) == (audit.MISSING_TAIL, [(anchors.TRUNCATED, 1)])
    # anchors 1 and 2 swapped (heads with them): their HMAC covers the id and the link
    for old, new in ((2, 3), (1, 2), (3, 1)):
        renumber(session, old, new)
    found = seen(session, b, audit_anchor_dir)[1]
    assert (anchors.ANCHOR_BROKEN, 1) in found and (anchors.ANCHOR_MISMATCH, 1) in found
    assert (anchors.ANCHOR_MISMATCH, 2) in found


def test_a_cut_dossier_moved_to_a_new_id_looks_new_but_verify_finds_the_old_one(session, office, audit_anchor_dir):
    """The attacker cuts b back and moves it — row, log, tasks, everything that names it — to a fresh id, so
    that no anchored head names it: its own check passes (documented: removal is the anchors' verification's
    to find), and verify reports the anchored id as a dossier removed with its log."""
    a, b, n = two_anchors(session, office)
    old_id, code = b.id, b.code
    session.rollback()
    row = session.execute(select(Dossier.__table__).where(Dossier.id == old_id)).one()._asdict()
    new_id = old_id + 1000
    tamper(session, update(Dossier).where(Dossier.id == old_id).values(code=code + "-x", register_no=None),
           insert(Dossier.__table__).values({**row, "id": new_id}))
    tamper(session, *[table.update().where(fk.parent == old_id).values({fk.parent.key: new_id})
                      for table in Base.metadata.sorted_tables for fk in table.foreign_keys
                      if fk.column.table.name == "dossiers" and table.name != "dossiers"])
    tamper(session, delete(Dossier).where(Dossier.id == old_id))
    session.expire_all()
    assert audit.check_chain(session, new_id).intact
    session.rollback()
    verdict = anchors.verify(session, directory=audit_anchor_dir)
    assert [(f.reason, f.dossier_id, f.code) for f in verdict.failures] == [(anchors.TRUNCATED, old_id, None)]


def renumber(session, old: int, new: int) -> None:
    """Give anchor `old` the id `new`, its heads with it (a copy, the heads moved, the original removed)."""
    row = session.execute(select(*anchors._COLUMNS).where(AuditAnchor.id == old)).one()._asdict()
    tamper(session, insert(AuditAnchor).values({**row, "id": new}),
           update(AuditAnchorHead).where(AuditAnchorHead.anchor_id == old).values(anchor_id=new),
           delete(AuditAnchor).where(AuditAnchor.id == old))


def restored(session, office):
    """A dossier anchored at 1 and 2 (both in the files); then the database goes back to a backup taken just
    after anchor 1."""
    d = receive(session, office)
    first = anchors.anchor(session, AT)
    advance(session, office, d, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))
    last = session.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.id <= first.up_to_event_id,
                                                                         AuditEvent.dossier_id == d.id)
                           .order_by(AuditEvent.seq.desc()).limit(1)).one()
    tamper(session, delete(OutboxEvent).where(OutboxEvent.kind == anchors.EVENT_KIND),
           delete(AuditAnchorHead).where(AuditAnchorHead.anchor_id > 1), delete(AuditAnchor).where(AuditAnchor.id > 1),
           delete(AuditEvent).where(AuditEvent.id > first.up_to_event_id),
           update(Dossier).where(Dossier.id == d.id).values(audit_seq=last.seq, audit_head=last.hash))
    return d


def test_a_restore_from_an_older_backup_is_reported_not_raised(session, office, audit_anchor_dir):
    """Verify reports the lost anchor; the next anchor reuses number 2 and is not written (docs/audit.md)."""
    d = restored(session, office)
    assert seen(session, d, audit_anchor_dir) == (None, [(anchors.ANCHOR_MISSING, 2)])
    advance(session, office, d, 1, start=vn(2026, 11, 2, 15, 0))
    try:
        anchors.anchor(session, AT + timedelta(hours=4))
    except anchors.AnchorFileError:
        pass  # committed, and the files refused: as good, louder
    assert [r["id"] for r in file_records(audit_anchor_dir)] == [1, 2]
    assert seen(session, d, audit_anchor_dir) == (None, [(anchors.ANCHOR_MISMATCH, 2)])


def test_after_a_restore_the_cli_does_not_claim_a_line_it_did_not_write(session, office, audit_anchor_dir, db_url,
                                                                        monkeypatch):
    """After a restore, the new anchor 2 is not written (the files already end at a different anchor 2):
    `motcua audit anchor` must not print "written to <file>" for it and exit 0."""
    d = restored(session, office)
    advance(session, office, d, 1, start=vn(2026, 11, 2, 15, 0))
    monkeypatch.setenv("DATABASE_URL", db_url)
    result = CliRunner().invoke(main, ["audit", "anchor"], catch_exceptions=False)
    assert "anchor 2:" in result.output
    written = [r["hash"] for r in file_records(audit_anchor_dir)]
    made = anchors.latest(session)
    assert made.hash in written or ("written to" not in result.output and result.exit_code == 1), result.output


# --- the screens -----------------------------------------------------------------------------------
def test_only_those_who_check_the_logs_see_the_anchors_page(ui, session, office):
    receive(session, office)
    anchors.anchor(session, AT)
    assert login(ui, "mot_cua1").get("/quan-tri/nhat-ky").status_code == 403
    assert login(ui, "cv_khac").get("/quan-tri/nhat-ky").status_code == 403
    page = login(ui, "admin1").get("/quan-tri/nhat-ky")
    assert page.status_code == 200 and "Mốc gần nhất: số <strong>1</strong>" in page.get_data(as_text=True)


def test_the_admin_page_survives_an_anchor_file_it_cannot_read(ui, session, office, audit_anchor_dir):
    receive(session, office)
    anchors.anchor(session, AT)
    (audit_anchor_dir / "anchors-2026-10.jsonl").symlink_to("/proc/self/mem")  # every read: EIO
    admin = login(ui, "admin1")
    ui.application.testing = False  # what a user gets, not the exception
    ui.application.config["PROPAGATE_EXCEPTIONS"] = False
    response = admin.get("/quan-tri/nhat-ky")
    assert response.status_code == 200
    assert "tệp mốc niêm phong không đọc được" in response.get_data(as_text=True)


@pytest.mark.postgres_only
def test_an_anchoring_that_waits_for_a_long_writer_does_not_hold_up_the_timers(session, factory, office,
                                                                              monkeypatch):
    """The worker anchors in its own loop, between two sweeps: while the anchoring waits for a long
    transaction writing audit events (up to SETTLE_SECONDS, 10 s), no timer fires — every retry (each
    minute) again. Timers are promised within a second (docs/benchmarks.md): the sweeps must go on."""
    monkeypatch.setattr(anchors, "SETTLE_SECONDS", 2.0)
    receive(session, office)
    sweeps, real = [], timer_worker.timers.run_once

    def run_once(*args, **kwargs):
        sweeps.append(time.monotonic())
        return real(*args, **kwargs)
    monkeypatch.setattr(timer_worker.timers, "run_once", run_once)
    blocker = factory()
    blocker.execute(text("LOCK TABLE audit_events IN ROW EXCLUSIVE MODE"))  # a long use case, mid-write
    worker = TimerWorker(factory, max_sleep=0.2, anchor_every=0.3)
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        thread.start()
        time.sleep(3.0)
    finally:
        worker.stop()
        thread.join(10)
        blocker.rollback()
        blocker.close()
    gaps = [b - a for a, b in zip(sweeps, sweeps[1:])]
    assert len(sweeps) > 5 and max(gaps) < 1.0, f"no sweep for {max(gaps):.1f} s"
