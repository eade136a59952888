"""One on-air session: blocks of samples to an output, stoppable between blocks.

`should_stop` is asked before every block is written, so a play withdrawn
(cancelled, superseded, ...) or cut by an emergency writes nothing more
from the next block on; `aired` says whether any of the play's own sound
(chime or content, not the lead silence) has reached the output yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from loaxa.player.chime import chime
from loaxa.player.output import Output

BLOCK_S = 0.1  # how quickly an emergency or a cancel can cut in


class Stopped(Exception):
    """The session was asked to stop; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Session:
    def __init__(
        self,
        output: Output,
        sample_rate: int,
        volume: float,
        should_stop: Callable[[], str | None] = lambda: None,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        self.output = output
        self.rate = sample_rate
        self.volume = volume
        self.should_stop = should_stop
        self.heartbeat = heartbeat
        self.written_s = 0.0
        self.aired = False  # a sample of the play's own sound (not the lead silence) was written
        self._block = int(BLOCK_S * sample_rate)

    def play(self, samples: np.ndarray, scale: bool = True) -> None:
        """Write samples in blocks; raises `Stopped` before a block when asked.

        `scale=False` is the session's own silence (lead, gaps): it does not
        count as the play's sound for `aired`.
        """
        gain = self.volume if scale else 1.0
        for start in range(0, len(samples), self._block):
            self._check()  # the last moment before the block reaches the output
            block = samples[start : start + self._block]
            self.aired = self.aired or scale
            self.output.write(block * gain if gain != 1.0 else block)
            self.written_s += len(block) / self.rate
            self.heartbeat()

    def silence(self, seconds: float) -> None:
        if seconds > 0:
            self.play(np.zeros(int(seconds * self.rate), np.float32), scale=False)

    def chime(self, opening: bool) -> None:
        self.play(chime(self.rate, opening))

    def stream(self, blocks: Iterable[np.ndarray]) -> None:
        for block in blocks:
            self.play(block)

    def _check(self) -> None:
        reason = self.should_stop()
        if reason:
            raise Stopped(reason)
