#!/usr/bin/env python3
"""Write a tiny Piper-format voice (`NAME.onnx` + `NAME.onnx.json`) for tests.

Its output spells out what it was given (see loaxa.testing.tinyvoice);
`--mode hang` makes every run spin for hours, `--mode fail` makes every run
fail inside onnxruntime. Needs the `test` extra (onnx).

    .venv/bin/python scripts/make_tiny_voice.py DIR [--speakers N] [--mode M]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loaxa.testing.tinyvoice import MODES, NAME, make_tiny_voice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--speakers", type=int, default=1)
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args()
    print(make_tiny_voice(args.directory, name=args.name, num_speakers=args.speakers, mode=args.mode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
