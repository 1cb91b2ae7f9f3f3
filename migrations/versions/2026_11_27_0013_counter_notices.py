"""counter notices: guidance (form 02) and refusals (form 03) given at the desk without a dossier

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 04:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('counter_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('procedure_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('applicant', sa.JSON(), nullable=False),
    sa.Column('applicant_id_number', sa.String(length=32), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('repeated', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('issued_by_id', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['issued_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['procedure_id'], ['procedures.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('unit_id', 'year', 'kind', 'number', name='uq_counter_notices_number')
    )
    with op.batch_alter_table('counter_notices', schema=None) as batch_op:
        batch_op.create_index('ix_counter_notices_applicant', ['unit_id', 'procedure_id', 'applicant_id_number'],
                              unique=False)
        batch_op.create_index('ix_counter_notices_unit_day', ['unit_id', 'issued_on'], unique=False)
    op.create_table('counter_notice_sequences',
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('unit_id', 'year', 'kind')
    )


def downgrade() -> None:
    op.drop_table('counter_notice_sequences')
    with op.batch_alter_table('counter_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_counter_notices_unit_day')
        batch_op.drop_index('ix_counter_notices_applicant')
    op.drop_table('counter_notices')
