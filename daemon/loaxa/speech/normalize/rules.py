"""Context rules as data: the word lists in `rules.yaml`, compiled once per process."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import yaml

from loaxa.speech.normalize.lexicon import SAFE_LOADER


def _phrases(words: Iterable[str]) -> re.Pattern[str]:
    """Any of `words` as whole words, in any case; the longest first."""
    ordered = sorted({w.casefold() for w in words}, key=len, reverse=True)
    body = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)
    return re.compile(rf"(?<!\w)(?i:{body})(?!\w)")


@dataclass(frozen=True)
class Rules:
    """The compiled lists; see rules.yaml for what each one decides."""

    counters: frozenset[str]
    per_targets: frozenset[str]
    service_followers: re.Pattern[str]  # matches at the start of the text after a number
    service_numbers: frozenset[str]
    service_words: re.Pattern[str]
    house_words: re.Pattern[str]  # matches at the end of the text before a number
    dotted_words: re.Pattern[str]
    last_words: frozenset[str]  # the last word of every house and section phrase

    def is_per(self, counter: str, target: str) -> bool:
        """Whether "<number> counter/target" means "per target" ("2 lần/ngày", "20 cán bộ/buổi")."""
        counter = counter.casefold()
        return (
            counter in self.counters
            or counter.split(" ", 1)[0] in self.counters
            or " ".join(target.split()).casefold() in self.per_targets
        )

    def ends_with(self, pattern: re.Pattern[str], text: str, pos: int) -> bool:
        """Whether one of `pattern`'s phrases ends just before `pos` (a colon may follow it)."""
        window = text[max(0, pos - 30) : pos].rstrip(" \t:")
        last = window.rsplit(None, 1)[-1].casefold() if window else ""
        # The cheap test first: a regex anchored at "$" is tried at every position.
        return last in self.last_words and pattern.search(window) is not None


def _ending(words: Iterable[str]) -> re.Pattern[str]:
    """Any of `words` as the last words before a position ("số" and a colon may follow)."""
    return re.compile(_phrases(words).pattern + r"(?:\s+(?i:số))?[\s:]*$")


def _starting(words: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"\s*" + _phrases(words).pattern)


@functools.cache
def rules() -> Rules:
    text = resources.files(__package__).joinpath("rules.yaml").read_text(encoding="utf-8")
    data = yaml.load(text, Loader=SAFE_LOADER)
    counters = [str(w) for w in data["counters"]]
    ending = [str(w) for w in (*data["house_words"], *data["dotted_words"])]
    return Rules(
        last_words=frozenset([*(w.split()[-1].casefold() for w in ending), "số"]),
        counters=frozenset(w.casefold() for w in counters),
        per_targets=frozenset(str(w).casefold() for w in data["per_targets"]),
        service_followers=_starting(map(str, data["service_followers"])),
        service_numbers=frozenset(str(n) for n in data["service_numbers"]),
        service_words=_phrases(map(str, data["service_words"])),
        house_words=_ending(map(str, data["house_words"])),
        dotted_words=_ending(map(str, data["dotted_words"])),
    )
