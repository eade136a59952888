"""What `loaxa live` asks of the running daemon: start a live announcement, stop it.

Start stores a live play through the ledger (with its `received` receipt)
and wakes the player, which cuts in on a normal or low bulletin on air;
stop lets the live session finish with its closing chime (or cancels it if
it is still waiting, behind an emergency) and answers with how it ended.
One live announcement at a time; one left running by a technician who
went away ends after `max_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError
from datetime import UTC, datetime
from typing import Any

from loaxa.errors import ControlError
from loaxa.inbox import Inbox
from loaxa.protocol import Cancel, validate_command
from loaxa.sources.live import LiveSource
from loaxa.store import Ledger

log = logging.getLogger(__name__)

ISSUER = "local"  # as the technician's `say` and `play`
MAX_S = 4 * 3600.0  # the longest a live announcement may run unattended
STOP_WAIT_S = 30.0  # for the closing chime and the play's close


class LiveControl:
    def __init__(
        self,
        *,
        ledger: Ledger,
        source: LiveSource | None,
        inbox: Inbox,
        attention: Callable[[], None],
        on_air: Callable[[], str | None],
    ) -> None:
        self.ledger = ledger
        self.source = source
        self.inbox = inbox
        self.attention = attention
        self.on_air = on_air
        self._lock = threading.Lock()
        self._current: str | None = None
        self._timer: threading.Timer | None = None

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        action = request.get("action")
        if action == "start":
            return self.start(request.get("volume"), float(request.get("max_s") or MAX_S))
        if action == "stop":
            return self.stop()
        if action == "status":
            return self.status()
        raise ControlError(f"unknown live action {action!r} (start, status or stop)")

    def status(self) -> dict[str, Any]:
        """The live announcement asked for last: whether it is still on air or waiting, else how it ended."""
        id = self._current
        if id is None:
            return {"ok": True, "id": None, "open": False}
        plays = self.ledger.plays_of(ISSUER, id)
        last = plays[-1] if plays else None
        state = None if last is None else last.state
        return {"ok": True, "id": id, "open": self._open(id), "state": state, "on_air": self.on_air() == id}

    def start(self, volume: float | None, max_s: float) -> dict[str, Any]:
        if self.source is None:
            raise ControlError("this station has no live input: set audio.live_input in its config")
        if volume is not None and not 0.0 <= float(volume) <= 1.0:
            raise ControlError("volume must be between 0 and 1")
        with self._lock:
            if self._current is not None and self._open(self._current):
                raise ControlError(f"a live announcement is already on air or waiting ({self._current})")
            id = f"live-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10_000:04d}"
            self.source.begin()
            self.ledger.live(ISSUER, id, self.source.device, datetime.now(UTC), volume=volume)
            self._current = id
            self._timer = threading.Timer(min(max_s, MAX_S), self._too_long, args=(id,))
            self._timer.daemon = True
            self._timer.start()
        log.info("live announcement %s from %s", id, self.source.device)
        self.attention()
        return {"ok": True, "id": id}

    def stop(self) -> dict[str, Any]:
        with self._lock:
            id, self._current = self._current, None
            if self._timer is not None:
                self._timer.cancel()
        if id is None or self.source is None:
            raise ControlError("no live announcement is on air")
        done = self.ledger.watch(ISSUER, id)
        try:
            self.source.end()  # on air: it finishes after its closing chime
            if self.on_air() != id and self._open(id):  # still waiting (behind an emergency): cancelled
                cancel = validate_command({"type": "cancel", "id": id})
                assert isinstance(cancel, Cancel)
                try:
                    self.inbox.local(ISSUER, cancel).result(STOP_WAIT_S)
                except TimeoutError:
                    raise ControlError("the station did not take the stop in time") from None
            if not done.wait(STOP_WAIT_S):
                raise ControlError(f"{id} did not end within {STOP_WAIT_S:g} s; see `loaxa queue`")
        finally:
            self.ledger.unwatch(ISSUER, id, done)
        return {"ok": True, "id": id, "state": done.state, "detail": done.detail}

    def _open(self, id: str) -> bool:
        return any(not p.state.terminal for p in self.ledger.plays_of(ISSUER, id))

    def _too_long(self, id: str) -> None:
        with self._lock:
            if self._current != id:
                return
        log.warning("live announcement %s ran for the longest allowed; ending it", id)
        if self.source is not None:
            self.source.end()
