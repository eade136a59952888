"""One source class per content kind: `prepare` before sound, `run` on air.

`prepare` does everything that can fail before the amplifier and the chime
(split the text, fetch and check a recording); what it returns is a
`Program` the player runs inside an on-air session. The player knows no
content kind: it asks the registry for the source of the bulletin's type.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loaxa.content import Audio, Content, Live, Parts, Stream, Text
from loaxa.download import PUBLIC_ONLY, AddressPolicy
from loaxa.errors import LoaxaError
from loaxa.hashing import sha256_file
from loaxa.player.session import Session
from loaxa.sources._common import NotReady, SourceError, host_of
from loaxa.sources.fetcher import RETRY_AFTER_S, WORKERS, Failed, Fetcher, Pending, QueueFull, Ready, State
from loaxa.sources.live import LiveSource
from loaxa.sources.parts import PartsSource
from loaxa.sources.recorded import (
    MAX_DURATION_S,
    check_duration,
    decode_file,
    decoded_bytes,
    decoded_path,
    fetch_audio,
    probe_duration,
    prune_cache,
)
from loaxa.sources.stream_ahead import StreamSource
from loaxa.speech.pipeline import Speaker

log = logging.getLogger(__name__)

BLOCK_S = 0.1

Progress = Callable[[int], None]  # the position (sentence) reached, for resuming


class Program(Protocol):
    """Prepared content, ready to run inside an on-air session."""

    def run(self, session: Session, *, start: int, progress: Progress, stop: threading.Event) -> None: ...

    def summary(self) -> str | None:
        """What the `finished` receipt should add about this run, if anything."""

    def close(self) -> None:
        """Let go of what `prepare` took (a connected stream), whether it ran or not."""


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

    def close(self) -> None:
        pass


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

    def close(self) -> None:
        pass


class AudioSource:
    """Recorded files, downloaded once, checked against their hash, decoded and cached.

    Fetching and decoding run on a small worker pool (`Fetcher`), never on
    the caller's thread: `prepare` answers at once, with the samples, a
    `NotReady` while the fetch runs, or the `SourceError` it ended with.
    `on_ready` is called when a fetch ends, either way: the player looks
    again. The cache stays within `cache_max_bytes`, decodings included.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        rate: int,
        max_bytes: int,
        cache_max_bytes: int = 2**62,
        timeout_s: float = 60.0,
        decode_timeout_s: float = 600.0,
        on_ready: Callable[[], None] = lambda: None,
        workers: int = WORKERS,
        retry_after_s: float = RETRY_AFTER_S,
        addresses: AddressPolicy = PUBLIC_ONLY,
    ) -> None:
        self.cache_dir = cache_dir
        self.addresses = addresses
        self.rate = rate
        self.max_bytes = max_bytes
        self.cache_max_bytes = cache_max_bytes
        self.timeout_s = timeout_s
        self.decode_timeout_s = decode_timeout_s
        self.on_ready = on_ready
        self.fetcher = Fetcher(
            self._fetch, on_done=lambda sha: self.on_ready(), workers=workers, retry_after_s=retry_after_s
        )
        self._room = threading.Lock()  # reservations of cache room by decodings running at once
        self._reserved = 0

    def prepare(self, content: Audio) -> _Recorded:
        """The decoded samples, memory-mapped; NotReady while fetching; SourceError if the fetch failed."""
        state = self._request(content)
        if isinstance(state, Failed):
            raise SourceError(state.reason)
        if isinstance(state, Pending):
            raise NotReady(f"the recording is still being fetched from {host_of(state.url)}")
        try:
            return _Recorded(np.memmap(state.path, dtype=np.float32, mode="r"), self.rate)
        except (OSError, ValueError):  # pruned or damaged since: fetch it again
            self.fetcher.forget(content.sha256.lower())
            self._request(content)
            raise NotReady("the recording is being fetched again") from None

    def fetch_ahead(self, content: Audio) -> None:
        """Start fetching now (a bulletin arrived) so that it is ready when its turn comes."""
        try:
            self._request(content)
        except NotReady as exc:  # queue full: the player's prepare asks again
            log.warning("cannot fetch %s ahead: %s", content.sha256[:12], exc.reason)

    def ready(self, content: Audio) -> bool:
        """Whether `prepare` would give samples now; starts the fetch if nobody has."""
        try:
            state = self._request(content)
        except NotReady:
            return False
        return isinstance(state, Ready) and state.path.exists()

    def wait(self, content: Audio, timeout_s: float) -> _Recorded:
        """`prepare`, waiting up to `timeout_s` for the fetch: for callers that may block (the CLI)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.prepare(content)
            except NotReady as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SourceError(f"{exc.reason}: still not ready after {timeout_s:g} s") from None
                self.fetcher.wait(content.sha256.lower(), min(left, 1.0))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers after the fetch each is on (waiting up to `timeout_s` for them)."""
        self.fetcher.close(timeout_s)

    def _request(self, content: Audio) -> State:
        if self.fetcher.state(content.sha256.lower()) is None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            state = self.fetcher.request(content.url, content.sha256.lower())
        except QueueFull as exc:
            raise NotReady(str(exc)) from None
        if isinstance(state, Ready) and not state.path.exists():  # pruned since: fetch it again
            self.fetcher.forget(content.sha256.lower())
            return self._request(content)
        return state

    # -- on a worker thread ----------------------------------------------------------
    def _fetch(self, url: str, sha: str) -> Path:
        """Download, check, and decode within the cache's room; the decoded file."""
        keep = self.fetcher.pending() | {sha}
        if not (self.cache_dir / sha).exists():  # room for a download of up to max_bytes
            prune_cache(self.cache_dir, self.cache_max_bytes, keep, reserve=self.max_bytes)
        try:
            path = fetch_audio(url, sha, self.cache_dir, self.max_bytes, self.timeout_s, addresses=self.addresses)
        except OSError as exc:  # the cache, not the network: in words without the path
            log.error("cannot write to the audio cache %s: %s", self.cache_dir, exc)
            raise SourceError(f"cannot write to the audio cache: {(exc.strerror or 'error').lower()}") from None
        decoded = decoded_path(path, self.rate)
        if decoded.exists() and decoded.stat().st_size > 0 and decoded.stat().st_size % 4 == 0:
            os.utime(decoded)  # recently used: prune_cache keeps it
            return decoded
        try:
            need = self._room_needed(path)
        except SourceError:
            path.unlink(missing_ok=True)  # refused: its bytes have no use in the cache
            raise
        with self._room:  # room for this decoding and for those already running
            prune_cache(self.cache_dir, self.cache_max_bytes, keep, reserve=need + self._reserved)
            self._reserved += need
        try:
            decode_file(path, decoded, self.rate, max_bytes=need, timeout_s=self.decode_timeout_s)
        except SourceError:
            path.unlink(missing_ok=True)
            raise
        finally:
            with self._room:
                self._reserved -= need
        prune_cache(self.cache_dir, self.cache_max_bytes, self.fetcher.pending() | {sha})
        return decoded

    def _room_needed(self, path: Path) -> int:
        """Bytes the decoding may take: from the header's duration, refused when over a limit."""
        duration = probe_duration(path)
        check_duration(duration, MAX_DURATION_S)
        limit = decoded_bytes(MAX_DURATION_S + 1, self.rate)
        room = self.cache_max_bytes - path.stat().st_size
        if duration is None:  # the header does not say: cut off at the limit, or where the cache is full
            return max(0, min(limit, room))
        # A little over the header's word: decoders add padding, and some headers round.
        need = min(limit, decoded_bytes(duration * 1.02 + 2.0, self.rate))
        if need > room:
            raise SourceError(
                f"recording of {duration / 60:.0f} minutes decodes to {need / 1e6:.0f} MB, more than the"
                f" audio cache holds ({self.cache_max_bytes / 1e6:g} MB, storage.audio_cache_mb)"
            )
        return need

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


class SourceRegistry:
    """The source of each content kind; `prepare(content)` picks it by type."""

    def __init__(self, sources: dict[type, Source]) -> None:
        self._sources = dict(sources)

    def prepare(self, content: Content) -> Program:
        """The program for `content`, at once; NotReady while a recording is still being fetched."""
        source = self._sources.get(type(content))
        if source is None:
            raise LoaxaError(f"{content.kind} bulletins cannot be played on this station")
        return source.prepare(content)

    def fetch_ahead(self, content: Content) -> None:
        """A bulletin arrived: start fetching its recording, if it has one (every one, for parts)."""
        recordings = PartsSource.recordings(content) if isinstance(content, Parts) else [content]
        for recording in recordings:
            if isinstance(recording, Audio) and self.audio is not None:
                self.audio.fetch_ahead(recording)

    def ready(self, content: Content) -> bool:
        """Whether `prepare` would give a program now (a recording being fetched, a stream connecting)."""
        if isinstance(content, Parts):
            return all(self.ready(recording) for recording in PartsSource.recordings(content))
        source = self._sources.get(type(content))
        if isinstance(source, (AudioSource, StreamSource)):
            return source.ready(content)  # type: ignore[arg-type]
        return True

    @property
    def audio(self) -> AudioSource | None:
        source = self._sources.get(Audio)
        return source if isinstance(source, AudioSource) else None

    @property
    def live(self) -> LiveSource | None:
        source = self._sources.get(Live)
        return source if isinstance(source, LiveSource) else None


def build_sources(
    speaker: Speaker,
    *,
    rate: int,
    default_rate: float,
    audio_dir: Path,
    max_bytes: int,
    cache_max_bytes: int,
    on_ready: Callable[[], None] = lambda: None,
    addresses: AddressPolicy = PUBLIC_ONLY,
    live: LiveSource | None = None,
) -> SourceRegistry:
    """`on_ready` is called when a recording's fetch ends or a stream connects (or fails): the player
    should look again. `addresses` is where recordings and streams may come from; `live` is the
    station's input for `loaxa live` (`audio.live_input`), if it has one."""
    audio = AudioSource(
        audio_dir,
        rate=rate,
        max_bytes=max_bytes,
        cache_max_bytes=cache_max_bytes,
        on_ready=on_ready,
        addresses=addresses,
    )
    text = TextSource(speaker, default_rate)
    sources: dict[type, Source] = {
        Text: text,
        Audio: audio,
        Stream: StreamSource(rate, addresses=addresses, on_ready=on_ready),
        Parts: PartsSource(text.prepare, audio.prepare),
    }
    if live is not None:
        sources[Live] = live
    return SourceRegistry(sources)


def address_policy(allow_private_urls: bool, private_url_hosts: tuple[str, ...]) -> AddressPolicy:
    """The station's `security.allow_private_urls` and `security.private_url_hosts` as a policy."""
    return AddressPolicy(allow_private=allow_private_urls, hosts=frozenset(private_url_hosts))
