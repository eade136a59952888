"""A sound card in the small: chunks played at the sample rate, and where the sound stopped.

`play_paced` consumes `Speaker.chunks` the way the player and a device do:
it asks for the next chunk only when the card's buffer has room (the
previous chunk and its pause are almost played), and it records the start
delay (request to the first sample of speech; silent chunks before it are
the speaker holding speech back) and every gap (the card had nothing left
to play, beyond the sentence pauses it was given).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from loaxa.speech.engine import Chunk

LATENCY_S = 0.03  # the device buffer the player writes into (a Pi plays smoothly at ~30 ms)
MIN_GAP_S = 0.005  # shorter stalls are the scheduler's jitter, not silence a listener hears


@dataclass(frozen=True)
class Gap:
    index: int  # the chunk that came late
    at_s: float  # when the sound stopped, from the first sample
    gap_s: float


@dataclass
class Playout:
    start_delay_s: float = 0.0  # request to the first sample of speech
    held_s: float = 0.0  # silence handed out before it while the speech was held back
    audio_s: float = 0.0  # speech, without the pauses
    pauses_s: float = 0.0
    wall_s: float = 0.0  # request to the end of the last chunk's sound
    gaps: list[Gap] = field(default_factory=list)

    @property
    def gap_total_s(self) -> float:
        return sum(g.gap_s for g in self.gaps)

    @property
    def longest_gap_s(self) -> float:
        return max((g.gap_s for g in self.gaps), default=0.0)


def play_paced(
    chunks: Iterable[Chunk],
    *,
    latency_s: float = LATENCY_S,
    min_gap_s: float = MIN_GAP_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Playout:
    """Play `chunks` in real time (nothing is heard: only the timing is kept)."""
    result = Playout()
    asked = clock()
    first: float | None = None
    runs_out = asked  # when the card has played all it was given
    stream = iter(chunks)
    while True:
        asking = clock()
        chunk = next(stream, None)
        if chunk is None:
            break
        now = clock()
        if first is None:
            if not chunk.text:  # silence while the speech is held back: part of the start delay
                result.held_s += chunk.duration_s
            else:
                first = now
                result.start_delay_s = now - asked
            runs_out = max(runs_out, now)
        elif now > runs_out:
            # Only the wait for the speech path counts: a consumer that woke late is not the voice's doing.
            late = now - max(runs_out, asking)
            if late >= min_gap_s:
                result.gaps.append(Gap(index=chunk.index, at_s=runs_out - first, gap_s=late))
            runs_out = now
        runs_out += chunk.duration_s + chunk.pause_s
        if chunk.text:
            result.audio_s += chunk.duration_s
            result.pauses_s += chunk.pause_s
        wait = runs_out - latency_s - clock()  # a blocking write returns when the buffer has room again
        if wait > 0:
            sleep(wait)
    result.wall_s = runs_out - asked
    return result
