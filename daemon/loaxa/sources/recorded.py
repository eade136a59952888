"""Recorded bulletins: fetch `audio: {url, sha256}`, check it, decode it once.

Downloads land in a content-addressed cache (`cache_dir/<sha256>`) only
after their hash matched, so a file in the cache is always the file the
issuer signed for. Decoded samples sit next to it as raw float32
(`<sha256>.<rate>.f32`) and come back memory-mapped: a two-hour recording
costs disk pages, not 600 MB of RAM on a 1 GB board.
"""

from __future__ import annotations

import logging
import math
import os
import re
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from loaxa.download import PUBLIC_ONLY, AddressPolicy, DownloadError, download
from loaxa.errors import CommandError
from loaxa.hashing import sha256_file
from loaxa.sources._common import SourceError, check_keys, check_url, find_ffmpeg, host_of, stderr_tail

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_DURATION_S = 2 * 3600.0
# Demuxers ffmpeg may pick for a downloaded file. Without this list a
# file that is really an HLS playlist would make ffmpeg open other URLs.
DEMUXERS = "wav,mp3,ogg,flac"
CHUNK_BYTES = 256 * 1024


def validate_audio_spec(obj: Any) -> None:
    """Check a bulletin's `audio` object; raise CommandError saying what is wrong.

    Exactly `url` (http/https, ASCII, at most 2048 characters, no user name
    or password) and `sha256` (64 hex digits, either case).
    """
    spec = check_keys(obj, "audio", ("url", "sha256"))
    check_url(spec["url"], "audio.url")
    if not isinstance(spec["sha256"], str) or not SHA256_RE.match(spec["sha256"]):
        raise CommandError("audio.sha256 must be 64 hexadecimal characters")


def fetch_audio(
    url: str,
    sha256: str,
    cache_dir: Path,
    max_bytes: int,
    timeout_s: float,
    *,
    addresses: AddressPolicy = PUBLIC_ONLY,
) -> Path:
    """The file at `url` whose SHA-256 is `sha256`, from the cache or the network.

    `max_bytes` caps the download, `timeout_s` the whole transfer (connect,
    headers, body), `addresses` where it may connect. Raises SourceError
    with an operator-readable reason in the station's words; nothing is
    left in the cache after a failure.
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
                got = download(url, out, max_bytes=max_bytes, deadline_s=timeout_s, addresses=addresses).sha256
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


def probe_duration(path: Path, *, ffprobe: str = "ffprobe", timeout_s: float = 30.0) -> float | None:
    """The duration the file's header announces, in seconds; None when it says none.

    Read by ffprobe from the header (and for some formats the last page),
    without decoding: a recording that is too long is refused before a
    byte of it is decoded. Raises SourceError for a file that is not audio.
    """
    try:
        binary = find_ffmpeg(ffprobe)
    except SourceError:
        log.warning("%s not found: the length of %s is checked while decoding", ffprobe, path.name[:12])
        return None
    cmd = [binary, "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", DEMUXERS]
    cmd += ["-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", str(path)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"reading the audio header took longer than {timeout_s:g} s") from None
    if proc.returncode != 0:
        raise _undecodable(path, proc.stderr)
    try:
        duration = float(proc.stdout.decode("ascii", "replace").strip())
    except ValueError:  # "N/A": the header does not say
        return None
    return duration if math.isfinite(duration) and duration >= 0 else None


def decoded_bytes(duration_s: float, rate: int) -> int:
    """Bytes of float32 mono samples for `duration_s` at `rate`."""
    return 4 * math.ceil(duration_s * rate)


def decode_audio(
    path: Path,
    sample_rate: int,
    *,
    max_duration_s: float = MAX_DURATION_S,
    ffmpeg: str = "ffmpeg",
    timeout_s: float = 600.0,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Float32 mono samples of a WAV/MP3/OGG/FLAC file at `sample_rate`.

    Decoded once by ffmpeg into `<path>.<rate>.f32`; later calls map that
    file read-only. Raises SourceError for a file ffmpeg cannot decode, one
    without sound, or one longer than `max_duration_s` (refused from its
    header when it says so, else cut off while decoding). `max_bytes` caps
    the decoded file whatever the header says.
    """
    decoded = decoded_path(path, sample_rate)
    if not (decoded.exists() and decoded.stat().st_size > 0 and decoded.stat().st_size % 4 == 0):
        if not path.is_file():
            log.warning("audio file %s is missing", path)
            raise SourceError("the recording is missing from the audio cache")
        check_duration(probe_duration(path), max_duration_s)
        limit = decoded_bytes(max_duration_s + 1, sample_rate)
        decode_file(
            path,
            decoded,
            sample_rate,
            max_bytes=min(limit, max_bytes or limit),
            max_duration_s=max_duration_s,
            ffmpeg=ffmpeg,
            timeout_s=timeout_s,
        )
    return np.memmap(decoded, dtype=np.float32, mode="r")


def decoded_path(path: Path, rate: int) -> Path:
    return path.with_name(f"{path.name}.{rate}.f32")


def check_duration(duration_s: float | None, max_duration_s: float) -> None:
    if duration_s is not None and duration_s > max_duration_s:
        raise SourceError(f"recording longer than {max_duration_s / 60:g} minutes")


def decode_file(
    path: Path,
    decoded: Path,
    rate: int,
    *,
    max_bytes: int,
    max_duration_s: float = MAX_DURATION_S,
    ffmpeg: str = "ffmpeg",
    timeout_s: float = 600.0,
) -> None:
    """Decode `path` into `decoded`, stopping ffmpeg as soon as the output would pass `max_bytes`.

    The samples stream through a pipe into a temporary file that never
    grows past `max_bytes`; only a complete decoding is renamed into place.
    """
    binary = find_ffmpeg(ffmpeg)
    cmd = [binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file"]
    cmd += [
        "-format_whitelist",
        DEMUXERS,
        "-i",
        str(path),
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-f",
        "f32le",
        "pipe:1",
    ]
    started = time.monotonic()
    fd, part_name = tempfile.mkstemp(prefix=".part-", suffix=".f32", dir=path.parent)
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
            try:
                size = _pump(proc, out, max_bytes, started + timeout_s)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()  # reap: never a zombie
                assert proc.stdout is not None
                proc.stdout.close()
            if size is None:
                raise SourceError(f"decoding took longer than {timeout_s:g} s")
            if size > decoded_bytes(max_duration_s, rate):
                raise SourceError(f"recording longer than {max_duration_s / 60:g} minutes")
            if size > max_bytes:
                raise SourceError(f"recording decodes to more than {max_bytes / 1e6:g} MB, the room it was given")
            if proc.returncode != 0:
                errors.seek(0)
                raise _undecodable(path, errors.read())
            if size < 4:
                raise SourceError("the file decodes to no audio")
            out.flush()
            os.fsync(out.fileno())  # the rename below must not publish a half-written file
        os.replace(part, decoded)
    finally:
        part.unlink(missing_ok=True)
    log.info("decoded %s: %.1f s of audio in %.2f s", path.name[:12], size / 4 / rate, time.monotonic() - started)


def _undecodable(path: Path, stderr: bytes) -> SourceError:
    """The receipt's words; ffmpeg's, which name the local file and quote what is in it, go to the log."""
    log.warning("ffmpeg cannot decode %s: %r", path.name[:12], stderr_tail(stderr))
    return SourceError("not an audio file ffmpeg can decode")


def _pump(proc: subprocess.Popen[bytes], out: BinaryIO, max_bytes: int, deadline: float) -> int | None:
    """Copy ffmpeg's samples to `out`; the size written, max_bytes + 1 when cut off, None past the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        data = os.read(fd, CHUNK_BYTES)
        if not data:
            return size
        if size + len(data) > max_bytes:  # checked before writing: the file never passes the cap
            return max_bytes + 1
        out.write(data)
        size += len(data)


def prune_cache(cache_dir: Path, max_bytes: int, keep: frozenset[str] = frozenset(), *, reserve: int = 0) -> int:
    """Delete least recently used downloads (and their decodings) until the cache and `reserve` fit `max_bytes`.

    `reserve` is room wanted for a file about to be written; files being
    written now (`.part-*`) count as used. Names in `keep` (sha256 of
    bulletins still needed) are never deleted; temporary files left by a
    crash are removed once an hour old. Returns the number of bytes freed.
    """
    if not cache_dir.is_dir():
        return 0
    now = time.time()
    freed = 0
    writing = 0
    groups: dict[str, list[tuple[Path, os.stat_result]]] = {}
    for entry in cache_dir.iterdir():
        try:
            st = entry.stat()
        except FileNotFoundError:  # renamed or removed by a worker meanwhile
            continue
        if entry.name.startswith(".part-"):
            if now - st.st_mtime > 3600:
                freed += st.st_size
                entry.unlink(missing_ok=True)
            else:
                writing += st.st_size
            continue
        groups.setdefault(entry.name.split(".", 1)[0], []).append((entry, st))
    total = writing + reserve + sum(st.st_size for files in groups.values() for _, st in files)
    oldest_first = sorted(groups, key=lambda name: max(st.st_mtime for _, st in groups[name]))
    for name in oldest_first:
        if total <= max_bytes:
            break
        if name in keep:
            continue
        for p, st in groups[name]:
            p.unlink(missing_ok=True)
            total -= st.st_size
            freed += st.st_size
        log.info("pruned cached audio %s", name[:12])
    return freed


def cache_size(cache_dir: Path) -> int:
    """Bytes the cache folder holds now, files being written included."""
    total = 0
    for entry in cache_dir.iterdir() if cache_dir.is_dir() else ():
        try:
            total += entry.stat().st_size
        except FileNotFoundError:
            continue
    return total
