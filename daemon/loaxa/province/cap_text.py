"""Announcer-ready text from the free-text fields of a CAP <info> block.

CAP text is written for screens: line breaks, bullet lists, headlines
without a full stop. A voice reads a full stop as a pause, so every line and
every part becomes a sentence that ends with one.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 20_000

_ENDS_SENTENCE = (".", "!", "?", "…")
# Bullets and list markers read aloud as "gạch ngang", so they go.
_BULLET = re.compile(r"^\s*(?:[-*•·–—+]+|\d{1,2}[.)])\s+")
# C0/C1 controls other than line breaks and tabs have no place in speech.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"[ \t\u00a0]+")
# Where a long part may be cut: after sentence punctuation and a space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def sentences(text: str | None) -> list[str]:
    """Split a free-text field into sentences that each end with punctuation."""
    if not text:
        return []
    out: list[str] = []
    for line in _CONTROL.sub(" ", text).splitlines():
        line = _SPACE.sub(" ", _BULLET.sub("", line)).strip().rstrip(",;:")
        if not line:
            continue
        out.append(line if line.endswith(_ENDS_SENTENCE) else line + ".")
    return out


def assemble(
    headline: str | None,
    areas: list[str],
    description: str | None,
    instruction: str | None,
    lead: str | None = None,
    limit: int = MAX_TEXT_CHARS,
) -> str:
    """Join the parts in reading order, shortening the description if too long.

    Order: lead (e.g. "Tin cập nhật."), headline, "Khu vực: …", description,
    instruction. When the whole exceeds ``limit``, sentences are dropped from
    the end of the description first (the instruction says what to do and is
    kept), then from the end of everything.
    """
    head = sentences(lead) + sentences(headline)
    names = [" ".join(a.split()) for a in areas if a and a.strip()]
    if names:
        head += sentences("Khu vực: " + ", ".join(dict.fromkeys(names)))
    desc = sentences(description)
    tail = sentences(instruction)

    parts = head + desc + tail
    length = sum(map(len, parts)) + len(parts) - 1
    if length > limit:
        log.warning("CAP text is %s characters; shortening to %s", length, limit)
        # Count rather than re-join: a 1 MB description has ~40,000 sentences.
        while desc and length > limit:
            length -= len(desc.pop()) + 1
        parts = head + desc + tail
    text = " ".join(parts)
    return text if len(text) <= limit else _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    """Cut at the last sentence end that fits, or at a space, or hard.

    A sentence end in the first half would throw away too much; a word
    boundary near the limit keeps more of what the issuer wrote.
    """
    window = text[: limit + 1]
    ends = [m.start() for m in _SENTENCE_END.finditer(window) if m.start() <= limit]
    if ends and ends[-1] >= limit // 2:
        return text[: ends[-1]]
    space = window.rfind(" ", 0, limit)
    cut = text[: space if space > 0 else limit - 1].rstrip()
    return cut[: limit - 1] + "."
