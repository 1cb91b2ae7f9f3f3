"""Anchors of the audit chains (issue #11 item 5): a log cut back together with the head recorded on its
dossier is caught for every event older than the latest anchor; the anchors are chained, sent to the outbox
and appended to files outside the database after their commit, so removing the anchors too shows. On SQLite
and PostgreSQL."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from conftest import login, receive, vn
from sqlalchemy import delete, func, select, text, update
from test_audit_chain import advance, events_of

from engine import config
from engine.dossiers import anchors, audit
from engine.dossiers.timer_worker import TimerWorker
from engine.store.db import Base
from engine.store.models import AuditAnchor, AuditAnchorHead, AuditEvent, Dossier, OutboxEvent
from motcua.cli import main

AT = vn(2026, 11, 2, 12, 0)


@pytest.fixture(autouse=True)
def anchor_dir(tmp_path, monkeypatch):
    path = tmp_path / "audit-anchors"
    monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_DIR", str(path))
    return path


# --- helpers -------------------------------------------------------------------------------------
def cut_back(session, d, last: int) -> None:
    """The attack: delete the events after `last` and set the dossier's head back to event `last` — a valid
    event with a valid keyed hash, so the chain alone verifies."""
    session.rollback()  # a fresh snapshot to write from (SQLite: another process may have written)
    head = session.scalar(select(AuditEvent.hash).where(AuditEvent.dossier_id == d.id, AuditEvent.seq == last))
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == d.id, AuditEvent.seq > last))
    session.execute(update(Dossier).where(Dossier.id == d.id).values(audit_seq=last, audit_head=head))
    session.commit()


def check(session, d) -> audit.ChainCheck:
    session.rollback()  # a fresh read of what was committed
    return audit.check_chain(session, d.id)


def reasons(verdict) -> list[tuple]:
    return [(f.reason, f.anchor_id) for f in verdict.failures]


def file_records(directory) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("anchors-*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def drop_anchor(session, anchor_id: int) -> None:
    """What an attacker with the database does to hide a cut: remove the anchor and its heads."""
    session.rollback()
    session.execute(delete(AuditAnchorHead).where(AuditAnchorHead.anchor_id == anchor_id))
    session.execute(delete(AuditAnchor).where(AuditAnchor.id == anchor_id))
    session.commit()


@pytest.fixture
def flow(session, office):
    """A dossier received and taken two steps on: events 1..n, all keyed."""
    d = receive(session, office)
    advance(session, office, d, 2)
    return d


# --- the attack ----------------------------------------------------------------------------------
def test_a_log_cut_back_with_its_head_is_caught_after_an_anchor(session, office, flow, anchor_dir):
    n = flow.audit_seq
    assert n >= 4
    made = anchors.anchor(session, AT)
    assert (made.id, made.dossiers) == (1, 1)
    cut_back(session, flow, n - 2)
    result = check(session, flow)
    assert (result.first_bad_seq, result.reason, result.anchor_id) == (n - 1, audit.TRUNCATED_AFTER_ANCHOR, 1)
    assert f"events {n - 1}–{n} recorded at anchor 1 are missing" in result.detail
    assert audit.verify_chain(session, flow.id) == n - 1
    verdict, events = audit.audit_log(session, flow.id)
    assert (verdict.reason, len(events)) == (audit.TRUNCATED_AFTER_ANCHOR, n - 2)
    batch = audit.check_batch(session)
    assert [(c.code, c.first_bad_seq, c.reason) for c in batch.failures] == [
        (flow.code, n - 1, audit.TRUNCATED_AFTER_ANCHOR)]
    session.rollback()
    full = anchors.verify(session, directory=anchor_dir)
    assert [(f.reason, f.anchor_id, f.dossier_id, f.seq) for f in full.failures] == [
        (anchors.TRUNCATED, 1, flow.id, n)]
    assert "set back to event" in full.failures[0].detail


def test_verify_names_an_anchored_event_removed_under_a_head_left_alone(session, office, flow, anchor_dir):
    n = flow.audit_seq
    anchors.anchor(session, AT)
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == n))
    session.commit()
    assert check(session, flow).reason == audit.MISSING_TAIL  # the dossier's head shows it first
    verdict = anchors.verify(session, directory=anchor_dir)
    assert reasons(verdict) == [(anchors.TRUNCATED, 1)]
    assert verdict.failures[0].detail == f"events recorded at anchor 1 are missing: its event {n} is gone"


def test_a_log_cut_back_and_written_on_differs_from_its_anchor(session, office, flow):
    """Cut back below the anchored event, then the office goes on working: the log is as long again, but its
    event at the anchored seq is not the one sealed."""
    n = flow.audit_seq
    anchors.anchor(session, AT)
    cut_back(session, flow, n - 1)
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    assert flow.audit_seq >= n
    result = check(session, flow)
    assert (result.first_bad_seq, result.reason) == (n, audit.TRUNCATED_AFTER_ANCHOR)


def test_the_window_since_the_latest_anchor_stays_open(session, office, flow, anchor_dir):
    """What anchors cannot do, asserted so the limit is explicit: events written after the latest anchor can
    be cut back unnoticed (docs/audit.md); the anchored ones cannot."""
    anchored = flow.audit_seq
    anchors.anchor(session, AT)
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    assert flow.audit_seq > anchored
    cut_back(session, flow, anchored)  # removes only events written since the anchor
    assert check(session, flow).intact
    assert anchors.verify(session, directory=anchor_dir).ok
    cut_back(session, flow, anchored - 1)  # one anchored event more
    assert check(session, flow).reason == audit.TRUNCATED_AFTER_ANCHOR


def test_a_dossier_removed_with_its_log_is_found_by_verify(session, office, flow, anchor_dir):
    other = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    anchors.anchor(session, AT)
    for table in Base.metadata.sorted_tables:  # every row that names the dossier, its log among them
        for fk in table.foreign_keys:
            if fk.column.table.name == "dossiers":
                session.execute(table.delete().where(fk.parent == other.id))
    session.execute(delete(Dossier).where(Dossier.id == other.id))
    session.commit()
    assert check(session, flow).intact  # nothing left of it to check, dossier by dossier
    verdict = anchors.verify(session, directory=anchor_dir)
    assert [(f.reason, f.dossier_id, f.code) for f in verdict.failures] == [(anchors.TRUNCATED, other.id, None)]
    assert "removed" in verdict.failures[0].detail and "(removed)" in verdict.failures[0].line()


# --- removing or changing the anchors --------------------------------------------------------------
def test_removing_the_anchors_too_shows_in_the_files(session, office, flow, anchor_dir):
    first = anchors.anchor(session, AT)
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    second = anchors.anchor(session, AT + timedelta(hours=3))
    assert [r["id"] for r in file_records(anchor_dir)] == [1, 2]
    assert anchors.verify(session, directory=anchor_dir).ok
    # the log cut back to what anchor 1 sealed: its latest anchor, 2, shows it…
    cut_back(session, flow, session.scalar(select(AuditAnchorHead.seq).where(AuditAnchorHead.anchor_id == 1)))
    result = check(session, flow)
    assert (result.reason, result.anchor_id) == (audit.TRUNCATED_AFTER_ANCHOR, 2)
    assert reasons(anchors.verify(session, directory=anchor_dir)) == [(anchors.TRUNCATED, 2)]
    # …so anchor 2 is removed too: the dossier's chain no longer shows it…
    drop_anchor(session, second.id)
    assert check(session, flow).intact
    # …but the file still names anchor 2
    verdict = anchors.verify(session, directory=anchor_dir)
    assert reasons(verdict) == [(anchors.ANCHOR_MISSING, 2)]
    assert "anchors-2026-11.jsonl line 2" in verdict.failures[0].detail
    # all anchors removed
    drop_anchor(session, first.id)
    assert reasons(anchors.verify(session, directory=anchor_dir)) == [(anchors.ANCHOR_MISSING, 1),
                                                                        (anchors.ANCHOR_MISSING, 2)]


def test_removing_an_anchor_in_the_middle_breaks_their_chain(session, office, flow, anchor_dir):
    anchors.anchor(session, AT)
    for i in range(2):
        receive(session, office, at=vn(2026, 11, 2, 14 + i, 0))
        anchors.anchor(session, AT + timedelta(hours=3 + i))
    drop_anchor(session, 2)
    verdict = anchors.verify(session, directory=anchor_dir, files=False)
    assert reasons(verdict) == [(anchors.ANCHOR_BROKEN, 3)] and "missing" in verdict.failures[0].detail
    assert reasons(anchors.verify(session, directory=anchor_dir)) == [(anchors.ANCHOR_BROKEN, 3),
                                                                        (anchors.ANCHOR_MISSING, 2)]


def test_a_quick_look_checks_the_newest_anchors_and_their_link_to_the_one_before(session, office, flow, anchor_dir):
    """`recent` (the admin page): the newest anchors, their link to the anchor before them and the newest
    files, in constant time after years of anchors; what is older is left to the full verification."""
    anchors.anchor(session, AT)
    for i in range(4):
        receive(session, office, at=vn(2026, 11, 2, 14 + i, 0))
        anchors.anchor(session, AT + timedelta(hours=3 + i))
    quick = anchors.verify(session, directory=anchor_dir, heads=False, recent=2)
    assert quick.ok and (quick.anchors, quick.roots) == (2, 2)
    session.execute(update(AuditAnchor).where(AuditAnchor.id == 1).values(dossiers=99))  # an old anchor changed
    session.commit()
    assert anchors.verify(session, directory=anchor_dir, heads=False, recent=2).ok  # beyond the quick look…
    assert (anchors.ANCHOR_BROKEN, 1) in reasons(anchors.verify(session, directory=anchor_dir))  # …not the full one
    session.execute(update(AuditAnchor).where(AuditAnchor.id == 3).values(hash="e" * 64))  # the one before the newest two
    session.commit()
    assert (anchors.ANCHOR_BROKEN, 4) in reasons(anchors.verify(session, directory=anchor_dir, heads=False, recent=2))
    drop_anchor(session, 5)
    drop_anchor(session, 4)  # the newest removed: the file still names them
    quick = anchors.verify(session, directory=anchor_dir, heads=False, recent=2)
    assert (anchors.ANCHOR_MISSING, 4) in reasons(quick) and (anchors.ANCHOR_MISSING, 5) in reasons(quick)


def test_a_changed_head_breaks_its_anchors_root(session, office, flow, anchor_dir):
    other = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    anchors.anchor(session, AT)
    assert anchors.verify(session, directory=anchor_dir).ok
    # a head set back, as an attacker would to make a cut log pass the dossier's check
    session.execute(update(AuditAnchorHead).where(AuditAnchorHead.dossier_id == flow.id)
                    .values(seq=2, head=events_of(session, flow)[1].hash))
    session.commit()
    verdict = anchors.verify(session, directory=anchor_dir)
    assert reasons(verdict) == [(anchors.ROOT_MISMATCH, 1)]
    assert verdict.roots == 1
    # a head removed instead
    session.execute(delete(AuditAnchorHead).where(AuditAnchorHead.dossier_id == other.id))
    session.commit()
    assert (anchors.ROOT_MISMATCH, 1) in reasons(anchors.verify(session, directory=anchor_dir))


def test_a_changed_anchor_breaks_its_hmac_and_differs_from_its_line(session, office, flow, anchor_dir):
    anchors.anchor(session, AT)
    session.execute(update(AuditAnchor).values(up_to_event_id=AuditAnchor.up_to_event_id - 1))
    session.commit()
    assert reasons(anchors.verify(session, directory=anchor_dir)) == [(anchors.ANCHOR_BROKEN, 1)]
    session.execute(update(AuditAnchor).values(hash="f" * 64))
    session.commit()
    assert sorted(reasons(anchors.verify(session, directory=anchor_dir))) == [(anchors.ANCHOR_BROKEN, 1),
                                                                                (anchors.ANCHOR_MISMATCH, 1)]


def test_a_changed_file_line_is_invalid(session, office, flow, anchor_dir):
    anchors.anchor(session, AT)
    path = next(anchor_dir.glob("anchors-*.jsonl"))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "dossiers": 7}) + "\n")
    verdict = anchors.verify(session, directory=anchor_dir)
    assert reasons(verdict) == [(anchors.FILE_INVALID, 1)] and "its own hash" in verdict.failures[0].detail


# --- anchoring -------------------------------------------------------------------------------------
def test_anchoring_is_incremental_and_chained(session, office, anchor_dir):
    ds = [receive(session, office, at=vn(2026, 11, 2, 9, i)) for i in range(3)]
    key = config.audit_key()
    first = anchors.anchor(session, AT)
    assert (first.id, first.dossiers, first.prev_hash) == (1, 3, audit.GENESIS)
    assert first.up_to_event_id == session.scalar(select(func.max(AuditEvent.id)))
    assert anchors.anchor(session, AT) is None  # nothing new: no anchor, no row
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 1
    advance(session, office, ds[1], 1, start=vn(2026, 11, 2, 14, 0))
    second = anchors.anchor(session, AT + timedelta(hours=3))
    assert (second.id, second.dossiers, second.prev_hash) == (2, 1, first.hash)
    heads = session.execute(select(AuditAnchorHead.dossier_id, AuditAnchorHead.seq, AuditAnchorHead.head)
                            .where(AuditAnchorHead.anchor_id == 2)).all()
    last = events_of(session, ds[1])[-1]
    assert heads == [(ds[1].id, last.seq, last.hash)]
    # the root and the hash, as documented (docs/audit.md), computed here independently
    root = hmac.new(key, b"motcua audit anchor root v1\n" + f"{ds[1].id} {last.seq} {last.hash}\n".encode(),
                    hashlib.sha256).hexdigest()
    assert second.root == root
    payload = {"v": "anchor", "prev": first.hash, "id": 2, "created_at": second.created_at.isoformat(),
               "up_to_event_id": second.up_to_event_id, "dossiers": 1, "root": root}
    assert second.hash == hmac.new(key, json.dumps(payload, sort_keys=True, separators=(",", ":")).encode(),
                                   hashlib.sha256).hexdigest()
    # the outbox carries each anchor, naming no dossier
    events = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "audit_anchor")
                             .order_by(OutboxEvent.id)).all()
    assert [(e.dossier_id, e.payload["anchor"]) for e in events] == [(None, first.record()), (None, second.record())]
    assert events[1].payload["event"] == "audit_anchor" and events[1].payload["occurred_at"].endswith("+07:00")
    assert file_records(anchor_dir) == [first.record(), second.record()]
    assert (anchor_dir / "anchors-2026-11.jsonl").exists()


def test_the_heads_are_those_as_of_the_anchors_last_event(session, office, flow):
    """Events written after the anchor's `up_to_event_id` are not in it, even when its heads are read later."""
    first = anchors.anchor(session, AT)
    head = session.execute(select(AuditAnchorHead.seq, AuditAnchorHead.head)).one()
    last = events_of(session, flow)[-1]
    assert (head.seq, head.head, first.up_to_event_id) == (last.seq, last.hash, last.id)


# --- the files ---------------------------------------------------------------------------------------
def test_a_line_is_written_after_the_commit_only(session, office, flow, anchor_dir, monkeypatch):
    def broken(*args):
        raise RuntimeError("the database went away")
    with monkeypatch.context() as patch:
        patch.setattr(anchors.outbox, "write", broken)
        with pytest.raises(RuntimeError):
            anchors.anchor(session, AT)
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 0
    assert file_records(anchor_dir) == []


def test_a_missing_line_is_written_by_the_next_anchoring(session, office, flow, anchor_dir, monkeypatch):
    def full_disk(*args):
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as patch:
        patch.setattr(anchors, "_append", full_disk)
        with pytest.raises(anchors.AnchorFileError) as failed:
            anchors.anchor(session, AT)
    assert failed.value.anchor.id == 1
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 1  # committed before the write
    assert file_records(anchor_dir) == []
    verdict = anchors.verify(session, directory=anchor_dir)
    assert verdict.ok and verdict.unexported == [(1, 1)]
    assert anchors.anchor(session, AT) is None  # nothing new to anchor, yet the line is written
    assert [r["id"] for r in file_records(anchor_dir)] == [1]
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))
    assert [r["id"] for r in file_records(anchor_dir)] == [1, 2]  # no line twice
    assert anchors.verify(session, directory=anchor_dir).unexported == []


def test_the_lines_are_synced_to_disk(session, office, flow, anchor_dir, monkeypatch):
    synced, real = [], anchors.os.fsync

    def fsync(fd):
        synced.append(anchors.os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)
    monkeypatch.setattr(anchors.os, "fsync", fsync)
    anchors.anchor(session, AT)
    assert synced == [str(anchor_dir / "anchors-2026-11.jsonl"), str(anchor_dir)]  # the file, then its new name
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))
    assert synced[2:] == [str(anchor_dir / "anchors-2026-11.jsonl")]


def test_a_cut_line_stays_apart_from_the_next(session, office, flow, anchor_dir):
    """A crash in the middle of a write leaves part of a line: the next line starts on a line of its own,
    and verify names the broken one."""
    anchors.anchor(session, AT)
    path = anchor_dir / "anchors-2026-11.jsonl"
    with open(path, "a") as fh:
        fh.write('{"id": 2, "created_')
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, AT + timedelta(hours=3))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["id"] == 2
    verdict = anchors.verify(session, directory=anchor_dir)
    assert [(f.reason, f.detail[:30]) for f in verdict.failures] == [(anchors.FILE_INVALID,
                                                                      "anchors-2026-11.jsonl line 2: ")]


def test_writers_of_one_directory_take_turns(session, factory, office, flow, anchor_dir):
    import fcntl
    anchor_dir.mkdir()
    fd = os.open(anchor_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process of this host writing the files
    done = []
    try:
        worker = threading.Thread(target=lambda: done.append(anchors.anchor(factory(), AT)))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive() and file_records(anchor_dir) == []
    finally:
        os.close(fd)
    worker.join(10)
    assert done[0].id == 1 and [r["id"] for r in file_records(anchor_dir)] == [1]


def test_each_month_has_its_file(session, office, flow, anchor_dir):
    anchors.anchor(session, vn(2026, 11, 30, 23, 0))
    advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
    anchors.anchor(session, vn(2026, 12, 1, 0, 30))  # local time: December already
    assert sorted(p.name for p in anchor_dir.glob("*.jsonl")) == ["anchors-2026-11.jsonl", "anchors-2026-12.jsonl"]
    assert anchors.verify(session, directory=anchor_dir).ok


# --- one anchoring at a time -------------------------------------------------------------------------
@pytest.mark.postgres_only
def test_two_processes_anchoring_at_once_make_one_anchor(session, factory, office, flow, anchor_dir, monkeypatch):
    inside, release = threading.Event(), threading.Event()
    real = anchors._settled_max_event_id

    def slow(conn):  # the first anchoring holds the lock until told to go on
        inside.set()
        release.wait(10)
        return real(conn)
    monkeypatch.setattr(anchors, "_settled_max_event_id", slow)
    results = {}

    def run(name):
        with factory() as s:
            results[name] = anchors.anchor(s, AT, directory=anchor_dir)
    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert inside.wait(10)
    monkeypatch.setattr(anchors, "_settled_max_event_id", real)
    run("second")  # meanwhile, in another session: the lock is taken
    release.set()
    first.join(10)
    assert results["second"] is None and results["first"].id == 1
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 1
    assert [r["id"] for r in file_records(anchor_dir)] == [1]


@pytest.mark.postgres_only
def test_an_event_committed_after_a_later_one_is_not_missed(session, factory, office, flow, anchor_dir):
    """Event ids are drawn before commit: an event with a lower id can commit after one with a higher id. The
    anchor waits for the transactions writing events, so the late one is in it (else no later anchor, which
    starts above the higher id, would ever seal it)."""
    other = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    late = factory()
    d = late.get(Dossier, flow.id)
    state = SimpleNamespace(id=d.id, code=d.code, audit_seq=d.audit_seq, audit_head=d.audit_head)
    row = audit.chain(state, "note_added", AT)
    audit.write(late, [row])  # draws the lower id, not committed yet
    late.execute(update(Dossier).where(Dossier.id == d.id).values(audit_seq=state.audit_seq,
                                                                    audit_head=state.audit_head))
    advance(session, office, other, 1, start=vn(2026, 11, 2, 14, 0))  # a higher id, committed
    assert session.scalar(select(func.max(AuditEvent.id))) > late.scalar(select(func.max(AuditEvent.id)).where(
        AuditEvent.dossier_id == d.id))
    done = {}
    worker = threading.Thread(target=lambda: done.setdefault("anchor", anchors.anchor(factory(), AT)))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive(), "the anchor did not wait for the transaction writing an event"
    late.commit()
    late.close()
    worker.join(10)
    heads = dict(session.execute(select(AuditAnchorHead.dossier_id, AuditAnchorHead.seq)).all())
    assert heads[flow.id] == row["seq"]
    # a writer that does not end in time: nothing is anchored, and it says why
    blocker = factory()
    blocker.execute(text("LOCK TABLE audit_events IN ROW EXCLUSIVE MODE"))
    advance(session, office, other, 1, start=vn(2026, 11, 2, 15, 0))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(anchors, "SETTLE_SECONDS", 0.2)
            with pytest.raises(anchors.AnchorDeferred, match="did not end"):
                anchors.anchor(session, AT + timedelta(hours=1))
    finally:
        blocker.rollback()
        blocker.close()
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 1


# --- the command line ------------------------------------------------------------------------------
def cli(args, db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_anchor_and_verify(session, office, flow, db_url, monkeypatch, anchor_dir):
    n = flow.audit_seq
    made = cli(["audit", "anchor"], db_url, monkeypatch)
    assert made.exit_code == 0, made.output
    assert "anchor 1: 1 dossiers' heads" in made.output and "anchors-" in made.output
    again = cli(["audit", "anchor"], db_url, monkeypatch)
    assert again.exit_code == 0 and "nothing new to anchor since anchor 1" in again.output
    ok = cli(["audit", "verify"], db_url, monkeypatch)
    assert ok.exit_code == 0, ok.output
    assert "every audit log intact" in ok.output and "1 anchors (1 dossiers' anchored heads, 1 lines" in ok.output
    cut_back(session, flow, n - 1)
    bad = cli(["audit", "verify"], db_url, monkeypatch)
    assert bad.exit_code == 1
    assert f"{flow.code}: first bad event {n}: truncated_after_anchor" in bad.output
    assert f"anchor 1, dossier {flow.code}: truncated" in bad.output
    assert cli(["audit", "verify", "--dossier", flow.code], db_url, monkeypatch).exit_code == 1
    drop_anchor(session, 1)  # the cut hidden from the dossier's check: the file still shows it
    hidden = cli(["audit", "verify"], db_url, monkeypatch)
    assert hidden.exit_code == 1 and "every audit log intact" in hidden.output
    assert "anchor 1: anchor_missing" in hidden.output


def test_cli_verify_fails_when_the_anchor_directory_holds_no_file(session, office, flow, db_url, monkeypatch,
                                                                   tmp_path):
    """A wrong MOTCUA_AUDIT_ANCHOR_DIR (not the workers' directory) must not switch the files' protection off
    with nothing but warnings."""
    assert cli(["audit", "anchor"], db_url, monkeypatch).exit_code == 0
    monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_DIR", str(tmp_path / "elsewhere"))
    result = cli(["audit", "verify"], db_url, monkeypatch)
    assert result.exit_code == 1, result.output
    assert "holds no anchor file" in result.output and "every audit log intact" in result.output


def test_cli_anchor_reports_a_file_it_cannot_write(session, office, flow, db_url, monkeypatch, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_DIR", str(blocked))
    result = cli(["audit", "anchor"], db_url, monkeypatch)
    assert result.exit_code == 1
    assert "anchor 1:" in result.output and "cannot write the anchor files" in result.output
    assert "the next anchoring writes the missing lines" in result.output


@pytest.mark.postgres_only
def test_cli_anchor_while_another_process_anchors(session, office, flow, db_url, monkeypatch):
    holder = session.get_bind().connect()
    holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": anchors.LOCK_KEY})
    try:
        result = cli(["audit", "anchor"], db_url, monkeypatch)
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 0 and "another process is anchoring" in result.output
    assert session.scalar(select(func.count()).select_from(AuditAnchor)) == 0


# --- settings ------------------------------------------------------------------------------------------
def test_anchor_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("MOTCUA_AUDIT_ANCHOR_SECONDS", raising=False)
    assert config.audit_anchor_seconds() == 300
    for value, seconds in (("0", 0), ("1", 1), ("90.5", 90.5)):
        monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_SECONDS", value)
        assert config.audit_anchor_seconds() == seconds
    for value in ("abc", "-5", "0.5", "nan", "100000"):
        monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_SECONDS", value)
        with pytest.raises(config.ConfigError, match="MOTCUA_AUDIT_ANCHOR_SECONDS"):
            config.audit_anchor_seconds()
    monkeypatch.delenv("MOTCUA_AUDIT_ANCHOR_DIR")
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", tmp_path / "data")
    # One folder per database: the demo's SQLite file and an instance's own database share the data directory.
    assert config.audit_anchor_dir("sqlite:///var/demo.sqlite3") == tmp_path / "data" / "audit-anchors" / "demo"
    assert config.audit_anchor_dir("sqlite:////srv/motcua.sqlite3") == tmp_path / "data" / "audit-anchors" / "motcua"
    assert config.audit_anchor_dir("postgresql+psycopg://u:secret@db.tinh:5433/motcua") == \
        tmp_path / "data" / "audit-anchors" / "db.tinh-5433-motcua"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/x.sqlite3")
    assert config.audit_anchor_dir() == tmp_path / "data" / "audit-anchors" / "x"


# --- the timer worker ------------------------------------------------------------------------------
def running(worker):
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def stop(worker, thread):
    worker.stop()
    thread.join(5)
    assert not thread.is_alive(), "the worker did not stop"


def wait_for(condition, within: float = 8.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def anchor_count(session) -> int:
    count = session.scalar(select(func.count()).select_from(AuditAnchor))
    session.rollback()
    return count


def test_the_timer_worker_anchors_when_the_interval_has_passed(session, factory, office, flow, anchor_dir):
    worker = TimerWorker(factory, max_sleep=30, anchor_every=1.5)
    thread = running(worker)
    try:
        assert wait_for(lambda: worker.sweeps > 0)
        time.sleep(0.5)
        assert anchor_count(session) == 0  # not at once: one interval after it started
        assert wait_for(lambda: anchor_count(session) == 1)  # the long wait ends for it
        advance(session, office, flow, 1, start=vn(2026, 11, 2, 14, 0))
        assert wait_for(lambda: anchor_count(session) == 2)
    finally:
        stop(worker, thread)
    assert worker.anchors_made == 2 and [r["id"] for r in file_records(anchor_dir)] == [1, 2]


def test_a_failing_anchoring_is_logged_and_tried_again(session, factory, office, flow, monkeypatch, caplog):
    calls = []

    def failing(*args, **kwargs):
        calls.append(time.monotonic())
        raise anchors.AnchorDeferred("2 transactions writing audit events did not end within 10 s")
    monkeypatch.setattr(anchors, "anchor", failing)
    worker = TimerWorker(factory, max_sleep=30, anchor_every=1.0)
    with caplog.at_level(logging.WARNING, logger="motcua.timers"):
        thread = running(worker)
        try:
            assert wait_for(lambda: len(calls) >= 2)
            sweeps = worker.sweeps
            assert wait_for(lambda: worker.sweeps > sweeps)  # the worker goes on
        finally:
            stop(worker, thread)
    assert "anchoring the audit chains failed (AnchorDeferred" in caplog.text
    assert calls[1] - calls[0] >= 0.9  # tried again later, not in a loop


def test_no_anchoring_when_it_is_off(session, factory, office, flow):
    worker = TimerWorker(factory, max_sleep=0.1, anchor_every=0)
    thread = running(worker)
    try:
        assert wait_for(lambda: worker.sweeps > 3)
    finally:
        stop(worker, thread)
    assert anchor_count(session) == 0


# --- the screens -----------------------------------------------------------------------------------
def test_the_register_prints_the_latest_anchor(ui, session, office, flow):
    desk = login(ui, "mot_cua1")
    page = desk.get("/so-theo-doi?tu=2026-11-01&den=2026-11-30").get_data(as_text=True)
    assert "Mốc niêm phong nhật ký" not in page
    session.rollback()
    made = anchors.anchor(session, vn(2026, 11, 2, 16, 45))
    page = desk.get("/so-theo-doi?tu=2026-11-01&den=2026-11-30").get_data(as_text=True)
    assert f"Mốc niêm phong nhật ký: số 1, lúc 16:45 02/11/2026, mã {made.hash[:16]}" in page


def test_the_admin_page_shows_the_anchors_and_what_is_wrong(ui, session, office, flow, anchor_dir):
    n = flow.audit_seq
    admin = login(ui, "admin1")
    page = admin.get("/quan-tri/nhat-ky").get_data(as_text=True)
    assert "Chưa có mốc niêm phong nào." in page
    session.rollback()
    made = anchors.anchor(session, vn(2026, 11, 2, 16, 45))
    page = " ".join(admin.get("/quan-tri/nhat-ky").get_data(as_text=True).split())
    assert "Mốc gần nhất: số <strong>1</strong>, lúc 16:45 02/11/2026, niêm phong 1 hồ sơ" in page
    assert made.hash[:16] in page
    assert ("1 mốc niêm phong gần nhất toàn vẹn và nối đúng chuỗi; mã tổng của 1 mốc khớp; 1 dòng trong 1 tệp mốc "
            "mới nhất khớp với các mốc") in page
    cut_back(session, flow, n - 1)
    page = admin.get("/quan-tri/nhat-ky").get_data(as_text=True)
    assert "1 hồ sơ có nhật ký không toàn vẹn" in page
    assert (f"từ sự kiện số {n}: các sự kiện đã được niêm phong ở mốc số 1 đã bị xóa" in page)
    drop_anchor(session, 1)
    page = admin.get("/quan-tri/nhat-ky").get_data(as_text=True)
    assert "1 vấn đề với các mốc niêm phong" in page
    assert "Mốc số 1: tệp mốc niêm phong ghi một mốc mà cơ sở dữ liệu không còn" in page


def test_the_dossier_page_names_the_anchor(ui, session, office, flow):
    n = flow.audit_seq
    anchors.anchor(session, AT)
    cut_back(session, flow, n - 2)
    page = login(ui, "mot_cua1").get(f"/ho-so/{flow.code}").get_data(as_text=True)
    assert "Nhật ký hồ sơ không toàn vẹn" in page
    assert f"từ sự kiện số {n - 1}: các sự kiện đã được niêm phong ở mốc số 1 đã bị xóa" in page


def test_the_timer_worker_refuses_a_bad_anchoring_interval_with_its_reason(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_SECONDS", "mỗi năm phút")
    result = CliRunner().invoke(main, ["timers", "run"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "MOTCUA_AUDIT_ANCHOR_SECONDS must be 0 (off) or a number of seconds" in result.output


def test_events_left_unsealed_for_three_intervals_are_reported(session, office, flow, anchor_dir, monkeypatch, ui,
                                                                 db_url):
    """Someone holding the anchoring lock, or no timer worker running, lets the window the anchors leave open
    grow without limit: verification says so once events have waited more than three intervals."""
    anchors.anchor(session, AT)
    assert anchors.verify(session, directory=anchor_dir).unsealed_since is None
    advance(session, office, flow, 1, start=AT + timedelta(hours=1))  # an event no anchor covers
    verdict = anchors.verify(session, directory=anchor_dir)
    assert verdict.unsealed_since == AT + timedelta(hours=1)
    since = verdict.unsealed_since
    assert not anchors.waited_too_long(since, AT + timedelta(hours=1, minutes=14), 300)
    assert anchors.waited_too_long(since, AT + timedelta(hours=1, minutes=16), 300)
    assert anchors.waited_too_long(since, AT + timedelta(hours=1, minutes=16), 0)  # by cron: judged on the default
    monkeypatch.setenv("MOTCUA_AUDIT_ANCHOR_SECONDS", "60")  # the configured interval, by default
    assert verdict.overdue(AT + timedelta(hours=1, minutes=4)) and not verdict.overdue(AT + timedelta(hours=1, minutes=2))
    monkeypatch.delenv("MOTCUA_AUDIT_ANCHOR_SECONDS")
    # The admin page and the command line, on today's clock: that event is weeks old.
    page = " ".join(login(ui, "admin1").get("/quan-tri/nhat-ky").get_data(as_text=True).split())
    assert "Có sự kiện nhật ký chưa được niêm phong từ 13:00 02/11/2026, quá ba chu kỳ niêm phong" in page
    result = cli(["audit", "verify"], db_url, monkeypatch)
    assert "are in no anchor yet, more than three anchoring intervals" in result.output
    anchors.anchor(session, AT + timedelta(hours=2))
    page = login(ui, "admin1").get("/quan-tri/nhat-ky").get_data(as_text=True)
    assert "chưa được niêm phong" not in page
