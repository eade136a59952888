"""How fast each voice runs on this board, and how long to hold the first chunk back.

Where synthesis is slower than playback, sentences played as soon as they
are made leave silences in the middle of a bulletin. `Pace` learns, per
voice, the real-time factor (seconds of synthesis per second of audio) and
the seconds of audio per phoneme, across bulletins. `Hold` uses them with
the phoneme counts of the pieces still to voice (known before synthesis) to
release the first chunk at the earliest moment from which the rest can be
made before the sound runs out; on a board that keeps up it releases at once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from loaxa.speech.engine import Chunk

# The estimate is made a little slower than measured, and the sound must not run out within
# HOLD_MARGIN_S of a piece arriving (config key wanted: tts.buffer_margin_s).
HOLD_MARGIN = 0.05
HOLD_MARGIN_S = 0.3
HOLD_BLOCK_S = 1.0  # a shorter hold is waited out, as waiting for a piece; a longer one is handed out as silence
HOLD_STEP_S = 1.0  # in steps this long: the player checks for a stop between its 0.1 s blocks
LEARN_AUDIO_S = 20.0  # measurements are averaged over about this much recent audio


@dataclass(frozen=True)
class Rates:
    rtf: float  # seconds of synthesis per second of audio
    audio_per_unit: float  # seconds of audio per phoneme (per character for voices without phonemes), at rate 1


@dataclass(frozen=True)
class Cost:
    """What one synthesised piece took: its units (phonemes), audio and synthesis seconds."""

    units: int
    audio_s: float
    synth_s: float


@dataclass(frozen=True)
class Part:
    """A piece still to come: its units to voice, or its audio when the cache has it."""

    units: int
    pause_s: float = 0.0
    cached_s: float | None = None


class Pace:
    """The learned rates of each voice on this board; shared by the player and voicing ahead."""

    def __init__(self) -> None:
        self._rates: dict[str, Rates] = {}
        self._lock = threading.Lock()

    def get(self, voice: str) -> Rates | None:
        with self._lock:
            return self._rates.get(voice)

    def observe(self, voice: str, cost: Cost, rate: float) -> None:
        """Fold one piece in, weighted by its audio: a short piece says less than a long one."""
        if cost.audio_s <= 0 or cost.units <= 0:
            return
        rtf, per_unit = cost.synth_s / cost.audio_s, cost.audio_s * rate / cost.units
        weight = 1.0 - math.exp(-cost.audio_s / LEARN_AUDIO_S)
        with self._lock:
            old = self._rates.get(voice)
            if old is not None:
                rtf = old.rtf + weight * (rtf - old.rtf)
                per_unit = old.audio_per_unit + weight * (per_unit - old.audio_per_unit)
            self._rates[voice] = Rates(rtf=rtf, audio_per_unit=per_unit)

    def describe(self) -> str:
        with self._lock:
            rates = dict(self._rates)
        return ", ".join(
            f"{v}: real-time factor {r.rtf:.2f}, {r.audio_per_unit * 1000:.0f} ms/unit" for v, r in rates.items()
        )


class Hold:
    """When the first chunk of one bulletin may go out (times are `time.monotonic()` seconds).

    Fed the chunks as they arrive and the plan of the parts after the first
    chunk; `release_at()` is the moment playback may start, or None while it
    cannot be told yet. Once released it stays released.
    """

    def __init__(self, pace: Pace, voice: str, rate: float, max_units: int | None = None) -> None:
        self.pace = pace
        self.voice = voice
        self.rate = rate
        self.max_units = max_units  # the longest piece a voice makes, when it has a bound
        self.buffered_s = 0.0  # playable seconds held, pauses included
        self.last_at: float | None = None  # when the last chunk arrived
        self.parts: list[Part] | None = None
        self.released = False
        self.planned = False  # the decision needed the plan: the voice may not keep up on its own

    def chunk(self, chunk: Chunk, now: float) -> None:
        self.buffered_s += chunk.duration_s + chunk.pause_s
        self.last_at = now
        if self.parts:  # the plan was sent after the first chunk: each later chunk is its next part
            self.parts.pop(0)

    def plan(self, parts: list[Part]) -> None:
        self.parts = list(parts)

    def release_at(self) -> float | None:
        if self.released:
            return -math.inf
        if self.last_at is None:
            return None
        rates = self.pace.get(self.voice)
        if rates is not None and self._surely_keeps_up(rates):
            return -math.inf
        if self.parts is None:
            return None
        if rates is None:  # nothing voiced yet by this voice: only an all-cached rest is known
            return -math.inf if all(p.cached_s is not None for p in self.parts) else None
        self.planned = True
        return self.last_at + self._lag(rates, self.parts) - self.buffered_s + HOLD_MARGIN_S

    def release(self) -> None:
        self.released = True

    def _surely_keeps_up(self, rates: Rates) -> bool:
        """Whether any rest of pieces no longer than `max_units` is made in time (no plan needed).

        With a real-time factor r < 1, piece k is ready before it is due if the
        longest piece takes no longer to make than what is buffered already lasts.
        """
        if self.max_units is None:
            return False
        rtf = rates.rtf * (1 + HOLD_MARGIN)
        longest_s = self.max_units * rates.audio_per_unit / self.rate
        return rtf < 1 and rtf * longest_s + HOLD_MARGIN_S <= self.buffered_s

    def _lag(self, rates: Rates, parts: list[Part]) -> float:
        """The most by which making the parts runs behind playing them, playback starting now."""
        made = played = 0.0
        worst = -math.inf
        for part in parts:
            audio = part.cached_s if part.cached_s is not None else part.units * rates.audio_per_unit / self.rate
            if part.cached_s is None:
                made += audio * rates.rtf * (1 + HOLD_MARGIN)
            worst = max(worst, made - played)  # piece k is due when everything before it has played
            played += audio + part.pause_s
        return max(worst, 0.0) if parts else -math.inf
