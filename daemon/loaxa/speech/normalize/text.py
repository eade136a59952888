"""Plumbing shared by the passes: held-out spoken pieces, context, clean-up.

Each pass turns what it recognises into finished words and parks them behind
an opaque token (private-use characters, never `\\w`, never a digit), so a
later pass cannot read "mười bảy giờ" again as something else. The tokens are
swapped back at the very end.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from loaxa.speech.normalize.lexicon import Lexicon

_OPEN, _CLOSE = "\ue000", "\ue001"
_BASE = 0xE100
_RADIX = 0x0F00
_TOKEN = re.compile(f"{_OPEN}([\ue100-\uefff]+){_CLOSE}")


@dataclass
class Context:
    """What every pass needs: the reading style and the parked spoken pieces."""

    dialect: str
    lexicon: Lexicon
    _pieces: list[str] = field(default_factory=list)
    phones: set[str] = field(default_factory=set)  # tokens that stand for phone numbers

    def keep(self, words: str) -> str:
        """Park finished words; returns the token that stands for them."""
        index = len(self._pieces)
        self._pieces.append(words)
        if index < _RADIX:  # a line rarely parks more than a few dozen pieces
            return f"{_OPEN}{chr(_BASE + index)}{_CLOSE}"
        digits = []
        while True:
            index, rest = divmod(index, _RADIX)
            digits.append(chr(_BASE + rest))
            if index == 0:
                break
        return f"{_OPEN}{''.join(digits)}{_CLOSE}"

    def restore(self, text: str) -> str:
        return _TOKEN.sub(self._piece, text)

    def _piece(self, m: re.Match[str]) -> str:
        digits = m.group(1)
        if len(digits) == 1:
            return self._pieces[ord(digits) - _BASE]
        index = 0
        for ch in reversed(digits):
            index = index * _RADIX + (ord(ch) - _BASE)
        return self._pieces[index]


def word_before(text: str, pos: int) -> str:
    """The word just before `pos` (lower case), or "" if punctuation intervenes."""
    # Walked back by hand: a regex ending in "$" would be tried at every position.
    window = text[max(0, pos - 40) : pos].rstrip(" \t")
    start = len(window)
    while start and (window[start - 1].isalnum() or window[start - 1] == "_"):
        start -= 1
    return window[start:].lower()


# --- preparing raw text

# Controls, format characters, private use (our own tokens) and lone surrogates.
_DROP = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
    "\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff]"
)
_SPACES = re.compile(r"[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
# str.translate is slow on non-ASCII text; a regex finds the rare dash or quote faster.
_DASHES = re.compile("[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d]")
_QUOTE_CHARS = re.compile('["“”„‟«»‹›`´]')
# An apostrophe inside a word (Đắk R'Lấp) stays; a quoting one goes.
_APOSTROPHE = re.compile(r"(?<!\w)['‘’]|['‘’](?!\w)")


def prepare(line: str) -> str:
    """NFC, plain spaces and hyphens, no control or private-use characters, no quotes."""
    if not line.isascii():
        if not unicodedata.is_normalized("NFC", line):
            line = unicodedata.normalize("NFC", line)
        line = _DASHES.sub("-", line)
    if not line.isprintable():
        line = _DROP.sub("", _SPACES.sub(" ", line))
    line = _QUOTE_CHARS.sub("", line)
    if "'" in line or "‘" in line or "’" in line:
        line = _APOSTROPHE.sub("", line)
    return line


# Footnote markers: superscript digits ("xã¹") and bracketed numbers ("[1]",
# "[2, 3]"). A ² or ³ after a length unit is a power (m², km³) and stays.
_FOOTNOTE = re.compile(
    r"(?<![0-9\s(/][kcdhm]m)(?<![0-9\s(/]m)[\u00b2\u00b3]+|[\u2070\u00b9\u2074-\u207e][\u2070\u00b9\u00b2\u00b3\u2074-\u207e]*"
    r"|\s?\[\d{1,3}(?:\s?[,;\-]\s?\d{1,3})*\]"
)
_HAS_FOOTNOTE = re.compile(r"[\u2070\u00b9\u00b2\u00b3\u2074-\u207e\[]")


def drop_footnotes(line: str) -> str:
    """Footnote markers are for readers: the voice would say "một"."""
    if _HAS_FOOTNOTE.search(line) is None:
        return line
    return _FOOTNOTE.sub("", line)


# --- symbols left after the passes, and tidying

_BULLET = re.compile(r"^ *(?:[-+•*·▪►◦]|\d{1,2}[.)](?= )) +")
_CLAUSE_DASH = re.compile(r" +-+ +| +-+$|^-+ +")
_SYMBOL_WORDS = {
    "&": " và ",
    "@": " a còng ",
    "+": " cộng ",
    "=": " bằng ",
    "±": " cộng trừ ",
    "≥": " lớn hơn hoặc bằng ",
    "≤": " nhỏ hơn hoặc bằng ",
    ">": " lớn hơn ",
    "<": " nhỏ hơn ",
    "×": " nhân ",
    "~": " khoảng ",
    "%": " phần trăm ",
    "°": " độ ",
    **dict.fromkeys("([{", ", "),
    **dict.fromkeys(")]}", ", "),
    # Not said: joiners inside words, decoration, stray marks.
    **dict.fromkeys("-/\\|_#*^$'‘’•·▪►◦²³", " "),
}
_SYMBOLS = re.compile("|".join(map(re.escape, _SYMBOL_WORDS)))


def speak_symbols(line: str) -> str:
    """What remains of punctuation that is not a pause: words, or silence."""
    if line[:1] in "-+•*·▪►◦0123456789 ":
        line = _BULLET.sub("", line)
    if "-" in line:
        line = _CLAUSE_DASH.sub(", ", line)
    return _SYMBOLS.sub(lambda m: _SYMBOL_WORDS[m.group(0)], line)


_SPACE_BEFORE_PUNCT = re.compile(r" ([.,;:!?…])")
_PUNCT_RUN = re.compile(r"([,;:])[ ,;:]*[,;:]")
_WEAK_BEFORE_STRONG = re.compile(r"[,;:] *(?=[.!?…])")
_NO_SPACE_AFTER = re.compile(r"([,;:!?])(?=[^\W\d_])")
_MULTI_SPACE = re.compile(r" {2,}")


def _first(m: re.Match[str]) -> str:
    return m.group(1)


def _first_and_space(m: re.Match[str]) -> str:
    return m.group(1) + " "


def tidy(text: str) -> str:
    """Single spaces, punctuation hugging its word, no empty clauses (line breaks kept)."""
    if "  " in text:
        text = _MULTI_SPACE.sub(" ", text)
    # Callables, not r"\1" templates: a template costs a Python-level expansion per call.
    text = _SPACE_BEFORE_PUNCT.sub(_first, text)
    if "," in text or ";" in text or ":" in text:
        text = _PUNCT_RUN.sub(_first, text)
        text = _WEAK_BEFORE_STRONG.sub("", text)
    text = _NO_SPACE_AFTER.sub(_first_and_space, text)
    return "\n".join(line.lstrip(" ,;:.!?").rstrip(" ,;:") for line in text.split("\n"))
