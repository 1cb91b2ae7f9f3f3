"""audit: keyed chain covering the actor's name

Every event gets `chain_version`: the events already written keep 1 (unkeyed SHA-256 without the
actor's name) and verify under that rule; new events are written as 2 (HMAC-SHA256 with the audit
key, covering the actor's name and the dossier's code). Nothing is rehashed: the old hashes stay the
evidence they were. Each dossier that has events is sealed: `audit_legacy_seal` = HMAC of its code,
event count and head with the audit key, so its old events (which carry no key) cannot be rewritten,
nor keyed events passed off as old ones, without the key. This needs the audit key (engine/config.py)
when there are events to seal; a fresh database needs none.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 04:00:00
"""
import hashlib
import hmac
import json

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BATCH = 10_000


def legacy_seal(key: bytes, code: str, seq: int, head: str) -> str:
    """Frozen here as written in 0012; engine/dossiers/audit.py verifies with the same formula."""
    payload = json.dumps({"v": "legacy-seal", "dossier": code, "seq": seq, "head": head}, sort_keys=True,
                         ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table('audit_events') as batch:
        batch.add_column(sa.Column('chain_version', sa.SmallInteger(), server_default=sa.text('1'), nullable=False))
    with op.batch_alter_table('dossiers') as batch:
        batch.add_column(sa.Column('audit_legacy_seal', sa.String(length=64), nullable=True))
    dossiers = sa.table('dossiers', sa.column('id', sa.Integer()), sa.column('code', sa.String()),
                        sa.column('audit_seq', sa.Integer()), sa.column('audit_head', sa.String()),
                        sa.column('audit_legacy_seal', sa.String()))
    conn = op.get_bind()
    seal = (dossiers.update().where(dossiers.c.id == sa.bindparam('dossier_id'))
            .values(audit_legacy_seal=sa.bindparam('seal')))
    key, last = None, 0
    while True:  # in batches: a province has millions of dossiers
        rows = conn.execute(sa.select(dossiers.c.id, dossiers.c.code, dossiers.c.audit_seq, dossiers.c.audit_head)
                            .where(dossiers.c.audit_seq > 0, dossiers.c.id > last)
                            .order_by(dossiers.c.id).limit(BATCH)).all()
        if not rows:
            break
        if key is None:
            from engine import config
            key = config.audit_key()
        conn.execute(seal, [{"dossier_id": r.id, "seal": legacy_seal(key, r.code, r.audit_seq, r.audit_head)}
                            for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    # An earlier version reads keyed events as tampered ones: downgrade only to go back to it for good.
    with op.batch_alter_table('dossiers') as batch:
        batch.drop_column('audit_legacy_seal')
    with op.batch_alter_table('audit_events') as batch:
        batch.drop_column('chain_version')
