#!/usr/bin/env python3
"""Soak: stop and restart the broker at random moments while bulletins play.

The CI test (`tests/test_faults_broker.py`) runs a few rounds; this runs as
many as asked and prints the figures. Needs mosquitto and espeak-ng.

    .venv/bin/python scripts/soak_broker.py --rounds 100 [--seed N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_faults_broker import run_broker_soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="broker outages (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (logs, store)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    print(f"seed {seed}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loaxa-soak-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            figures = run_broker_soak(folder, args.rounds, seed, say=lambda msg: print(msg, flush=True))
        except AssertionError as exc:
            print(f"FAIL (seed {seed}): {exc}", flush=True)
            return 1
    figures["seconds"] = round(time.monotonic() - started)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
