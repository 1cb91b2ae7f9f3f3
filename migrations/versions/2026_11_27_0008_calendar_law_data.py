"""calendar as law data: sources and audit fields on days, the calendar change log, the shipped
2025-2027 schedule and the dated transfer cut-off

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calendar_days', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=255), server_default='', nullable=False))
        batch_op.add_column(sa.Column('changed_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key('fk_calendar_days_changed_by_id_users', 'users', ['changed_by_id'], ['id'])
    with op.batch_alter_table('settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('changed_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key('fk_settings_changed_by_id_users', 'users', ['changed_by_id'], ['id'])
    op.create_table('calendar_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=True),
    sa.Column('old_value', sa.JSON(), nullable=True),
    sa.Column('new_value', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('dossiers_moved', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['changed_by_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_calendar_changes_day', 'calendar_changes', ['day'], unique=False)
    # The calendar in force is what the database says: load the shipped 2025-2027 schedule and the
    # dated cut-offs (engine/catalog/vn_calendar.toml). Days an admin already set are kept.
    from engine.catalog.calendar import install_shipped_calendar

    install_shipped_calendar(op.get_bind())


def downgrade() -> None:
    # Back to overrides on top of the `holidays` package: drop the shipped rows nobody changed since.
    op.execute("DELETE FROM calendar_days WHERE changed_by_id IS NULL AND source <> ''")
    op.execute("DELETE FROM settings WHERE key IN ('calendar_years', 'transfer_cutoff', 'same_day_cutoff')")
    op.drop_index('ix_calendar_changes_day', table_name='calendar_changes')
    op.drop_table('calendar_changes')
    with op.batch_alter_table('settings', schema=None) as batch_op:
        batch_op.drop_constraint('fk_settings_changed_by_id_users', type_='foreignkey')
        batch_op.drop_column('changed_at')
        batch_op.drop_column('changed_by_id')
    with op.batch_alter_table('calendar_days', schema=None) as batch_op:
        batch_op.drop_constraint('fk_calendar_days_changed_by_id_users', type_='foreignkey')
        batch_op.drop_column('changed_at')
        batch_op.drop_column('changed_by_id')
        batch_op.drop_column('source')
