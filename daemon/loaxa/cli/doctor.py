"""`loaxa doctor`: check the station on site, one line per item with what to do."""

from __future__ import annotations

import argparse
import json
import sys

from loaxa.cli._common import add_config_arg, config_arg, settings_from, settings_or_defaults
from loaxa.config import config_path
from loaxa.doctor import FAIL, OK, WARN, Finding, run_checks
from loaxa.i18n import _

CHECKS = ("service", "audio", "live", "runtime", "voice", "fallback", "broker", "clock", "disk", "permissions")
STYLE = {OK: "bold green", WARN: "bold yellow", FAIL: "bold red"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the service, audio, voices, broker, clock and disk",
        description="Check the station on site, one line per item: OK, WARN or FAIL, what was found and "
        "what to do. Exit code 1 when something must be fixed.",
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument(
        "--skip",
        action="append",
        choices=CHECKS,
        default=[],
        metavar="CHECK",
        help=f"leave a check out (one of {', '.join(CHECKS)}); repeatable",
    )
    p.add_argument(
        "--probe-voice",
        action="store_true",
        help="only ask whether this CPU runs onnxruntime (in a child process); needs no config",
    )
    p.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    if args.probe_voice:
        from loaxa.doctor import check_neural_runtime

        findings = [check_neural_runtime(settings_or_defaults(args))]
        if args.json:
            json.dump([f.as_dict() for f in findings], sys.stdout, ensure_ascii=False, indent=2)
            print()
        else:
            print(
                _("neural voice runtime: {status}: {detail}").format(
                    status=findings[0].status, detail=findings[0].detail
                )
            )
        return 1 if findings[0].status == FAIL else 0
    settings = settings_from(args)
    findings = run_checks(settings, config_path(config_arg(args)), frozenset(args.skip))
    if args.json:
        json.dump([f.as_dict() for f in findings], sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print_table(findings, settings.station.path)
    return 1 if any(f.status == FAIL for f in findings) else 0


def print_table(findings: list[Finding], station: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"loaxa doctor: {station}", show_lines=True)
    table.add_column(_("check"), no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column(_("found"))
    table.add_column(_("what to do"))
    for f in findings:
        table.add_row(_(f.check), f"[{STYLE[f.status]}]{f.status}[/]", f.detail, f.fix)
    console = Console()
    console.print(table)
    fails = sum(f.status == FAIL for f in findings)
    console.print(
        _("{count} problem(s) to fix").format(count=fails) if fails else _("everything needed is in order"),
        style=STYLE[FAIL if fails else OK],
    )
