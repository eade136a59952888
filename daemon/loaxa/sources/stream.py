"""Live relay: `stream: {url, duration_s}` as float32 blocks for the player.

An ffmpeg subprocess decodes the HTTP/Icecast stream; a reader thread cuts
its output into blocks and hands them over through a bounded queue. The
player pulls one block at a time and never waits longer than a block: a
stalled network gives silence, not a frozen player. A dropped or stalled
stream is restarted after `reconnect_s` until `duration_s` of wall-clock
time has passed. `stop()` ends everything at once.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import subprocess
import tempfile
import threading
import time
from typing import IO, Any

import numpy as np

from loaxa import __version__
from loaxa.sources._common import SourceError, check_keys, check_number, check_url, find_ffmpeg, host_of, stderr_tail

log = logging.getLogger(__name__)

MAX_DURATION_S = 86400.0
# The HLS demuxer opens further URLs itself; keep them on the network.
PROTOCOLS = "http,https,tcp,tls,crypto"

__all__ = ["StreamRelay", "validate_stream_spec", "SourceError"]


def validate_stream_spec(obj: Any) -> None:
    """Check a bulletin's `stream` object; raise CommandError saying what is wrong.

    Exactly `url` (http/https, same rules as `audio.url`) and `duration_s`
    (a number of seconds from 1 to 86400).
    """
    spec = check_keys(obj, "stream", ("url", "duration_s"))
    check_url(spec["url"], "stream.url")
    check_number(spec["duration_s"], "stream.duration_s", 1, MAX_DURATION_S)


class StreamRelay:
    """Iterator of float32 mono blocks of `block_s` for `duration_s` of wall-clock time.

    Counters for the `finished` report: `reconnects` (restarts after a
    drop), `silence_s` (blocks with nothing to play), `audio_s`, and
    `last_error` (why the stream last dropped). Use it as a context manager
    or call `stop()`; either way no ffmpeg process outlives it.
    """

    def __init__(
        self,
        url: str,
        duration_s: float,
        sample_rate: int,
        block_s: float = 0.1,
        reconnect_s: float = 2.0,
        ffmpeg: str = "ffmpeg",
        *,
        stall_s: float = 10.0,
        buffer_s: float = 10.0,
        prebuffer_s: float = 0.5,
    ) -> None:
        self.url = url
        self.duration_s = float(duration_s)
        self.sample_rate = sample_rate
        self.block_samples = max(1, round(block_s * sample_rate))
        self.block_s = self.block_samples / sample_rate
        self.reconnect_s = reconnect_s
        self.stall_s = stall_s
        self.reconnects = 0  # written by the reader thread
        self.last_error = ""  # written by the reader thread
        self.silence_s = 0.0  # written by the consuming thread
        self.audio_s = 0.0  # written by the consuming thread
        self._binary = find_ffmpeg(ffmpeg)
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(2, round(buffer_s / self.block_s)))
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _proc between the reader and stop()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._deadline = 0.0
        # Blocks to hold back after a (re)start or an underrun, so network
        # jitter does not chop the first seconds into pieces.
        self._prebuffer = min(self._queue.maxsize, round(prebuffer_s / self.block_s))
        self._buffering = True

    def start(self) -> None:
        """Connect now; the wall-clock duration counts from here."""
        if self._thread is not None or self._stop.is_set():
            return
        self._deadline = time.monotonic() + self.duration_s
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
        """One line for the `finished` event detail."""
        text = f"relayed {self.audio_s:.1f} s, {self.reconnects} reconnects, {self.silence_s:.1f} s of silence"
        if self.audio_s == 0 and self.last_error:
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
        left = self._deadline - time.monotonic()
        if self._stop.is_set() or left <= 0:
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
            block = self._queue.get(timeout=min(self.block_s, left))
        except queue.Empty:
            self._buffering = True
            return self._silence()
        self.audio_s += self.block_s
        return block

    def _silence(self) -> np.ndarray:
        if self._stop.is_set():
            raise StopIteration
        self.silence_s += self.block_s
        return np.zeros(self.block_samples, dtype=np.float32)

    # --- reader thread -------------------------------------------------

    def _halted(self) -> bool:
        return self._stop.is_set() or time.monotonic() >= self._deadline

    def _run(self) -> None:
        try:
            while True:
                reason = self._session()
                if self._halted():
                    break
                self.last_error = reason
                log.warning(
                    "stream from %s dropped (%s); reconnecting in %g s", host_of(self.url), reason, self.reconnect_s
                )
                if self._stop.wait(max(0.0, min(self.reconnect_s, self._deadline - time.monotonic()))):
                    break
                if self._halted():
                    break
                self.reconnects += 1
        except Exception:  # a bug here must not leave the player waiting on a dead thread
            log.exception("stream relay reader failed")

    def _command(self) -> list[str]:
        # No `-reconnect`: ffmpeg would reconnect silently; here every
        # restart is counted, logged and spaced by `reconnect_s`.
        return [
            self._binary,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            PROTOCOLS,
            "-user_agent",
            f"loaxa/{__version__}",
            "-rw_timeout",
            str(int(self.stall_s * 1e6)),
            "-i",
            self.url,
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(self.sample_rate),
            "-f",
            "f32le",
            "pipe:1",
        ]

    def _session(self) -> str:
        """Run one ffmpeg until it ends, stalls or the relay stops; say why it ended."""
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    start_new_session=True,
                )
            except OSError as exc:
                return f"cannot start ffmpeg: {exc}"
            with self._lock:
                self._proc = proc
            reason = ""
            try:
                if not self._stop.is_set():
                    reason = self._pump(proc)
            finally:
                with self._lock:
                    self._proc = None
                if proc.poll() is None:
                    proc.kill()
                proc.wait()  # reap: never a zombie
                assert proc.stdout is not None
                proc.stdout.close()
            return reason or _tail(errors) or f"stream ended (ffmpeg exit {proc.returncode})"

    def _pump(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        block_bytes = self.block_samples * 4
        pending = bytearray()
        last_data = time.monotonic()
        while not self._halted():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                if time.monotonic() - last_data > self.stall_s:
                    return f"no data for {self.stall_s:g} s"
                continue
            data = os.read(fd, 65536)
            if not data:
                return ""
            last_data = time.monotonic()
            pending += data
            while len(pending) >= block_bytes:
                block = np.frombuffer(bytes(pending[:block_bytes]), dtype="<f4").astype(np.float32)
                del pending[:block_bytes]
                if not self._put(block):
                    return ""
        return ""

    def _put(self, block: np.ndarray) -> bool:
        while not self._halted():
            try:
                self._queue.put(block, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0, os.SEEK_END)
    errors.seek(max(0, errors.tell() - 4096))
    return stderr_tail(errors.read())
