"""deadlines in force: legal due date, paused clock, register number, how the result was collected

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 01:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('register_sequences',
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('unit_id', 'year')
    )
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legal_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('clock_paused', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('register_year', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('register_no', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('returned_via', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('supplement_late', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    with op.batch_alter_table('procedures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supplement_response_days', sa.Integer(), nullable=True))
    with op.batch_alter_table('supplement_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('respond_by', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('apologies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signed_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_apologies_signed_by_id_users', 'users', ['signed_by_id'], ['id'])
    # The date in force: an apology never moved it, a supplement set it afresh.
    op.execute("UPDATE dossiers SET legal_due_at = due_at")
    op.execute("UPDATE dossiers SET legal_due_at = (SELECT a.previous_due_at FROM apologies a "
               "WHERE a.dossier_id = dossiers.id) WHERE apologized AND NOT EXISTS (SELECT 1 FROM supplement_requests s "
               "WHERE s.dossier_id = dossiers.id AND s.received_at > (SELECT a.issued_at FROM apologies a "
               "WHERE a.dossier_id = dossiers.id))")
    op.execute("UPDATE dossiers SET supplement_late = true WHERE EXISTS "
               "(SELECT 1 FROM supplement_requests s WHERE s.dossier_id = dossiers.id AND NOT s.within_window)")
    op.execute("UPDATE dossiers SET clock_paused = true WHERE status = 'awaiting_supplement' AND EXISTS "
               "(SELECT 1 FROM supplement_requests s WHERE s.dossier_id = dossiers.id AND s.within_window)")
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.alter_column('legal_due_at', nullable=False)
        batch_op.create_unique_constraint('uq_dossiers_register_no', ['unit_id', 'register_year', 'register_no'])
    op.drop_index("ix_dossiers_open", table_name="dossiers")
    op.create_index("ix_dossiers_open", "dossiers", ["unit_id", "procedure_id"], unique=False,
                    postgresql_include=["received_on", "status", "legal_due_at", "clock_paused", "apologized"],
                    postgresql_where=sa.text("finished_on IS NULL"), sqlite_where=sa.text("finished_on IS NULL"))
    # Every counter from the dossiers already there (a late supplement request now scores 0 on TT 01
    # index 3). The rebuild reads the current model: it belongs to the newest migration that changes
    # what the counters read — move it there when that happens.
    from sqlalchemy.orm import Session

    from engine.reporting import counters

    counters.rebuild(Session(bind=op.get_bind()))


def downgrade() -> None:
    with op.batch_alter_table('apologies', schema=None) as batch_op:
        batch_op.drop_constraint('fk_apologies_signed_by_id_users', type_='foreignkey')
        batch_op.drop_column('signed_by_id')
    op.drop_index("ix_dossiers_open", table_name="dossiers")
    op.create_index("ix_dossiers_open", "dossiers", ["unit_id", "procedure_id"], unique=False,
                    postgresql_include=["received_on", "status", "due_at", "apologized"],
                    postgresql_where=sa.text("finished_on IS NULL"), sqlite_where=sa.text("finished_on IS NULL"))
    with op.batch_alter_table('supplement_requests', schema=None) as batch_op:
        batch_op.drop_column('expired_at')
        batch_op.drop_column('respond_by')
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_dossiers_register_no', type_='unique')
        batch_op.drop_column('supplement_late')
        batch_op.drop_column('returned_via')
        batch_op.drop_column('register_no')
        batch_op.drop_column('register_year')
        batch_op.drop_column('clock_paused')
        batch_op.drop_column('legal_due_at')
    with op.batch_alter_table('procedures', schema=None) as batch_op:
        batch_op.drop_column('supplement_response_days')
    op.drop_table('register_sequences')
