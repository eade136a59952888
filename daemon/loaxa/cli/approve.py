"""`loaxa approve ID [--at TIME]`: the commune's yes to a bulletin awaiting approval."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.control import request
from loaxa.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "approve",
        help="approve a bulletin awaiting the commune's approval (see `loaxa pending`)",
        description="Approve through the running daemon, as an approver's `approve` command would; "
        "the province receives the 'approved' receipt. A scheduled bulletin then airs at its slots.",
    )
    add_config_arg(p)
    p.add_argument("id", help="the bulletin's id, as `loaxa pending` shows it")
    p.add_argument(
        "--at",
        metavar="TIME",
        help="when to air a bulletin without a schedule: HH:MM (station time, the next one) or an ISO 8601 time",
    )
    p.set_defaults(func=approve)


def approve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    message = {"cmd": "approve", "id": args.id}
    if args.at:
        message["at"] = air_time(args.at, settings.station.tz, datetime.now(settings.station.tz)).isoformat()
    reply = request(settings.control_socket, message)
    print(f"{reply['id']}: {reply['detail']}")
    return 0


def air_time(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """`HH:MM` as the next such time at the station, or an ISO 8601 time (station time when it has no offset)."""
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        hour, minute = map(int, text.split(":"))
        if hour > 23 or minute > 59:
            raise ConfigError(f"--at {text}: not a time of day")
        at = now.astimezone(tz).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text}: expected HH:MM or an ISO 8601 time such as 2026-12-01T17:30+07:00") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)
