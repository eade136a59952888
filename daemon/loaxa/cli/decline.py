"""`loaxa decline ID --reason TEXT`: the commune's no to a bulletin awaiting approval."""

from __future__ import annotations

import argparse

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.control import request


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decline",
        help="decline a bulletin awaiting the commune's approval (see `loaxa pending`)",
        description="Decline through the running daemon, as an approver's `decline` command would; "
        "the province receives the 'declined' receipt with the reason, and nothing of it airs.",
    )
    add_config_arg(p)
    p.add_argument("id", help="the bulletin's id, as `loaxa pending` shows it")
    p.add_argument("--reason", required=True, help="why, in words the province reads")
    p.set_defaults(func=decline)


def decline(args: argparse.Namespace) -> int:
    reply = request(settings_from(args).control_socket, {"cmd": "decline", "id": args.id, "reason": args.reason})
    print(f"{reply['id']}: {reply['detail']}")
    return 0
