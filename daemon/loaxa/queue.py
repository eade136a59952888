"""What goes on air next: priority, then due time; quiet hours and clock hold.

The queue itself lives in the store (`plays`); this module decides which
pending play is eligible now and whether one should cut in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from loaxa.config import QuietHours
from loaxa.store import Play, Store
from loaxa.timing import in_quiet_hours

HELD_IN_QUIET_HOURS = 2  # rank of `normal`; `low` (3) too


class BroadcastQueue:
    def __init__(
        self,
        store: Store,
        tz: ZoneInfo,
        quiet: QuietHours | None,
        clock_ok: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.tz = tz
        self.quiet = quiet
        self.clock_ok = clock_ok

    def quiet_now(self, now: datetime) -> bool:
        return self.quiet is not None and in_quiet_hours(now, self.tz, self.quiet.start, self.quiet.end)

    def eligible(self, now: datetime) -> list[Play]:
        """Pending plays that may start now, best first."""
        quiet = self.quiet_now(now)
        clock_ok: bool | None = None
        chosen = []
        for play in self.store.pending_plays():
            if play.due_at > now.timestamp():
                continue
            if quiet and play.rank >= HELD_IN_QUIET_HOURS:
                continue
            if play.occurrence is not None:
                # a scheduled slot needs a clock that can be trusted
                clock_ok = self.clock_ok() if clock_ok is None else clock_ok
                if not clock_ok:
                    continue
            chosen.append(play)
        return chosen

    def next(self, now: datetime) -> Play | None:
        plays = self.eligible(now)
        return plays[0] if plays else None

    def preempts(self, current: Play, now: datetime) -> bool:
        """An emergency waits while something less urgent is on air."""
        if current.rank == 0:
            return False
        return any(p.rank == 0 and p.pid != current.pid for p in self.eligible(now))

    def waiting(self) -> int:
        return self.store.count_open_plays()
