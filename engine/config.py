"""Configuration from environment variables (DATABASE_URL, MOTCUA_UPLOAD_DIR, MOTCUA_SECRET_KEY)."""
from __future__ import annotations

import os
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
