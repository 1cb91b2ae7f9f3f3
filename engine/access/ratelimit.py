"""Fixed-window rate limiting stored in the database, so every web process shares the counts."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine import clock
from engine.store.models import RateLimitWindow
from engine.store.upsert import upsert


def hit(session: Session, key: str, limit: int, window: timedelta, now: datetime | None = None) -> tuple[bool, int]:
    """Count one request for `key`; (allowed, seconds until the window resets). Commits."""
    now = now or clock.now()
    seconds = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=now.tzinfo)
    count = upsert(session, RateLimitWindow, keys=[RateLimitWindow.key, RateLimitWindow.window_start],
                   values={"key": key[:128], "window_start": start, "count": 1},
                   set_={"count": RateLimitWindow.count + 1}, returning=RateLimitWindow.count)
    session.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start < start - window))
    session.commit()
    reset = int((start + window - now).total_seconds()) + 1
    return count <= limit, reset
