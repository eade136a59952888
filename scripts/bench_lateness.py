#!/usr/bin/env python3
"""How late do scheduled bulletins start? A real broker, a real station, N slots.

Starts Mosquitto and a station daemon (espeak voice, `wav:` sink), schedules
N one-off bulletins a few seconds apart, and reports the lateness of each
`started` event's `at` against its slot: p50, p95 and max in milliseconds.

    .venv/bin/python scripts/bench_lateness.py --slots 10 --gap 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

TEXT = "Thông báo số {n}. Mời bà con chú ý lắng nghe. Chiều nay có họp thôn lúc mười bốn giờ."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=10, help="scheduled bulletins (default 10)")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between slots (default 3)")
    parser.add_argument("--lead", type=float, default=4.0, help="seconds from now to the first slot (default 4)")
    parser.add_argument("--output", default="wav", choices=("wav", "null"), help="audio sink (default wav)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loaxa-bench-") as tmp:
        root = Path(tmp)
        broker = start_mosquitto(root)
        output = f"wav:{root / 'aired'}" if args.output == "wav" else "null"
        station = StationProcess(root / "station", station_config(root / "station", broker.port, output))
        operator = Operator(broker.host, broker.port)
        try:
            station.start()
            operator.wait_state(lambda st: st["online"], 60)
            first = datetime.now(UTC) + timedelta(seconds=args.lead)
            slots = {}
            for n in range(args.slots):
                slot = (first + timedelta(seconds=n * args.gap)).replace(microsecond=0)
                id = f"bench-{n}"
                slots[id] = slot
                text = TEXT.format(n=n + 1)
                operator.send({"type": "bulletin", "id": id, "text": text, "schedule": {"at": slot.isoformat()}})
            late_ms = []
            for id, slot in slots.items():
                wait = (slot - datetime.now(UTC)).total_seconds() + 30
                started = operator.wait_for(id, "started", max(wait, 30))
                late_ms.append((datetime.fromisoformat(started["at"]) - slot).total_seconds() * 1000)
                operator.wait_for(id, "finished", 60)
        finally:
            operator.close()
            station.stop()
            broker.stop()

    late_ms.sort()
    p95 = late_ms[min(len(late_ms) - 1, round(0.95 * (len(late_ms) - 1)))]
    print(f"slots: {len(late_ms)}, {args.gap:g} s apart, output {args.output}")
    print("lateness of started.at vs slot (ms): " + " ".join(f"{x:.1f}" for x in late_ms))
    print(f"p50 {statistics.median(late_ms):.1f} ms  p95 {p95:.1f} ms  max {max(late_ms):.1f} ms")
    return 0


if __name__ == "__main__":
    time.tzset()
    sys.exit(main())
