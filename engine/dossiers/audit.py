"""Append-only, hash-chained audit log per dossier: chaining new events and verifying chains.

Each event's hash covers the previous event's hash, so an event changed, inserted or removed breaks the
chain from there on; the dossier row keeps the chain's head (`audit_seq`, `audit_head`), so the last
events cannot be removed unnoticed either. Since migration 0012 an event's hash is an HMAC-SHA256 with
the audit key (engine/config.audit_key), which is held outside the database: write access to the
database is not enough to rehash a chain. Its payload also covers the actor's name (shown on the
control slip and the timeline) and the dossier's code (a chain cannot be moved to another dossier).

Versions (`audit_events.chain_version`): 1 = the events written before 0012 — unkeyed SHA-256 without
the actor's name — verified under their own rule and sealed by that migration with the key
(`dossiers.audit_legacy_seal`: their count and head), so they cannot be rewritten, nor keyed events
passed off as old ones; their actors' names stay uncovered, as they always were. 2 = keyed. Versions
never go back along a chain.

Anchors (engine/dossiers/anchors.py, migration 0015): someone with write access to the database could
remove a dossier's last events and set its recorded head back to an earlier event (a valid one), or
remove a dossier with its log. So the heads are sealed periodically: each anchor records the head of
every dossier whose log grew since the previous one, is keyed and chained to it, goes to the outbox and
is appended to files outside the database. A chain shorter than (or different from) its dossier's latest
anchored head fails here as `truncated_after_anchor`; a dossier removed, anchor rows changed or removed,
and file lines without their row are found by `anchors.verify`. What stays open: the events written since
the latest anchor (at most MOTCUA_AUDIT_ANCHOR_SECONDS old) can still be removed unnoticed, and so can
everything by someone who can also rewrite or delete the anchor files — which needs write access to the
server's disk (or to wherever the files are kept) as well as to the database. docs/audit.md says more.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import groupby

from sqlalchemy import and_, func, insert, select
from sqlalchemy.orm import Session

from engine import config
from engine.store.db import Prepared
from engine.store.models import AuditAnchorHead, AuditEvent, Dossier, User

GENESIS = "0" * 64
LEGACY, KEYED = 1, 2
SYSTEM_ACTOR = "hệ thống"  # the name recorded for the system's own events (timers, sweeps)

# Why a chain fails (reason codes, stable for the API and the CLI).
GAP, HASH_MISMATCH, FORGED_NAME, MISSING_TAIL, HEAD_MISMATCH, TRUNCATED_AFTER_ANCHOR = (
    "gap", "hash_mismatch", "forged_name", "missing_tail", "head_mismatch", "truncated_after_anchor")
REASONS = {
    GAP: "an event is missing from the middle of the log",
    HASH_MISMATCH: "the event does not match its hash: it was changed after it was written",
    FORGED_NAME: "the actor's name shown was changed after the event was written",
    MISSING_TAIL: "the last events were removed: the dossier records more events than the log holds",
    HEAD_MISMATCH: "the log's last event is not the head recorded on the dossier",
    TRUNCATED_AFTER_ANCHOR: "events sealed by an anchor are missing: the log was cut back, its head with it",
}


def _json(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _digest_v1(prev_hash: str, seq: int, at: datetime, actor_id: int | None, kind: str, step: str | None,
               data: dict) -> str:
    """The hash of the events written before migration 0012 (kept only to verify them)."""
    return hashlib.sha256(_json({"prev": prev_hash, "seq": seq, "at": at.isoformat(), "actor": actor_id,
                                 "kind": kind, "step": step, "data": data})).hexdigest()


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with `key` and nothing hashed yet: copying it skips the key set-up on every event."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _digest_v2(key: bytes, code: str, prev_hash: str, seq: int, at: datetime, actor_id: int | None,
               actor_name: str, kind: str, step: str | None, data: dict) -> str:
    mac = _keyed(key).copy()
    mac.update(_json({"v": KEYED, "dossier": code, "prev": prev_hash, "seq": seq, "at": at.isoformat(),
                      "actor": actor_id, "actor_name": actor_name, "kind": kind, "step": step, "data": data}))
    return mac.hexdigest()


def chain(dossier, kind: str, at: datetime, actor=None, step: str | None = None, **data) -> dict:
    """The next event of `dossier`'s chain as a row to insert (`actor`: an Actor, or None for the
    system); advances the chain head on the dossier record. The caller holds the dossier's row lock,
    so seq and head are stable; the unit of work writes the rows in one INSERT before it commits."""
    seq = dossier.audit_seq + 1
    # UTC, millisecond precision: exactly what both databases give back, so the hash re-verifies.
    at = at.astimezone(timezone.utc).replace(microsecond=(at.microsecond // 1000) * 1000)
    prev = dossier.audit_head
    actor_id = actor.id if actor is not None else None
    actor_name = actor.display_name if actor is not None else SYSTEM_ACTOR
    digest = _digest_v2(config.audit_key(), dossier.code, prev, seq, at, actor_id, actor_name, kind, step, data)
    dossier.audit_seq, dossier.audit_head = seq, digest
    return {"dossier_id": dossier.id, "seq": seq, "at": at, "actor_id": actor_id, "actor_name": actor_name,
            "kind": kind, "step": step, "data": data, "prev_hash": prev, "hash": digest, "chain_version": KEYED}


_INSERT = Prepared(insert(AuditEvent.__table__))  # built once: every use case writes here


def write(session: Session, rows: list[dict]) -> None:
    """Insert chained events (one multi-row INSERT, in the current transaction)."""
    if rows:
        _INSERT.run(session.connection(), rows)


# --- verifying -----------------------------------------------------------------------------------
@dataclass
class ChainCheck:
    """The verdict on one dossier's chain: intact, or the first event that is wrong and why."""

    dossier_id: int
    code: str
    unit_id: int | None = None          # the receiving unit (who may look at the dossier)
    events: int = 0                     # events read up to the verdict
    first_bad_seq: int | None = None
    reason: str | None = None           # one of REASONS
    detail: str = ""
    bad_event: dict | None = None       # kind, at, actor_name of the first bad event, when it exists
    real_name: str | None = None        # forged_name: the name the event was recorded with
    anchor_id: int | None = None        # truncated_after_anchor: the anchor whose head the log no longer has
    _suspect: tuple | None = field(default=None, repr=False, compare=False)  # (row, prev): is it the name?

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None

    def line(self) -> str:
        """One line for a terminal."""
        if self.intact:
            return f"{self.code}: intact ({self.events} events)"
        return f"{self.code}: first bad event {self.first_bad_seq}: {self.reason} — {self.detail or REASONS[self.reason]}"


_EVENT_COLUMNS = (AuditEvent.seq, AuditEvent.at, AuditEvent.actor_id, AuditEvent.actor_name, AuditEvent.kind,
                  AuditEvent.step, AuditEvent.data, AuditEvent.prev_hash, AuditEvent.hash, AuditEvent.chain_version)
_DOSSIER_COLUMNS = (Dossier.id, Dossier.code, Dossier.unit_id, Dossier.audit_seq, Dossier.audit_head,
                    Dossier.audit_legacy_seal)


def _chains(dossier_ids):
    """One query: the given dossiers' heads — as recorded on the dossier and as sealed by its latest anchor
    — each followed by its events in order (a dossier without events gives one row with no event)."""
    latest = (select(AuditAnchorHead.dossier_id, func.max(AuditAnchorHead.anchor_id).label("anchor_id"))
              .where(AuditAnchorHead.dossier_id.in_(dossier_ids)).group_by(AuditAnchorHead.dossier_id).subquery())
    return (select(*_DOSSIER_COLUMNS, latest.c.anchor_id, AuditAnchorHead.seq.label("anchored_seq"),
                   AuditAnchorHead.head.label("anchored_head"), *_EVENT_COLUMNS)
            .select_from(Dossier)
            .outerjoin(latest, latest.c.dossier_id == Dossier.id)
            .outerjoin(AuditAnchorHead, and_(AuditAnchorHead.dossier_id == latest.c.dossier_id,
                                             AuditAnchorHead.anchor_id == latest.c.anchor_id))
            .outerjoin(AuditEvent, AuditEvent.dossier_id == Dossier.id)
            .where(Dossier.id.in_(dossier_ids)).order_by(Dossier.id, AuditEvent.seq))


def _check(key: bytes, head, rows) -> ChainCheck:
    """Verify one dossier's chain from its head (`head`: id, code, audit_seq, audit_head, audit_legacy_seal,
    and the latest anchor's anchor_id, anchored_seq, anchored_head) and its event rows in seq order, reading
    them one by one."""
    check = ChainCheck(head.id, head.code, head.unit_id)

    def fail(seq: int, reason: str, detail: str, row=None) -> ChainCheck:
        check.first_bad_seq, check.reason, check.detail = seq, reason, detail
        if row is not None:
            check.bad_event = {"kind": row.kind, "at": row.at, "actor_name": row.actor_name}
        return check

    prev, expected, keyed = GENESIS, 1, False
    legacy_last = sealed_at = None  # the old events' last seq, and the one the dossier's seal matches
    at_anchor = None  # the hash of the event at the seq the latest anchor sealed
    for row in rows:
        if row.seq is None:  # the outer join's row of a dossier without events
            continue
        check.events += 1
        if row.seq != expected:
            return fail(expected, GAP, f"event {expected} is missing (the log goes on at {row.seq})")
        if row.chain_version == KEYED:
            if not keyed and legacy_last is not None and sealed_at != legacy_last:
                return fail(*_unsealed(legacy_last, sealed_at))
            keyed = True
            digest = _digest_v2(key, head.code, prev, row.seq, row.at, row.actor_id, row.actor_name, row.kind,
                                row.step, row.data)
        elif row.chain_version == LEGACY and not keyed:
            digest = _digest_v1(prev, row.seq, row.at, row.actor_id, row.kind, row.step, row.data)
        else:
            return fail(row.seq, HASH_MISMATCH, f"chain version {row.chain_version} is not allowed here "
                        "(an unkeyed event after keyed ones)", row)
        if not hmac.compare_digest(digest, row.hash):
            fail(row.seq, HASH_MISMATCH, REASONS[HASH_MISMATCH], row)
            if row.chain_version == KEYED:
                check._suspect = (row, prev)
            return check
        if row.prev_hash != prev:
            return fail(row.seq, HASH_MISMATCH, "its link to the previous event was changed", row)
        if row.chain_version == LEGACY:
            legacy_last = row.seq
            if head.audit_legacy_seal is not None and hmac.compare_digest(
                    legacy_seal(key, head.code, row.seq, row.hash), head.audit_legacy_seal):
                sealed_at = row.seq
        if row.seq == head.anchored_seq:
            at_anchor = row.hash
        prev = row.hash
        expected += 1
    if not keyed and legacy_last is not None and sealed_at != legacy_last:
        return fail(*_unsealed(legacy_last, sealed_at))
    if expected == 1:   # every dossier's log starts with its reception: an empty one was wiped, head and all
        return fail(1, MISSING_TAIL, "the log is empty, yet every dossier's log starts with its reception")
    last = expected - 1
    if last < head.audit_seq:
        return fail(last + 1, MISSING_TAIL, f"the dossier records {head.audit_seq} events, the log ends at {last}")
    if last > head.audit_seq:
        return fail(head.audit_seq + 1, HEAD_MISMATCH, f"events after the head recorded on the dossier "
                    f"(event {head.audit_seq})")
    if prev != head.audit_head:
        return fail(max(last, 1), HEAD_MISMATCH, REASONS[HEAD_MISMATCH])
    if head.anchored_seq is not None:  # the log and its head agree: do they still hold what was sealed?
        check.anchor_id = head.anchor_id
        if last < head.anchored_seq:
            return fail(last + 1, TRUNCATED_AFTER_ANCHOR, f"events {last + 1}–{head.anchored_seq} recorded at "
                        f"anchor {head.anchor_id} are missing: the log and its head were cut back to event {last}")
        if at_anchor != head.anchored_head:
            return fail(head.anchored_seq, TRUNCATED_AFTER_ANCHOR, f"event {head.anchored_seq} is not the one "
                        f"recorded at anchor {head.anchor_id}: the log was cut back and written anew from there")
        check.anchor_id = None
    return check


def legacy_seal(key: bytes, code: str, seq: int, head: str) -> str:
    """The seal migration 0012 put on a dossier's events written before the chain was keyed: their
    count and head, with the dossier's code, under the audit key (the same formula as the migration's)."""
    return hmac.new(key, _json({"v": "legacy-seal", "dossier": code, "seq": seq, "head": head}),
                    hashlib.sha256).hexdigest()


def _unsealed(legacy_last: int, sealed_at: int | None) -> tuple[int, str, str]:
    """Why the unkeyed events of a chain are not the ones sealed when it was keyed."""
    if sealed_at is not None:  # the seal covers fewer: the ones after it were written in the old format
        return (sealed_at + 1, HASH_MISMATCH,
                f"events {sealed_at + 1}–{legacy_last} are in the old, unkeyed format but came after the chain was keyed")
    return (1, HASH_MISMATCH, f"the events written before the chain was keyed (1–{legacy_last}) do not match the "
            "seal made when it was keyed: one of them was changed, or the dossier had none")


def _explain(session: Session, key: bytes, check: ChainCheck) -> None:
    """A keyed event that does not match its hash: when it matches with the actor's real name instead
    of the name shown, say that the name was forged (and what it was)."""
    if check._suspect is None:
        return
    row, prev = check._suspect
    check._suspect = None
    if row.actor_id is None:
        real = SYSTEM_ACTOR
    else:
        user = session.execute(select(User.full_name, User.username).where(User.id == row.actor_id)).first()
        real = (user.full_name or user.username) if user is not None else None
    if real is None or real == row.actor_name:
        return
    if hmac.compare_digest(_digest_v2(key, check.code, prev, row.seq, row.at, row.actor_id, real, row.kind,
                                      row.step, row.data), row.hash):
        check.reason, check.real_name = FORGED_NAME, real
        check.detail = f"the event shows '{row.actor_name}' but was recorded for '{real}'"


def check_chain(session: Session, dossier_id: int) -> ChainCheck:
    """Verify one dossier's chain, its head included (one query, read as it streams)."""
    key = config.audit_key()
    result = session.execute(_chains([dossier_id]))
    rows = iter(result)
    first = next(rows, None)
    if first is None:
        raise LookupError(f"no dossier with id {dossier_id}")
    check = _check(key, first, _chained(first, rows))
    result.close()
    _explain(session, key, check)
    return check


def audit_log(session: Session, dossier_id: int) -> tuple[ChainCheck, list]:
    """A dossier's events in order, with the verdict on its chain, from the same one query."""
    key = config.audit_key()
    rows = session.execute(_chains([dossier_id])).all()
    if not rows:
        raise LookupError(f"no dossier with id {dossier_id}")
    check = _check(key, rows[0], iter(rows))
    _explain(session, key, check)
    return check, [r for r in rows if r.seq is not None]


def verify_chain(session: Session, dossier_id: int) -> int | None:
    """None if the chain is intact, else the seq of the first event that does not match."""
    return check_chain(session, dossier_id).first_bad_seq


@dataclass
class BatchCheck:
    """One batch of a verification over many dossiers, in id order."""

    checked: int
    failures: list[ChainCheck]
    last_id: int | None        # where the next batch starts (after this id); None: nothing was left
    first_code: str | None = None
    last_code: str | None = None
    events: int = 0


def check_batch(session: Session, *, after_id: int = 0, limit: int = 500,
                unit_ids: list[int] | None = None) -> BatchCheck:
    """Verify the chains of the next `limit` dossiers after id `after_id` (of `unit_ids` only, when
    given): one query for the batch, its rows streamed; what a province's millions need is a loop over
    batches (`last_id`), each in its own short read."""
    key = config.audit_key()
    ids = select(Dossier.id).where(Dossier.id > after_id)
    if unit_ids is not None:
        ids = ids.where(Dossier.unit_id.in_(unit_ids))
    ids = ids.order_by(Dossier.id).limit(limit).scalar_subquery()
    rows = session.execute(_chains(ids).execution_options(yield_per=2000))
    checks = []
    for _, group in groupby(rows, key=lambda r: r.id):
        group = iter(group)
        first = next(group)
        checks.append(_check(key, first, _chained(first, group)))
    rows.close()
    failures = [c for c in checks if not c.intact]
    for check in failures:
        _explain(session, key, check)
    if not checks:
        return BatchCheck(0, [], None)
    return BatchCheck(len(checks), failures, checks[-1].dossier_id, checks[0].code, checks[-1].code,
                      sum(c.events for c in checks))


def _chained(first, rest):
    yield first
    yield from rest
