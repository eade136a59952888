"""Receipts of one command across the fleet: who received, started, finished it.

`Tracker` folds the stations' events for one bulletin (or cancel) into one
row per station and knows when every expected station is done; `LiveView`
draws it as a table under a progress bar on a terminal, `LineView` prints
one line per receipt for logs and pipes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

# Events that end a station's part, by outcome, for each goal.
BAD = frozenset({"failed", "rejected", "missed", "expired"})
ENDED = frozenset({"duplicate", "cancelled", "superseded", "declined"})  # declined: the commune's decision
REACHED = {
    "finished": frozenset({"finished"}),
    "received": frozenset(
        {"received", "scheduled", "awaiting_approval", "started", "resumed", "interrupted", "finished"}
    ),
    "scheduled": frozenset({"scheduled", "started", "resumed", "interrupted", "finished"}),
    "cancelled": frozenset({"cancelled"}),
}
COLUMNS = ("received", "started", "finished")


@dataclass
class Row:
    station: str
    expected: bool
    online: bool | None = None
    status: str = "waiting"
    detail: str | None = None
    times: dict[str, float] = field(default_factory=dict)  # event -> seconds after publish
    outcome: str | None = None  # None while open; "ok", "bad", "ended"

    @property
    def done(self) -> bool:
        return self.outcome is not None


class Tracker:
    """One row per station for command `bid`; `goal` is the event that completes it."""

    def __init__(self, bid: str, rev: int | None, goal: str, t0: float) -> None:
        if goal not in REACHED:
            raise ValueError(f"goal must be one of {', '.join(REACHED)}")
        self.bid = bid
        self.rev = rev
        self.goal = goal
        self.t0 = t0
        self.rows: dict[str, Row] = {}

    def expect(self, station: str, online: bool | None) -> None:
        """A station that should answer (online, or never seen) or that the broker holds the command for (offline)."""
        row = self.rows.setdefault(station, Row(station, expected=online is not False))
        row.online = online
        if online is not False:
            row.expected = True
        if online is False and row.status == "waiting":
            row.status = "offline"

    def went_online(self, station: str) -> None:
        row = self.rows.get(station)
        if row is not None and row.online is False:
            self.expect(station, True)
            if row.status == "offline":
                row.status = "waiting"

    def event(self, station: str, body: dict[str, Any], arrived: float) -> Row | None:
        """Fold one event in; the row it changed, or None when it is about something else."""
        if body.get("id") != self.bid or not isinstance(body.get("event"), str):
            return None
        rev = body.get("rev")
        if self.rev is not None and isinstance(rev, int) and rev != self.rev:
            return None  # e.g. `superseded` of the older rev this one replaced
        kind = body["event"]
        row = self.rows.setdefault(station, Row(station, expected=True, online=True))
        row.expected = True  # it answered, so it counts, known beforehand or not
        row.times.setdefault(kind, max(0.0, arrived - self.t0))
        if row.done and kind not in BAD:
            return row  # a late `duplicate` after `finished` changes nothing
        row.status = kind
        if body.get("detail"):
            row.detail = str(body["detail"])
        if kind in REACHED[self.goal]:
            row.outcome = "ok"
        elif kind in BAD:
            row.outcome = "bad"
        elif kind in ENDED:
            row.outcome = "ended"
        return row

    # -- summary ------------------------------------------------------------------
    @property
    def expected(self) -> list[Row]:
        return [r for r in self.rows.values() if r.expected]

    def complete(self) -> bool:
        rows = self.expected
        return bool(rows) and all(r.done for r in rows)

    def counts(self) -> dict[str, int]:
        rows = list(self.rows.values())
        expected = self.expected
        return {
            "expected": len(expected),
            "offline": sum(1 for r in rows if not r.expected),
            "received": sum(1 for r in rows if "received" in r.times or "duplicate" in r.times),
            "started": sum(1 for r in rows if "started" in r.times),
            "finished": sum(1 for r in rows if "finished" in r.times),
            "ok": sum(1 for r in expected if r.outcome == "ok"),
            "failed": sum(1 for r in rows if r.outcome == "bad"),
            "other": sum(1 for r in rows if r.outcome == "ended"),
            "waiting": sum(1 for r in expected if not r.done),
        }

    def exit_code(self) -> int:
        """0 every expected station reached the goal; 1 some failed; 2 some did not answer."""
        c = self.counts()
        if c["failed"]:
            return 1
        if c["waiting"] or not c["expected"]:
            return 2
        return 0

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c['ok']}/{c['expected']} {self.goal}"]
        if self.goal == "finished":
            parts.append(f"{c['received']} received")
        for key, label in (("failed", "failed"), ("other", "duplicate/cancelled/superseded"), ("waiting", "no answer")):
            if c[key]:
                parts.append(f"{c[key]} {label}")
        if c["offline"]:
            parts.append(f"{c['offline']} offline (the broker holds it for them)")
        return ", ".join(parts)

    def problems(self) -> list[Row]:
        return sorted((r for r in self.rows.values() if r.outcome in ("bad", "ended")), key=lambda r: r.station)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.bid,
            "rev": self.rev,
            "goal": self.goal,
            "counts": self.counts(),
            "exit": self.exit_code(),
            "stations": {
                r.station: {"status": r.status, "expected": r.expected, "detail": r.detail, "times": r.times}
                for r in sorted(self.rows.values(), key=lambda r: r.station)
            },
        }


def _order(row: Row) -> tuple[int, str]:
    rank = {"bad": 0, None: 1, "ended": 2, "ok": 3}[row.outcome]
    if row.outcome is None and row.status in ("waiting", "offline"):
        rank = 2 if row.status == "waiting" else 4
    return rank, row.station


class LineView:
    """One line per receipt, then the summary: for logs, pipes and tests."""

    def __init__(self, tracker: Tracker, out: TextIO | None = None) -> None:
        self.tracker = tracker
        self.out = out or sys.stdout

    def start(self) -> None:
        c = self.tracker.counts()
        print(f"expecting {c['expected']} station(s); {c['offline']} offline", file=self.out, flush=True)

    def changed(self, row: Row) -> None:
        detail = f" ({row.detail})" if row.detail and row.status in BAD | ENDED | {"finished"} else ""
        t = row.times.get(row.status)
        when = f"+{t:.2f}s" if t is not None else ""
        print(f"{when:>9}  {row.station}  {row.status}{detail}", file=self.out, flush=True)

    def refresh(self) -> None:
        pass

    def stop(self) -> None:
        pass


class LiveView:
    """A table of stations under a progress bar, redrawn in place (rich)."""

    def __init__(self, tracker: Tracker, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.tracker = tracker
        self.title = title
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)

    def start(self) -> None:
        self.live.start()
        self.refresh()

    def changed(self, row: Row) -> None:
        pass  # redrawn by refresh(), a few times a second

    def refresh(self) -> None:
        self.live.update(self._render())

    def stop(self) -> None:
        self.refresh()
        self.live.stop()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        t = self.tracker
        c = t.counts()
        head = Text(f"{self.title}   {t.summary()}", style="bold")
        bar = ProgressBar(total=max(1, c["expected"]), completed=c["ok"] + c["failed"] + c["other"], width=60)
        table = Table(expand=False, show_edge=False, pad_edge=False)
        table.add_column("station")
        table.add_column("status")
        for col in COLUMNS:
            table.add_column(col, justify="right")
        table.add_column("detail", overflow="ellipsis", max_width=60)
        rows = sorted(t.rows.values(), key=_order)
        room = max(5, self.console.size.height - 8)
        style = {"ok": "green", "bad": "red", "ended": "yellow", None: ""}
        for row in rows[:room]:
            cells = [f"{row.times[k]:.1f}s" if k in row.times else "" for k in COLUMNS]
            table.add_row(row.station, Text(row.status, style=style[row.outcome]), *cells, row.detail or "")
        more = len(rows) - room
        tail = Text(f"… and {more} more (all shown in the summary at the end)", style="dim") if more > 0 else Text("")
        return Group(head, bar, table, tail)
