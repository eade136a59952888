#!/usr/bin/env python3
"""Where the province server's time per message goes, one stage at a time.

Each stage alone, on this machine, in microseconds of CPU per message:

- `mqtt_paho`: a real Mosquitto delivers a backlog queued for the server's
  kind of session (MQTT 5, persistent, QoS 1, manual acknowledgement) and a
  paho client acknowledges each message as it comes, on one thread (paho's
  receive, decode and PUBACK; nothing stored): the baseline;
- `mqtt_link`: the same backlog through the server's own link
  (`loaxa.province.server.link`) as its sessions use it: read what has
  arrived, then one write of that batch's PUBACKs;
- `decode`: the topic and the JSON body, as the session's thread does it;
- `store_*`: `Database.ingest` in batches of `--batch` on a SQLite database
  (synchronous=full, on disk) already holding `--stations` stations:
  `store_events` new receipts of a bulletin sent through the server,
  `store_states` states that change only their time (the 60 s republish),
  `store_changed` states whose `on_air` changed, `store_redelivered` a batch
  the database has already (a QoS 1 redelivery).

    .venv/bin/python scripts/bench_ingest.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.jsonwire import compact, compact_bytes
from loaxa.province.server import bulletins
from loaxa.province.server.database import Database, Incoming
from loaxa.province.server.link import Link
from loaxa.province.server.settings import BrokerSettings, parse_settings
from loaxa.province.simfleet import station_path
from loaxa.testing.broker import start_mosquitto
from loaxa.topics import station_of

PREFIX = "loaxa/v1"


def state(path: str, on_air: str | None, at: str) -> dict[str, Any]:
    return {
        "online": True,
        "version": "1.0",
        "station": path,
        "groups": [],
        "voice": {"engine": "piper", "name": "vi_VN-vais1000-medium", "fallback": False, "reason": None},
        "on_air": on_air,
        "queue": 0,
        "clock_synced": True,
        "last_command_at": None,
        "uptime_s": 100,
        "at": at,
        "audio": {"output": "default", "error": None},
        "amplifier": {"backend": "gpio", "fault": None},
        "link": {"connected": True},
        "archive": {"enabled": False},
        "storage": {"fault": None},
    }


def bench_mqtt(root: Path, n: int, client: str) -> dict[str, float]:
    """CPU per message of receiving and acknowledging a queued backlog: `paho` or the server's `link`."""
    broker = start_mosquitto(root, "max_queued_messages 0\nmax_inflight_messages 0")
    filters = (f"{PREFIX}/sim/+/+/event",)
    settings = BrokerSettings(host=broker.host, port=broker.port, client_id="bench-server", session_expiry_s=3600)
    try:
        link = Link(settings, "bench-server", filters)
        link.open()  # the session and its subscription, then away while the stations send
        link.disconnect()
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "bench-sender", protocol=mqtt.MQTTv5)
        sender.connect(broker.host, broker.port)
        sender.loop_start()
        body = {"id": "b", "rev": 1, "event": "received", "at": "2026-12-01T08:00:00+07:00", "station": "sim/c/s"}
        topic = f"{PREFIX}/sim/c000/s00/event"
        infos = [sender.publish(topic, compact_bytes({**body, "seq": i}), qos=1) for i in range(n)]
        infos[-1].wait_for_publish(60)
        sender.disconnect()
        sender.loop_stop()
        got = 0
        cpu0, wall0 = time.thread_time(), time.monotonic()
        if client == "link":
            link.open()
            while got < n and time.monotonic() - wall0 < 120:
                batch = link.read(0.1)
                link.ack([m.pid for m in batch])
                got += len(batch)
            cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
            link.disconnect()
            link.shut()
        else:
            link.shut()
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            props.ReceiveMaximum = settings.receive_maximum
            paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "bench-server", protocol=mqtt.MQTTv5, manual_ack=True)

            def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
                nonlocal got
                c.ack(msg.mid, msg.qos)
                got += 1

            paho.on_message = on_message
            paho.connect(broker.host, broker.port, clean_start=False, properties=props)
            while got < n and time.monotonic() - wall0 < 120:
                paho.loop(0.1)
            cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
            paho.disconnect()
        return {"us": 1e6 * cpu / got, "per_s_wall": got / wall}
    finally:
        broker.stop()


def bench_decode(n: int) -> dict[str, float]:
    topic = f"{PREFIX}/sim/c000/s00/event"
    payload = compact_bytes({"id": "b", "rev": 1, "event": "received", "at": "2026-12-01T08:00:00+07:00", "seq": 1})
    cpu0 = time.process_time()
    for _ in range(n):
        station_of(topic, PREFIX)
        json.loads(payload)
    return {"us": 1e6 * (time.process_time() - cpu0) / n}


def bench_store(root: Path, stations: int, batch: int, rounds: int) -> dict[str, dict[str, float]]:
    settings = parse_settings({"province": {"id": "sim"}, "data_dir": str(root / "db")})
    db = Database.open(settings)
    paths = ["/".join(station_path(i)) for i in range(stations)]
    now = time.time()
    for i in range(0, stations, batch):
        db.ingest(
            [
                Incoming(p, "state", state(p, None, "2026-12-01T08:00:00+07:00"), False, now)
                for p in paths[i : i + batch]
            ]
        )
    bulletins.submit(
        db,
        lambda topic, payload: None,
        prefix=PREFIX,
        province="sim",
        command={"id": "bench", "text": "Thông báo."},
        targets=["sim"],
        sender="bench",
        key_file=None,
    )
    out: dict[str, dict[str, float]] = {}
    seq = {p: 0 for p in paths}

    def timed(name: str, make: Any) -> None:
        cpu = 0.0
        count = 0
        for r in range(rounds):
            msgs = make(r, paths[(r * batch) % stations :][:batch])
            cpu0 = time.process_time()
            db.ingest(msgs)
            cpu += time.process_time() - cpu0
            count += len(msgs)
        out[name] = {"us": 1e6 * cpu / count}

    sent: list[list[Incoming]] = []

    def events(r: int, chunk: list[str]) -> list[Incoming]:
        msgs = []
        for p in chunk:
            seq[p] += 1
            body = {"id": "bench", "rev": 1, "event": "received", "at": "2026-12-01T08:00:01+07:00", "seq": seq[p]}
            msgs.append(Incoming(p, "event", body, False, time.time(), compact(body)))
        sent.append(msgs)
        return msgs

    def states(on_air: Any, hour: int) -> Any:
        def make(r: int, chunk: list[str]) -> list[Incoming]:
            at = f"2026-12-01T{hour:02d}:{10 + r:02d}:00+07:00"
            bodies = [state(p, on_air(r), at) for p in chunk]
            return [Incoming(p, "state", b, False, time.time(), compact(b)) for p, b in zip(chunk, bodies, strict=True)]

        return make

    timed("store_events", events)
    timed("store_redelivered", lambda r, chunk: sent[r])
    timed("store_states", states(lambda r: None, 9))
    timed("store_changed", states(lambda r: "bench" if r % 2 else None, 10))
    db.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20000, help="messages through paho (default 20000)")
    p.add_argument("--stations", type=int, default=5000, help="stations in the database (default 5000)")
    p.add_argument("--batch", type=int, default=500, help="messages per transaction (default 500)")
    p.add_argument("--rounds", type=int, default=20, help="batches per store case (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="loaxa-bench-ingest-"))
    figures: dict[str, Any] = {
        "mqtt_paho": bench_mqtt(root / "mqtt-paho", args.messages, "paho"),
        "mqtt_link": bench_mqtt(root / "mqtt-link", args.messages, "link"),
        "decode": bench_decode(args.messages),
    }
    figures.update(bench_store(root, args.stations, args.batch, args.rounds))
    figures = {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in figures.items()}
    if args.json:
        print(json.dumps(figures))
    else:
        for name, values in figures.items():
            print(f"{name:18s} " + "  ".join(f"{k} {v}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
