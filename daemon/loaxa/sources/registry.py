"""One source class per content kind: `prepare` before sound, `run` on air.

`prepare` does everything that can fail before the amplifier and the chime
(split the text, fetch and check a recording); what it returns is a
`Program` the player runs inside an on-air session. The player knows no
content kind: it asks the registry for the source of the bulletin's type.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loaxa.content import Audio, Content, Stream, Text
from loaxa.errors import LoaxaError
from loaxa.hashing import sha256_file
from loaxa.player.session import Session
from loaxa.sources._common import SourceError
from loaxa.sources.recorded import decode_audio, fetch_audio, prune_cache
from loaxa.sources.stream import StreamRelay
from loaxa.speech.pipeline import Speaker

BLOCK_S = 0.1

Progress = Callable[[int], None]  # the position (sentence) reached, for resuming


class Program(Protocol):
    """Prepared content, ready to run inside an on-air session."""

    def run(self, session: Session, *, start: int, progress: Progress, stop: threading.Event) -> None: ...

    def summary(self) -> str | None:
        """What the `finished` receipt should add about this run, if anything."""


class Source(Protocol):
    def prepare(self, content: Any) -> Program: ...


# -- text: the station's voice ------------------------------------------------
@dataclass
class _Spoken:
    speaker: Speaker
    sentences: list[Any]
    rate: float

    def run(self, session: Session, *, start: int, progress: Progress, stop: threading.Event) -> None:
        chunks = self.speaker.chunks(self.sentences, start=start, rate=self.rate)
        try:
            for chunk in chunks:
                session.play(chunk.samples)
                session.silence(chunk.pause_s)
                progress(chunk.index + 1)
        finally:
            close = getattr(chunks, "close", None)  # a generator: closing it stops the synthesis ahead
            if close is not None:
                close()

    def summary(self) -> str | None:
        return None


class TextSource:
    def __init__(self, speaker: Speaker, default_rate: float) -> None:
        self.speaker = speaker
        self.default_rate = default_rate

    def prepare(self, content: Text) -> _Spoken:
        return _Spoken(self.speaker, self.speaker.sentences(content.text), content.rate or self.default_rate)


# -- audio: a recorded file -----------------------------------------------------
@dataclass
class _Recorded:
    samples: np.ndarray
    rate: int

    def run(self, session: Session, *, start: int, progress: Progress, stop: threading.Event) -> None:
        step = int(BLOCK_S * self.rate)
        session.stream(np.asarray(self.samples[i : i + step]) for i in range(0, len(self.samples), step))

    def summary(self) -> str | None:
        return None


class AudioSource:
    """Recorded files, downloaded once, checked against their hash, decoded and cached."""

    def __init__(
        self, cache_dir: Path, *, rate: int, max_bytes: int, cache_max_bytes: int = 2**62, timeout_s: float = 60.0
    ) -> None:
        self.cache_dir = cache_dir
        self.rate = rate
        self.max_bytes = max_bytes
        self.cache_max_bytes = cache_max_bytes
        self.timeout_s = timeout_s

    def prepare(self, content: Audio) -> _Recorded:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = fetch_audio(content.url, content.sha256, self.cache_dir, self.max_bytes, self.timeout_s)
        samples = decode_audio(path, self.rate)
        prune_cache(self.cache_dir, self.cache_max_bytes, keep=frozenset({path.name}))
        return _Recorded(samples, self.rate)

    def admit(self, path: Path) -> Audio:
        """A local file (a technician's `play`) put into the cache; the content that names it."""
        try:
            sha = sha256_file(path)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            target = self.cache_dir / sha
            if not target.exists():
                part = target.with_suffix(".part")
                shutil.copyfile(path, part)
                os.replace(part, target)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        return Audio(url=f"http://localhost/{sha}", sha256=sha)


# -- stream: a live relay ---------------------------------------------------------
@dataclass
class _Relay:
    content: Stream
    rate: int
    last_summary: str | None = None

    def run(self, session: Session, *, start: int, progress: Progress, stop: threading.Event) -> None:
        with StreamRelay(self.content.url, self.content.duration_s, self.rate, block_s=BLOCK_S) as relay:
            try:
                for block in relay:
                    if stop.is_set():
                        break
                    session.play(block)
            finally:
                self.last_summary = relay.summary()

    def summary(self) -> str | None:
        return self.last_summary


class StreamSource:
    def __init__(self, rate: int) -> None:
        self.rate = rate

    def prepare(self, content: Stream) -> _Relay:
        return _Relay(content, self.rate)


class SourceRegistry:
    """The source of each content kind; `prepare(content)` picks it by type."""

    def __init__(self, sources: dict[type, Source]) -> None:
        self._sources = dict(sources)

    def prepare(self, content: Content) -> Program:
        source = self._sources.get(type(content))
        if source is None:
            raise LoaxaError(f"{content.kind} bulletins cannot be played on this station")
        return source.prepare(content)

    @property
    def audio(self) -> AudioSource | None:
        source = self._sources.get(Audio)
        return source if isinstance(source, AudioSource) else None


def build_sources(
    speaker: Speaker, *, rate: int, default_rate: float, audio_dir: Path, max_bytes: int, cache_max_bytes: int
) -> SourceRegistry:
    return SourceRegistry(
        {
            Text: TextSource(speaker, default_rate),
            Audio: AudioSource(audio_dir, rate=rate, max_bytes=max_bytes, cache_max_bytes=cache_max_bytes),
            Stream: StreamSource(rate),
        }
    )
