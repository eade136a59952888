"""`loaxa cancel ID`: stop a bulletin here, queued, scheduled or on air."""

from __future__ import annotations

import argparse

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.control import request


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cancel",
        help="cancel a bulletin on this station (on air: after the closing chime)",
        description="Cancel a bulletin through the running daemon, as a cancel from its issuer would; "
        "the province receives the 'cancelled' receipt.",
    )
    add_config_arg(p)
    p.add_argument("id", help="the bulletin's id, as `loaxa queue` shows it")
    p.set_defaults(func=cancel)


def cancel(args: argparse.Namespace) -> int:
    reply = request(settings_from(args).control_socket, {"cmd": "cancel", "id": args.id})
    print(f"cancelled {reply['id']}")
    return 0
