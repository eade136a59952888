"""Audio outputs: a PortAudio device chosen by name, WAV files in a folder, or nothing.

The player opens one output per on-air session and writes float32 mono
blocks to it. A blocking stream (no callback) keeps PortAudio's thread out
of Python, and writes return as the device consumes them, so the player can
stop within one block.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from loaxa.errors import AudioError
from loaxa.pcm import to_int16_bytes

log = logging.getLogger(__name__)


class Output(Protocol):
    """One on-air session: `write` blocks until the samples are accepted."""

    def write(self, samples: np.ndarray) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Something that can open outputs; `describe` names it for `state`."""

    def open(self, sample_rate: int, label: str) -> Output: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class OutputSpec:
    """What `audio.output` names: a PortAudio device, a WAV folder, or nothing."""

    kind: Literal["device", "wav", "null"]
    device: str = ""  # for a device: `default` or (part of) its name
    folder: Path | None = None  # for wav: where the session files go

    @property
    def loudspeaker(self) -> bool:
        """Whether sound reaches a sound card (and so needs /dev/snd)."""
        return self.kind == "device"


def parse_output_spec(spec: str) -> OutputSpec:
    """`default`, a PortAudio device name, `wav:DIR` (`wav:` alone is the current folder), or `null`."""
    if spec == "null":
        return OutputSpec("null")
    if spec.startswith("wav:"):
        return OutputSpec("wav", folder=Path(spec[4:] or "."))
    return OutputSpec("device", device=spec)


def build_sink(spec: str | OutputSpec, latency_s: float = 0.03) -> Sink:
    """The sink for an output spec (see `parse_output_spec`); `null` discards samples."""
    output = parse_output_spec(spec) if isinstance(spec, str) else spec
    if output.kind == "null":
        return NullSink()
    if output.kind == "wav":
        assert output.folder is not None
        return WavDirSink(output.folder)
    return DeviceSink(output.device, latency_s)


class NullSink:
    """Accepts and discards samples at once: simulated stations, dry runs."""

    def describe(self) -> str:
        return "null"

    def open(self, sample_rate: int, label: str) -> Output:
        return _NullOutput()


class _NullOutput:
    def write(self, samples: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass


class WavDirSink:
    """Each on-air session becomes one 16-bit mono WAV file in `folder`.

    The file is written as `.part` and renamed when the session closes, so a
    reader never sees half a session.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._count = 0
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"wav:{self.folder}"

    def open(self, sample_rate: int, label: str) -> Output:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioError(f"cannot create {self.folder}: {exc}") from None
        with self._lock:
            self._count += 1
            stamp = time.strftime("%Y%m%d-%H%M%S")
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", label)[:64] or "session"
            path = self.folder / f"{stamp}-{os.getpid()}-{self._count:04d}-{safe}.wav"
        return _WavOutput(path, sample_rate)


class _WavOutput:
    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = path
        self._part = path.with_name(path.name + ".part")
        try:
            self._wav = wave.open(str(self._part), "wb")  # noqa: SIM115 - closed by close(), the session's end
        except OSError as exc:
            raise AudioError(f"cannot write {self._part}: {exc}") from None
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes(to_int16_bytes(samples))

    def close(self) -> None:
        self._wav.close()
        os.replace(self._part, self.path)


class DeviceSink:
    """A PortAudio output device found by (part of) its name, every time.

    Indices change when devices come and go, and PortAudio sees a re-plugged
    device only after it is re-initialised, so a failed open re-initialises
    PortAudio before the next attempt.
    """

    def __init__(self, name: str, latency_s: float) -> None:
        self.name = name
        self.latency_s = latency_s
        self._stale = False

    def describe(self) -> str:
        return self.name

    def find(self) -> int | None:
        import sounddevice as sd

        if self._stale:
            sd._terminate()
            sd._initialize()
            self._stale = False
        if self.name == "default":
            return None
        wanted = self.name.lower()
        for index, dev in enumerate(sd.query_devices()):
            if dev["max_output_channels"] > 0 and wanted in dev["name"].lower():
                return index
        raise AudioError(self.missing())

    def missing(self) -> str:
        """What a technician needs to know when the device cannot be found: what there is."""
        found = output_devices()
        if not found:
            return f"no sound device named {self.name!r}; devices found: none (is the sound card connected?)"
        return f"no sound device named {self.name!r}; devices found: {', '.join(found)} (set audio.output to one)"

    def open(self, sample_rate: int, label: str) -> Output:
        import sounddevice as sd

        try:
            device = self.find()
            stream = sd.OutputStream(
                samplerate=sample_rate, channels=1, dtype="float32", device=device, latency=self.latency_s
            )
            stream.start()
        except (sd.PortAudioError, OSError, ValueError) as exc:
            self._stale = True
            log.debug("opening %r: %s", self.name, exc)
            if self.name == "default" and _no_default_output():
                raise AudioError(self.missing()) from None
            raise AudioError(f"cannot open sound device {self.name!r}: {exc}") from None
        except AudioError:
            self._stale = True
            raise
        return _DeviceOutput(stream, self)


def output_devices() -> list[str]:
    """The names of the output devices PortAudio sees now."""
    import sounddevice as sd

    try:
        return [str(d["name"]) for d in sd.query_devices() if d["max_output_channels"] > 0]
    except (sd.PortAudioError, OSError):
        return []


def _no_default_output() -> bool:
    import sounddevice as sd

    try:
        sd.query_devices(kind="output")
    except (sd.PortAudioError, OSError, ValueError):
        return True
    return False


class _DeviceOutput:
    def __init__(self, stream: Any, sink: DeviceSink) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, samples: np.ndarray) -> None:
        import sounddevice as sd

        try:
            self._stream.write(np.ascontiguousarray(samples, dtype=np.float32).reshape(-1, 1))
        except (sd.PortAudioError, OSError) as exc:
            self._sink._stale = True
            raise AudioError(f"audio output {self._sink.name!r} failed: {exc}") from None

    def close(self) -> None:
        import sounddevice as sd

        try:
            self._stream.stop()  # drains what was written
            self._stream.close()
        except (sd.PortAudioError, OSError) as exc:
            log.warning("closing audio output: %s", exc)
