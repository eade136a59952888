#!/usr/bin/env python3
"""Bytes the station writes to its storage per bulletin, as an SD card would count them.

Runs the real daemon (a real Mosquitto, the espeak voice, the `null` audio
sink) and sends `--bulletins` short text bulletins one after another, each
waited for until `finished`. The figure is the daemon's `write_bytes` from
/proc/PID/io over the run (what reached the block layer, fsyncs included),
divided by the bulletins; the growth of the store's files is shown beside it.

    .venv/bin/python scripts/bench_storage.py --bulletins 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

TEXT = "Thông báo của ủy ban nhân dân xã. Sáng mai toàn xã ra quân làm vệ sinh. Xin cảm ơn bà con."


def written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


def sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.glob("station.db*"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulletins", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:  # a real disk, not a tmpfs
        root = Path(tmp)
        broker = start_mosquitto(root)
        op = Operator(broker.host, broker.port)
        config = station_config(root / "st", broker.port, "null", tts__cache_max_mb=0)
        station = StationProcess(root / "st", config).start()
        try:
            op.wait_state(lambda st: st["online"], 30)
            op.send({"type": "bulletin", "id": "warm-up", "text": TEXT, "chime": False})
            op.wait_for("warm-up", "finished", 60)
            time.sleep(1.0)
            assert station.proc is not None
            before, files_before = written(station.proc.pid), sizes(root / "st" / "var")
            t0 = time.monotonic()
            for n in range(args.bulletins):
                op.send({"type": "bulletin", "id": f"b-{n}", "text": TEXT, "chime": False})
                op.wait_for(f"b-{n}", "finished", 60)
            time.sleep(1.0)  # the last receipts are sent and marked
            total = written(station.proc.pid) - before
            elapsed = time.monotonic() - t0
            files_after = sizes(root / "st" / "var")
        finally:
            station.stop()
            op.close()
            broker.stop()
    result = {
        "bulletins": args.bulletins,
        "bytes_written": total,
        "bytes_per_bulletin": round(total / args.bulletins),
        "seconds": round(elapsed, 1),
        "store_files_before": files_before,
        "store_files_after": files_after,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{args.bulletins} bulletins in {elapsed:.1f} s: {total / 1024:.0f} KiB written")
        print(f"per bulletin: {total / args.bulletins / 1024:.1f} KiB")
        print(f"store files: {files_before} -> {files_after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
