"""result documents: the signed result's file, number and date

The signed PDF is a dossier file (dossier_files, purpose "result"); the dossier keeps the number (số văn
bản, số quyết định) and the signing date the register step records.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result_number', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('result_signed_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('result_signed_on')
        batch_op.drop_column('result_number')
