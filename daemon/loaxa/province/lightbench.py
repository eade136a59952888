"""`scripts/fleet_sim.py --light`: a province of light stations, its broker and the province server, measured.

Starts a Mosquitto (persistent sessions, unbounded queues for the server's
session), the province server (`loaxa province serve`, SQLite on disk by
default), and N light stations in this process. Then:

1. one province-wide bulletin through the server's API: the time from the
   request to each station's `received` and `finished` at an operator's
   MQTT client, and from each station's publish of a receipt to the
   transaction that stored it (`p99_stored_s`);
2. the per-bulletin summary through the API, timed;
3. ingest rate: the server is stopped, every station answers two pings
   (the broker queues the receipts), the server starts again and drains
   the backlog; events stored per second of that drain.

CPU seconds and peak memory of the broker, the server and the simulator.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.mqttclient import allow_high_descriptors
from loaxa.province.lightfleet import LightFleet
from loaxa.province.simfleet import raise_fd_limit, station_path
from loaxa.testing.broker import Broker, free_port
from loaxa.testing.province import ServerProcess, province_config

TICK = os.sysconf("SC_CLK_TCK")
TEXT = "Ủy ban nhân dân tỉnh thông báo: mưa lớn kéo dài đến hết ngày 15/9."


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int, key: str = "VmHWM") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank; None when nothing was measured."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def start_broker(root: Path) -> Broker:
    directory = root / "mosquitto"
    directory.mkdir()
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {directory}/\n"
        "autosave_interval 0\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        f"log_dest file {directory / 'mosquitto.log'}\nlog_type error\nlog_type warning\n",
        encoding="utf-8",
    )
    broker = Broker("127.0.0.1", port, directory, conf, directory / "mosquitto.log")
    broker.start()
    return broker


class Operator:
    """An operator's MQTT client timing each receipt's arrival."""

    def __init__(self, host: str, port: int, province: str) -> None:
        self.q: queue.Queue[tuple[str, dict[str, Any], float]] = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"light-op-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: _say(f"operator disconnected: {a[3]}")
        self.client.connect(host, port, keepalive=60)
        self.client.subscribe([(f"loaxa/v1/{province}/+/+/event", 1)])
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        arrived = time.monotonic()
        self.q.put(("/".join(msg.topic.split("/")[-4:-1]), json.loads(msg.payload), arrived))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _api(url: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as answer:
        return json.loads(answer.read())


def _count(db: Path, sql: str, *params: Any) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql, params).fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def _wait(predicate: Any, timeout_s: float, what: str) -> float:
    _say(f"waiting for {what}")
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise SystemExit(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.2)
    return time.monotonic() - start


async def _run(n: int, root: Path, timeout_s: float, synchronous: str) -> dict[str, Any]:
    raise_fd_limit(n * 2 + 1024)
    broker = start_broker(root)
    server = ServerProcess(
        root,
        province_config(root, broker.port, database={"synchronous": synchronous}, stations={"silent_after_s": 600}),
    )
    fleet: LightFleet | None = None
    try:
        server.start().wait_ready(60)
        db = root / "province-data" / "province.db"
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "loaxa",
                "province",
                "token",
                "add",
                "bench",
                "--scope",
                "send",
                "--config",
                str(server.config_path),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        allow_high_descriptors()  # the operator's paho loop uses select(); the fleet holds thousands of sockets
        operator = Operator(broker.host, broker.port, "sim")
        t_start = time.monotonic()
        fleet = LightFleet([station_path(i) for i in range(n)], play_s=1.0)
        await fleet.connect(broker.host, broker.port)
        await _wait(lambda: _count(db, "SELECT count(*) FROM stations WHERE online") >= n, 120 + n / 20, "registry")
        startup_s = time.monotonic() - t_start
        pids = {"broker": broker.proc.pid if broker.proc else 0, "server": server.proc.pid if server.proc else 0}
        before = {k: cpu_s(p) for k, p in pids.items()} | {"simulator": cpu_s(os.getpid())}

        # 1. a province-wide bulletin through the API
        bid = f"light-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        sent = await loop.run_in_executor(
            None,
            _api,
            f"{server.http_url}/api/v1/bulletins",
            token,
            {"targets": ["sim"], "bulletin": {"id": bid, "priority": "high", "text": TEXT}},
        )
        received: dict[str, float] = {}
        finished: dict[str, float] = {}
        deadline = t0 + timeout_s
        while len(finished) < n and time.monotonic() < deadline:
            try:
                while True:
                    station, body, arrived = operator.q.get_nowait()
                    if body.get("id") == bid and body["event"] == "received":
                        received.setdefault(station, arrived - t0)
                    elif body.get("id") == bid and body["event"] == "finished":
                        finished.setdefault(station, arrived - t0)
            except queue.Empty:
                await asyncio.sleep(0.05)
        connected = sum(s.client.is_connected() for s in fleet.stations)
        _say(f"operator: {len(received)} received, {len(finished)} finished; {connected} stations connected")
        await _wait(
            lambda: _count(db, "SELECT count(*) FROM events WHERE bulletin_id = ?", bid) >= 3 * n, 120, "stored"
        )
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        rows = conn.execute("SELECT station, seq, stored_at FROM events WHERE bulletin_id = ?", (bid,)).fetchall()
        conn.close()
        stored = [at - fleet.sent[(s, q)] for s, q, at in rows if (s, q) in fleet.sent]
        after_bulletin = {k: cpu_s(p) for k, p in pids.items()} | {"simulator": cpu_s(os.getpid())}

        # 2. the summary, as the API answers it
        times = []
        for _ in range(5):
            t = time.monotonic()
            summary = await loop.run_in_executor(None, _api, f"{server.http_url}/api/v1/bulletins/{bid}", token)
            times.append(time.monotonic() - t)

        # 3. ingest: a backlog queued by the broker while the server is stopped, drained at start
        server.stop()
        marks = sum(s.seq for s in fleet.stations)
        for i in range(2):
            operator.client.publish("loaxa/v1/sim/cmd", json.dumps({"type": "ping", "id": f"bench-{i}"}), qos=1)
        await _wait(lambda: sum(s.seq for s in fleet.stations) >= marks + 2 * n, 120, "pongs sent")
        await asyncio.sleep(2)  # the broker queues the last of them for the stopped server
        server.start().wait_ready(60)
        server_pid = server.proc.pid if server.proc else 0
        drain_cpu0 = cpu_s(server_pid)
        await _wait(lambda: _count(db, "SELECT count(*) FROM events WHERE event = 'pong'") >= 2 * n, 300, "backlog")
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        first, last, count = conn.execute(
            "SELECT min(stored_at), max(stored_at), count(*) FROM events WHERE event = 'pong'"
        ).fetchone()
        gaps = conn.execute("SELECT count(*) FROM gaps").fetchone()[0]
        conn.close()
        operator.close()
        return {
            "stations": n,
            "received": len(received),
            "finished": len(finished),
            "expected_by_server": sent["stations"],
            "p50_received_s": _r(percentile(list(received.values()), 50)),
            "p99_received_s": _r(percentile(list(received.values()), 99)),
            "p99_finished_s": _r(percentile(list(finished.values()), 99)),
            "p50_stored_s": _r(percentile(stored, 50)),
            "p99_stored_s": _r(percentile(stored, 99)),
            "summary_query_s": _r(sorted(times)[len(times) // 2]),
            "summary_finished": summary["summary"]["finished"],
            "ingest_events": count,
            "ingest_events_per_s": round(count / max(last - first, 1e-3)),
            "ingest_server_cpu_s": round(cpu_s(server_pid) - drain_cpu0, 2),
            "gaps": gaps,
            "database": f"sqlite synchronous={synchronous}",
            "startup_s": round(startup_s, 1),
            "bulletin_cpu_s": {k: round(after_bulletin[k] - before[k], 2) for k in before},
            "peak_rss_mb": {
                "broker": round(rss_mb(pids["broker"]), 1),
                "server": round(rss_mb(server_pid), 1),
                "simulator": round(rss_mb(os.getpid()), 1),
            },
            "complete": len(received) == len(finished) == n == summary["summary"]["finished"],
        }
    finally:
        if fleet is not None:
            await fleet.close()
        server.stop()
        broker.stop()


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_light(
    stations: int, timeout_s: float = 120.0, storage: str | None = None, synchronous: str = "full"
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="loaxa-light-", dir=storage))
    try:
        return asyncio.run(_run(stations, root, timeout_s, synchronous))
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
