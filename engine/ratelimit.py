"""Fixed-window rate limiting stored in the database, so every web process shares the counts."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import clock
from .models import RateLimitWindow


def hit(session: Session, key: str, limit: int, window: timedelta, now: datetime | None = None) -> tuple[bool, int]:
    """Count one request for `key`; (allowed, seconds until the window resets). Commits."""
    now = now or clock.now()
    seconds = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=now.tzinfo)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RateLimitWindow).values(key=key[:128], window_start=start, count=1)
    stmt = stmt.on_conflict_do_update(index_elements=[RateLimitWindow.key, RateLimitWindow.window_start],
                                      set_={"count": RateLimitWindow.count + 1}).returning(RateLimitWindow.count)
    count = session.execute(stmt).scalar_one()
    session.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start < start - window))
    session.commit()
    reset = int((start + window - now).total_seconds()) + 1
    return count <= limit, reset
