"""A sentence as work for the synthesis thread: its pieces, their phoneme counts, what is cached."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from loaxa.speech.engine import Chunk, PhonemeVoice, Voice
from loaxa.speech.pace import Part

Piece = tuple[int, Callable[[float], np.ndarray]]  # (units, rate -> raw samples)


def pieces_of(voice: Voice, text: str, first_max: int | None) -> list[Piece]:
    """Phoneme pieces for Piper (units: phonemes), one call of the whole text otherwise (units: characters)."""
    if isinstance(voice, PhonemeVoice):
        phonemic = voice
        limits = {"first_max": first_max} if first_max else {}
        pieces = [(len(p), phonemic.phonemes_to_ids(p)) for p in phonemic.pieces(text, **limits)]
        return [(units, partial(_run, phonemic, ids)) for units, ids in pieces]
    return [(len(text), partial(_say, voice, text))]


def _run(voice: PhonemeVoice, ids: list[int], rate: float) -> np.ndarray:
    return voice.ids_to_audio(ids, rate)


def _say(voice: Voice, text: str, rate: float) -> np.ndarray:
    return voice.synthesize(text, rate)


def ready_until(ready: deque[tuple[Chunk, bool]], next_index: int) -> int:
    """The first sentence not fully among the chunks handed out and `ready` (about to be)."""
    for chunk, last in ready:
        if last:
            next_index = chunk.index + 1
    return next_index


@dataclass
class Work:
    """One sentence to voice: its cache key and pieces, or how long its cached audio plays."""

    text: str
    key: str
    pieces: list[Piece]
    cached_s: float | None = None

    def parts(self, pause_s: float, skip: int = 0) -> list[Part]:
        """What is still to come of it, after the first `skip` pieces (as the hold sees it)."""
        if self.cached_s is not None:
            return [] if skip else [Part(units=0, pause_s=pause_s, cached_s=self.cached_s)]
        rest = self.pieces[skip:]
        return [Part(units=units, pause_s=pause_s if i == len(rest) - 1 else 0.0) for i, (units, _) in enumerate(rest)]
