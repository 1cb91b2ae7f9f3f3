"""The tamper-evident audit log (issue #11 item 5): every dossier's hash chain is keyed with a secret held
outside the database, covers the actor's name and ends at the head recorded on the dossier; chains written
before migration 0012 still verify; `motcua audit verify`, the API, the admin check and the dossier page
report the first bad event and why. On SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from datetime import timedelta

import pytest
from click.testing import CliRunner
from conftest import APPLICANT, components_for, open_task, receive, vn
from sqlalchemy import delete, event, inspect, select, text, update

from engine import config, dossiers
from engine.dossiers import audit
from engine.store import schema
from engine.store.models import AuditEvent, Dossier, User
from motcua.cli import main

FORGED = "Nguyễn Văn Giả"


# --- helpers -------------------------------------------------------------------------------------
def advance(session, office, d, steps: int = 1, start=None):
    """Complete the dossier's open step `steps` times (approve), as the step's role."""
    at = start or vn(2026, 11, 2, 10, 0)
    for i in range(steps):
        task = open_task(session, d)
        dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id, data={"decision": "approve"},
                               now=at + timedelta(minutes=10 * i))
    session.expire_all()
    return d


def events_of(session, d) -> list[AuditEvent]:
    return session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == d.id).order_by(AuditEvent.seq)).all()


def check(session, d) -> audit.ChainCheck:
    session.rollback()  # a fresh read of what was committed
    return audit.check_chain(session, d.id)


def rehash(session, d, digest) -> None:
    """What an attacker with write access to the database does after changing events: recompute every
    hash from the first event with `digest(prev, event)` and set the dossier's head to match."""
    prev = audit.GENESIS
    for e in events_of(session, d):
        e.prev_hash, e.hash = prev, digest(prev, e)
        prev = e.hash
    session.get(Dossier, d.id).audit_head = prev
    session.commit()


def rehash_prefix(session, d, n: int) -> str:
    """Rehash the first `n` (old, unkeyed) events and link the next event to them; the new head of them."""
    prev, events = audit.GENESIS, events_of(session, d)
    for e in events[:n]:
        e.prev_hash, e.hash = prev, unkeyed(prev, e)
        prev = e.hash
    events[n].prev_hash = prev
    session.commit()
    return prev


def unkeyed(prev, e) -> str:  # the hash before migration 0012
    return audit._digest_v1(prev, e.seq, e.at, e.actor_id, e.kind, e.step, e.data)


@pytest.fixture
def flow(session, office):
    """A dossier received and taken two steps on: events 1..n, all keyed."""
    d = receive(session, office)
    advance(session, office, d, 2)
    return d


# --- defect 1: the actor's name is covered ----------------------------------------------------------
def test_a_forged_actor_name_is_detected_and_named(session, office, flow):
    target = next(e for e in events_of(session, flow) if e.kind == "task_completed")
    real, seq = target.actor_name, target.seq
    user = session.get(User, target.actor_id)
    assert real == (user.full_name or user.username) != FORGED
    target.actor_name = FORGED
    session.commit()
    result = check(session, flow)
    assert (result.first_bad_seq, result.reason, result.real_name) == (seq, audit.FORGED_NAME, real)
    assert result.bad_event["actor_name"] == FORGED and f"'{FORGED}'" in result.line()
    assert audit.verify_chain(session, flow.id) == seq


def test_a_forged_system_name_is_detected(session, office, factory):
    """The system's own events (no actor: the timer sweep) are recorded as 'hệ thống': covered too."""
    from engine.dossiers import timers
    d = receive(session, office)
    timers.run_once(factory, vn(2026, 11, 16, 9, 0))  # long past its appointment: overdue, a system event
    session.rollback()  # see what the sweep committed
    system = next(e for e in events_of(session, d) if e.actor_id is None)
    system.actor_name = FORGED
    session.commit()
    result = check(session, d)
    assert (result.first_bad_seq, result.reason, result.real_name) == (system.seq, audit.FORGED_NAME,
                                                                         audit.SYSTEM_ACTOR)


# --- defect 2: the head recorded on the dossier is checked -----------------------------------------
def test_deleting_the_last_event_is_detected(session, office, flow):
    last = events_of(session, flow)[-1].seq
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == last))
    session.commit()
    result = check(session, flow)
    assert (result.first_bad_seq, result.reason) == (last, audit.MISSING_TAIL)
    assert audit.verify_chain(session, flow.id) == last


def test_wiping_a_whole_log_with_its_head_is_detected(session, office, flow):
    """Found by review: all events deleted and the head set back to the start looked like an intact log of
    0 events; a dossier's log always starts with its reception."""
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == flow.id))
    session.execute(update(Dossier).where(Dossier.id == flow.id).values(audit_seq=0, audit_head=audit.GENESIS))
    session.commit()
    result = check(session, flow)
    assert (result.intact, result.first_bad_seq, result.reason) == (False, 1, audit.MISSING_TAIL)


def test_deleting_an_event_in_the_middle_is_a_gap(session, office, flow):
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == 3))
    session.commit()
    assert (check(session, flow).first_bad_seq, check(session, flow).reason) == (3, audit.GAP)


def test_a_head_that_is_not_the_last_event_is_detected(session, office, flow):
    """The head on the dossier no longer names the log's last event (the head was set back after events
    were added, or the last event was swapped for another with its own valid hash)."""
    n = len(events_of(session, flow))
    session.execute(update(Dossier).where(Dossier.id == flow.id).values(audit_head="f" * 64))
    session.commit()
    assert (check(session, flow).first_bad_seq, check(session, flow).reason) == (n, audit.HEAD_MISMATCH)
    # events beyond the recorded count (the head set back by two): the first of them is named
    session.execute(update(Dossier).where(Dossier.id == flow.id).values(audit_seq=n - 2,
                                                                         audit_head=events_of(session, flow)[-3].hash))
    session.commit()
    assert (check(session, flow).first_bad_seq, check(session, flow).reason) == (n - 1, audit.HEAD_MISMATCH)


def test_a_changed_link_is_detected(session, office, flow):
    session.execute(update(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == 3)
                    .values(prev_hash="e" * 64))
    session.commit()
    result = check(session, flow)
    assert (result.first_bad_seq, result.reason) == (3, audit.HASH_MISMATCH) and "link" in result.detail


# --- defect 3: the chain is keyed -------------------------------------------------------------------
def test_rehashing_a_changed_chain_without_the_key_is_detected(session, office, flow):
    second = events_of(session, flow)[1]
    second.data = {**second.data, "note": "sửa lén"}
    session.commit()
    rehash(session, flow, lambda prev, e: audit._digest_v2(b"k" * 32, flow.code, prev, e.seq, e.at, e.actor_id,
                                                            e.actor_name, e.kind, e.step, e.data))
    assert (check(session, flow).first_bad_seq, check(session, flow).reason) == (1, audit.HASH_MISMATCH)
    # the whole chain rewritten in the old, unkeyed format: this dossier was never sealed as an old one
    for e in events_of(session, flow):
        e.chain_version = audit.LEGACY
    rehash(session, flow, unkeyed)
    result = check(session, flow)
    assert (result.first_bad_seq, result.reason) == (1, audit.HASH_MISMATCH) and "seal" in result.detail


def test_a_keyed_event_cannot_be_passed_off_as_an_unkeyed_one(session, office, flow):
    """Versions never go back along a chain: after a keyed event, an unkeyed one is refused."""
    events = events_of(session, flow)
    prev = events[1].hash
    for e in events[2:]:
        e.chain_version, e.prev_hash = audit.LEGACY, prev
        e.hash = prev = unkeyed(prev, e)
    session.get(Dossier, flow.id).audit_head = prev
    session.commit()
    assert (check(session, flow).first_bad_seq, check(session, flow).reason) == (3, audit.HASH_MISMATCH)


def test_a_chain_cannot_be_moved_to_another_dossier(session, office, flow):
    other = receive(session, office, at=vn(2026, 11, 2, 9, 5))
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == other.id))
    session.execute(update(AuditEvent).where(AuditEvent.dossier_id == flow.id).values(dossier_id=other.id))
    session.execute(update(Dossier).where(Dossier.id == other.id).values(audit_seq=flow.audit_seq,
                                                                          audit_head=flow.audit_head))
    session.commit()
    assert check(session, other).first_bad_seq == 1


def test_the_hash_is_an_hmac_with_the_configured_key(session, office, flow, monkeypatch, rekey):
    e = events_of(session, flow)[0]
    assert e.chain_version == audit.KEYED
    payload = audit._json({"v": 2, "dossier": flow.code, "prev": audit.GENESIS, "seq": 1, "at": e.at.isoformat(),
                           "actor": e.actor_id, "actor_name": e.actor_name, "kind": e.kind, "step": e.step,
                           "data": e.data})
    assert e.hash == hmac.new(os.environ["MOTCUA_AUDIT_KEY"].encode(), payload, hashlib.sha256).hexdigest()
    assert check(session, flow).intact
    monkeypatch.setenv("MOTCUA_AUDIT_KEY", "another-key-of-at-least-32-characters")
    config.forget_audit_key()
    assert (check(session, flow).first_bad_seq, check(session, flow).reason) == (1, audit.HASH_MISMATCH)


# --- the key's configuration ------------------------------------------------------------------------
@pytest.fixture
def rekey():
    """For tests that change the key's settings: the process reads them once, so read them again."""
    config.forget_audit_key()
    yield
    config.forget_audit_key()


@pytest.fixture
def no_key(monkeypatch, tmp_path, rekey):
    for name in ("MOTCUA_AUDIT_KEY", "MOTCUA_AUDIT_KEY_FILE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", tmp_path / "var")
    return tmp_path


def test_a_sqlite_instance_without_a_key_creates_its_own_key_file(no_key):
    key = config.audit_key()
    path = no_key / "var" / "audit.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key == path.read_bytes().strip() and len(key) >= 32
    config.forget_audit_key()
    assert config.audit_key() == key  # read back, not made again


def test_a_server_database_without_a_key_refuses(no_key, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/motcua")
    with pytest.raises(config.ConfigError, match="MOTCUA_AUDIT_KEY"):
        config.audit_key()
    assert not (no_key / "var" / "audit.key").exists()

    def started(*args):
        raise AssertionError(f"started without an audit key: {args}")
    monkeypatch.setattr(os, "execvp", started)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2 and "MOTCUA_AUDIT_KEY" in result.output
    result = CliRunner().invoke(main, ["timers", "run", "--once"])
    assert result.exit_code == 2 and "MOTCUA_AUDIT_KEY" in result.output
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 2 and "MOTCUA_AUDIT_KEY" in result.output


def test_key_settings_are_checked(no_key, monkeypatch):
    def key_with(**env):
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        config.forget_audit_key()
        return config.audit_key()

    with pytest.raises(config.ConfigError, match="shorter than 32"):
        key_with(MOTCUA_AUDIT_KEY="short")
    key_file = no_key / "audit-key"
    key_file.write_text("k" * 40 + "\n")
    with pytest.raises(config.ConfigError, match="not both"):
        key_with(MOTCUA_AUDIT_KEY="x" * 40, MOTCUA_AUDIT_KEY_FILE=str(key_file))
    assert key_with(MOTCUA_AUDIT_KEY=None) == b"k" * 40
    assert config.audit_key() == b"k" * 40  # kept: the settings are read once
    with pytest.raises(config.ConfigError, match="cannot be read"):
        key_with(MOTCUA_AUDIT_KEY_FILE=str(no_key / "missing"))


# --- chains written before 0012 -----------------------------------------------------------------------
def test_chains_written_before_0012_still_verify_and_continue_keyed(session, office, db_url):
    d = receive(session, office)
    advance(session, office, d, 1)
    # What an earlier version wrote: unkeyed hashes without the actor's name.
    prev, legacy = audit.GENESIS, []
    for e in events_of(session, d):
        digest = unkeyed(prev, e)
        legacy.append((e.id, prev, digest))
        prev = digest
    d_id = d.id
    session.rollback()
    session.close()
    cfg = schema.alembic_config(db_url)
    from alembic import command
    try:
        command.downgrade(cfg, "0011")
        eng = session.get_bind()
        with eng.begin() as conn:
            assert "chain_version" not in {c["name"] for c in inspect(conn).get_columns("audit_events")}
            for event_id, p, h in legacy:
                conn.execute(text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :i"),
                             {"p": p, "h": h, "i": event_id})
            conn.execute(text("UPDATE dossiers SET audit_head = :h WHERE id = :i"), {"h": prev, "i": d_id})
        command.upgrade(cfg, "0012")
        with eng.connect() as conn:
            assert {r[0] for r in conn.execute(text("SELECT DISTINCT chain_version FROM audit_events"))} == {1}
    finally:
        command.upgrade(cfg, "head")
    d = session.get(Dossier, d_id)
    assert check(session, d).intact
    n = len(legacy)
    advance(session, office, d, 1, start=vn(2026, 11, 2, 11, 0))
    versions = [e.chain_version for e in events_of(session, d)]
    assert versions[:n] == [1] * n and set(versions[n:]) == {2} and len(versions) > n
    assert check(session, d).intact
    # an old event changed and the old events rehashed without the key, the keyed ones linked to them anew:
    # the seal no longer matches where the old events end
    events = events_of(session, d)
    original = dict(events[1].data)
    events[1].data = {**original, "name": "bước khác"}
    prefix = rehash_prefix(session, d, n)
    assert (check(session, d).first_bad_seq, check(session, d).reason) == (1, audit.HASH_MISMATCH)
    assert "seal" in check(session, d).detail
    events_of(session, d)[1].data = original
    assert rehash_prefix(session, d, n) != prefix and check(session, d).intact  # as it was
    keyed_events = events_of(session, d)[n:]
    # a keyed event rewritten in the old format after the sealed ones is caught where it starts
    for e in keyed_events:
        e.chain_version = audit.LEGACY
    rehash(session, d, unkeyed)
    assert (check(session, d).first_bad_seq, check(session, d).reason) == (n + 1, audit.HASH_MISMATCH)
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == d.id, AuditEvent.seq > n))
    session.execute(update(Dossier).where(Dossier.id == d.id).values(audit_seq=n))
    session.commit()
    rehash(session, d, unkeyed)
    assert check(session, d).intact  # back to the old events as sealed
    # an old event changed: caught by the old rule, and after a rehash without the key, by the seal
    old = events_of(session, d)[1]
    old.data = {**old.data, "name": "bước khác"}
    session.commit()
    assert (check(session, d).first_bad_seq, check(session, d).reason) == (2, audit.HASH_MISMATCH)
    rehash(session, d, unkeyed)
    result = check(session, d)
    assert (result.first_bad_seq, result.reason) == (1, audit.HASH_MISMATCH) and "seal" in result.detail


# --- verifying many dossiers: one query a batch ------------------------------------------------------
def verify_all(session, limit: int) -> tuple[list[tuple], int]:
    """What `motcua audit verify` does: batches until none is left; (failures, batches)."""
    found, after, batches = [], 0, 0
    while True:
        batch = audit.check_batch(session, after_id=after, limit=limit)
        session.rollback()
        if batch.last_id is None:
            return found, batches
        batches += 1
        found += [(c.code, c.first_bad_seq, c.reason) for c in batch.failures]
        after = batch.last_id


def test_batches_read_one_query_each_and_find_every_broken_chain(session, office, engine_):
    ds = [receive(session, office, at=vn(2026, 11, 2, 9, i)) for i in range(5)]
    foreign = dossiers.receive_dossier(session, actor_id=office["other_mot_cua"], procedure_code="1.001612",
                                       channel="counter", applicant=APPLICANT, components=components_for("1.001612"),
                                       now=vn(2026, 11, 2, 9))
    statements = []

    def count(conn, cursor, statement, *rest):
        statements.append(statement)
    event.listen(engine_, "before_cursor_execute", count)
    try:
        assert verify_all(session, 2) == ([], 3)
    finally:
        event.remove(engine_, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 4  # 3 batches, 1 empty
    session.execute(update(AuditEvent).where(AuditEvent.dossier_id == ds[1].id, AuditEvent.seq == 1)
                    .values(kind="forged"))
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == ds[3].id, AuditEvent.seq == ds[3].audit_seq))
    session.execute(update(AuditEvent).where(AuditEvent.dossier_id == foreign.id, AuditEvent.seq == 1)
                    .values(kind="forged"))
    session.commit()
    assert verify_all(session, 2)[0] == [(ds[1].code, 1, audit.HASH_MISMATCH),
                                         (ds[3].code, ds[3].audit_seq, audit.MISSING_TAIL),
                                         (foreign.code, 1, audit.HASH_MISMATCH)]
    own_unit = audit.check_batch(session, unit_ids=[ds[0].unit_id])
    assert own_unit.checked == 5 and [c.code for c in own_unit.failures] == [ds[1].code, ds[3].code]


# --- the command line ------------------------------------------------------------------------------
def test_cli_audit_verify(session, office, flow, db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "1 dossiers" in ok.output and "every audit log intact" in ok.output
    one = CliRunner().invoke(main, ["audit", "verify", "--dossier", flow.code])
    assert one.exit_code == 0 and f"{flow.code}: intact" in one.output
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == flow.audit_seq))
    session.commit()
    bad = CliRunner().invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert f"{flow.code}: first bad event {flow.audit_seq}: missing_tail" in bad.output
    assert "1 with a broken audit log" in bad.output
    assert CliRunner().invoke(main, ["audit", "verify", "--dossier", flow.code]).exit_code == 1
    unknown = CliRunner().invoke(main, ["audit", "verify", "--dossier", "H40.1-000000-0000"])
    assert unknown.exit_code == 2 and "no dossier H40.1-000000-0000" in unknown.output


# --- the API ---------------------------------------------------------------------------------------
def test_api_returns_the_log_and_its_verdict(client, session, office, flow):
    from conftest import bearer
    headers = bearer(client, "chuyen_vien1")
    ok = client.get(f"/api/v1/dossiers/{flow.code}/audit", headers=headers)
    assert ok.status_code == 200, ok.get_json()
    body = ok.get_json()
    assert (body["intact"], body["first_bad_seq"], body["reason"]) == (True, None, None)
    assert [e["seq"] for e in body["events"]] == list(range(1, flow.audit_seq + 1))
    assert body["events"][0]["kind"] == "received" and body["events"][0]["at"].endswith("+07:00")
    assert client.get(f"/api/v1/dossiers/{flow.code}/audit", headers=bearer(client, "cv_khac")).status_code == 404
    assert client.get(f"/api/v1/dossiers/{flow.code}/audit").status_code == 401
    session.rollback()  # the requests wrote (tokens): a fresh transaction to write in
    session.execute(update(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == 2)
                    .values(actor_name=FORGED))
    session.commit()
    body = client.get(f"/api/v1/dossiers/{flow.code}/audit", headers=headers).get_json()
    assert (body["intact"], body["first_bad_seq"], body["reason"]) == (False, 2, "forged_name")
    assert body["events"][1]["actor_name"] == FORGED and len(body["events"]) == flow.audit_seq
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "AuditOut" in str(spec["paths"]["/dossiers/{code}/audit"]["get"]["responses"]["200"])


# --- the screens -----------------------------------------------------------------------------------
def _login(app, username):
    app.config["SESSION_COOKIE_SECURE"] = False
    client = app.test_client()
    page = client.get("/dang-nhap").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123", "csrf_token": token})
    assert r.status_code == 302
    return client


def test_the_dossier_page_warns_of_a_broken_log(app, session, office, flow):
    desk = _login(app, "mot_cua1")
    page = desk.get(f"/ho-so/{flow.code}").get_data(as_text=True)
    assert "không toàn vẹn" not in page
    session.execute(delete(AuditEvent).where(AuditEvent.dossier_id == flow.id, AuditEvent.seq == flow.audit_seq))
    session.commit()
    page = desk.get(f"/ho-so/{flow.code}").get_data(as_text=True)
    assert "Nhật ký hồ sơ không toàn vẹn" in page
    assert f"từ sự kiện số {flow.audit_seq}: các sự kiện cuối của nhật ký đã bị xóa" in page


def test_the_admin_check_pages_through_batches_and_lists_broken_logs(app, session, office, monkeypatch):
    from webapp import admin
    ds = [receive(session, office, at=vn(2026, 11, 2, 9, i)) for i in range(3)]
    first = next(e for e in events_of(session, ds[2]) if e.kind == "received")
    real, first.actor_name = first.actor_name, FORGED
    session.commit()
    monkeypatch.setattr(admin, "AUDIT_BATCH", 2)
    monkeypatch.setattr(admin, "AUDIT_MAX_BATCHES", 1)
    admin_client = _login(app, "admin1")
    page = admin_client.get("/quan-tri/nhat-ky")
    text_ = page.get_data(as_text=True)
    assert page.status_code == 200 and "Đã kiểm tra <strong>2</strong> hồ sơ" in text_
    assert "không toàn vẹn" not in text_ and "Kiểm tra tiếp" in text_
    following = re.search(r'href="(/quan-tri/nhat-ky\?sau=\d+)"', text_).group(1)
    text_ = admin_client.get(following).get_data(as_text=True)
    assert "Đã kiểm tra <strong>1</strong> hồ sơ" in text_ and "1 hồ sơ có nhật ký không toàn vẹn" in text_
    assert ds[2].code in text_ and f"ghi người thực hiện “{FORGED}” nhưng được ghi nhận cho “{real}”" in text_
    assert "Đã kiểm tra đến hồ sơ cuối cùng" in text_
    bad = admin_client.get("/quan-tri/nhat-ky?sau=abc")
    assert bad.status_code == 400 and "Vị trí tiếp tục kiểm tra không hợp lệ" in bad.get_data(as_text=True)
    assert _login(app, "chuyen_vien1").get("/quan-tri/nhat-ky").status_code == 403


@pytest.mark.postgres_only
def test_init_db_without_the_key_on_a_database_with_logs_says_why(session, office, db_url, monkeypatch, rekey):
    """Migration 0012 seals the logs already written, with the key: `motcua init-db` without it stops with
    the reason (exit 2), not a traceback, and leaves the schema where it was."""
    receive(session, office)
    session.commit()
    session.close()
    cfg = schema.alembic_config(db_url)
    from alembic import command
    command.downgrade(cfg, "0011")
    try:
        with monkeypatch.context() as env:
            for name in ("MOTCUA_AUDIT_KEY", "MOTCUA_AUDIT_KEY_FILE"):
                env.delenv(name, raising=False)
            env.setenv("DATABASE_URL", db_url)
            config.forget_audit_key()
            result = CliRunner().invoke(main, ["init-db"])
        assert result.exit_code == 2 and "MOTCUA_AUDIT_KEY" in result.output, result.output
        assert "Traceback" not in result.output
        with session.get_bind().connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0011"
    finally:
        config.forget_audit_key()
        command.upgrade(cfg, "head")
