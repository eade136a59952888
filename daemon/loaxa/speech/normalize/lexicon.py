"""The editable lexicon: abbreviations and words with the way they are said.

The built-in entries ship as `lexicon.yaml` beside this module; a station adds
its own (commune and village names, local offices) in a second file with the
same shape, loaded at start. Matching rules:

- a key written wholly in upper case ("UBND") matches only in upper case;
- any other key ("Covid", "Tp", "SARS-CoV-2") matches in any case;
- a key ending in "." ("TP.", "Q.") matches only before a capitalised word
  or a number, so a sentence-final "P." is left alone;
- a hyphen or "&" in a key matches with spaces around it ("Covid - 19");
- the longest key wins; keys match whole tokens, never inside a word;
- an entry may depend on its neighbours: `{say: ..., before: {words: ...},
  after: {words: ...}, before_number: ...}` (BCH quân sự / BCH Đoàn);
- an upper-case key that is also a Vietnamese syllable ("AI") is left to be
  read as a word among other upper-case words ("AI CŨNG PHẢI").

The loanwords the voice would mangle (online, Zalo, Wi-Fi...) are respelled
in `loanwords.yaml`, loaded with the built-in entries.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from loaxa.errors import ConfigError
from loaxa.speech.normalize.letters import UPPER, is_vietnamese_syllable

log = logging.getLogger(__name__)

# libyaml's loader when PyYAML has it: the built-in files parse several times faster.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BUILTIN = ("lexicon.yaml", "loanwords.yaml")


@dataclass(frozen=True)
class Entry:
    """How one written form is said, and the neighbours that change it."""

    say: str
    before: tuple[tuple[str, str], ...] = ()  # (following words, casefolded; spoken)
    after: tuple[tuple[str, str], ...] = ()  # (preceding words, casefolded; spoken)
    before_number: str | None = None

    def in_context(self, text: str, start: int, end: int) -> str:
        """The reading for the occurrence at text[start:end]."""
        if self.before or self.before_number:
            following = text[end : end + 40].lstrip(" .:").casefold()
            if self.before_number and following[:1].isdecimal():
                return self.before_number
            for words, spoken in self.before:
                if following.startswith(words) and not following[len(words) : len(words) + 1].isalnum():
                    return spoken
        if self.after:
            preceding = text[max(0, start - 40) : start].rstrip(" ").casefold()
            for words, spoken in self.after:
                if preceding.endswith(words) and not preceding[-len(words) - 1 : -len(words)].isalnum():
                    return spoken
        return self.say


_JOINER_SPACES = re.compile(r"\s*([-&])\s*")
_CAPS_BEFORE = re.compile(rf"(?<!\w)([{UPPER}]{{2,}}) +$")
_CAPS_AFTER = re.compile(rf" +([{UPPER}]{{2,}})(?!\w)")


class Lexicon:
    """An immutable map from written forms to spoken forms, with one precompiled matcher."""

    def __init__(self, entries: Mapping[str, str | Entry]) -> None:
        self.entries: dict[str, Entry] = {k: v if isinstance(v, Entry) else Entry(v) for k, v in entries.items()}
        self._exact: dict[str, Entry] = {}
        self._folded: dict[str, Entry] = {}
        self._words: set[str] = set()  # upper-case keys that are also Vietnamese words
        for key, value in self.entries.items():
            if _case_sensitive(key):
                self._exact[key] = value
                if key.isalpha() and is_vietnamese_syllable(key):
                    self._words.add(key)
            else:
                self._folded[key.casefold()] = value
        self._pattern = _compile(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.lookup(key) is not None

    def lookup(self, token: str) -> str | None:
        """The spoken form of one token as written, under the matching rules."""
        entry = self.entry(token)
        return entry.say if entry is not None else None

    def entry(self, token: str) -> Entry | None:
        if " " in token:
            token = _JOINER_SPACES.sub(lambda m: m.group(1), token)
        if token in self._exact:
            return self._exact[token]
        entry = self._folded.get(token.casefold())
        if entry is None and "-" in token:
            return self.entry(token.replace("-", " "))
        if entry is None and token.endswith(".") and len(token) > 1:
            return self.entry(token[:-1])
        return entry

    def sub(self, text: str) -> str:
        """Every entry in `text` replaced by its spoken form (left for later passes to see)."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._spoken, text)

    def _spoken(self, m: re.Match[str]) -> str:
        written = m.group(0)
        entry = self.entry(written)
        if entry is None or (written in self._words and self._shouted(m)):
            return written
        spoken = entry.in_context(m.string, m.start(), m.end())
        # "Q.1": keep the number a separate word.
        return spoken + " " if m.string[m.end() : m.end() + 1].isalnum() else spoken

    def _shouted(self, m: re.Match[str]) -> bool:
        """Whether an upper-case word stands next to a shouted Vietnamese word ("AI CŨNG PHẢI")."""
        before = _CAPS_BEFORE.search(m.string, max(0, m.start() - 12), m.start())
        after = _CAPS_AFTER.match(m.string, m.end())
        return any(
            n is not None and is_vietnamese_syllable(n.group(1)) and n.group(1) not in self._exact
            for n in (before, after)
        )

    def merged(self, extra: Mapping[str, str | Entry]) -> Lexicon:
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
    entries: dict[str, Entry] = {}
    for name in _BUILTIN:
        text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
        entries.update(parse_entries(text, name))
    return Lexicon(entries)


def read_entries(path: Path) -> dict[str, Entry]:
    """Entries from a lexicon file; ConfigError names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"lexicon {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"lexicon {path}: cannot read ({exc})") from None
    return parse_entries(text, str(path))


def parse_entries(text: str, source: str) -> dict[str, Entry]:
    """Check and return a YAML mapping of written form -> spoken form (or context entry)."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"lexicon {source}:{where} not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"lexicon {source}: expected a mapping of 'written: spoken' lines, got {type(data).__name__}")
    entries: dict[str, Entry] = {}
    problems: list[str] = []
    for key, value in data.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            problems.append(f"key {key!r} is not text (quote it)")
            continue
        written = str(key)
        if not written.strip() or written != written.strip():
            problems.append(f"key {written!r} is empty or has spaces around it")
        elif isinstance(value, dict):
            entry = _context_entry(written, value, problems)
            if entry is not None:
                entries[written] = entry
        elif not _is_text(value):
            problems.append(f"{written!r} needs a spoken form as text, got {value!r}")
        else:
            entries[written] = Entry(_words(value))
    if problems:
        raise ConfigError(f"lexicon {source}: " + "; ".join(problems))
    return entries


_CONTEXT_KEYS = {"say", "before", "after", "before_number"}


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _words(value: str) -> str:
    return " ".join(value.split())


def _context_entry(written: str, value: dict[object, object], problems: list[str]) -> Entry | None:
    """`{say: ..., before: {words: spoken}, after: {...}, before_number: ...}`."""
    unknown = set(map(str, value)) - _CONTEXT_KEYS
    if unknown:
        problems.append(f"{written!r}: unknown {', '.join(sorted(unknown))} (use {', '.join(sorted(_CONTEXT_KEYS))})")
        return None
    say, number = value.get("say"), value.get("before_number")
    if not _is_text(say):
        problems.append(f"{written!r} needs 'say:' with its usual spoken form")
        return None
    if number is not None and not _is_text(number):
        problems.append(f"{written!r}: 'before_number:' needs a spoken form as text")
        return None
    sides: dict[str, tuple[tuple[str, str], ...]] = {}
    for side in ("before", "after"):
        words = value.get(side) or {}
        if not isinstance(words, dict) or not all(_is_text(str(k)) and _is_text(v) for k, v in words.items()):
            problems.append(f"{written!r}: '{side}:' needs 'neighbouring words: spoken form' lines")
            return None
        pairs = ((_words(str(k)).casefold(), _words(str(v))) for k, v in words.items())
        sides[side] = tuple(sorted(pairs, key=lambda p: -len(p[0])))
    return Entry(
        _words(str(say)),
        before=sides["before"],
        after=sides["after"],
        before_number=_words(str(number)) if number is not None else None,
    )


def _case_sensitive(key: str) -> bool:
    return key == key.upper() and any(c.isalpha() for c in key)


def _escape(text: str) -> str:
    """A key as a pattern; "-" and "&" between its parts may have spaces around them,
    and a space may be written as a hyphen ("QR code", "QR-code")."""
    escaped = re.escape(text).replace("\\-", "-").replace("\\&", "&").replace("\\ ", " ")
    escaped = re.sub(r"(?<=.)([-&])(?=.)", r"\\s*\1\\s*", escaped)
    return escaped.replace(" ", "[ -]")


def _compile(entries: Mapping[str, Entry]) -> re.Pattern[str] | None:
    """One pattern for all keys, branching on the first character.

    Each branch starts with a plain literal (both cases for a case-free key)
    so the regex engine skips ahead to possible first letters and tries only
    the keys that start there; "not after a word character" is checked just
    after that first letter.
    """
    by_first: dict[str, list[tuple[int, str]]] = {}
    for key in entries:
        rest = _escape(key[1:])
        if key.endswith("."):
            # An abbreviation's dot, not a full stop: a name or a number follows.
            body = rest if _case_sensitive(key) else f"(?i:{rest})"
            tail = f"{body}(?=\\s*[{UPPER}0-9])"
        else:
            # A road-like entry takes the dot before its number with it (ĐX.12).
            end = r"(?:\.(?=\s*\d)|(?!\w))" if entries[key].before_number else r"(?!\w)"
            tail = (rest if _case_sensitive(key) else f"(?i:{rest})" if rest else "") + end
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
