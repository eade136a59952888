#!/usr/bin/env python3
"""Soak: the CI fault tests, for as many rounds as asked, with their figures.

    .venv/bin/python scripts/soak.py kill9  --rounds 100 [--seed N] [--keep DIR]
    .venv/bin/python scripts/soak.py broker --rounds 100 [--seed N] [--keep DIR]
    .venv/bin/python scripts/soak.py attack --rounds 100 [--seed N] [--keep DIR]

`kill9` kills the daemon with SIGKILL at random moments while bulletins
arrive and play; `broker` stops and restarts the broker at random moments
mid-bulletin (both in loaxa.testing.soak, which tests/test_faults_kill9.py
and tests/test_faults_broker.py run for a few rounds). `attack` mixes
hostile commands, signed bulletins and cancels with both faults and counts
what was sent, rejected with a reason, aired, lost, doubled, aired after a
cancel and leaked in a receipt (loaxa.testing.attack; a few rounds run in
tests/test_trust_hostile.py); the exit code is 1 unless lost, doubled,
aired after cancel and leaked are all 0. Needs mosquitto and espeak-ng.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from loaxa.testing.attack import MUST_BE_ZERO, run_attack
from loaxa.testing.soak import run_broker_soak, run_kill9

SOAKS = {"kill9": run_kill9, "broker": run_broker_soak, "attack": run_attack}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "fault",
        choices=sorted(SOAKS),
        help="kill9: SIGKILL the daemon; broker: broker outages; attack: hostile commands with both",
    )
    parser.add_argument("--rounds", type=int, default=100, help="faults to inject (default 100)")
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
            figures = SOAKS[args.fault](folder, rounds=args.rounds, seed=seed, say=lambda msg: print(msg, flush=True))
        except AssertionError as exc:
            print(f"FAIL (seed {seed}): {exc}", flush=True)
            return 1
    figures["seconds"] = round(time.monotonic() - started)
    print(json.dumps(figures, indent=2))
    bad = [name for name in MUST_BE_ZERO if figures.get(name)] if args.fault == "attack" else []
    if bad:
        print(f"FAIL (seed {seed}): {', '.join(f'{name} {figures[name]}' for name in bad)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
