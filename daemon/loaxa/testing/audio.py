"""Audio for end-to-end tests: where a station's sound goes, and how to read it back.

`FifoSpeaker` is an audio device the station finds by name through the real
path (sounddevice, PortAudio, ALSA): an ~/.asoundrc defines a pcm whose
`file` plugin writes into a named pipe, and a reader thread drains the pipe
in real time, as a sound card would. The test can make the device vanish
(the reader goes and the pcm definition is removed), come back, or never be
drained at all (a wedged driver: writes and opens block).

`with_alsa_file` points ALSA's default device at a raw file instead;
`read_wav`, `wait_for_files` and `voiced_seconds` read what a `wav:DIR`
sink wrote.
"""

from __future__ import annotations

import os
import threading
import time
import wave
from pathlib import Path

import numpy as np

RATE = 22050
PCM = """pcm.{name} {{ type plug; slave {{ pcm "{name}-file"; format S16_LE; channels 1; rate {rate} }} }}
pcm.{name}-file {{ type file; slave.pcm "null"; file "{fifo}"; format "raw" }}
"""
ASOUNDRC = """pcm.!default {{ type plug; slave {{ pcm "rec"; format S16_LE; channels 1; rate {rate} }} }}
pcm.rec {{ type file; slave.pcm "null"; file "{path}"; format "raw" }}
"""


class FifoSpeaker:
    """A named ALSA output drained at `RATE` samples per second."""

    def __init__(self, root: Path, name: str = "loaxa-speaker") -> None:
        self.name = name
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.fifo = root / "speaker.fifo"
        os.mkfifo(self.fifo)
        self.asoundrc = self.home / ".asoundrc"
        self.asoundrc.write_text("# no devices yet\n")
        self.received = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home)}

    def define(self) -> None:
        """The pcm exists (ALSA re-reads a changed file when PortAudio re-initialises)."""
        self.asoundrc.write_text(PCM.format(name=self.name, rate=RATE, fifo=self.fifo))

    def plug_in(self) -> None:
        """Define the pcm and start draining it."""
        self.define()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._drain, daemon=True)
            self._thread.start()

    def unplug(self) -> None:
        """The device goes: writes fail (EPIPE) and its name is no longer found."""
        self.asoundrc.write_text("# unplugged\n")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _drain(self) -> None:
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            last = time.monotonic()
            while not self._stop.wait(0.02):
                now = time.monotonic()
                budget = int((now - last) * RATE) * 2
                last = now
                while budget > 0:
                    try:
                        block = os.read(fd, min(budget, 65536))
                    except BlockingIOError:
                        break
                    if not block:  # no writer right now
                        break
                    with self._lock:
                        self.received.extend(block)
                    budget -= len(block)
        finally:
            os.close(fd)

    def samples(self) -> np.ndarray:
        with self._lock:
            data = bytes(self.received[: len(self.received) // 2 * 2])
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768

    def release_blocked_writer(self) -> None:
        """Open and close the read end once, so a writer blocked in open() goes on."""
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        time.sleep(0.2)
        os.close(fd)


def with_alsa_file(root: Path, rate: int = RATE) -> tuple[dict[str, str], Path]:
    """Environment whose ALSA default device writes raw S16 mono into a file; and that file."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    raw = root / "played.raw"
    (home / ".asoundrc").write_text(ASOUNDRC.format(rate=rate, path=raw))
    return {"HOME": str(home)}, raw


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1), and the sample rate, of a 16-bit mono WAV file."""
    with wave.open(str(path)) as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
        return data, wav.getframerate()


def wait_for_files(folder: Path, count: int, timeout_s: float = 30.0) -> list[Path]:
    """The WAV files in `folder`, sorted, once there are `count`; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.wav"))
        if len(files) >= count:
            return files
        time.sleep(0.1)
    raise AssertionError(f"expected {count} WAV file(s) in {folder}, found {sorted(folder.glob('*'))}")


def voiced_seconds(samples: np.ndarray, rate: int, threshold: float = 0.02) -> float:
    """Seconds of 20 ms frames whose RMS is above `threshold`."""
    frame = int(0.02 * rate)
    n = len(samples) // frame
    if n == 0:
        return 0.0
    rms = np.sqrt((samples[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    return float((rms > threshold).sum() * 0.02)
