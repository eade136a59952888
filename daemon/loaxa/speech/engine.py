"""The seam every voice sits behind, and the chunks speech is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Sentence:
    """One piece of text to voice, and the pause that follows it."""

    text: str
    pause_s: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """One voiced sentence: float32 mono samples in [-1, 1]."""

    index: int
    text: str
    samples: np.ndarray = field(repr=False)
    sample_rate: int
    pause_s: float = 0.0
    voice: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


class Voice(Protocol):
    """A synchronous voice: one sentence in, samples out.

    Implementations may be slow or may hang; callers that cannot wait
    (the player) run them on a worker thread with a deadline.
    """

    name: str  # "engine:voice", e.g. "piper:vi_VN-vais1000-medium" or "espeak:vi"
    sample_rate: int

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        """Float32 mono samples for one sentence at `sample_rate`."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PhonemeVoice(Voice, Protocol):
    """A voice that speaks phoneme pieces (Piper): cut long sentences, first audio sooner."""

    def pieces(self, text: str, first_max: int = ..., max_len: int = ...) -> list[list[str]]: ...

    def phonemes_to_ids(self, phonemes: list[str]) -> list[int]: ...

    def ids_to_audio(self, ids: list[int], rate: float = 1.0, speaker_id: int | None = None) -> np.ndarray: ...


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Linear resampling; enough for speech between common rates."""
    if from_hz == to_hz or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    n_out = int(round(len(samples) * to_hz / from_hz))
    x_old = np.arange(len(samples), dtype=np.float64)
    x_new = np.linspace(0, len(samples) - 1, n_out)
    return np.interp(x_new, x_old, samples).astype(np.float32)
