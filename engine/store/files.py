"""Scanned component files: content-addressed under MOTCUA_UPLOAD_DIR, never in the web root."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine import config

MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    storage_key: str
    sha256: str
    size: int


def store(content: bytes, root: Path | None = None) -> StoredFile:
    """Write atomically (temp file + rename). Same content → same key, so a retried upload or a
    rolled-back transaction leaves at most one harmless copy and never a half-written file."""
    root = Path(root or config.upload_dir())
    digest = hashlib.sha256(content).hexdigest()
    key = f"{digest[:2]}/{digest}"
    path = root / key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return StoredFile(storage_key=key, sha256=digest, size=len(content))


def open_file(storage_key: str, root: Path | None = None) -> bytes:
    root = Path(root or config.upload_dir())
    path = (root / storage_key).resolve()
    if root.resolve() not in path.parents:
        raise ValueError("storage key escapes the upload directory")
    return path.read_bytes()


ALLOWED_TYPES = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class FileRejected(ValueError):
    """Content does not match an allowed type (the reason is a user-facing sentence)."""


def sniff(content: bytes, filename: str) -> str:
    """The content type of an upload, checked against its extension from the bytes themselves."""
    import io
    import zipfile

    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    declared = ALLOWED_TYPES.get(ext)
    if declared is None:
        raise FileRejected(f"{filename}: only PDF, JPEG, PNG or DOCX files are accepted")
    if not content:
        raise FileRejected(f"{filename}: the file is empty")
    if len(content) > MAX_FILE_BYTES:
        raise FileRejected(f"{filename}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    ok = {
        "application/pdf": content.startswith(b"%PDF-"),
        "image/jpeg": content.startswith(b"\xff\xd8\xff"),
        "image/png": content.startswith(b"\x89PNG\r\n\x1a\n"),
    }.get(declared)
    if ok is None:  # DOCX: a zip whose parts include word/document.xml
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as zf:
                ok = "word/document.xml" in zf.namelist()
        except zipfile.BadZipFile:
            ok = False
    if not ok:
        raise FileRejected(f"{filename}: the content is not a {ext[1:].upper()} file")
    return declared
