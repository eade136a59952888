#!/usr/bin/env python3
"""How long the `loaxa` command takes to start: `loaxa --help`, and `loaxa status` with no daemon.

Each is run `--runs` times in a fresh process; the median wall-clock time and
the median CPU time (user + system, less sensitive to other load) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = os.times().elapsed
        subprocess.run([sys.executable, "-m", "loaxa", *argv], env=env, capture_output=True, check=False)
        walls.append(os.times().elapsed - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "loaxa.yaml"
        config.write_text(f"station: {{province: p, commune: c, id: s}}\nstorage: {{dir: {tmp}}}\n")
        env = {**os.environ, "LOAXA_CONFIG": str(config)}
        result = {
            "help": timed(["--help"], env, args.runs),
            "status_no_daemon": timed(["status"], env, args.runs),
        }
    if args.json:
        print(json.dumps(result))
    else:
        for name, figures in result.items():
            print(f"{name:18} wall {figures['wall_s']:.3f} s   CPU {figures['cpu_s']:.3f} s   (median of {args.runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
