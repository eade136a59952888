"""A bulletin's nested objects: their rules, and the sound of `audio`/`stream`."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loaxa.sources import (
    SourceError,
    StreamRelay,
    decode_audio,
    fetch_audio,
    prune_cache,
    validate_audio_spec,
    validate_stream_spec,
)
from loaxa.timing import parse_schedule

if TYPE_CHECKING:
    from loaxa.protocol import Bulletin

BLOCK_S = 0.1


def check_content(bulletin: Bulletin) -> None:
    """Raise CommandError with the reason when a nested object breaks a rule."""
    if bulletin.schedule is not None:
        parse_schedule(bulletin.schedule)
    if bulletin.audio is not None:
        validate_audio_spec(bulletin.audio)
    if bulletin.stream is not None:
        validate_stream_spec(bulletin.stream)


class Sources:
    """Recorded files (downloaded once, checked, decoded, cached) and live relays."""

    def __init__(self, cache_dir: Path, max_bytes: int, cache_max_bytes: int = 2**62, timeout_s: float = 60.0) -> None:
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        self.cache_max_bytes = cache_max_bytes
        self.timeout_s = timeout_s
        self.last_relay: str | None = None

    def admit(self, path: Path) -> str:
        """Copy a local file into the cache; its sha256, by which bulletins name it."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        sha = hashlib.sha256(data).hexdigest()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        target = self.cache_dir / sha
        if not target.exists():
            part = target.with_suffix(".part")
            part.write_bytes(data)
            os.replace(part, target)
        return sha

    def ready(self, body: dict[str, Any], rate: int) -> None:
        """Fetch, check and decode recorded audio before anything airs; SourceError says why not."""
        if "audio" in body:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            spec = body["audio"]
            decode_audio(fetch_audio(spec["url"], spec["sha256"], self.cache_dir, self.max_bytes, self.timeout_s), rate)

    def blocks(self, body: dict[str, Any], rate: int, stop: threading.Event) -> Iterator[np.ndarray]:
        if "audio" in body:
            yield from self._recorded(body["audio"], rate)
        else:
            yield from self._relay(body["stream"], rate, stop)

    def _recorded(self, spec: dict[str, Any], rate: int) -> Iterator[np.ndarray]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = fetch_audio(spec["url"], spec["sha256"], self.cache_dir, self.max_bytes, self.timeout_s)
        samples = decode_audio(path, rate)
        prune_cache(self.cache_dir, self.cache_max_bytes, keep=frozenset({path.name}))
        step = int(BLOCK_S * rate)
        for start in range(0, len(samples), step):
            yield np.asarray(samples[start : start + step])

    def _relay(self, spec: dict[str, Any], rate: int, stop: threading.Event) -> Iterator[np.ndarray]:
        with StreamRelay(spec["url"], float(spec["duration_s"]), rate, block_s=BLOCK_S) as relay:
            for block in relay:
                if stop.is_set():
                    break
                yield block
            self.last_relay = relay.summary()
