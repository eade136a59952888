"""Vietnamese text normalisation (placeholder: passes text through)."""

from __future__ import annotations


def normalize(text: str, dialect: str = "north", lexicon: object | None = None) -> str:
    return " ".join(text.split())
