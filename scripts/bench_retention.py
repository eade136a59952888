#!/usr/bin/env python3
"""The store's size on disk through a simulated year of daily sessions, with the default retention.

The real ledger and SQLite file (on the home disk, synchronous=FULL) with
its clock moved forward: `--per-day` bulletins a day aired and reported,
the store pruned as the reporter does every hour.

    .venv/bin/python scripts/bench_retention.py --days 365 --per-day 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from loaxa.config import StorageSettings
from loaxa.testing.year import Day, SimulatedStation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=5)
    args = parser.parse_args()
    defaults = StorageSettings()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        sim = SimulatedStation(Path(tmp), keep_days=defaults.keep_days, keep_events=defaults.keep_events)

        def report(day: Day) -> None:
            if day.day % 30 == 0 or day.day == args.days:
                rows = ", ".join(f"{n} {t}" for t, n in day.rows.items())
                print(f"day {day.day:4d}: {day.file_bytes / 1024:7.0f} KiB  ({rows})")

        try:
            sim.run(days=args.days, per_day=args.per_day, every_day=report)
        finally:
            sim.close()
    print(
        f"{args.days * args.per_day} bulletins, keep_days {defaults.keep_days:g}, "
        f"keep_events {defaults.keep_events}: {time.monotonic() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
