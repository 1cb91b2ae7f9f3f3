"""Fixed-window rate limiting stored in the database, so every web process shares the counts."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
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


def count(session: Session, key: str, window: timedelta, now: datetime | None = None) -> tuple[int, int]:
    """The requests counted for `key` in the current window, and seconds until it resets (no write)."""
    now = now or clock.now()
    seconds = int(window.total_seconds())
    start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=now.tzinfo)
    n = session.scalar(select(func.coalesce(func.sum(RateLimitWindow.count), 0)).where(
        RateLimitWindow.key == key[:128], RateLimitWindow.window_start == start))
    return int(n or 0), int((start + window - now).total_seconds()) + 1


# Logins: only FAILED attempts are counted, per account and per address — a commune office behind one
# NAT logging in at 7:30 is never refused, a guesser is (by the account it tries and the address it uses).
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_FAILURES_PER_ACCOUNT = 10
LOGIN_FAILURES_PER_ADDRESS = 50


def _login_keys(username: str, address: str) -> tuple[str, str]:
    return f"login-user:{(username or '').strip().lower()}", f"login-addr:{address or 'unknown'}"


def login_blocked(session: Session, username: str, address: str, now: datetime | None = None) -> int:
    """Seconds to wait when the account or the address failed too often in the window; 0 when allowed."""
    user_key, addr_key = _login_keys(username, address)
    failures, reset = count(session, user_key, LOGIN_WINDOW, now)
    address_failures, reset2 = count(session, addr_key, LOGIN_WINDOW, now)
    session.rollback()
    if failures >= LOGIN_FAILURES_PER_ACCOUNT or address_failures >= LOGIN_FAILURES_PER_ADDRESS:
        return max(reset, reset2)
    return 0


def login_failed(session: Session, username: str, address: str, now: datetime | None = None) -> None:
    """Count a failed login for the account and the address. Commits."""
    for key in _login_keys(username, address):
        hit(session, key, 1, LOGIN_WINDOW, now)
