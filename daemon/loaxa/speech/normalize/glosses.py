"""An abbreviation in brackets right after its own full name is not said twice.

"Sở Thông tin và Truyền thông (TT&TT)" is read "sở thông tin và truyền
thông": the bracket only tells the reader the short form. It is dropped when
the lexicon's reading of the abbreviation ends the words before it, or when
its letters are the initials of the words before it ("Ban Chỉ đạo (BCĐ)",
"Hợp tác xã Dịch vụ (HTXDV)"; "và" may stand for "&"), and always when it
defines the short form ("(sau đây gọi tắt là BCĐ)"). Any other bracket stays
(and becomes a pause).
"""

from __future__ import annotations

import re
import unicodedata

from loaxa.speech.normalize.letters import is_vietnamese_syllable
from loaxa.speech.normalize.text import Context

# Starts at the bracket so the regex engine can skip to it; the spaces before
# it go with a dropped bracket.
_BRACKETED = re.compile(r"\(\s*([^()\n]{1,40}?)\s*\)")
_WORD = re.compile(r"[^\W\d_]+")
_TOKEN = re.compile(r"[^\W_]+")
_AND = {"và", "&"}


def _fold(text: str) -> str:
    """Lower case without tone or vowel marks (đ stays đ): "Ủy" -> "uy"."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _squash(text: str) -> str:
    return "".join(w for w in _WORD.findall(_fold(text)) if w != "và")


def _short_letters(inner: str) -> str:
    """The letters an abbreviation stands for: "Sở TT&TT" -> "stttt"."""
    letters = []
    for token in _TOKEN.findall(inner):
        if token[1:].islower() and is_vietnamese_syllable(token):
            letters.append(token[0])  # a whole word written out ("Sở")
        else:
            letters.append(token)
    return _fold("".join(letters))


# "(sau đây gọi tắt là BCĐ)": the lead-in goes with the abbreviation.
_LEAD_IN = re.compile(r"(?i:(?:sau đây\s+)?(?:được\s+)?(?:gọi tắt là|viết tắt là|gọi là|viết tắt)\s*:?\s*)")


def _abbreviates(m: re.Match[str], ctx: Context) -> bool:
    inner = m.group(1)
    lead = _LEAD_IN.match(inner)
    if lead:
        inner = inner[lead.end() :]
    if not any(c.isupper() for c in inner) or len(inner.split()) > 3:
        return False
    if lead:
        return True  # a definition of the short form: the reader's business, not the listener's
    words = [w for w in _WORD.findall(m.string[max(0, m.start() - 200) : m.start()]) if w.casefold() not in _AND]
    if not words:
        return False
    spoken = ctx.lexicon.lookup(inner) or ctx.lexicon.sub(inner)
    if spoken != inner:
        target = _squash(spoken)
        if target and _squash(" ".join(words)).endswith(target):
            return True
    letters = _short_letters(inner)
    if len(letters) < 2 or len(letters) > len(words):
        return False
    return "".join(_fold(w)[0] for w in words[-len(letters) :]) == letters


def gloss_pass(line: str, ctx: Context) -> str:
    """Drop "(ABBR)" right after the words it abbreviates."""
    if "(" not in line:
        return line
    pieces, last = [], 0
    for m in _BRACKETED.finditer(line):
        if _abbreviates(m, ctx):
            pieces.append(line[last : m.start()].rstrip(" \t"))
            last = m.end()
    return "".join(pieces) + line[last:] if pieces else line
