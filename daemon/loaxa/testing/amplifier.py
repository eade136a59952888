"""A fake amplifier relay for tests: it records every switch and can be told to fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RecordingRelay:
    """Records `(event, clock())` pairs; with `failing` set, `on`/`off` fail and set `fault`."""

    name = "recording"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.events: list[tuple[str, float]] = []
        self.is_on = False
        self.fault: str | None = None
        self.failing = False
        self._clock = clock
        self._changed = threading.Condition()

    def on(self) -> bool:
        return self._record("on")

    def off(self) -> bool:
        return self._record("off")

    def close(self) -> None:
        self._record("close")

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        """Block until `count` events were recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.events) >= count, timeout_s)

    def _record(self, event: str) -> bool:
        with self._changed:
            self.events.append((event, self._clock()))
            self._changed.notify_all()
        if self.failing and event != "close":
            self.fault = f"{event} failed (test)"
            return False
        self.fault = None
        if event != "close":
            self.is_on = event == "on"
        return True
