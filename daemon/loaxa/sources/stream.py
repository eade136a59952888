"""Live relay: `stream: {url, duration_s}` as float32 blocks for the player.

The station's own downloader (`loaxa.download`: its address policy, its
deadlines, its words) fetches the HTTP/Icecast stream and pipes it into an
ffmpeg that may open nothing but that pipe; a reader thread cuts ffmpeg's
output into blocks and hands them over through a bounded queue. The player
pulls one block at a time and never waits longer than a block: a stalled
network gives silence, not a frozen player. A dropped or stalled stream is
restarted after `reconnect_s` until `duration_s` of wall-clock time has
passed since the first block was taken. `stop()` ends everything at once.

A relay connects before it is put on air: `has_audio` says the first audio
came, `failed` why none came within `first_audio_s` (a closed port, a
404, a server that sends no audio): such a stream is never put on air.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

import numpy as np

from loaxa.download import PUBLIC_ONLY, AddressPolicy, DownloadError, NoAnswer, download
from loaxa.sources._common import SourceError, find_ffmpeg, host_of, stderr_tail
from loaxa.sources.failover import BACK_CHECK_S, MAX_DURATION_S, Failover, answers, validate_stream_spec

log = logging.getLogger(__name__)

# ffmpeg reads the pipe the station fills and opens nothing else: a playlist (HLS) that names further
# addresses is not followed, since the station could not check them.
PROTOCOLS = "pipe"
FIRST_AUDIO_S = 5.0  # a stream with no audio at all this long after connecting is dead: `failed`, not aired
CLAIM_S = 30.0  # a relay with audio that nobody puts on air within this long stops
MAX_STREAM_BYTES = 2**62

__all__ = ["MAX_DURATION_S", "StreamRelay", "validate_stream_spec", "SourceError"]


class StreamRelay:
    """Iterator of float32 mono blocks of `block_s` for `duration_s` of wall-clock time.

    Counters for the `finished` report: `reconnects` (restarts after a
    drop), `silence_s` (blocks with nothing to play), `audio_s`, and
    `last_error` (why the stream last dropped, in the station's words).
    `start()` connects; the duration counts from the first block taken.
    `on_change` is called (from the reader thread) when the first audio
    arrives or the relay is found dead. Use it as a context manager or call
    `stop()`; either way no ffmpeg process outlives it.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        duration_s: float,
        sample_rate: int,
        block_s: float = 0.1,
        reconnect_s: float = 2.0,
        ffmpeg: str = "ffmpeg",
        *,
        stall_s: float = 10.0,
        buffer_s: float = 10.0,
        prebuffer_s: float = 0.5,
        first_audio_s: float = FIRST_AUDIO_S,
        claim_s: float = CLAIM_S,
        back_check_s: float = BACK_CHECK_S,
        addresses: AddressPolicy = PUBLIC_ONLY,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.failover = Failover([url] if isinstance(url, str) else url, back_check_s)
        self.url = self.failover.urls[0]
        self.duration_s = float(duration_s)
        self.sample_rate = sample_rate
        self.block_samples = max(1, round(block_s * sample_rate))
        self.block_s = self.block_samples / sample_rate
        self.reconnect_s = reconnect_s
        self.stall_s = stall_s
        self.first_audio_s = first_audio_s
        self.claim_s = claim_s
        self.addresses = addresses
        self.on_change = on_change
        self.reconnects = 0  # written by the reader thread
        self.last_error = ""  # written by the reader thread
        self.failed: str | None = None  # written by the reader thread: why no audio came at all
        self.silence_s = 0.0  # written by the consuming thread
        self.audio_s = 0.0  # written by the consuming thread
        self._binary = find_ffmpeg(ffmpeg)
        self._queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=max(2, round(buffer_s / self.block_s)))
        self._stop = threading.Event()
        self._has_audio = threading.Event()
        self._lock = threading.Lock()  # guards _proc between the reader and stop()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._audio_at = 0.0
        self._deadline = float("inf")  # set when the first block is taken
        self._taken = False
        self._back = threading.Event()  # the first URL answers again: end this session and go back to it
        self._cut_over = False  # going back: the first block from the first URL replaces what is queued
        # Blocks to hold back after a (re)start or an underrun, so network
        # jitter does not chop the first seconds into pieces.
        self._prebuffer = min(self._queue.maxsize, round(prebuffer_s / self.block_s))
        self._buffering = True

    @property
    def has_audio(self) -> bool:
        """Whether audio came from the stream (it can go on air)."""
        return self._has_audio.is_set()

    @property
    def stopped(self) -> bool:
        """Stopped (by `stop()`, or left unclaimed for `claim_s` after its audio came): it gives no more."""
        return self._stop.is_set()

    def start(self) -> None:
        """Connect now; blocks are buffered (the newest kept) until the first is taken."""
        if self._thread is not None or self._stop.is_set():
            return
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="stream-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the relay at once: kill ffmpeg and wait for the reader."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def summary(self) -> str:
        """One line for the `finished` event detail: how much of the stream actually played."""
        text = f"relayed {self.audio_s:.1f} s of the stream"
        if played := self.failover.played():
            text += f" ({played})"
        if self.reconnects:
            text += f", {self.reconnects} reconnects (last drop: {self.last_error})"
        if self.silence_s >= self.block_s:
            text += f", {self.silence_s:.1f} s of silence"
        if self.audio_s == 0 and self.last_error and not self.reconnects:
            text += f"; stream gave no audio: {self.last_error}"
        return text

    def __enter__(self) -> StreamRelay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> StreamRelay:
        return self

    def __next__(self) -> np.ndarray:
        self.start()
        if not self._taken:
            self._taken = True
            self._deadline = time.monotonic() + self.duration_s
        left = self._deadline - time.monotonic()
        if self._stop.is_set() or left <= 0 or self.failed is not None:
            self.stop()
            raise StopIteration
        if self._buffering:
            if self._queue.qsize() < self._prebuffer:
                self._stop.wait(min(self.block_s, left))
            if self._queue.qsize() < self._prebuffer:
                return self._silence()
            self._buffering = False
        try:
            # Waiting at most one block keeps the player fed, and paces
            # silence in real time when nothing arrives.
            index, block = self._queue.get(timeout=min(self.block_s, left))
        except queue.Empty:
            self._buffering = True
            return self._silence()
        self.audio_s += self.block_s
        self.failover.played_s[index] += self.block_s
        return block

    def _silence(self) -> np.ndarray:
        if self._stop.is_set():
            raise StopIteration
        self.silence_s += self.block_s
        return np.zeros(self.block_samples, dtype=np.float32)

    # --- reader thread -------------------------------------------------

    def _halted(self) -> bool:
        if self._stop.is_set() or time.monotonic() >= self._deadline:
            return True
        if not self._taken and self.has_audio and time.monotonic() - self._audio_at > self.claim_s:
            log.info("stream from %s not put on air within %g s; stopped", host_of(self.url), self.claim_s)
            self._stop.set()
            return True
        return False

    def _dead(self) -> bool:
        """No audio at all from any URL in the first seconds: give up, and say so."""
        late = time.monotonic() - self._started_at >= self.first_audio_s
        return not self.has_audio and late and self.failover.all_tried()

    def _run(self) -> None:
        try:
            while True:
                url = self.failover.url
                reason = self._session(url)
                if self._halted():
                    break
                if self._back.is_set():  # not a drop: the first URL answers again
                    self._back.clear()
                    log.info("stream: back to %s", host_of(self.failover.urls[0]))
                    self.failover.back_to_first()
                    self._cut_over = True
                    continue
                self.last_error = reason
                whole_round = self.failover.dropped(reason, time.monotonic())
                if self._dead():
                    self.failed = self.failover.why_none()
                    log.warning("stream gave no audio: %s", self.failed)
                    self._notify()
                    break
                # One URL: wait before asking it again. Several: the next at once, and a pause after a round.
                pause = self.reconnect_s if whole_round else 0.0
                next_host = host_of(self.failover.urls[self.failover.index])
                log.warning("stream from %s dropped (%s); %s in %g s", host_of(url), reason, next_host, pause)
                if self._stop.wait(max(0.0, min(pause, self._deadline - time.monotonic()))):
                    break
                if self._halted():
                    break
                if self.has_audio:
                    self.reconnects += 1
        except Exception:  # a bug here must not leave the player waiting on a dead thread
            log.exception("stream relay reader failed")
            if not self.has_audio:
                self.failed = "internal error in the stream relay"
                self._notify()

    def _notify(self) -> None:
        try:
            self.on_change()
        except Exception:
            log.exception("stream relay callback failed")

    def _command(self) -> list[str]:
        return [
            self._binary,
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            PROTOCOLS,
            "-i",
            "pipe:0",
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(self.sample_rate),
            "-f",
            "f32le",
            "pipe:1",
        ]

    def _session(self, url: str) -> str:
        """One connection to `url` through one ffmpeg, until it ends, stalls or the relay stops; why it ended."""
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    start_new_session=True,
                )
            except OSError as exc:
                log.error("cannot start ffmpeg: %s", exc)
                return "the station cannot start ffmpeg"
            assert proc.stdin is not None and proc.stdout is not None
            ended = threading.Event()
            feed = _Feed(proc.stdin)
            feeder = threading.Thread(target=self._feed, args=(url, feed, ended), name="stream-fetch", daemon=True)
            with self._lock:
                self._proc = proc
            reason = ""
            try:
                feeder.start()
                if not self._stop.is_set():
                    reason = self._pump(proc, index=self.failover.index, feed=feed)
            finally:
                ended.set()
                with self._lock:
                    self._proc = None
                if proc.poll() is None:
                    proc.kill()
                proc.wait()  # reap: never a zombie
                proc.stdout.close()
                feeder.join(timeout=5.0)
            if feed.error is not None:  # the network's story comes first: ffmpeg only saw its end
                return feed.error
            if proc.returncode not in (0, -9) and not reason:
                log.warning("ffmpeg cannot decode the stream from %s: %r", host_of(url), _tail(errors))
                return f"the stream from {host_of(url)} is not audio ffmpeg can decode"
            return reason or f"{host_of(url)} ended the stream"

    def _feed(self, url: str, feed: _Feed, ended: threading.Event) -> None:
        """Fetch the stream into ffmpeg's stdin (a thread per connection)."""
        try:
            download(
                url,
                feed,  # type: ignore[arg-type]
                max_bytes=MAX_STREAM_BYTES,
                deadline_s=self.duration_s + self.first_audio_s + self.claim_s + 60.0,
                stall_s=self.stall_s,
                addresses=self.addresses,
                stop=ended,
            )
            feed.finished = not ended.is_set()
        except DownloadError as exc:
            if not feed.broken and not ended.is_set():
                feed.error = str(exc)
        finally:
            feed.close()

    def _pump(self, proc: subprocess.Popen[bytes], index: int, feed: _Feed) -> str:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        block_bytes = self.block_samples * 4
        pending = bytearray()
        last_data = time.monotonic()
        while not self._halted() and not self._back.is_set():
            if self.failover.first_due(time.monotonic()):
                threading.Thread(target=self._ask_first, name="stream-back-check", daemon=True).start()
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                # The fetch has its own stall limit; this one catches a decoder that takes bytes and gives none,
                # and a URL that gives nothing in the first seconds while another may.
                silent = time.monotonic() - last_data
                if silent > 2 * self.stall_s or (not self.has_audio and silent >= self.first_audio_s):
                    host = host_of(self.failover.urls[index])
                    # A port that takes the connection and says nothing reads as a refused one (see download).
                    return f"no audio from {host} for {silent:.0f} s" if feed.written else str(NoAnswer(host))
                continue
            data = os.read(fd, 65536)
            if not data:
                return ""
            last_data = time.monotonic()
            pending += data
            while len(pending) >= block_bytes:
                block = np.frombuffer(bytes(pending[:block_bytes]), dtype="<f4").astype(np.float32)
                del pending[:block_bytes]
                if not self._put((index, block)):
                    return ""
        return ""

    def _ask_first(self) -> None:
        if answers(self.failover.urls[0], self.addresses, self._stop):
            self._back.set()

    def _put(self, block: tuple[int, np.ndarray]) -> bool:
        """Hand a block (and the index of the URL it came from) to the consumer; False once halted."""
        if self._cut_over:  # what the other URL buffered would hold the first back by as long: drop it
            self._cut_over = False
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        if not self.has_audio:
            self._audio_at = time.monotonic()
            self._has_audio.set()
            self._notify()
        if not self._taken:  # not on air yet: keep the newest seconds, so the relay starts live
            while True:
                try:
                    self._queue.put_nowait(block)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()
            return not self._halted()
        while not self._halted():
            try:
                self._queue.put(block, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


class _Feed:
    """ffmpeg's stdin as the downloader's output; remembers whether ffmpeg closed it first."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe = pipe
        self.broken = False
        self.error: str | None = None  # why the fetch failed, when it was the network's doing
        self.finished = False  # the server ended the stream
        self.written = 0  # bytes of the body received

    def write(self, data: bytes) -> int:
        self.written += len(data)
        try:
            self.pipe.write(data)
            self.pipe.flush()
        except OSError:
            self.broken = True
            raise
        return len(data)

    def close(self) -> None:
        try:
            self.pipe.close()
        except OSError:
            self.broken = True


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0, os.SEEK_END)
    errors.seek(max(0, errors.tell() - 4096))
    return stderr_tail(errors.read())
