"""Is every loop of the station alive and moving? The watchdog asks this.

Each watched loop is a thread with a `heartbeat` (monotonic seconds) that it
refreshes at least every few seconds while idle and between audio blocks;
one that stopped beating for `stall_s` is stalled, one that ended is dead.

A loop may also say what keeps it from doing its work: `problem()` (the
reporter that cannot deliver) is something a restart may cure, so it
withholds the watchdog like a stall; `fault()` (a full disk under the inbox)
is not, a restart would only cut a bulletin on air, so `faults()` reports it
and the watchdog goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

Check = Callable[[], str | None]


class Beating(Protocol):
    heartbeat: float

    def is_alive(self) -> bool: ...


@dataclass(frozen=True)
class Loop:
    name: str
    alive: Callable[[], bool]
    heartbeat: Callable[[], float] | None = None  # None: alive is all there is to know
    problem: Check | None = None  # a reason to withhold the watchdog, beyond death and stalls
    fault: Check | None = None  # reported, not a reason to restart


def thread_loop(name: str, thread: Beating | threading.Thread) -> Loop:
    """A thread's loop; its `problem()` and `fault()` methods, if it has them, are asked too."""
    return Loop(
        name,
        thread.is_alive,
        lambda: float(getattr(thread, "heartbeat", time.monotonic())),
        problem=getattr(thread, "problem", None),
        fault=getattr(thread, "fault", None),
    )


class Health:
    def __init__(self, loops: list[Loop], stall_s: float) -> None:
        self.loops = loops
        self.stall_s = stall_s

    def problems(self) -> list[str]:
        """What is wrong with the loops that a restart may cure; empty when all are well."""
        now = time.monotonic()
        found = []
        for loop in self.loops:
            if not loop.alive():
                found.append(f"{loop.name} stopped" if loop.heartbeat is None else f"{loop.name} thread died")
            elif loop.heartbeat is not None and now - loop.heartbeat() > self.stall_s:
                found.append(f"{loop.name} stalled for {now - loop.heartbeat():.0f} s")
            elif (said := _ask(loop.name, loop.problem)) is not None:
                found.append(said)
        return found

    def faults(self) -> list[str]:
        """What the loops report is wrong around them (storage full, ...); no restart cures these."""
        return [said for loop in self.loops if (said := _ask(loop.name, loop.fault)) is not None]

    def report(self) -> list[str]:
        """Everything wrong, for people: problems, then faults."""
        return self.problems() + self.faults()


def _ask(name: str, check: Check | None) -> str | None:
    if check is None:
        return None
    try:
        return check()
    except Exception as exc:  # a broken check must not break the watchdog
        log.exception("health check of %s failed", name)
        return f"{name}: health check failed ({type(exc).__name__})"
