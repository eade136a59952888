"""The editable lexicon: abbreviations and words with the way they are said.

The built-in entries ship as `lexicon.yaml` beside this module; a station adds
its own (commune and village names, local offices) in a second file with the
same shape, loaded at start. Matching rules:

- a key written wholly in upper case ("UBND") matches only in upper case;
- any other key ("Covid", "Tp", "SARS-CoV-2") matches in any case;
- a key ending in "." ("TP.", "Q.") matches only before a capitalised word
  or a number, so a sentence-final "P." is left alone;
- the longest key wins; keys match whole tokens, never inside a word.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import yaml

from loaxa.errors import ConfigError
from loaxa.speech.normalize.letters import UPPER

log = logging.getLogger(__name__)

_BUILTIN = "lexicon.yaml"


class Lexicon:
    """An immutable map from written forms to spoken forms, with one precompiled matcher."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self.entries: dict[str, str] = dict(entries)
        self._exact: dict[str, str] = {}
        self._folded: dict[str, str] = {}
        for key, value in self.entries.items():
            if _case_sensitive(key):
                self._exact[key] = value
            else:
                self._folded[key.casefold()] = value
        self._pattern = _compile(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.lookup(key) is not None

    def lookup(self, token: str) -> str | None:
        """The spoken form of one token as written, under the matching rules."""
        if token in self._exact:
            return self._exact[token]
        return self._folded.get(token.casefold())

    def sub(self, text: str) -> str:
        """Every entry in `text` replaced by its spoken form (left for later passes to see)."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._spoken, text)

    def _spoken(self, m: re.Match[str]) -> str:
        spoken = self.lookup(m.group(0)) or m.group(0)
        # "Q.1": keep the number a separate word.
        return spoken + " " if m.string[m.end() : m.end() + 1].isalnum() else spoken

    def merged(self, extra: Mapping[str, str]) -> Lexicon:
        """A new lexicon with `extra` on top (its entries win)."""
        return Lexicon({**self.entries, **extra})

    @classmethod
    def load(cls, extra_path: Path | None = None) -> Lexicon:
        """The built-in entries plus those in `extra_path` (a YAML mapping)."""
        base = builtin()
        if extra_path is None:
            return base
        extra = read_entries(Path(extra_path))
        log.info("lexicon: %d local entries from %s", len(extra), extra_path)
        return base.merged(extra)


@functools.cache
def builtin() -> Lexicon:
    """The lexicon shipped with loaxa, parsed once per process."""
    text = resources.files(__package__).joinpath(_BUILTIN).read_text(encoding="utf-8")
    return Lexicon(parse_entries(text, _BUILTIN))


def read_entries(path: Path) -> dict[str, str]:
    """Entries from a lexicon file; ConfigError names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"lexicon {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"lexicon {path}: cannot read ({exc})") from None
    return parse_entries(text, str(path))


def parse_entries(text: str, source: str) -> dict[str, str]:
    """Check and return a YAML mapping of written form -> spoken form."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"lexicon {source}:{where} not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"lexicon {source}: expected a mapping of 'written: spoken' lines, got {type(data).__name__}")
    entries: dict[str, str] = {}
    problems = []
    for key, value in data.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            problems.append(f"key {key!r} is not text (quote it)")
            continue
        written = str(key)
        if not written.strip() or written != written.strip():
            problems.append(f"key {written!r} is empty or has spaces around it")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{written!r} needs a spoken form as text, got {value!r}")
        else:
            entries[written] = " ".join(value.split())
    if problems:
        raise ConfigError(f"lexicon {source}: " + "; ".join(problems))
    return entries


def _case_sensitive(key: str) -> bool:
    return key == key.upper() and any(c.isalpha() for c in key)


def _compile(entries: Mapping[str, str]) -> re.Pattern[str] | None:
    """One pattern for all keys, branching on the first character.

    Each branch starts with a plain literal (both cases for a case-free key)
    so the regex engine skips ahead to possible first letters and tries only
    the keys that start there; "not after a word character" is checked just
    after that first letter.
    """
    by_first: dict[str, list[tuple[int, str]]] = {}
    for key in entries:
        rest = key[1:]
        if key.endswith("."):
            # An abbreviation's dot, not a full stop: a name or a number follows.
            body = re.escape(rest) if _case_sensitive(key) else f"(?i:{re.escape(rest)})"
            tail = f"{body}(?=\\s*[{UPPER}0-9])"
        elif _case_sensitive(key):
            tail = re.escape(rest) + r"(?!\w)"
        else:
            tail = (f"(?i:{re.escape(rest)})" if rest else "") + r"(?!\w)"
        firsts = {key[0]} if _case_sensitive(key) else {key[0].lower(), key[0].upper()}
        for first in firsts:
            by_first.setdefault(first, []).append((len(key), tail))
    if not by_first:
        return None
    branches = []
    for first, tails in by_first.items():
        ordered = "|".join(tail for _, tail in sorted(tails, key=lambda t: -t[0]))
        # Whole tokens only ("PC-Covid" still finds "Covid").
        branches.append(f"{re.escape(first)}(?<!\\w.)(?:{ordered})")
    return re.compile("|".join(branches))
