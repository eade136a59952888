#!/usr/bin/env python3
"""Write a tiny Piper-format voice (`NAME.onnx` + `NAME.onnx.json`) for tests.

Its output spells out what it was given (see loaxa.testing.tinyvoice);
`--mode hang` makes every run spin for hours, `--mode fail` makes every run
fail inside onnxruntime; `--crash segv --crash-run 2` makes the neural voice
process kill itself (SIGSEGV; also abort, exit, hang) on its second run, once.
Needs the `test` extra (onnx).

    .venv/bin/python scripts/make_tiny_voice.py DIR [--speakers N] [--mode M] [--crash K --crash-run N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loaxa.testing.tinyvoice import CRASHES, MODES, NAME, make_tiny_voice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--speakers", type=int, default=1)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--crash", choices=CRASHES, help="test only: how the voice process dies")
    parser.add_argument("--crash-run", type=int, default=1, help="on which audio request (default: the first)")
    args = parser.parse_args()
    path = make_tiny_voice(
        args.directory,
        name=args.name,
        num_speakers=args.speakers,
        mode=args.mode,
        crash=args.crash,
        crash_run=args.crash_run,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
