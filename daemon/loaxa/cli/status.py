"""`loaxa status`, `loaxa queue`: the running daemon's state, over the control socket."""

from __future__ import annotations

import argparse
import json

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.cli._table import Column, local_time, print_table
from loaxa.control import request
from loaxa.i18n import _


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="show the running daemon's state and faults",
        description="Ask the running daemon (over its control socket) for its state: what is on air, "
        "the voice, the audio device, the broker link, the clock, and any fault in words.",
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print the state as JSON")
    p.set_defaults(func=status)
    q = sub.add_parser(
        "queue",
        help="show what is on air, queued and scheduled next",
        description="Ask the running daemon what is on air, what waits to play (and from which sentence "
        "it resumes), and the next scheduled slots.",
    )
    add_config_arg(q)
    q.add_argument("--json", action="store_true", help="print as JSON")
    q.set_defaults(func=show_queue)


def status(args: argparse.Namespace) -> int:
    reply = request(settings_from(args).control_socket, {"cmd": "status"})
    if args.json:
        print(json.dumps(reply, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    state = reply["state"]
    table = Table(show_header=False, box=None)
    voice = state["voice"]
    rows = [
        (_("station"), state["station"]),
        (_("version"), state["version"]),
        (_("on air"), state["on_air"] or "-"),
        (_("queued"), str(state["queue"])),
        (
            _("voice"),
            f"{voice['name']}"
            + (f"  [yellow]{_('fallback')}: {voice.get('reason')}[/]" if voice.get("fallback") else ""),
        ),
        (
            _("audio"),
            state["audio"]["output"] + (f"  [red]{state['audio']['error']}[/]" if state["audio"]["error"] else ""),
        ),
        (_("broker"), _link(state.get("link"))),
        (
            _("clock synced"),
            {True: _("yes"), False: f"[yellow]{_('no')}[/]", None: _("unknown")}[state["clock_synced"]],
        ),
        (_("last command"), state["last_command_at"] or "-"),
        (_("uptime"), f"{state['uptime_s']} s"),
        (_("health"), f"[green]{_('ok')}[/]" if not reply["health"] else "[red]" + "; ".join(reply["health"]) + "[/]"),
        (
            _("faults"),
            f"[green]{_('none')}[/]" if not reply.get("faults") else "[red]" + "; ".join(reply["faults"]) + "[/]",
        ),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    Console().print(table)
    return 0


def _link(link: dict | None) -> str:
    if not link:
        return "-"
    if link["state"] == "connected":
        return _("{broker} connected since {since}").format(broker=link["broker"], since=link["since"])
    return f"[red]{link['broker']} {link['state']} since {link['since']}: {link.get('error') or 'no answer'}[/]"


def show_queue(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    reply = request(settings.control_socket, {"cmd": "queue"})
    if args.json:
        print(json.dumps(reply, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console

    zone = settings.station.tz  # slots as the station's clock shows them
    console = Console()
    console.print(f"[bold]{_('on air')}:[/] {reply['on_air'] or '-'}")
    plays = [
        [
            p["id"],
            p["priority"],
            p["state"],
            local_time(p["occurrence"], zone) if p["occurrence"] else _("now"),
            p["resume"],
        ]
        for p in reply["plays"]
    ]
    print_table(QUEUE_COLUMNS, plays, console=console)
    upcoming = [[local_time(when, zone), id] for id, when in reply["next"]]
    print_table((Column("next slot"), Column("id")), upcoming, console=console)
    return 0


QUEUE_COLUMNS = (Column("id"), Column("priority", rank=2), Column("state"), Column("slot"), Column("resume at", rank=1))
