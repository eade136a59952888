"""`loaxa status`, `loaxa queue`: the running daemon's state, over the control socket."""

from __future__ import annotations

import argparse
import json

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.control import request


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the running daemon's state")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print the state as JSON")
    p.set_defaults(func=status)
    q = sub.add_parser("queue", help="show what is on air, queued and scheduled next")
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
        ("station", state["station"]),
        ("version", state["version"]),
        ("on air", state["on_air"] or "-"),
        ("queued", str(state["queue"])),
        (
            "voice",
            f"{voice['name']}" + (f"  [yellow]fallback: {voice.get('reason')}[/]" if voice.get("fallback") else ""),
        ),
        (
            "audio",
            state["audio"]["output"] + (f"  [red]{state['audio']['error']}[/]" if state["audio"]["error"] else ""),
        ),
        ("broker", _link(state.get("link"))),
        ("clock synced", {True: "yes", False: "[yellow]no[/]", None: "unknown"}[state["clock_synced"]]),
        ("last command", state["last_command_at"] or "-"),
        ("uptime", f"{state['uptime_s']} s"),
        ("health", "[green]ok[/]" if not reply["health"] else "[red]" + "; ".join(reply["health"]) + "[/]"),
        ("faults", "[green]none[/]" if not reply.get("faults") else "[red]" + "; ".join(reply["faults"]) + "[/]"),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    Console().print(table)
    return 0


def _link(link: dict | None) -> str:
    if not link:
        return "-"
    if link["state"] == "connected":
        return f"{link['broker']} connected since {link['since']}"
    return f"[red]{link['broker']} {link['state']} since {link['since']}: {link.get('error') or 'no answer'}[/]"


def show_queue(args: argparse.Namespace) -> int:
    reply = request(settings_from(args).control_socket, {"cmd": "queue"})
    if args.json:
        print(json.dumps(reply, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]on air:[/] {reply['on_air'] or '-'}")
    table = Table("id", "priority", "state", "slot", "resume at")
    for p in reply["plays"]:
        table.add_row(p["id"], p["priority"], p["state"], p["occurrence"] or "now", p["resume"])
    console.print(table)
    upcoming = Table("next slot", "id")
    for id, when in reply["next"]:
        upcoming.add_row(when, id)
    console.print(upcoming)
    return 0
