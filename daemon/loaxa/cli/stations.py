"""`loaxa stations`: the fleet at a glance, from the stations' retained `state`.

loaxa stations --province hn [--commune hn/ba-vi] [--offline] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from loaxa.cli._table import Column, local_time, print_table
from loaxa.errors import LoaxaError
from loaxa.i18n import _
from loaxa.province.client import Feed, add_broker_args
from loaxa.province.fleet import Fleet, StationView
from loaxa.province.targets import parse_target


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stations",
        help="list the stations of a province: online, voice, clock, on air, last seen",
        description="Read every station's retained state from the province broker and list them.",
    )
    p.add_argument(
        "--province", action="append", default=[], required=True, metavar="P", help="province slug (repeatable)"
    )
    p.add_argument("--commune", metavar="P/C", help="only this commune")
    p.add_argument("--offline", action="store_true", help="only stations that are offline or need attention")
    p.add_argument("--wait", type=float, default=3.0, help="at most this many seconds to collect states (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per station, as a list")
    add_broker_args(p)
    p.set_defaults(func=stations)


def stations(args: argparse.Namespace) -> int:
    provinces = [parse_target("province", p).province for p in args.province]
    commune = parse_target("commune", args.commune) if args.commune else None
    feed = Feed(args, provinces, states=True, events=False)
    try:
        fleet = Fleet()
        started = time.monotonic()
        for msg in feed.drain(quiet_s=0.5, max_s=args.wait):
            fleet.update(msg)
    finally:
        feed.close()
    views = [v for v in fleet.sorted() if commune is None or commune.covers(v.station)]
    if args.offline:
        views = [v for v in views if needs_attention(v)]
    if args.json:
        print(json.dumps([v.as_dict() for v in views], ensure_ascii=False, indent=1))
    elif sys.stdout.isatty():
        _table(views, started)
    else:
        for v in views:
            print("\t".join(_cells(v, started)))
    print(summary(views), file=sys.stderr if args.json else sys.stdout)
    if not fleet.stations:
        raise LoaxaError(f"no station state under {args.prefix}/{','.join(provinces)}/…: check --province and --prefix")
    return 0


def needs_attention(v: StationView) -> bool:
    return not v.online or v.fallback or v.state.get("clock_synced") is False


def summary(views: list[StationView]) -> str:
    online = sum(1 for v in views if v.online)
    parts = [
        _("{count} station(s): {online} online, {offline} offline").format(
            count=len(views), online=online, offline=len(views) - online
        )
    ]
    on_air = sum(1 for v in views if v.online and v.on_air)
    fallback = sum(1 for v in views if v.online and v.fallback)
    unsynced = sum(1 for v in views if v.online and v.state.get("clock_synced") is False)
    if on_air:
        parts.append(_("{count} on air").format(count=on_air))
    if fallback:
        parts.append(_("{count} on the fallback voice").format(count=fallback))
    if unsynced:
        parts.append(_("{count} with an unsynchronised clock").format(count=unsynced))
    return ", ".join(parts)


def _cells(v: StationView, now: float) -> list[str]:
    queue = v.state.get("queue")
    seen = v.last_seen()
    return [
        v.station,
        "online" if v.online else "OFFLINE",
        v.voice,
        v.clock,
        v.on_air or "-",
        str(queue) if isinstance(queue, int) else "-",
        local_time(seen) if isinstance(v.state.get("at"), str) else seen,
    ]


COLUMNS = (
    Column("station"),
    Column("link"),
    Column("voice", rank=1, wrap=True),
    Column("clock", rank=3),
    Column("on air", rank=4),
    Column("queue", rank=5, right=True),
    Column("last seen", rank=2),
)


def _table(views: list[StationView], now: float) -> None:
    styles = ["red" if not v.online else "yellow" if needs_attention(v) else "" for v in views]
    print_table(COLUMNS, [_cells(v, now) for v in views], styles)
