"""The clock seam: every use case reads time through `now()`, so tests and `--now` can move it."""
from __future__ import annotations

import contextlib
import contextvars
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

_override: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("motcua_now", default=None)


def now() -> datetime:
    """Current time, timezone-aware (UTC), honouring a frozen clock if one is set."""
    fixed = _override.get()
    return fixed if fixed is not None else datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """Treat naive datetimes as Vietnam local time (what staff type), return UTC-aware."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=VN_TZ)
    return value.astimezone(timezone.utc)


@contextlib.contextmanager
def frozen(at: datetime):
    """Freeze `now()` (and SpiffWorkflow's timers, via the runtime) at `at` inside the block."""
    token = _override.set(aware(at))
    try:
        yield
    finally:
        _override.reset(token)


def set_now(at: datetime) -> contextvars.Token:
    """Freeze `now()` in the current context until `reset(token)` (a web request's clock in tests)."""
    return _override.set(aware(at))


def reset(token: contextvars.Token) -> None:
    _override.reset(token)


def local(value: datetime) -> datetime:
    return value.astimezone(VN_TZ)
