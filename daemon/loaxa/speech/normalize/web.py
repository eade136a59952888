"""Web addresses and e-mail addresses, read the way they are typed.

Convention: the scheme (http://, https://) is not said; every label,
"www" included, is said as written in lower case
(the voice reads "dichvucong" as Vietnamese syllables); digits in a label are
read one by one; "." is "chấm", "@" is "a còng", "/" is "gạch chéo", "-" is
"gạch ngang", "_" is "gạch dưới"; other characters of a path are not said.
Angle brackets around an address (<http://...>) and slashes at its end are
not said; an address with a scheme may end in any domain.
"""

from __future__ import annotations

import re

from loaxa.speech.normalize.numbers import read_digits
from loaxa.speech.normalize.text import Context

_TLD = r"(?:vn|com|net|org|gov|edu|info|biz|io|int|asia|me|app|online|site|xyz|top|tv|pro|cc|co)"
_HOST = rf"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+{_TLD}(?![\w-])"
_PATH = r"(?:/(?:[^\s]*[^\s.,;:!?)\]])?)?"
_ANY_HOST = r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?![\w-])"
_IP = r"\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"
_URL = re.compile(
    rf"<?(?<![\w@.\-/])(?:(?:https?|ftp)://(?:{_ANY_HOST}|{_IP})|{_HOST})(?::\d+)?{_PATH}>?", re.IGNORECASE
)
_EMAIL = re.compile(rf"<?(?<![\w.\-])(?:mailto:)?[\w.+\-]+@{_ANY_HOST}>?", re.IGNORECASE)
_TLD_HINT = re.compile(rf"\.{_TLD}\b|://", re.IGNORECASE)
_SCHEME = re.compile(r"^(?:[a-z]+://|mailto:)", re.IGNORECASE)
_PIECE = re.compile(r"[^\W\d_]+|\d+|[./@_\-:?=&#]")
_SAY = {
    ".": "chấm",
    "/": "gạch chéo",
    "@": "a còng",
    "_": "gạch dưới",
    "-": "gạch ngang",
    ":": "hai chấm",
}


def _read_address(address: str) -> str:
    words = []
    address = _SCHEME.sub("", address.removeprefix("<").removesuffix(">")).rstrip("/")
    for piece in _PIECE.findall(address):
        if piece[0].isdecimal():
            words.append(read_digits(piece))
        elif piece in _SAY:
            words.append(_SAY[piece])
        elif piece[0].isalpha():
            words.append(piece.lower())
    return " ".join(words)


def web_pass(line: str, ctx: Context) -> str:
    """E-mail and web addresses become words before anything reads their dots."""
    if "@" in line:
        line = _EMAIL.sub(lambda m: ctx.keep(_read_address(m.group(0))), line)
    if "." in line and _TLD_HINT.search(line):
        line = _URL.sub(lambda m: ctx.keep(_read_address(m.group(0))), line)
    return line
