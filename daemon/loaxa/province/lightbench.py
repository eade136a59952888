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
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.province.lightfleet import REAL, LightFleet
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
    """An operator's MQTT client timing each receipt's arrival, in a process of its own.

    An operator is another machine: in the simulator's process its paho thread would take the
    simulator's GIL for each of the 15,000 receipts of a bulletin and slow the stations' answers.
    The child prints `arrived station event id` per receipt (monotonic clock, the same in both
    processes); a thread here reads them.
    """

    def __init__(self, host: str, port: int, province: str) -> None:
        self.q: queue.Queue[tuple[str, dict[str, Any], float]] = queue.Queue()
        code = "from loaxa.province.lightbench import operator_main; operator_main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, host, str(port), province],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "subscribed":
            raise SystemExit("the operator's client could not subscribe")
        self._reader = threading.Thread(target=self._read, name="operator-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            arrived, station, event, bid = line.split()
            self.q.put((station, {"event": event, "id": bid}, float(arrived)))

    def publish(self, topic: str, payload: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{topic} {payload}\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # EOF: the child disconnects and exits
        self.proc.wait(10)


def operator_main() -> None:
    """The operator's process: `HOST PORT PROVINCE`; publishes `TOPIC PAYLOAD` lines from stdin."""
    host, port, province = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = sys.stdout
    lock = threading.Lock()

    def on_message(client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        arrived = time.monotonic()
        body = json.loads(msg.payload)
        station = "/".join(msg.topic.split("/")[-4:-1])
        with lock:
            out.write(f"{arrived:.6f} {station} {body.get('event')} {body.get('id')}\n")
            out.flush()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"light-op-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.on_disconnect = lambda *a: _say(f"operator disconnected: {a[3]}")
    client.connect(host, port, keepalive=60)
    client.subscribe([(f"loaxa/v1/{province}/+/+/event", 1)])
    client.loop_start()
    time.sleep(0.5)  # the SUBACK
    with lock:
        out.write("subscribed\n")
        out.flush()
    for line in sys.stdin:
        topic, payload = line.rstrip("\n").split(" ", 1)
        client.publish(topic, payload, qos=1).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def _api(url: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as answer:
        return json.loads(answer.read())


def count(db: Path, sql: str, *params: Any) -> int:
    """A number read from the server's SQLite file beside it (0 while the table does not exist yet)."""
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


async def _run(n: int, root: Path, timeout_s: float, synchronous: str, sessions: int, pin: bool) -> dict[str, Any]:
    raise_fd_limit(n * 2 + 1024)
    load_at_start = round(os.getloadavg()[0], 2)
    broker = start_broker(root)
    server = ServerProcess(
        root,
        province_config(
            root,
            broker.port,
            broker={"sessions": sessions},
            database={"synchronous": synchronous},
            stations={"silent_after_s": 600},
        ),
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
        operator = Operator(broker.host, broker.port, "sim")
        t_start = time.monotonic()
        fleet = LightFleet([station_path(i) for i in range(n)], timing=REAL)
        await fleet.connect(broker.host, broker.port)
        await _wait(lambda: count(db, "SELECT count(*) FROM stations WHERE online") >= n, 120 + n / 20, "registry")
        startup_s = time.monotonic() - t_start
        pids = {"broker": broker.proc.pid if broker.proc else 0, "server": server.proc.pid if server.proc else 0}
        if pin:
            _pin(pids["server"], {1})
            for pid in (os.getpid(), pids["broker"], operator.proc.pid):
                _pin(pid, {0})
        pids["operator"] = operator.proc.pid
        before = {k: cpu_s(p) for k, p in pids.items()} | {"simulator": cpu_s(os.getpid())}

        # 1. a province-wide bulletin through the API
        loop = asyncio.get_running_loop()
        health0 = await loop.run_in_executor(None, _api, f"{server.http_url}/api/v1/health", token)
        bid = f"light-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
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
        await _wait(lambda: count(db, "SELECT count(*) FROM events WHERE bulletin_id = ?", bid) >= 3 * n, 120, "stored")
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        rows = conn.execute("SELECT station, seq, stored_at FROM events WHERE bulletin_id = ?", (bid,)).fetchall()
        conn.close()
        stored = [at - fleet.sent[(s, q)] for s, q, at in rows if (s, q) in fleet.sent]
        after_bulletin = {k: cpu_s(p) for k, p in pids.items()} | {"simulator": cpu_s(os.getpid())}
        health = await loop.run_in_executor(None, _api, f"{server.http_url}/api/v1/health", token)
        bulletin_batch = sum(health[k] - health0[k] for k in ("stored", "states")) / max(
            1, health["batches"] - health0["batches"]
        )

        # 2. the summary, as the API answers it
        times = []
        for _ in range(5):
            t = time.monotonic()
            summary = await loop.run_in_executor(None, _api, f"{server.http_url}/api/v1/bulletins/{bid}", token)
            times.append(time.monotonic() - t)

        # 3. ingest: a backlog queued by the broker while the server is stopped, drained at start
        server.stop()
        marks = sum(s.seq for s in fleet.stations)
        states_before = sum(s.states for s in fleet.stations)
        for i in range(2):
            operator.publish("loaxa/v1/sim/cmd", json.dumps({"type": "ping", "id": f"bench-{i}"}))
        await _wait(lambda: sum(s.seq for s in fleet.stations) >= marks + 2 * n, 120, "pongs sent")
        await asyncio.sleep(2)  # the broker queues the last of them for the stopped server
        ping_states = sum(s.states for s in fleet.stations) - states_before
        server.start().wait_ready(60)
        server_pid = server.proc.pid if server.proc else 0
        if pin:
            _pin(server_pid, {1})
        drain_cpu0 = cpu_s(server_pid)
        await _wait(lambda: count(db, "SELECT count(*) FROM events WHERE event = 'pong'") >= 2 * n, 300, "backlog")
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        first, last, drained = conn.execute(
            "SELECT min(stored_at), max(stored_at), count(*) FROM events WHERE event = 'pong'"
        ).fetchone()
        gaps = conn.execute("SELECT count(*) FROM gaps").fetchone()[0]
        conn.close()
        health = await loop.run_in_executor(None, _api, f"{server.http_url}/api/v1/health", token)
        drain_batch = (health["stored"] + health["states"]) / max(1, health["batches"])
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
            "ingest_events": drained,
            "ingest_events_per_s": round(drained / max(last - first, 1e-3)),
            "ingest_states": ping_states,  # the stations' states that came with the pongs, drained with them
            "ingest_messages_per_s": round((drained + ping_states) / max(last - first, 1e-3)),
            "ingest_server_cpu_s": round(cpu_s(server_pid) - drain_cpu0, 2),
            "gaps": gaps,
            "messages_per_batch": {"bulletin": round(bulletin_batch, 1), "drain": round(drain_batch, 1)},
            "database": f"sqlite synchronous={synchronous}",
            "sessions": sessions,
            "pinned": pin,
            "startup_s": round(startup_s, 1),
            "bulletin_cpu_s": {k: round(after_bulletin[k] - before[k], 2) for k in before},
            "peak_rss_mb": {
                "broker": round(rss_mb(pids["broker"]), 1),
                "server": round(rss_mb(server_pid), 1),
                "simulator": round(rss_mb(os.getpid()), 1),
            },
            "complete": len(received) == len(finished) == n == summary["summary"]["finished"],
            "load_1m": [load_at_start, round(os.getloadavg()[0], 2)],  # the machine's load at start and end
        }
    finally:
        if fleet is not None:
            await fleet.close()
        server.stop()
        broker.stop()


def _pin(pid: int, cpus: set[int]) -> None:
    """The process and all its threads on these CPUs (the server on a core of its own: `--pin`)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except OSError:
            pass  # a thread that ended meanwhile


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_light(
    stations: int,
    timeout_s: float = 120.0,
    storage: str | None = None,
    synchronous: str = "full",
    sessions: int = 1,
    pin: bool = False,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="loaxa-light-", dir=storage))
    try:
        return asyncio.run(_run(stations, root, timeout_s, synchronous, sessions, pin))
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
