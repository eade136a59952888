"""The on-air archive: what went to the amplifier, one compressed file per on-air session.

`ArchivingSink` wraps the station's audio sink: every block written to the
output is handed, after the output took it, to the archive's encoder
thread through a bounded mailbox, and never waits for it. The thread feeds
ffmpeg (Opus or MP3, mono, speech bitrate), names the file by the session's
start and bulletin, records its SHA-256 in the store and keeps the folder
within `archive.max_mb` and `archive.days`, oldest first.

What cannot be archived is dropped and reported, never waited for: a
session whose audio overflows the mailbox (`archive.queue_s`), an encoder
that fails, a disk with less than `archive.min_free_mb` free. The fault shows
in the station's `state` (`archive.fault`) until a file is archived again.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import numpy as np

from loaxa.config import ArchiveSettings
from loaxa.errors import LoaxaError, StoreError
from loaxa.hashing import sha256_file
from loaxa.player.output import Output, Sink
from loaxa.sources._common import find_ffmpeg, stderr_tail
from loaxa.store import Store
from loaxa.store import archived as files

log = logging.getLogger(__name__)

EXTENSIONS = {"opus": ".opus", "mp3": ".mp3"}
CODECS = {"opus": ["-c:a", "libopus", "-application", "voip"], "mp3": ["-c:a", "libmp3lame"]}
ENCODER_WAIT_S = 30.0  # for ffmpeg to finish a file after its input ends


class ArchiveError(LoaxaError):
    """An archived file cannot be listed, found or exported."""


@dataclass
class _Recording:
    """One on-air session on its way to a file."""

    label: str
    rate: int
    started_at: float  # wall clock
    samples: int = 0
    # Why the rest of it is not archived: set once, by the player's thread (the mailbox overflowed) or the
    # encoder's; the player's only reads it to stop copying, so a late read costs one block, nothing more.
    dropped: str | None = None
    reported: bool = False  # the encoder's alone
    encoder: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    errors: IO[bytes] | None = field(default=None, repr=False)  # ffmpeg's messages (a file: a pipe could fill)
    part: Path | None = None


class _Mailbox:
    """Blocks from the player to the encoder, bounded in samples; markers always fit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[tuple[_Recording, np.ndarray | None]] = deque()
        self._held = 0
        self._cond = threading.Condition()

    def offer(self, rec: _Recording, block: np.ndarray | None) -> bool:
        """Queue a block (or the end marker, None); False, at once, when the blocks would overflow."""
        with self._cond:
            size = 0 if block is None else len(block)
            if size and self._held + size > self.limit:
                return False
            self._items.append((rec, block))
            self._held += size
            self._cond.notify()
            return True

    def discard(self, rec: _Recording) -> None:
        """Drop the blocks of `rec` still waiting (it will not be archived) and queue its end marker."""
        with self._cond:
            kept = deque(item for item in self._items if item[0] is not rec)
            self._held = sum(len(block) for _, block in kept if block is not None)
            self._items = kept
            self._items.append((rec, None))
            self._cond.notify()

    def take(self, timeout_s: float) -> tuple[_Recording, np.ndarray | None] | None:
        with self._cond:
            if not self._items and not self._cond.wait(timeout_s):
                return None
            if not self._items:
                return None
            rec, block = self._items.popleft()
            self._held -= 0 if block is None else len(block)
            return rec, block


class Archive:
    """The encoder thread and the folder it keeps; `tee` is the player side."""

    def __init__(
        self,
        settings: ArchiveSettings,
        folder: Path,
        store: Store,
        tz: ZoneInfo,
        *,
        rate: int,
        clock: Callable[[], float] = time.time,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.store = store
        self.tz = tz
        self.clock = clock
        self.ffmpeg = ffmpeg
        self.mailbox = _Mailbox(int(settings.queue_s * rate))
        self.heartbeat = time.monotonic()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._fault: str | None = None
        self._fault_since: str | None = None
        self._archived = 0
        self._dropped = 0

    # -- the player's side: never waits --------------------------------------------
    def tee(self, output: Output, label: str, rate: int) -> Output:
        return _Tee(output, self, _Recording(label, rate, self.clock()))

    def _feed(self, rec: _Recording, samples: np.ndarray) -> None:
        if rec.dropped is not None:
            return
        block = np.array(samples, dtype=np.float32).reshape(-1)
        if not self.mailbox.offer(rec, block):
            rec.dropped = f"the encoder fell more than {self.settings.queue_s:g} s behind"
            self.mailbox.discard(rec)  # room for the next session at once; the encoder gives this one up

    def _finish(self, rec: _Recording) -> None:
        self.mailbox.offer(rec, None)

    # -- life cycle -----------------------------------------------------------------
    def start(self) -> None:
        for part in self.folder.glob("*.part"):  # left by a power cut mid-session
            part.unlink(missing_ok=True)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="archive", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued (within `timeout_s`), then stop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def status(self) -> dict[str, Any]:
        """For the station state: the fault, since when, files archived and sessions dropped since start."""
        with self._lock:
            return {
                "enabled": True,
                "fault": self._fault,
                "since": self._fault_since,
                "archived": self._archived,
                "dropped": self._dropped,
            }

    def fault(self) -> str | None:
        """What keeps the archive from recording, for `status` and `doctor`; airing is never affected."""
        if self._thread is not None and not self._thread.is_alive() and not self._stopping.is_set():
            return "archive: the encoder thread ended; nothing is archived until the daemon restarts"
        fault = self._fault
        return f"archive: {fault}" if fault else None

    # -- the encoder thread --------------------------------------------------------
    def _run(self) -> None:
        self._prune()
        while True:
            self.heartbeat = time.monotonic()
            item = self.mailbox.take(1.0)
            if item is None:
                if self._stopping.is_set():
                    return
                continue
            rec, block = item
            try:
                if block is None:
                    self._close(rec)
                elif rec.dropped is None:
                    self._write(rec, block)
            except Exception:  # one bad session must not end archiving
                log.exception("archive error; continuing")
                self._abandon(rec, "an internal error")

    def _write(self, rec: _Recording, block: np.ndarray) -> None:
        if rec.encoder is None and not self._open(rec):
            return
        assert rec.encoder is not None and rec.encoder.stdin is not None
        try:
            rec.encoder.stdin.write(block.astype("<f4").tobytes())
        except OSError:
            self._abandon(rec, f"the encoder stopped: {self._stderr(rec) or 'no reason given'}")
            return
        rec.samples += len(block)

    def _open(self, rec: _Recording) -> bool:
        free = _free_bytes(self.folder)
        if 0 <= free < self.settings.min_free_mb * 1e6:
            self._abandon(rec, f"disk full: {free / 1e6:.0f} MB free in {self.folder} (archive.min_free_mb)")
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            rec.part = self.folder / f"{self._name(rec)}.part"
            codec = self.settings.codec
            rec.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the recording
            rec.encoder = subprocess.Popen(
                [find_ffmpeg(self.ffmpeg), "-nostdin", "-hide_banner", "-loglevel", "error"]
                + ["-f", "f32le", "-ar", str(rec.rate), "-ac", "1", "-i", "pipe:0"]
                + [*CODECS[codec], "-b:a", f"{self.settings.bitrate_kbps}k", "-ac", "1", "-f", _muxer(codec)]
                + ["-y", str(rec.part)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=rec.errors,
            )
        except (OSError, LoaxaError) as exc:
            self._abandon(rec, f"cannot start the encoder: {exc}")
            return False
        return True

    def _close(self, rec: _Recording) -> None:
        if rec.dropped is not None or rec.encoder is None:
            self._abandon(rec, rec.dropped)
            return
        encoder, part = rec.encoder, rec.part
        assert encoder.stdin is not None and part is not None
        try:
            encoder.stdin.close()
            code = encoder.wait(ENCODER_WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            code = -1
        said = self._stderr(rec)  # at -loglevel error, anything said is an error: a full disk exits 0
        if code != 0 or said:
            self._abandon(rec, f"the encoder failed: {said or f'exit code {code}'}")
            return
        self._close_errors(rec)
        final = part.with_suffix(EXTENSIONS[self.settings.codec])
        try:
            os.replace(part, final)
            size, sha = final.stat().st_size, sha256_file(final)
            files.add(
                self.store,
                name=final.name,
                id=rec.label,
                started_at=rec.started_at,
                seconds=rec.samples / rec.rate,
                size=size,
                sha256=sha,
            )
        except (OSError, StoreError) as exc:
            final.unlink(missing_ok=True)
            self._abandon(rec, f"cannot keep {final.name}: {exc}")
            return
        with self._lock:
            self._archived += 1
            self._fault = self._fault_since = None
        log.info("archived %s (%.1f s, %d bytes)", final.name, rec.samples / rec.rate, size)
        self._prune()

    def _abandon(self, rec: _Recording, why: str | None) -> None:
        """The session is not archived (the rest of it, or all): the encoder killed, the part deleted."""
        if rec.encoder is not None:
            rec.encoder.kill()
            rec.encoder.wait()
            rec.encoder = None
        self._close_errors(rec)
        if rec.part is not None:
            rec.part.unlink(missing_ok=True)
        if why is None or rec.reported:
            return
        rec.dropped, rec.reported = why, True  # once per session
        log.warning("archive: %s not archived: %s", rec.label, why)
        with self._lock:
            self._dropped += 1
            if self._fault is None:
                self._fault_since = datetime.now(self.tz).isoformat(timespec="seconds")
            self._fault = f"{rec.label} not archived: {why}"

    def _stderr(self, rec: _Recording) -> str:
        """The last thing ffmpeg said (after it ended, or killing it)."""
        if rec.encoder is not None and rec.encoder.poll() is None:
            rec.encoder.kill()
            rec.encoder.wait()
        if rec.errors is None:
            return ""
        try:
            rec.errors.seek(0)
            return stderr_tail(rec.errors.read())
        except OSError:
            return ""

    def _close_errors(self, rec: _Recording) -> None:
        if rec.errors is not None:
            rec.errors.close()
            rec.errors = None

    def _name(self, rec: _Recording) -> str:
        stamp = datetime.fromtimestamp(rec.started_at, self.tz).strftime("%Y%m%d-%H%M%S")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", rec.label)[:64] or "session"
        name, n = f"{stamp}-{safe}", 1
        while any((self.folder / f"{name}{ext}").exists() for ext in (".part", *EXTENSIONS.values())):
            n += 1
            name = f"{stamp}-{safe}-{n}"
        return name

    def _prune(self) -> None:
        """Oldest first, until within `archive.max_mb` and none older than `archive.days`."""
        try:
            kept = files.oldest_first(self.store)
            total = sum(f.bytes for f in kept)
            cutoff = self.clock() - self.settings.days * 86400
            for old in kept:
                if total <= self.settings.max_mb * 1e6 and old.started_at >= cutoff:
                    break
                (self.folder / old.name).unlink(missing_ok=True)
                files.forget(self.store, old.aid)
                total -= old.bytes
                log.info("archive: deleted %s (over archive.max_mb or archive.days)", old.name)
        except (OSError, StoreError) as exc:
            log.warning("archive: cannot prune: %s", exc)


class _Tee:
    """The output, and a copy of each block for the archive once the output took it."""

    def __init__(self, output: Output, archive: Archive, rec: _Recording) -> None:
        self._output = output
        self._archive = archive
        self._rec = rec

    def write(self, samples: np.ndarray) -> None:
        self._output.write(samples)
        self._archive._feed(self._rec, samples)

    def close(self) -> None:
        try:
            self._output.close()
        finally:
            self._archive._finish(self._rec)


class ArchivingSink:
    """A sink whose every output is also archived."""

    def __init__(self, sink: Sink, archive: Archive) -> None:
        self.sink = sink
        self.archive = archive

    def describe(self) -> str:
        return self.sink.describe()

    def open(self, sample_rate: int, label: str) -> Output:
        return self.archive.tee(self.sink.open(sample_rate, label), label, sample_rate)


def _muxer(codec: str) -> str:
    return "ogg" if codec == "opus" else "mp3"


def _free_bytes(folder: Path) -> int:
    probe = folder if folder.exists() else folder.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize
