#!/usr/bin/env python3
"""How does scheduling scale? Accept rate and idle CPU at N daily-scheduled bulletins.

In-process, no broker: a real SQLite store, the real `Inbox` (its `handle`,
as the inbox thread calls it) and the real `Scheduler`, started as the
daemon starts it. For each N it accepts N daily bulletins (one slot each,
spread over the day) and reports bulletins/s; then restarts the scheduler
on that store, as a daemon restart does, and measures the CPU the idle
process uses over `--idle-s` seconds (% of one core, from getrusage).

    .venv/bin/python scripts/bench_schedule.py --sizes 10 1000 10000 --idle-s 31

Accepting stops after `--budget-s` seconds; the rest is stored straight
through the ledger (not timed) so the idle figure is still for N bulletins.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from loaxa.protocol import Bulletin, validate_command
from loaxa.schedule import Scheduler
from loaxa.store import Ledger, Store
from loaxa.testing.inbox import open_inbox

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
GRACE_S = 600.0
WARMUP_S = 1.5  # the amplifier's default warm-up: the pre-warm is armed too


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def command(n: int) -> dict[str, object]:
    minute = (n * 7) % 1440  # slots spread over the day, a few per minute at most
    return {
        "type": "bulletin",
        "id": f"bench-{n}",
        "text": f"Thông báo số {n}.",
        "schedule": {"daily": [f"{minute // 60:02d}:{minute % 60:02d}"]},
    }


def scheduler(ledger: Ledger) -> Scheduler:
    return Scheduler(ledger, TZ, GRACE_S, lambda: True, lambda: None, prewarm=lambda: None, warmup_s=WARMUP_S)


def run(size: int, *, idle_s: float, budget_s: float) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-sched-") as tmp:
        store = Store(Path(tmp) / "station.db")
        ledger = Ledger(store, "hue/phu-vang/loa-1")
        sched = scheduler(ledger)
        inbox = open_inbox(ledger, sched)
        sched.start()
        began = time.perf_counter()
        accepted = 0
        last_chunk = began
        chunk_rate = 0.0
        chunk = max(1, size // 10)
        while accepted < size and time.perf_counter() - began < budget_s:
            inbox.handle(json.dumps(command(accepted)).encode(), False, {"topic": "bench"})
            accepted += 1
            if accepted % chunk == 0:
                now = time.perf_counter()
                chunk_rate = chunk / (now - last_chunk)
                last_chunk = now
        elapsed = time.perf_counter() - began
        for n in range(accepted, size):  # over the budget: stored untimed, so the idle figure is for N
            b = validate_command(command(n))
            assert isinstance(b, Bulletin)
            now = datetime.now(UTC)
            ledger.accept("", b, now, max_queue=10**6, first_slot=sched.first_slot(b, now))
        sched.stop()
        restarted = scheduler(ledger)  # the daemon came back up on this store
        t0 = time.perf_counter()
        restarted.start()
        start_s = time.perf_counter() - t0
        cpu0, wall0 = cpu_s(), time.perf_counter()
        time.sleep(idle_s)
        idle_pct = 100.0 * (cpu_s() - cpu0) / (time.perf_counter() - wall0)
        restarted.stop()
        store.close()
    return {
        "bulletins": size,
        "accepted_timed": accepted,
        "accept_s": round(elapsed, 2),
        "accept_per_s": round(accepted / elapsed, 1) if elapsed > 0 else 0.0,
        "last_tenth_per_s": round(chunk_rate, 1),
        "start_s": round(start_s, 2),
        "idle_cpu_pct": round(idle_pct, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000], help="bulletin counts")
    parser.add_argument("--idle-s", type=float, default=31.0, help="idle window (default 31 s: one periodic pass)")
    parser.add_argument("--budget-s", type=float, default=120.0, help="most seconds spent accepting, per size")
    args = parser.parse_args()
    print("bulletins  accepted(timed)  accept/s  last-tenth/s  start s  idle CPU %")
    for size in args.sizes:
        r = run(size, idle_s=args.idle_s, budget_s=args.budget_s)
        print(
            f"{r['bulletins']:>9}  {r['accepted_timed']:>15}  {r['accept_per_s']:>8}  {r['last_tenth_per_s']:>12}"
            f"  {r['start_s']:>7}  {r['idle_cpu_pct']:>10}",
            flush=True,
        )
        print(json.dumps(r), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
