"""`loaxa normalize`: text on stdin, the spoken form on stdout, line for line."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from loaxa.speech.normalize import DIALECTS, Lexicon, normalize


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "normalize",
        help="print how a text will be read aloud",
        description="Read text on stdin and print its spoken form, one output line per input line.",
    )
    parser.add_argument("--dialect", choices=DIALECTS, default="north", help="north (nghìn, linh) or south (ngàn, lẻ)")
    parser.add_argument(
        "--lexicon", type=Path, metavar="FILE", help="extra lexicon entries (YAML) on top of the built-in ones"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lexicon = Lexicon.load(args.lexicon)
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=None)
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8")
    for raw in stdin:
        line = raw.rstrip("\n")
        # One line out per line in, even if normalising changed nothing or emptied it.
        out.write(normalize(line, dialect=args.dialect, lexicon=lexicon).replace("\n", " ") + "\n")
    out.flush()
    return 0
