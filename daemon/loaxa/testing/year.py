"""A station's store through simulated days: sessions aired, receipts sent, hourly pruning.

The real ledger and SQLite file, with the ledger's clock moved forward
instead of waiting: each day airs `per_day` bulletins (received, started,
finished), their receipts are marked sent as the reporter would, and the
store is pruned as the reporter does. Used by the retention test and by
`scripts/bench_retention.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loaxa.protocol import Bulletin, validate_command
from loaxa.states import Outcome
from loaxa.store import Ledger, Store

DAY_S = 86400.0
TEXT = "Thông báo của ủy ban nhân dân xã về lịch tiêm phòng cho gia súc, gia cầm trong tháng này."


@dataclass
class Day:
    day: int
    file_bytes: int
    rows: dict[str, int]


class SimulatedStation:
    def __init__(self, folder: Path, *, keep_days: float, keep_events: int, start: float = 1_767_225_600.0) -> None:
        self.now = start  # 2026-01-01 00:00 UTC
        self.store = Store(folder / "station.db")
        self.ledger = Ledger(self.store, "sim/commune/station", clock=lambda: self.now)
        self.keep_s = keep_days * DAY_S
        self.keep_events = keep_events
        self.count = 0

    def air(self) -> None:
        """One bulletin from arrival to `finished`, its own receipts sent."""
        self.count += 1
        before = {seq for seq, _ in self.store.unsent_events(limit=1000)}  # others' receipts stay unsent
        bulletin = validate_command({"type": "bulletin", "id": f"b-{self.count}", "text": TEXT})
        assert isinstance(bulletin, Bulletin)
        when = datetime.fromtimestamp(self.now, UTC)
        self.ledger.accept("province", bulletin, when, max_queue=1000, first_slot=None)
        (play,) = self.ledger.plays_of("province", bulletin.id)
        self.ledger.start(play)
        self.ledger.end(play, Outcome.FINISHED, "12.0 s on air")
        self.store.mark_sent([seq for seq, _ in self.store.unsent_events(limit=1000) if seq not in before])

    def run(self, days: int, per_day: int, every_day: Callable[[Day], None] = lambda day: None) -> Day:
        """`days` of `per_day` sessions, pruned each hour of simulated time; the last day's figures."""
        last = self.measure(0)
        for day in range(1, days + 1):
            for _ in range(per_day):
                self.now += DAY_S / per_day / 2
                self.air()
                self.now += DAY_S / per_day / 2
            self.ledger.prune(keep_s=self.keep_s, keep_events=self.keep_events)
            last = self.measure(day)
            every_day(last)
        return last

    def measure(self, day: int) -> Day:
        files = [p for p in self.store.path.parent.glob(self.store.path.name + "*")]
        return Day(day, sum(p.stat().st_size for p in files), self.store.row_counts())

    def close(self) -> None:
        self.store.close()
