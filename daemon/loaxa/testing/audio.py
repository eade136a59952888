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

    def heard(self, voiced_s: float, timeout_s: float = 10.0) -> float:
        """Seconds of voice heard once more than `voiced_s` (or at the timeout).

        `finished` is sent when the station has written its last block; up to the
        pipe's and ALSA's buffers (about 1.5 s) may still be on their way here.
        """
        deadline = time.monotonic() + timeout_s
        while (voiced := voiced_seconds(self.samples(), RATE)) <= voiced_s and time.monotonic() < deadline:
            time.sleep(0.05)
        return voiced

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


MIC_PCM = """pcm.{name} {{ type plug; slave {{ pcm "{name}-file"; format S16_LE; channels 1; rate {rate} }} }}
pcm.{name}-file {{ type file; slave.pcm "null"; file "/dev/null"; infile "{fifo}"; format "raw" }}
"""


class FifoMicrophone:
    """A named ALSA input whose samples come from `signal`, at `RATE` samples per second of wall clock.

    ALSA's `file` plugin reads a capture device's samples from its `infile`,
    here a named pipe that a feeder thread writes as time passes, like a
    microphone: what no one reads is lost, not queued. The plugin fills a
    short read with stale data (or, before its buffer was ever filled, with
    uninitialised memory: samples of any value), so the feeder keeps `lead_s`
    written ahead (more than the largest read, 882 frames), from the moment
    a reader opens the pipe. `spoken_at(i)` is when sample
    `i` was "spoken": the wall-clock time a microphone would have made it,
    where the latency a listener hears starts.
    """

    def __init__(self, root: Path, signal: np.ndarray, name: str = "loaxa-mic", lead_s: float = 0.07) -> None:
        self.name = name
        self.fifo = root / f"{name}.fifo"
        os.mkfifo(self.fifo)
        self.signal = (np.clip(signal, -1, 1) * 32767).astype("<i2")
        self.lead = int(lead_s * RATE)
        self._writes: list[tuple[int, int]] = []  # (first sample, samples) of each write
        self._started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def pcm(self) -> str:
        """The device's definition, for the station's ~/.asoundrc."""
        return MIC_PCM.format(name=self.name, rate=RATE, fifo=self.fifo)

    def start(self) -> FifoMicrophone:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def spoken_at(self, index: int) -> float:
        """The wall-clock time of sample `index` of the signal, as a microphone would have picked it up."""
        return self._started + index / RATE

    def reached_pipe(self, index: int) -> bool:
        """Whether sample `index` was written to the pipe (not lost while no one was reading)."""
        with self._lock:
            return any(i <= index < i + n for i, n in self._writes)

    def _feed(self) -> None:
        import fcntl

        fd: int | None = None
        start = time.monotonic()
        self._started = time.time()
        pos = 0
        try:
            while not self._stop.wait(0.005) and pos < len(self.signal):
                due = min(len(self.signal), int((time.monotonic() - start) * RATE) + self.lead)
                if fd is None:
                    try:
                        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                    except OSError:  # no reader: the samples of this moment are lost
                        continue
                    # A reader that opens finds the whole lead at once, from now on: with less, the plugin's first
                    # reads come up short and hand on its buffer's uninitialised memory (samples of any value, up
                    # to full scale). What was due while no one read is lost, and so is what an earlier reader
                    # left in the pipe when it closed (PortAudio opens a device to probe it, then again to use it).
                    pos = max(0, due - self.lead)
                    try:
                        fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ: no more in the pipe than a card's buffer
                    except OSError:
                        pass
                if pos >= due:
                    continue
                # A microphone's buffer is small: never more than `lead` waits in the pipe, the rest is
                # lost, so the input's backlog does not depend on how late the station started reading.
                room = self.lead - _queued(fd) // 2
                if room <= 0:
                    pos = due
                    continue
                try:
                    n = os.write(fd, self.signal[pos : min(due, pos + room)].tobytes()) // 2
                except BlockingIOError:  # not being read (a full pipe): lost, as a microphone's would be
                    pos = due
                    continue
                except BrokenPipeError:  # the reader closed; the next one opens it again
                    os.close(fd)
                    fd = None
                    continue
                with self._lock:
                    self._writes.append((pos, n))
                pos += n
        finally:
            if fd is not None:
                os.close(fd)


def _queued(fd: int) -> int:
    """Bytes written to a pipe and not read yet (FIONREAD works on either end of a Linux pipe)."""
    import fcntl
    import struct
    import termios

    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
