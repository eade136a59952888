"""Send one command to its targets and follow the receipts until every station is done.

Shared by `loaxa publish` and `loaxa cap`: target options, signing, the
expected stations (from retained `state`), the live table and the exit code.

Each target gets its own copy of the command with `to` naming it (protocol
1.1), signed on its own when a key is given: a signature made for one
station is then no good on the province topic or on another station's.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loaxa.errors import CommandError, LoaxaError
from loaxa.jsonwire import compact_bytes
from loaxa.protocol import validate_command
from loaxa.province.client import Feed, add_broker_args
from loaxa.province.fleet import Fleet
from loaxa.province.targets import SHAPES, Target, parse_target
from loaxa.province.watch import LineView, LiveView, Row, Tracker
from loaxa.topics import target_of_topic

if TYPE_CHECKING:
    from loaxa.security import SigningKey

log = logging.getLogger(__name__)

STATES_QUIET_S = 0.3  # retained states come in one burst after the subscription


def add_target_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("targets (any number, at least one)" if required else "targets")
    for kind, (_, shape) in SHAPES.items():
        g.add_argument(f"--{kind}", action="append", default=[], metavar=shape, help=f"send to this {kind}")


def targets_from(args: argparse.Namespace, required: bool = True) -> list[Target]:
    targets = [parse_target(kind, value) for kind in SHAPES for value in getattr(args, kind) or ()]
    if required and not targets:
        raise LoaxaError("no target: give --station, --commune, --group or --province")
    return targets


def add_send_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", metavar="FILE", help="sign with this issuer key file (see `loaxa keys`)")
    w = p.add_argument_group("receipts")
    w.add_argument(
        "--wait",
        choices=("auto", "finished", "received", "none"),
        default="auto",
        help="what every station must report before exiting (auto: finished, or scheduled for --at/--daily)",
    )
    w.add_argument("--timeout", type=float, default=120.0, help="seconds to follow receipts (default 120)")
    w.add_argument("--states-wait", type=float, default=2.0, help="at most this long to collect station states first")
    w.add_argument("--plain", action="store_true", help="one line per receipt, no live table")
    w.add_argument("--json", action="store_true", help="print the final receipts as JSON on stdout")
    add_broker_args(p)


@dataclass(frozen=True)
class Outgoing:
    """A command checked and stamped with `issued`, ready to be addressed (and signed) per target."""

    command: dict[str, Any]
    key: SigningKey | None = None

    def to(self, target: Target, prefix: str) -> dict[str, Any]:
        """The command as sent to `target`: with its `to`, and signed when there is a key."""
        to = target_of_topic(target.topic(prefix), prefix)
        addressed = {**self.command, "to": to}
        if self.key is None:
            return addressed
        from loaxa.security import sign

        return sign(addressed, self.key.private_key, self.key.kid)


def finish(command: dict[str, Any], key_file: str | None) -> Outgoing:
    """Stamp `issued`, load the signing key when given, and check the command as a station would."""
    key = None
    if key_file:
        from loaxa.security import load_private_key

        key = load_private_key(key_file)
    body = {k: v for k, v in command.items() if k not in ("to", "kid", "sig")}
    body["issued"] = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        validate_command(body)
    except CommandError as exc:
        raise LoaxaError(f"stations would reject this command: {exc}") from None
    return Outgoing(body, key)


def goal_of(command: dict[str, Any], wait: str) -> str | None:
    if wait == "none":
        return None
    if command.get("type") == "cancel":
        return "cancelled"
    if wait != "auto":
        return wait
    return "scheduled" if command.get("schedule") else "finished"


def deliver(args: argparse.Namespace, targets: list[Target], outgoing: Outgoing) -> int:
    """Publish the command to every target (each its own `to`) and follow the receipts; the exit code."""
    command = outgoing.command
    goal = goal_of(command, args.wait)
    feed = Feed(args, [t.province for t in targets], states=goal is not None, events=goal is not None)
    try:
        if goal is None:
            for t in targets:
                feed.publish(t.topic(args.prefix), compact_bytes(outgoing.to(t, args.prefix)))
                _say(args, f"published {command['type']} {command['id']} to {t}")
            return 0
        return _follow(args, feed, targets, outgoing, goal)
    finally:
        feed.close()


def _follow(args: argparse.Namespace, feed: Feed, targets: list[Target], outgoing: Outgoing, goal: str) -> int:
    command = outgoing.command
    fleet = Fleet()
    for msg in feed.drain(STATES_QUIET_S, args.states_wait):
        fleet.update(msg)  # events from before the publish are not ours
    tracker = Tracker(command["id"], command.get("rev", 1) if command["type"] == "bulletin" else None, goal, 0.0)
    covered, unknown = fleet.covered(targets)
    for view in covered:
        tracker.expect(view.station, view.online)
    for t in targets:
        if t.kind == "station" and "/".join(t.parts) not in fleet.stations:
            tracker.expect("/".join(t.parts), None)  # named but never seen: still expected
    if unknown:
        _say(args, f"{unknown} station(s) do not report their groups; they count once they answer")
    if not tracker.rows and not unknown:
        _say(args, f"no known station is addressed by {', '.join(map(str, targets))} (no retained state seen)")
    title = f"{command['type']} {command['id']} → {', '.join(map(str, targets))}"
    live = sys.stdout.isatty() and not (args.plain or args.json)
    out = sys.stderr if args.json else sys.stdout
    screen: LineView | LiveView = LiveView(tracker, title) if live else LineView(tracker, out)
    tracker.t0 = time.monotonic()
    for t in targets:
        feed.publish(t.topic(args.prefix), compact_bytes(outgoing.to(t, args.prefix)))
    if not live:
        _say(args, f"published {title}")
    screen.start()
    deadline = tracker.t0 + args.timeout
    timed_out = True
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = feed.messages.get(timeout=min(0.25, left))
            except queue.Empty:
                screen.refresh()
                continue
            if msg.kind == "state":
                fleet.update(msg)
                if msg.body.get("online") is True:
                    tracker.went_online(msg.station)
            else:
                row: Row | None = tracker.event(msg.station, msg.body, msg.arrived)
                if row is not None:
                    screen.changed(row)
            if tracker.complete():
                timed_out = False
                break
    finally:
        screen.stop()
    return _report(args, tracker, timed_out)


def _report(args: argparse.Namespace, tracker: Tracker, timed_out: bool) -> int:
    out = sys.stderr if args.json else sys.stdout
    for row in tracker.problems():
        print(f"  {row.station}: {row.status}{f' ({row.detail})' if row.detail else ''}", file=out)
    waiting = [r.station for r in tracker.expected if not r.done]
    if timed_out and waiting:
        shown = ", ".join(waiting[:20]) + (f" and {len(waiting) - 20} more" if len(waiting) > 20 else "")
        print(f"no `{tracker.goal}` within {args.timeout:g} s from: {shown}", file=out)
    print(f"summary: {tracker.summary()}", file=out, flush=True)
    if args.json:
        print(json.dumps(tracker.as_dict(), ensure_ascii=False, indent=1))
    return tracker.exit_code()


def _say(args: argparse.Namespace, text: str) -> None:
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)
