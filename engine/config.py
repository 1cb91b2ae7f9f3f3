"""Configuration from environment variables (DATABASE_URL, MOTCUA_UPLOAD_DIR, MOTCUA_SECRET_KEY,
MOTCUA_AUDIT_KEY / MOTCUA_AUDIT_KEY_FILE, MOTCUA_AUDIT_ANCHOR_DIR, MOTCUA_AUDIT_ANCHOR_SECONDS)."""
from __future__ import annotations

import functools
import logging
import os
import re
import secrets
from pathlib import Path

DEFAULT_DATA_DIR = Path(os.environ.get("MOTCUA_DATA_DIR", "var"))


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        # Accept the common postgres:// spelling and pick the psycopg 3 driver.
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return url
    DEFAULT_DATA_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_DATA_DIR / 'motcua.sqlite3').resolve()}"


def upload_dir() -> Path:
    path = Path(os.environ.get("MOTCUA_UPLOAD_DIR", DEFAULT_DATA_DIR / "uploads"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def audit_anchor_dir(url: str | None = None) -> Path:
    """Where the audit anchors of the database at `url` (default: DATABASE_URL) are appended as JSON lines
    (engine/dossiers/anchors.py): MOTCUA_AUDIT_ANCHOR_DIR, default `audit-anchors/<database>` in the data
    directory — one folder per database, so the demo's SQLite file and an instance's own database, which
    share `var/`, never mix their anchors. Best a mount the database's administrators cannot rewrite
    (another machine, WORM storage): see docs/audit.md. Created when the first line is written."""
    given = os.environ.get("MOTCUA_AUDIT_ANCHOR_DIR")
    if given:
        return Path(given)
    return DEFAULT_DATA_DIR / "audit-anchors" / _database_name(url or database_url())


def _database_name(url: str) -> str:
    """A folder name for a database: a SQLite file's name without its suffix, else host-port-database."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        name = Path(parsed.database or "memory").stem or "memory"
    else:
        name = f"{parsed.host or 'localhost'}-{parsed.port or 5432}-{parsed.database or ''}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


AUDIT_ANCHOR_SECONDS = 300.0  # the default of MOTCUA_AUDIT_ANCHOR_SECONDS


def audit_anchor_seconds() -> float:
    """How often the timer worker anchors the audit chains: MOTCUA_AUDIT_ANCHOR_SECONDS (default
    AUDIT_ANCHOR_SECONDS; 0 turns the worker's anchoring off, for an installation that runs `motcua audit
    anchor` from cron instead)."""
    value = os.environ.get("MOTCUA_AUDIT_ANCHOR_SECONDS") or str(AUDIT_ANCHOR_SECONDS)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds == 0 or 1 <= seconds <= 86_400):
        raise ConfigError(f"MOTCUA_AUDIT_ANCHOR_SECONDS must be 0 (off) or a number of seconds from 1 to 86400, "
                          f"not {value!r}")
    return seconds


# --- the audit key -------------------------------------------------------------------------------
AUDIT_KEY_MIN_LENGTH = 32
log = logging.getLogger("motcua.config")


class ConfigError(RuntimeError):
    """A setting is missing or unusable: the process must not start (or go on) with it."""


def audit_key() -> bytes:
    """The secret keying every dossier's audit hash chain (HMAC-SHA256), held outside the database so
    that write access to the database is not enough to rewrite a chain and its hashes.

    MOTCUA_AUDIT_KEY (the key itself) or MOTCUA_AUDIT_KEY_FILE (a file holding it), at least 32
    characters. With neither: an instance on a database server (DATABASE_URL naming PostgreSQL) refuses
    with ConfigError — its web, timer and CLI processes, possibly on several hosts, must share one key
    — while the zero-set-up SQLite instance keys its chains with `audit.key` in its data directory
    (MOTCUA_DATA_DIR, default var/), created on first use with mode 0600.

    Read once per process (it is asked on every audit event); `forget_audit_key()` reads it anew."""
    global _audit_key_in_use
    if _audit_key_in_use is None:
        env = os.environ
        _audit_key_in_use = _audit_key(env.get("MOTCUA_AUDIT_KEY") or None, env.get("MOTCUA_AUDIT_KEY_FILE") or None,
                                       env.get("DATABASE_URL") or None, str(DEFAULT_DATA_DIR))
    return _audit_key_in_use


_audit_key_in_use: bytes | None = None


def forget_audit_key() -> None:
    """Read the audit key's settings again at the next use (tests that change them)."""
    global _audit_key_in_use
    _audit_key_in_use = None
    _audit_key.cache_clear()


@functools.lru_cache(maxsize=8)
def _audit_key(key: str | None, key_file: str | None, database_url: str | None, data_dir: str) -> bytes:
    if key and key_file:
        raise ConfigError("set MOTCUA_AUDIT_KEY or MOTCUA_AUDIT_KEY_FILE, not both")
    if key:
        return _long_enough(key.encode("utf-8"), "MOTCUA_AUDIT_KEY")
    if key_file:
        try:
            return _long_enough(Path(key_file).read_bytes().strip(), f"MOTCUA_AUDIT_KEY_FILE ({key_file})")
        except OSError as exc:
            raise ConfigError(f"MOTCUA_AUDIT_KEY_FILE ({key_file}) cannot be read: {exc.strerror}") from None
    if database_url and not database_url.startswith("sqlite"):
        raise ConfigError(
            "the audit key is not set: with DATABASE_URL naming a database server, set MOTCUA_AUDIT_KEY or "
            "MOTCUA_AUDIT_KEY_FILE (the same key in every web, timer and CLI process; e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`) and keep a copy away from the database")
    return _instance_key(Path(data_dir) / "audit.key")


def _long_enough(key: bytes, where: str) -> bytes:
    if len(key) < AUDIT_KEY_MIN_LENGTH:
        raise ConfigError(f"{where} is shorter than {AUDIT_KEY_MIN_LENGTH} characters")
    return key


def _instance_key(path: Path) -> bytes:
    """The SQLite instance's own key file, created (0600) by the first process that needs it; a process
    racing it reads the winner's file, never a half-written one (the file appears by link, whole)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
                log.warning("generated the audit key %s (mode 0600): back it up with the database; without it "
                            "the audit log cannot be verified", path.resolve())
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        return _long_enough(path.read_bytes().strip(), f"audit key file {path}")
    except OSError as exc:
        raise ConfigError(f"audit key file {path} cannot be read: {exc.strerror}") from None
