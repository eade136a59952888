"""What goes on air next: priority, then due time; quiet hours and clock hold.

The queue itself lives in the store (`plays`, ordered by the ledger); this
module decides which pending play is eligible now and whether one should
cut in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from loaxa.clock import HOLD_DETAIL as CLOCK_HOLD
from loaxa.config import QuietHours
from loaxa.states import Approval, Priority
from loaxa.store import Ledger, Play
from loaxa.timing import in_quiet_hours, quiet_hours_end

HELD_IN_QUIET_HOURS = Priority.NORMAL.rank  # and every rank after it
AWAITING_APPROVAL = "awaiting approval"  # the `held` words of protocol 1.1


@dataclass(frozen=True)
class Hold:
    """A due play that cannot start, and why: `cause` is the kind, `detail` the words for the operator."""

    play: Play
    cause: str
    detail: str


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

    def survey(self, now: datetime) -> tuple[list[Play], list[Hold]]:
        """Open plays that may start now, best first, and the due ones that wait, with why."""
        quiet = self.quiet_now(now)
        clock_ok: bool | None = None
        chosen: list[Play] = []
        held: list[Hold] = []
        for play in self.ledger.open_plays():  # one left on air by a player error is retried
            if play.due_at > now.timestamp():
                continue
            if play.approval is Approval.AWAITING:  # a scheduled slot of a bulletin the commune has not answered
                held.append(Hold(play, "approval", AWAITING_APPROVAL))
                continue
            if quiet and play.rank >= HELD_IN_QUIET_HOURS:
                held.append(Hold(play, "quiet_hours", self._quiet_detail(now)))
                continue
            if play.occurrence is not None:
                # a scheduled slot needs a clock that can be trusted
                clock_ok = self.clock_ok() if clock_ok is None else clock_ok
                if not clock_ok:
                    held.append(Hold(play, "clock", CLOCK_HOLD))
                    continue
            chosen.append(play)
        return chosen, held

    def eligible(self, now: datetime) -> list[Play]:
        """Open plays that may start now, best first."""
        return self.survey(now)[0]

    def _quiet_detail(self, now: datetime) -> str:
        assert self.quiet is not None
        until = quiet_hours_end(now, self.tz, self.quiet.start, self.quiet.end)
        return f"quiet hours until {until.astimezone(self.tz).strftime('%H:%M')}"

    def next(self, now: datetime) -> Play | None:
        plays = self.eligible(now)
        return plays[0] if plays else None

    def preempts(self, current: Play, now: datetime) -> bool:
        """An emergency (or a live announcement, see `cuts_in`) waits while what it may cut is on air."""
        return any(self.cuts_in(p, current) for p in self.eligible(now))

    @staticmethod
    def cuts_in(play: Play, current: Play) -> bool:
        """Whether `play` stops `current` on air: an emergency cuts anything less urgent, live cuts normal and low."""
        if play.pid == current.pid:
            return False
        if play.rank == Priority.EMERGENCY.rank:
            return current.rank != Priority.EMERGENCY.rank
        return "live" in play.body and current.rank >= Priority.NORMAL.rank

    def waiting(self) -> int:
        return self.ledger.count_open()
