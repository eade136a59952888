"""`loaxa publish`: send a bulletin to a station and watch its receipts."""

from __future__ import annotations

import argparse
import json
import queue
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.config import SLUG
from loaxa.errors import CommandError, LinkError, LoaxaError
from loaxa.protocol import station_topics, validate_command

DONE = {"finished", "failed", "rejected", "duplicate", "missed", "expired", "cancelled", "superseded"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="send a bulletin to a station and watch its receipts")
    p.add_argument("--station", required=True, metavar="P/C/S", help="province/commune/station")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="Vietnamese text to read")
    what.add_argument("--file", type=Path, help="a bulletin command as JSON")
    p.add_argument("--id", help="bulletin id (default: generated)")
    p.add_argument("--priority", choices=("emergency", "high", "normal", "low"), default="normal")
    add_broker_args(p)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for `finished` (default 120)")
    p.set_defaults(func=publish)


def add_broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--ca-file", help="CA certificate for TLS")
    p.add_argument("--prefix", default="loaxa/v1")


def connect(args: argparse.Namespace, client_id: str = "") -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if args.username:
        client.username_pw_set(args.username, args.password)
    if args.ca_file:
        client.tls_set(ca_certs=args.ca_file)
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as exc:
        raise LinkError(f"cannot reach the broker at {args.host}:{args.port}: {exc}") from None
    return client


def build_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.file:
        try:
            command = json.loads(args.file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LoaxaError(f"{args.file}: {exc}") from None
    else:
        command = {"type": "bulletin", "text": args.text, "priority": args.priority}
    command.setdefault("id", args.id or datetime.now(timezone.utc).strftime("b-%Y%m%dT%H%M%S%f"))
    command.setdefault("issued", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    try:
        validate_command(command)
    except CommandError as exc:
        raise LoaxaError(f"the bulletin would be rejected: {exc}") from None
    return command


def publish(args: argparse.Namespace) -> int:
    if not re.match(r"^[a-z0-9-]{1,40}/[a-z0-9-]{1,40}/[a-z0-9-]{1,40}$", args.station):
        raise LoaxaError(f"--station must be province/commune/station slugs ({SLUG}), got {args.station!r}")
    command = build_command(args)
    cmd_topic, _, event_topic = station_topics(args.prefix, args.station)
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            events.put(json.loads(msg.payload))
        except ValueError:
            pass

    client = connect(args)
    client.on_message = on_message
    client.subscribe(event_topic, qos=1)
    client.loop_start()
    try:
        time.sleep(0.2)  # let the subscription settle before the command can be answered
        info = client.publish(cmd_topic, json.dumps(command, ensure_ascii=False).encode(), qos=1)
        info.wait_for_publish(timeout=10)
        print(f"published {command['id']} to {args.station}")
        return _watch(events, command["id"], args.timeout)
    finally:
        client.loop_stop()
        client.disconnect()


def _watch(events: queue.Queue[dict[str, Any]], bid: str, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ev = events.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if ev.get("id") != bid:
            continue
        detail = f" ({ev['detail']})" if ev.get("detail") else ""
        print(f"{ev.get('at', '')}  {ev.get('station', '')}  {ev.get('event')}{detail}", flush=True)
        if ev.get("event") == "finished":
            return 0
        if ev.get("event") in DONE:
            return 1
    print(f"no `finished` within {timeout_s:g} s")
    return 2
