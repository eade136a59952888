"""Sentence splitting (first version: at sentence punctuation)."""

from __future__ import annotations

import re

from loaxa.speech.engine import Sentence

_END = re.compile(r"(?<=[.!?;:…])\s+")


def split_sentences(text: str, max_chars: int = 250, pause_s: float = 0.25) -> list[Sentence]:
    parts = [p.strip() for p in _END.split(text) if p.strip()]
    return [Sentence(p, pause_s) for p in parts]
