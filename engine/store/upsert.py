"""INSERT … ON CONFLICT DO UPDATE, spelled once for both databases."""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(session: Session, model, *, keys: list, set_: dict, values=None, returning=None):
    """Insert `values` (a dict, or a list of dicts for executemany) into `model`'s table; on a clash
    of `keys` apply `set_`, whose values may refer to the new row as `excluded`:
    `set_={"n": lambda excluded: DailyCount.n + excluded.n}`. Returns the result of `returning`
    (a column) for a single row, else None."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(model)
    if isinstance(values, dict):
        stmt = stmt.values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={k: v(stmt.excluded) if callable(v) else v for k, v in set_.items()})
    if returning is not None:
        return session.execute(stmt.returning(returning)).scalar_one()
    session.connection().execute(stmt, values if isinstance(values, list) else None)
    return None
