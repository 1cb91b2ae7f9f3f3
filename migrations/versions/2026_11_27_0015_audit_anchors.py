"""audit anchors: periodic seals of the audit chains' heads, kept outside the database too

`audit_anchors` is a chain of its own (each row's HMAC covers the previous row's); `audit_anchor_heads`
holds, per anchor, the head (seq, hash) of every dossier whose log grew since the previous anchor. The
anchors are also sent through the outbox (event `audit_anchor`, which names no dossier: `outbox_events.
dossier_id` becomes nullable) and appended to files outside the database (engine/dossiers/anchors.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 05:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_anchors',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('up_to_event_id', sa.Integer(), nullable=False),
    sa.Column('dossiers', sa.Integer(), nullable=False),
    sa.Column('root', sa.String(length=64), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_anchor_heads',
    sa.Column('anchor_id', sa.Integer(), nullable=False),
    sa.Column('dossier_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('head', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['anchor_id'], ['audit_anchors.id'], ),
    sa.PrimaryKeyConstraint('anchor_id', 'dossier_id')
    )
    with op.batch_alter_table('audit_anchor_heads', schema=None) as batch_op:
        batch_op.create_index('ix_audit_anchor_heads_dossier', ['dossier_id', 'anchor_id'], unique=False)
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.alter_column('dossier_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # The anchors' outbox events name no dossier: they go with the anchors.
    op.execute("DELETE FROM outbox_events WHERE dossier_id IS NULL")
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.alter_column('dossier_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('audit_anchor_heads', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_anchor_heads_dossier')
    op.drop_table('audit_anchor_heads')
    op.drop_table('audit_anchors')
