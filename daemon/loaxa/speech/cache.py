"""Voiced sentences on disk, addressed by what produced them.

A key is the SHA-256 of (engine version, voice identity, rate, normalised
text), so a bulletin repeated twice a day for a week is synthesised once and
a new voice file or engine version never plays stale audio. Entries are
16-bit `.npy` files (loaxa.pcm conversions); a hit touches the file's mtime, and when the total
passes the bound the least recently used files go first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from loaxa.pcm import from_int16, to_int16

log = logging.getLogger(__name__)

SUFFIX = ".npy"


def cache_key(text: str, voice: str, rate: float, version: str) -> str:
    """Content address of one voiced sentence."""
    material = "\x1f".join((version, voice, f"{rate:.4f}", text))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class AudioCache:
    """A size-bounded LRU directory of float samples stored as int16."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        self._size = 0
        self.hits = 0
        self.misses = 0
        if self.enabled:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._size = sum(size for _, size, _ in self._entries())

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def path_of(self, key: str) -> Path:
        """Where the entry for `key` lives (whether or not it exists yet)."""
        return self.directory / key[:2] / (key + SUFFIX)

    def __contains__(self, key: str) -> bool:
        return self.enabled and self.path_of(key).is_file()

    def get(self, key: str) -> np.ndarray | None:
        """Float32 samples, or None on a miss or an unreadable entry."""
        if not self.enabled:
            return None
        path = self.path_of(key)
        try:
            stored = np.load(path, allow_pickle=False)
            os.utime(path)  # recently used: last to be evicted
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as exc:
            log.warning("cache entry %s is unreadable (%s); dropped", path.name, exc)
            self._remove(path)
            self.misses += 1
            return None
        self.hits += 1
        return from_int16(stored)

    def put(self, key: str, samples: np.ndarray) -> None:
        """Store atomically (temp file, then rename), then evict to the bound."""
        if not self.enabled:
            return
        path = self.path_of(key)
        pcm = to_int16(samples)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            old = path.stat().st_size if path.exists() else 0
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, pcm, allow_pickle=False)
            os.replace(tmp, path)
            size = path.stat().st_size
        except OSError as exc:
            log.warning("cannot write cache entry %s: %s", path.name, exc)
            return
        with self._lock:
            self._size += size - old
            if self._size > self.max_bytes:
                self._evict(keep=path)

    def clear(self) -> None:
        for path, _, _ in self._entries():
            self._remove(path)

    def _entries(self) -> list[tuple[Path, int, int]]:
        found: list[tuple[Path, int, int]] = []
        if not self.directory.is_dir():
            return found
        for shard in self.directory.iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                if entry.name.endswith(SUFFIX):
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    found.append((Path(entry.path), st.st_size, st.st_mtime_ns))
        return found

    def _evict(self, keep: Path) -> None:
        # Rescan: another process (`loaxa say`) may share the directory.
        entries = sorted(self._entries(), key=lambda e: e[2])
        self._size = sum(size for _, size, _ in entries)
        target = self.max_bytes * 0.9  # some headroom, so not every put rescans
        for path, size, _ in entries:
            if self._size <= target:
                break
            if path == keep:
                continue
            self._remove(path)
            self._size -= size
            log.debug("cache evicted %s", path.name)

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove cache entry %s: %s", path.name, exc)
