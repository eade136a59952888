"""Fetch recordings off the player's thread: a small pool, a bounded queue, one job per sha256.

The player must never wait on the network: it asks `state(sha)` and gets
an answer at once. Jobs run on `workers` threads behind a queue of
`queue_size`; a sha256 already queued or running is not queued again. A
failure is remembered for `retry_after_s` (so a broken URL does not cost a
download per look at the queue), then a new request tries again. `on_done`
is called after every job, ready or failed, so whoever waits can look again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loaxa.errors import LoaxaError

log = logging.getLogger(__name__)

WORKERS = 2
QUEUE_SIZE = 32
RETRY_AFTER_S = 300.0
MAX_REMEMBERED = 256  # finished jobs kept in memory; older ones are checked again on disk by a new job


@dataclass(frozen=True)
class Pending:
    url: str
    since: float


@dataclass(frozen=True)
class Ready:
    path: Path  # the decoded samples


@dataclass(frozen=True)
class Failed:
    reason: str
    at: float
    url: str  # a failure is remembered for this URL only: the same file from another URL is tried at once


State = Pending | Ready | Failed
Job = Callable[[str, str], Path]  # (url, sha256) -> the decoded file; raises LoaxaError with the reason


class QueueFull(LoaxaError):
    """More recordings are waiting to be fetched than the queue holds."""


class Fetcher:
    """Runs `job(url, sha)` once per sha256 at a time on a few worker threads."""

    def __init__(
        self,
        job: Job,
        *,
        on_done: Callable[[str], None] = lambda sha: None,
        workers: int = WORKERS,
        queue_size: int = QUEUE_SIZE,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.on_done = on_done
        self.workers = workers
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(queue_size)
        self._states: OrderedDict[str, State] = OrderedDict()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def state(self, sha: str) -> State | None:
        """What is known of `sha` now; a failure older than `retry_after_s` is forgotten."""
        with self._changed:
            state = self._states.get(sha)
            if isinstance(state, Failed) and self.clock() - state.at >= self.retry_after_s:
                del self._states[sha]
                return None
            return state

    def request(self, url: str, sha: str) -> State:
        """The state of `sha`, queueing a job first when nothing is known of it. Never blocks.

        Raises QueueFull when the queue has no room: nothing is recorded, so
        a later request queues it.
        """
        with self._changed:
            state = self.state(sha)
            if isinstance(state, Failed) and state.url != url:  # sent again from a corrected URL
                del self._states[sha]
                state = None
            if state is not None:
                return state
            if self._closed:
                raise QueueFull("the station is stopping")
            self._start_workers()
            try:
                self._queue.put_nowait((url, sha))
            except queue.Full:
                raise QueueFull(f"{self._queue.maxsize} recordings are waiting to be fetched") from None
            state = self._states[sha] = Pending(url, self.clock())
            return state

    def forget(self, sha: str) -> None:
        """Drop what is known (e.g. the decoded file was pruned): the next request fetches again."""
        with self._changed:
            if not isinstance(self._states.get(sha), Pending):
                self._states.pop(sha, None)

    def wait(self, sha: str, timeout_s: float) -> State | None:
        """Block until `sha` is no longer pending, or the timeout; for callers that may wait (the CLI)."""
        with self._changed:
            self._changed.wait_for(lambda: not isinstance(self._states.get(sha), Pending), timeout_s)
            return self._states.get(sha)

    def pending(self) -> frozenset[str]:
        with self._changed:
            return frozenset(sha for sha, state in self._states.items() if isinstance(state, Pending))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking jobs and let the workers end after the job they are on."""
        with self._changed:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # workers read on; each finds the flag after its job
                break
        for thread in threads:
            thread.join(timeout=timeout_s)

    # -- worker threads ---------------------------------------------------------------
    def _start_workers(self) -> None:
        """Threads start with the first request: a source that never fetches costs none."""
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=f"audio-fetch-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._closed:
                return
            url, sha = item
            state: State
            try:
                state = Ready(self.job(url, sha))
            except LoaxaError as exc:
                state = Failed(str(exc), self.clock(), url)
            except Exception as exc:  # a bug in one job must not stop the pool, nor leave it pending
                log.exception("fetching audio %s failed", sha[:12])
                state = Failed(f"internal error while fetching: {type(exc).__name__}", self.clock(), url)
            with self._changed:
                self._states[sha] = state
                self._states.move_to_end(sha)
                self._trim()
                self._changed.notify_all()
            try:
                self.on_done(sha)
            except Exception:
                log.exception("audio fetch callback failed")

    def _trim(self) -> None:
        """Forget the oldest finished jobs past MAX_REMEMBERED; pending ones stay."""
        excess = len(self._states) - MAX_REMEMBERED
        for sha in [s for s, st in self._states.items() if not isinstance(st, Pending)][: max(0, excess)]:
            del self._states[sha]
