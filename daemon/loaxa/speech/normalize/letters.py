"""Vietnamese letter names, and telling a shouted word from an acronym."""

from __future__ import annotations

import functools
import re
import unicodedata

from loaxa.speech.normalize.numbers import DIGITS

# The names a Vietnamese announcer spells with (bê, xê, ép, ca...).
LETTER_NAMES = {
    "a": "a",
    "ă": "á",
    "â": "ớ",
    "b": "bê",
    "c": "xê",
    "d": "dê",
    "đ": "đê",
    "e": "e",
    "ê": "ê",
    "f": "ép",
    "g": "giê",
    "h": "hát",
    "i": "i",
    "j": "gi",
    "k": "ca",
    "l": "e lờ",
    "m": "em mờ",
    "n": "en nờ",
    "o": "o",
    "ô": "ô",
    "ơ": "ơ",
    "p": "pê",
    "q": "quy",
    "r": "e rờ",
    "s": "ét xì",
    "t": "tê",
    "u": "u",
    "ư": "ư",
    "v": "vê",
    "w": "vê kép",
    "x": "ích xì",
    "y": "i dài",
    "z": "dét",
}

# Every upper-case letter a bulletin may hold (Latin, with Vietnamese marks).
UPPER = "".join(c for c in map(chr, [*range(0x41, 0x250), *range(0x1E00, 0x1F00)]) if c.isupper() and c.isalpha())

_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
_SYLLABLE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnprstvx])?"
    r"[aăâeêioôơuưy]{1,3}"
    r"(?:ng|nh|ch|[cmnpt])?"
)


def _strip_tones(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))


@functools.lru_cache(maxsize=8192)
def is_vietnamese_syllable(word: str) -> bool:
    """Whether `word` is spelled like one Vietnamese syllable ("KHẨN", "XÃ", "Y")."""
    return bool(_SYLLABLE.fullmatch(_strip_tones(word.lower())))


def spell(word: str) -> str:
    """Letter by letter with Vietnamese letter names; other characters are dropped."""
    names = []
    for ch in word.lower():
        base = ch if ch in LETTER_NAMES else _strip_tones(ch)
        if base in LETTER_NAMES:
            names.append(LETTER_NAMES[base])
        elif ch in "0123456789":
            names.append(DIGITS[int(ch)])
    return " ".join(names)


@functools.lru_cache(maxsize=4096)
def read_caps(word: str) -> str:
    """An upper-case token the lexicon does not know: a word if it is one, else spelled."""
    if is_vietnamese_syllable(word):
        return word.lower()
    return spell(word)
