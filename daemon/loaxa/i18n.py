"""The technician's and operator's language: gettext catalogs, English as the fallback.

The catalogs are `locale/LANG/LC_MESSAGES/loaxa.po` beside this file, plain
gettext `.po` text: a new message is one `msgid`/`msgstr` pair added there
(`msgid` is the English text, with `{name}` fields left as they are). They are
compiled in memory when first needed, so no build step or `msgfmt` is needed
on a station. The language is `--lang`, else the locale (`LANGUAGE`,
`LC_ALL`, `LC_MESSAGES`, `LANG`: `vi_VN.UTF-8` gives Vietnamese). Logs for
journald stay English.
"""

from __future__ import annotations

import ast
import gettext
import io
import os
import struct
from pathlib import Path

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "loaxa"
LANGUAGES = ("en", "vi")

_active: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def choose(lang: str | None = None) -> str:
    """The language asked for (`--lang`) or the locale's, among those there are catalogs for."""
    wanted = [lang] if lang else [os.environ.get(k, "") for k in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")]
    for value in wanted:
        for part in (value or "").split(":"):
            code = part.split(".")[0].split("_")[0].split("-")[0].lower()
            if code in LANGUAGES:
                return code
            if code and code not in ("c", "posix"):
                return "en"  # a language we have no catalog for: English
    return "en"


def use(lang: str | None = None) -> str:
    """Switch every later `_()` to `lang` (or the locale's language); the language chosen."""
    global _active, _language
    _language = choose(lang)
    _active = translations(_language)
    return _language


def language() -> str:
    return _language


def _(message: str) -> str:
    """`message` in the chosen language (itself when there is no translation)."""
    return _active.gettext(message)


def translations(lang: str) -> gettext.NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.is_file():
        return gettext.NullTranslations()
    return gettext.GNUTranslations(io.BytesIO(compile_catalog(read_po(po))))


def read_po(path: Path) -> dict[str, str]:
    """The translated entries of a `.po` file (fuzzy and empty ones are left out, as msgfmt does)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        if msgid is not None and msgstr is not None and not fuzzy:
            key, value = "".join(msgid), "".join(msgstr)
            if value or not key:
                entries[key] = value

    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if not line or (line.startswith("#") and msgstr is not None):
            flush()
            msgid = msgstr = current = None
            fuzzy = False
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif line.startswith("msgid "):
            msgid, current = [], None
            current = msgid
            current.append(ast.literal_eval(line[6:]))
        elif line.startswith("msgstr "):
            msgstr = []
            current = msgstr
            current.append(ast.literal_eval(line[7:]))
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
    return entries


def compile_catalog(entries: dict[str, str]) -> bytes:
    """A GNU `.mo` image of `entries` (the format Python's gettext reads)."""
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    count = len(keys)
    start = 7 * 4 + 16 * count  # header, then the two tables of (length, offset)
    id_table, str_table, blob = [], [], b""
    for data in ids:
        id_table.append((len(data), start + len(blob)))
        blob += data + b"\0"
    for data in strs:
        str_table.append((len(data), start + len(blob)))
        blob += data + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, 7 * 4, 7 * 4 + 8 * count, 0, 0)
    tables = b"".join(struct.pack("<2I", *pair) for pair in id_table + str_table)
    return header + tables + blob
