"""Vietnamese text normalisation: bulletin text in, the words an announcer says out.

`normalize()` runs a fixed sequence of passes over each line; each pass turns
what it recognises into words and parks them (see `text.Context`) so later
passes cannot misread them:

    footnote markers (dropped) → heading numbers → abbreviations in
    brackets after their full name (dropped) → web addresses → document
    numbers → phone and service numbers → code ranges → lexicon (with
    loanwords) → Roman numerals → house numbers, dates and times →
    quantities → letter-digit codes → any digits left → upper-case tokens →
    remaining symbols

The word lists that decide between two readings are data: rules.yaml (and
lexicon entries with a context, see lexicon.py).

Sentence punctuation (. , ; : ! ?) is kept for the splitter and the voice.
The conventions are written down in docs/normalization.md.
"""

from __future__ import annotations

import logging
import re

from loaxa.speech.normalize.codes import alnum_pass, code_range_pass, doc_pass, phone_pass
from loaxa.speech.normalize.dates import date_pass
from loaxa.speech.normalize.glosses import gloss_pass
from loaxa.speech.normalize.letters import UPPER, read_caps
from loaxa.speech.normalize.lexicon import Lexicon, builtin
from loaxa.speech.normalize.measures import leftover_pass, quantity_pass, roman_pass
from loaxa.speech.normalize.numbers import DIALECTS, read_int, roman_value
from loaxa.speech.normalize.text import Context, drop_footnotes, prepare, speak_symbols, tidy
from loaxa.speech.normalize.web import web_pass

__all__ = ["DIALECTS", "Lexicon", "normalize"]

log = logging.getLogger(__name__)

_DIGIT = re.compile(r"\d")
# The capital first, then "not after a letter": the regex engine skips straight to capitals.
_CAPS = re.compile(rf"[{UPPER}](?<!\w.)[{UPPER}]*(?!\w)")
_HAS_UPPER = re.compile(f"[{UPPER}]")


def _caps_pass(line: str, ctx: Context) -> str:
    """Upper-case tokens the lexicon does not know: shouted words or spelled letters."""
    if not _HAS_UPPER.search(line):
        return line
    return _CAPS.sub(lambda m: read_caps(m.group(0)), line)


# "1. Thời gian", "II. NHIỆM VỤ": the heading number, then a short pause.
_ENUMERATION = re.compile(r"^\s*(\d{1,2}|[IVX]{1,4})[.)]\s+")


def _enumeration(m: re.Match[str], ctx: Context) -> str:
    label = m.group(1)
    value = int(label) if label.isdecimal() else roman_value(label)
    return m.group(0) if value is None else f"{ctx.keep(read_int(value, ctx.dialect))}, "


def _line(line: str, ctx: Context) -> str:
    line = drop_footnotes(prepare(line))
    if not line or line.isspace():
        return ""
    line = _ENUMERATION.sub(lambda m: _enumeration(m, ctx), line, count=1)
    line = gloss_pass(line, ctx)
    line = web_pass(line, ctx)
    has_digit = _DIGIT.search(line) is not None
    if has_digit:
        line = doc_pass(line, ctx)
        line = phone_pass(line, ctx)
        line = code_range_pass(line, ctx)
    line = ctx.lexicon.sub(line)
    line = roman_pass(line, ctx)
    if has_digit:
        line = date_pass(line, ctx)
        line = quantity_pass(line, ctx)
        line = alnum_pass(line, ctx)
        line = leftover_pass(line, ctx)
    return speak_symbols(line)


def normalize(text: str, dialect: str = "north", lexicon: Lexicon | None = None) -> str:
    """The spoken form of `text`, line by line (line breaks are kept).

    `dialect` is "north" (nghìn, linh) or "south" (ngàn, lẻ); `lexicon`
    defaults to the built-in one. Never raises on odd input: what it cannot
    read it leaves as written.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
    ctx = Context(dialect=dialect, lexicon=lexicon if lexicon is not None else builtin())
    lines = "\n".join(_line(line, ctx) for line in text.splitlines())
    return tidy(ctx.restore(_caps_pass(lines, ctx)))
