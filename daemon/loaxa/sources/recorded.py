"""Recorded bulletins: fetch `audio: {url, sha256}`, check it, decode it once.

Downloads land in a content-addressed cache (`cache_dir/<sha256>`) only
after their hash matched, so a file in the cache is always the file the
issuer signed for. Decoded samples sit next to it as raw float32
(`<sha256>.<rate>.f32`) and come back memory-mapped: a two-hour recording
costs disk pages, not 600 MB of RAM on a 1 GB board.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from loaxa.download import DownloadError, download
from loaxa.errors import CommandError
from loaxa.hashing import sha256_file
from loaxa.sources._common import SourceError, check_keys, check_url, find_ffmpeg, host_of, stderr_tail

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_DURATION_S = 2 * 3600.0
# Demuxers ffmpeg may pick for a downloaded file. Without this list a
# file that is really an HLS playlist would make ffmpeg open other URLs.
DEMUXERS = "wav,mp3,ogg,flac"


def validate_audio_spec(obj: Any) -> None:
    """Check a bulletin's `audio` object; raise CommandError saying what is wrong.

    Exactly `url` (http/https, ASCII, at most 2048 characters, no user name
    or password) and `sha256` (64 hex digits, either case).
    """
    spec = check_keys(obj, "audio", ("url", "sha256"))
    check_url(spec["url"], "audio.url")
    if not isinstance(spec["sha256"], str) or not SHA256_RE.match(spec["sha256"]):
        raise CommandError("audio.sha256 must be 64 hexadecimal characters")


def fetch_audio(url: str, sha256: str, cache_dir: Path, max_bytes: int, timeout_s: float) -> Path:
    """The file at `url` whose SHA-256 is `sha256`, from the cache or the network.

    `max_bytes` caps the download, `timeout_s` the whole transfer (connect,
    headers, body). Raises SourceError with an operator-readable reason;
    nothing is left in the cache after a failure.
    """
    try:
        validate_audio_spec({"url": url, "sha256": sha256})
    except CommandError as exc:
        raise SourceError(str(exc)) from None
    expected = sha256.lower()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / expected
    if target.exists():
        if sha256_file(target) == expected:
            log.debug("audio %s found in cache", expected[:12])
            os.utime(target)  # recently used: prune_cache keeps it
            return target
        log.warning("cached audio %s is corrupt; fetching it again", expected[:12])
        target.unlink(missing_ok=True)

    fd, part_name = tempfile.mkstemp(prefix=".part-", dir=cache_dir)
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                got = download(url, out, max_bytes=max_bytes, deadline_s=timeout_s).sha256
            except DownloadError as exc:
                raise SourceError(str(exc)) from None
            out.flush()
            os.fsync(out.fileno())  # the rename below must not publish a half-written file
        if got != expected:
            raise SourceError(f"sha256 mismatch: expected {expected}, got {got}")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    log.info("fetched audio %s from %s (%d bytes)", expected[:12], host_of(url), target.stat().st_size)
    return target


def decode_audio(
    path: Path,
    sample_rate: int,
    *,
    max_duration_s: float = MAX_DURATION_S,
    ffmpeg: str = "ffmpeg",
    timeout_s: float = 600.0,
) -> np.ndarray:
    """Float32 mono samples of a WAV/MP3/OGG/FLAC file at `sample_rate`.

    Decoded once by ffmpeg into `<path>.<rate>.f32`; later calls map that
    file read-only. Raises SourceError for a file ffmpeg cannot decode, one
    without sound, or one longer than `max_duration_s`.
    """
    decoded = path.with_name(f"{path.name}.{sample_rate}.f32")
    if not (decoded.exists() and decoded.stat().st_size > 0 and decoded.stat().st_size % 4 == 0):
        _decode_to(path, decoded, sample_rate, max_duration_s, ffmpeg, timeout_s)
    return np.memmap(decoded, dtype=np.float32, mode="r")


def _decode_to(path: Path, decoded: Path, rate: int, max_duration_s: float, ffmpeg: str, timeout_s: float) -> None:
    if not path.is_file():
        raise SourceError(f"audio file {path} is missing")
    binary = find_ffmpeg(ffmpeg)
    fd, part_name = tempfile.mkstemp(prefix=".part-", suffix=".f32", dir=path.parent)
    os.close(fd)
    part = Path(part_name)
    # One second past the cap tells "too long" apart from "exactly at the cap".
    cmd = [
        binary,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        DEMUXERS,
        "-i",
        str(path),
        "-vn",
        "-t",
        f"{max_duration_s + 1:g}",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-f",
        "f32le",
        "-y",
        str(part),
    ]
    started = time.monotonic()
    try:
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise SourceError(f"decoding took longer than {timeout_s:g} s") from None
        if proc.returncode != 0:
            reason = stderr_tail(proc.stderr)
            raise SourceError("not an audio file ffmpeg can decode" + (f" ({reason})" if reason else ""))
        size = part.stat().st_size
        if size < 4:
            raise SourceError("the file decodes to no audio")
        duration_s = size / 4 / rate
        if duration_s > max_duration_s:
            raise SourceError(f"recording longer than {max_duration_s / 60:g} minutes")
        os.replace(part, decoded)
    finally:
        part.unlink(missing_ok=True)
    log.info("decoded %s: %.1f s of audio in %.2f s", path.name[:12], duration_s, time.monotonic() - started)


def prune_cache(cache_dir: Path, max_bytes: int, keep: frozenset[str] = frozenset()) -> int:
    """Delete least recently used downloads (and their decodings) past `max_bytes`.

    Names in `keep` (sha256 of bulletins still scheduled) are never deleted;
    temporary files left by a crash are removed once an hour old.
    Returns the number of bytes freed.
    """
    if not cache_dir.is_dir():
        return 0
    now = time.time()
    freed = 0
    groups: dict[str, list[Path]] = {}
    for entry in cache_dir.iterdir():
        if entry.name.startswith(".part-"):
            if now - entry.stat().st_mtime > 3600:
                freed += entry.stat().st_size
                entry.unlink(missing_ok=True)
            continue
        groups.setdefault(entry.name.split(".", 1)[0], []).append(entry)
    total = sum(p.stat().st_size for files in groups.values() for p in files)
    oldest_first = sorted(groups, key=lambda name: max(p.stat().st_mtime for p in groups[name]))
    for name in oldest_first:
        if total <= max_bytes:
            break
        if name in keep:
            continue
        for p in groups[name]:
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            total -= size
            freed += size
        log.info("pruned cached audio %s", name[:12])
    return freed
