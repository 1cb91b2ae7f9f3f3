"""timers: wake the timer workers when a dossier's next timer moves (PostgreSQL NOTIFY)

The timer worker (engine/dossiers/timer_worker.py) sleeps until the earliest time the sweep has
something to do. On PostgreSQL, row triggers on the three tables that hold those times send
`pg_notify('motcua_timers', <due time as epoch seconds>)` when a change makes a row due earlier than
it was (a new timer, a new deadline, a moved one), so a sleeping worker wakes at once; the notice is
delivered when the change commits. Only times within the next five minutes are announced: the worker
reads the next due time again at least every minute (`timer_worker.MAX_SLEEP`, which must stay below
this horizon), so later ones are never missed, and the many deadlines days ahead that every reception
sets cost no notice. On SQLite there are no triggers: the worker polls briefly instead.

Partial indexes (both databases) make the sweep's claims and the worker's look-up of the next due
time index range scans over what is still pending, instead of scans of every dossier and every step
ever handled. Their predicates are written as SQLAlchemy renders the sweep's conditions, so the
planners can prove the queries imply them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

CHANNEL = 'motcua_timers'
HORIZON = "interval '5 minutes'"
# engine.store.models.OPEN_STATUSES when this revision was written (a migration does not import the models).
OPEN = "('received', 'processing', 'awaiting_supplement')"

# name → (table, indexed column, PostgreSQL predicate, SQLite predicate)
INDEXES = {
    'ix_dossiers_legal_due_running': (
        'dossiers', 'legal_due_at',
        'finished_on IS NULL AND overdue IS false AND clock_paused IS false',
        'finished_on IS NULL AND overdue IS 0 AND clock_paused IS 0'),
    'ix_human_tasks_due_open': (
        'human_tasks', 'due_at', 'completed_at IS NULL AND late IS false', 'completed_at IS NULL AND late IS 0'),
    'ix_supplement_requests_respond_by_open': (
        'supplement_requests', 'respond_by', 'received_at IS NULL AND expired_at IS NULL',
        'received_at IS NULL AND expired_at IS NULL'),
}

# name → (table, columns whose change may move a due time, the row's pending due time as SQL on `{r}`)
TRIGGERS = {
    'dossiers': ('dossiers', 'status, timer_due_at, legal_due_at, clock_paused, overdue',
                 "LEAST(CASE WHEN {r}.status IN " + OPEN + " THEN {r}.timer_due_at END, "
                 "CASE WHEN {r}.status IN " + OPEN + " AND NOT {r}.clock_paused AND NOT {r}.overdue "
                 "THEN {r}.legal_due_at END)"),
    'human_tasks': ('human_tasks', 'due_at, completed_at, late',
                    'CASE WHEN {r}.completed_at IS NULL AND NOT {r}.late THEN {r}.due_at END'),
    'supplement_requests': ('supplement_requests', 'respond_by, received_at, expired_at',
                            'CASE WHEN {r}.received_at IS NULL AND {r}.expired_at IS NULL THEN {r}.respond_by END'),
}


def _due_function(name: str, due_sql: str) -> str:
    old = due_sql.format(r='OLD')
    new = due_sql.format(r='NEW')
    return f"""
CREATE FUNCTION motcua_timers_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    due timestamptz := {new};
    was timestamptz;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        was := {old};
    END IF;
    IF due IS NOT NULL AND (was IS NULL OR due < was) AND due < clock_timestamp() + {HORIZON} THEN
        PERFORM pg_notify('{CHANNEL}', extract(epoch FROM due)::text);
    END IF;
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    bind = op.get_bind()
    for name, (table, column, pg_where, sqlite_where) in INDEXES.items():
        op.create_index(name, table, [column], postgresql_where=sa.text(pg_where), sqlite_where=sa.text(sqlite_where))
    if bind.dialect.name != 'postgresql':
        return
    for name, (table, columns, due_sql) in TRIGGERS.items():
        op.execute(_due_function(name, due_sql))
        op.execute(f"CREATE TRIGGER motcua_timers_wakeup AFTER INSERT OR UPDATE OF {columns} ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION motcua_timers_{name}()")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        for name, (table, _, _) in TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS motcua_timers_wakeup ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS motcua_timers_{name}()")
    for name, (table, _, _, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
