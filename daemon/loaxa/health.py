"""Is every loop of the station alive and moving? The watchdog asks this.

Each watched loop is a thread with a `heartbeat` (monotonic seconds) that it
refreshes at least every few seconds while idle and between audio blocks;
one that stopped beating for `stall_s` is stalled, one that ended is dead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Beating(Protocol):
    heartbeat: float

    def is_alive(self) -> bool: ...


@dataclass(frozen=True)
class Loop:
    name: str
    alive: Callable[[], bool]
    heartbeat: Callable[[], float] | None = None  # None: alive is all there is to know


def thread_loop(name: str, thread: Beating | threading.Thread) -> Loop:
    return Loop(name, thread.is_alive, lambda: float(getattr(thread, "heartbeat", time.monotonic())))


class Health:
    def __init__(self, loops: list[Loop], stall_s: float) -> None:
        self.loops = loops
        self.stall_s = stall_s

    def problems(self) -> list[str]:
        """What is wrong with the loops; empty when all are alive."""
        now = time.monotonic()
        found = []
        for loop in self.loops:
            if not loop.alive():
                found.append(f"{loop.name} stopped" if loop.heartbeat is None else f"{loop.name} thread died")
            elif loop.heartbeat is not None and now - loop.heartbeat() > self.stall_s:
                found.append(f"{loop.name} stalled for {now - loop.heartbeat():.0f} s")
        return found
