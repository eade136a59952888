"""The `loaxa` command: one module in this package per sub-command.

Each module defines `register(subparsers)`, which adds its parser(s) and
sets `func` to a callable taking the parsed arguments and returning an exit
code. `COMMANDS` lists them with their one-line help; a module is imported
only when its command runs, so `loaxa --help` and `loaxa status` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from loaxa import __version__, i18n
from loaxa.errors import LoaxaError
from loaxa.i18n import _

_log = logging.getLogger("loaxa")  # not `log`: the `loaxa log` sub-module would shadow it

# (command, module in loaxa.cli, one line for `loaxa --help`), in the order a newcomer meets them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "run", "run the station daemon"),
    ("status", "status", "show the running daemon's state and faults"),
    ("queue", "status", "show what is on air, queued and scheduled next"),
    ("say", "say", "speak Vietnamese text now (or write it to a WAV file)"),
    ("play", "play", "play an audio file (WAV, MP3, OGG) now"),
    ("cancel", "cancel", "cancel a bulletin here (on air: after the closing chime)"),
    ("pending", "pending", "list the bulletins awaiting the commune's approval"),
    ("approve", "approve", "approve a bulletin awaiting approval (airs it, or at --at)"),
    ("decline", "decline", "decline a bulletin awaiting approval, with the reason"),
    ("live", "live", "speak live from audio.live_input until Ctrl-C (or --seconds)"),
    ("log", "log", "what aired; --book: the programme log book"),
    ("archive", "archive", "list or export what went on air (archive.enabled)"),
    ("doctor", "doctor", "check the service, audio, voices, broker, clock and disk"),
    ("config", "config", "check the configuration and print it (secrets masked)"),
    ("voices", "voices", "list, install and verify Piper voices"),
    ("normalize", "normalize", "print how a text will be read aloud"),
    ("publish", "publish", "send a bulletin to stations and follow their receipts"),
    ("stations", "stations", "list a province's stations: online, voice, clock, on air"),
    ("province", "province", "the province server and console: serve, users, tokens, reports"),
    ("cap", "cap", "turn CAP 1.2 alerts into bulletins (show, publish, bridge)"),
    ("keys", "keys", "make and show Ed25519 keys for signing commands"),
    ("bench", "bench", "benchmark the neural voice (prints figures)"),
)

# Options that take a value, so that `loaxa -c FILE status` finds `status` as the command.
_VALUED = ("-c", "--config", "--lang")


class _Narrow(argparse.HelpFormatter):
    """Command names in a narrow column, so each command's line fits 80 columns."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=16)


def add_common_args(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """-v and --lang, accepted before and after the sub-command."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "-v", "--verbose", action="count", default=0 if top else default, help=_("more log output (-vv for debug)")
    )
    parser.add_argument("--lang", default=default, metavar="LANG", help=_("language of the output: vi or en"))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given `argv`, only the module of the command it names is imported."""
    parser = argparse.ArgumentParser(
        prog="loaxa", description=_("Commune loudspeaker station."), formatter_class=_Narrow
    )
    parser.add_argument("--version", action="version", version=f"loaxa {__version__}")
    parser.add_argument("-c", "--config", help="configuration file (default: $LOAXA_CONFIG, /etc/loaxa/loaxa.yaml)")
    add_common_args(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else _module_of(_command_in(argv))
    registered: set[str] = set()
    for name, module, help in COMMANDS:
        if name in registered:
            continue
        if argv is None or module == chosen:
            before = set(sub.choices)
            importlib.import_module(f"{__name__}.{module}").register(sub)
            for added in set(sub.choices) - before:
                _finish(sub.choices[added])
                registered.add(added)
        else:
            sub.add_parser(name, help=_(help), description=_(help), add_help=False)
            registered.add(name)
    return parser


def _finish(parser: argparse.ArgumentParser) -> None:
    if parser.description is None:
        parser.description = _sentence(parser)
    add_common_args(parser)


def _sentence(parser: argparse.ArgumentParser) -> str | None:
    name = parser.prog.split()[-1]
    line = next((h for n, _, h in COMMANDS if n == name), None)
    if not line:
        return None
    line = _(line)
    return line[0].upper() + line[1:] + "."


def _module_of(command: str | None) -> str | None:
    return next((m for n, m, _ in COMMANDS if n == command), None)


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named in `argv`: its first word that is not an option or an option's value."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            return word if _module_of(word) else None
    return None


def _lang_in(argv: Sequence[str]) -> str | None:
    for i, word in enumerate(argv):
        if word == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--lang="):
            return word.split("=", 1)[1]
    return None


def setup_logging(verbose: int, journald: bool = False) -> None:
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s" if journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    i18n.use(_lang_in(argv))
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # `loaxa` alone: what there is, one line each
        parser.print_help()
        return 2
    setup_logging(args.verbose, journald="JOURNAL_STREAM" in os.environ)
    try:
        return int(args.func(args) or 0)
    except LoaxaError as exc:
        _log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
