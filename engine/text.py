"""Vietnamese text folding for search that ignores diacritics ("Nguyễn" matches "nguyen")."""
from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    text = (text or "").replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower().strip()
