"""Live announcements: the station's microphone or line input, on air until the technician stops.

`loaxa live` asks the daemon for a live play (`Ledger.live`, priority high,
cutting in on normal and low); the player prepares it like any content
(the input device is looked up by name before the amplifier and the
chime) and runs it inside the on-air session: the input is opened after
the opening chime, read in 20 ms blocks and written to the output at the
station volume, so the added latency is one block plus the two devices'
buffers. An emergency cuts in between blocks as on any bulletin, and the
live play resumes after it. `end()` (the technician's stop) lets the
session finish with its closing chime.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from loaxa.content import Live
from loaxa.player.session import Session
from loaxa.sources._common import SourceError

log = logging.getLogger(__name__)

BLOCK_S = 0.02  # read and written at once: the live audio's share of the added latency


class LiveSource:
    """The input device of `audio.live_input`; one live session at a time."""

    def __init__(self, device: str, rate: int, latency_s: float) -> None:
        self.device = device
        self.rate = rate
        self.latency_s = latency_s
        self._end = threading.Event()

    def begin(self) -> None:
        """A new live play was asked for: it runs until `end()`."""
        self._end.clear()

    def end(self) -> None:
        """The technician stopped: the live play on air finishes after the closing chime."""
        self._end.set()

    def prepare(self, content: Live) -> _OnAir:
        return _OnAir(self, content.input, find_input(content.input))


@dataclass
class _OnAir:
    source: LiveSource
    name: str
    device: int | None
    seconds: float = 0.0
    overflows: int = 0

    def run(self, session: Session, *, start: int, progress: object, stop: threading.Event) -> None:
        import sounddevice as sd

        rate, block = self.source.rate, int(BLOCK_S * self.source.rate)
        try:
            stream = sd.InputStream(
                samplerate=rate,
                channels=1,
                dtype="float32",
                device=self.device,
                latency=self.source.latency_s,
                blocksize=block,
            )
            stream.start()
        except (sd.PortAudioError, OSError, ValueError) as exc:
            raise SourceError(f"cannot open the live input {self.name!r}: {exc}") from None
        try:
            while not self.source._end.is_set() and not stop.is_set():
                try:
                    data, overflowed = stream.read(block)
                except (sd.PortAudioError, OSError) as exc:
                    raise SourceError(f"the live input {self.name!r} failed: {exc}") from None
                self.overflows += int(bool(overflowed))
                session.play(data[:, 0])  # at the station volume; an emergency cuts in here
                self.seconds += len(data) / rate
        finally:
            try:
                stream.stop()
                stream.close()
            except (sd.PortAudioError, OSError) as exc:
                log.warning("closing the live input: %s", exc)

    def summary(self) -> str | None:
        lost = f", {self.overflows} input overflow(s)" if self.overflows else ""
        return f"live: {self.seconds:.1f} s from the input {self.name!r}{lost}"

    def close(self) -> None:
        """Nothing held between `prepare` and `run`: the input opens on air and closes with the run."""


def find_input(name: str) -> int | None:
    """The PortAudio input device named (part of) `name`; None for `default`. SourceError when absent.

    PortAudio sees a device plugged in since it started only after it is
    initialised again, so one that is not found is looked for once more.
    """
    import sounddevice as sd

    if name == "default":
        return None
    wanted = name.lower()
    for attempt in range(2):
        if attempt:
            sd._terminate()
            sd._initialize()
        for index, dev in enumerate(sd.query_devices()):
            if dev["max_input_channels"] > 0 and wanted in dev["name"].lower():
                return index
    raise SourceError(f"no audio input device named {name!r} (audio.live_input)")
