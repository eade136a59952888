"""The `loaxa` command: one module in this package per sub-command.

Each module defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from loaxa import __version__
from loaxa.errors import LoaxaError

_log = logging.getLogger("loaxa")  # not `log`: the `loaxa log` sub-module would shadow it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loaxa", description="Commune loudspeaker station.")
    parser.add_argument("--version", action="version", version=f"loaxa {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def setup_logging(verbose: int, journald: bool = False) -> None:
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, journald="JOURNAL_STREAM" in os.environ)
    try:
        return int(args.func(args) or 0)
    except LoaxaError as exc:
        _log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
