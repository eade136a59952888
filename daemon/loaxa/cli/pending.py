"""`loaxa pending`: the bulletins awaiting the commune's approval, over the control socket."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.control import request


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pending",
        help="list the bulletins awaiting the commune's approval",
        description="What waits for `loaxa approve ID` or `loaxa decline ID --reason TEXT`: "
        "its issuer, first words and the deadline after which it expires unanswered.",
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=pending)


def pending(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    reply = request(settings.control_socket, {"cmd": "pending"})
    if args.json:
        print(json.dumps(reply["pending"], ensure_ascii=False, indent=2))
        return 0
    if not reply["pending"]:
        print("nothing awaits approval")
        return 0
    from rich.console import Console
    from rich.table import Table

    tz = settings.station.tz
    table = Table("id", "issuer", "priority", "text", "when", "deadline")
    for b in reply["pending"]:
        when = "at its schedule" if b["schedule"] else "once approved"
        table.add_row(b["id"], b["issuer"], b["priority"], b["preview"], when, _local(b["deadline"], tz))
    Console(width=160).print(table)
    return 0


def _local(timestamp: float | None, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(timestamp, tz).strftime("%Y-%m-%d %H:%M") if timestamp is not None else "-"
