"""What goes on air next: priority, then due time; quiet hours and clock hold.

The queue itself lives in the store (`plays`, ordered by the ledger); this
module decides which pending play is eligible now and whether one should
cut in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from loaxa.config import QuietHours
from loaxa.states import Priority
from loaxa.store import Ledger, Play
from loaxa.timing import in_quiet_hours

HELD_IN_QUIET_HOURS = Priority.NORMAL.rank  # and every rank after it


class BroadcastQueue:
    def __init__(
        self,
        ledger: Ledger,
        tz: ZoneInfo,
        quiet: QuietHours | None,
        clock_ok: Callable[[], bool] = lambda: True,
    ) -> None:
        self.ledger = ledger
        self.tz = tz
        self.quiet = quiet
        self.clock_ok = clock_ok

    def quiet_now(self, now: datetime) -> bool:
        return self.quiet is not None and in_quiet_hours(now, self.tz, self.quiet.start, self.quiet.end)

    def eligible(self, now: datetime) -> list[Play]:
        """Open plays that may start now, best first (one left on air by a player error is retried)."""
        quiet = self.quiet_now(now)
        clock_ok: bool | None = None
        chosen = []
        for play in self.ledger.open_plays():
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
        emergency = Priority.EMERGENCY.rank
        if current.rank == emergency:
            return False
        return any(p.rank == emergency and p.pid != current.pid for p in self.eligible(now))

    def waiting(self) -> int:
        return self.ledger.count_open()
