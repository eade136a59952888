"""Sentence splitting for streaming: short chunks for the voice, and the pause after each.

Input is normalised text (see `loaxa.speech.normalize`); raw text works too:
an abbreviation's dot ("TP. Vinh", "Q. 1") and a decimal point ("3.5") never
end a sentence. A sentence longer than `max_chars` is cut at its clause
boundaries (";" or ":", then ",", then between words), packed greedily so
no chunk is longer than `max_chars` unless one word is. The pause after a
chunk says how it ended:

    end of a line (paragraph, heading)   2 x pause_s
    end of a sentence (. ! ? …)          pause_s
    cut at ";" or ":"                    0.6 x pause_s
    cut at ","                           0.4 x pause_s
    cut between words                    0.15 x pause_s
"""

from __future__ import annotations

import math
import re

from loaxa.speech.engine import Sentence

PARAGRAPH, SENTENCE, CLAUSE, COMMA, WORD = 2.0, 1.0, 0.6, 0.4, 0.15

# Written before a dot that is not a full stop when a name or number follows.
_ABBREVIATIONS = frozenset(
    [
        "TP",
        "Tp",
        "tp",
        "TX",
        "Tx",
        "tx",
        "TT",
        "Tt",
        "tt",
        "Q",
        "P",
        "H",
        "X",
        "F",
        "Th",
        "ThS",
        "Ths",
        "TS",
        "PGS",
        "GS",
        "BS",
        "KS",
        "CN",
        "St",
        "Mr",
        "Mrs",
        "Dr",
        "Ô",
        "B",
    ]
)
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_TOKEN_BEFORE = re.compile(r"(\S+)$")
_CUTS = (
    (re.compile(r"(?<=[;:])\s+"), CLAUSE),
    (re.compile(r"(?<=,)\s+(?!\d)"), COMMA),
    (re.compile(r"\s+"), WORD),
)


def _is_full_stop(text: str, m: re.Match[str]) -> bool:
    if m.group(0) != ".":
        return True
    before = _TOKEN_BEFORE.search(text, max(0, m.start() - 12), m.start())
    rest = text[m.end() :].lstrip()
    if before is None or not rest:
        return True
    return not (before.group(1) in _ABBREVIATIONS and (rest[0].isupper() or rest[0].isdigit()))


def _sentences(paragraph: str) -> list[str]:
    out, start = [], 0
    for m in _END.finditer(paragraph):
        if _is_full_stop(paragraph, m):
            out.append(paragraph[start : m.end()].strip())
            start = m.end()
    out.append(paragraph[start:].strip())
    return [s for s in out if s]


def _pack(parts: list[str], limit: int, target: float | None = None) -> list[str]:
    """Greedy: join parts while under `limit`; with `target`, close a chunk once it reaches it."""
    chunks: list[str] = []
    current = ""
    for part in parts:
        full = len(current) + 1 + len(part) > limit or (target is not None and len(current) >= target)
        if current and full:
            chunks.append(current)
            current = part
        else:
            current = f"{current} {part}" if current else part
    if current:
        chunks.append(current)
    return chunks


def _cut(text: str, max_chars: int, level: int = 0) -> list[tuple[str, float]]:
    """Chunks of `text` no longer than max_chars, each with how it was cut."""
    if len(text) <= max_chars or level >= len(_CUTS):
        return [(text, SENTENCE)]
    pattern, kind = _CUTS[level]
    parts = [p for p in pattern.split(text) if p]
    if len(parts) < 2:
        return _cut(text, max_chars, level + 1)
    # Between words, aim for even chunks rather than a full one and a scrap.
    target = len(text) / math.ceil(len(text) / max_chars) if kind == WORD else None
    chunks = _pack(parts, max_chars, target)
    out: list[tuple[str, float]] = []
    for i, chunk in enumerate(chunks):
        sub = _cut(chunk, max_chars, level + 1)
        # Inner cuts keep their kind; the chunk's last piece ends at this cut (or the text's end).
        out += sub[:-1] + [(sub[-1][0], kind if i < len(chunks) - 1 else SENTENCE)]
    return out


def split_sentences(text: str, max_chars: int = 250, pause_s: float = 0.25) -> list[Sentence]:
    """Chunks to voice one at a time, each with the pause that follows it."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    result: list[Sentence] = []
    paragraphs = [p.strip() for p in text.splitlines()]
    for paragraph in filter(None, paragraphs):
        for sentence in _sentences(" ".join(paragraph.split())):
            pieces = _cut(sentence, max_chars)
            for i, (piece, kind) in enumerate(pieces):
                end = SENTENCE if i == len(pieces) - 1 else kind
                result.append(Sentence(piece, round(pause_s * end, 3)))
        if result:
            result[-1] = Sentence(result[-1].text, round(pause_s * PARAGRAPH, 3))
    return result
