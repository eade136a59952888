#!/usr/bin/env python3
"""Fleet benchmark: N simulated stations, one broker, one province-wide bulletin.

Every simulated station is the real `loaxa.daemon.Station` (MQTT link,
inbox, SQLite store, scheduler, queue, player and its receipts, reporter)
with an instant voice and the `null` audio sink; many run in each worker
process. The script starts its own Mosquitto on a free loopback port unless
given --host/--port, waits for every station's retained `online` state,
publishes one bulletin to `{prefix}/{province}/cmd`, and measures, at the
operator's side, the time from the publish to each station's `received` and
`finished` receipts, plus the broker's and the simulator's CPU and memory.

    scripts/fleet_sim.py                       # 1,000 stations, a readable report
    scripts/fleet_sim.py --stations 200 --json # one JSON object
    scripts/fleet_sim.py --light --stations 5000 --json   # light stations, the province server measured too

--light: protocol-level stations (loaxa.province.lightfleet) in one asyncio
process, the province server (`loaxa province serve`) between them and the
operator, and a bulletin sent through its API (loaxa.province.lightbench).

Station stores go to a fresh folder under /dev/shm when it exists (each real
station has its own disk; a thousand SQLite fsyncs on one shared disk would
measure that disk, not the protocol); --storage puts them elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.province.lightbench import cpu_s, percentile, rss_mb, run_light
from loaxa.testing.broker import free_port

PREFIX = "loaxa/v1"
TEXT = (
    "Ủy ban nhân dân tỉnh thông báo: mưa lớn kéo dài đến hết ngày 15/9. "
    "Bà con không đi qua ngầm tràn, theo dõi bản tin trên loa phát thanh."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=1000, help="simulated stations (default 1000)")
    p.add_argument("--per-process", type=int, default=100, help="stations per worker process (default 100)")
    p.add_argument("--host", help="use this broker instead of starting one")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--province", default="sim")
    p.add_argument("--storage", help="folder for the station stores (default: under /dev/shm)")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured before the bulletin")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every `finished`")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--light", action="store_true", help="light stations and the province server (see above)")
    p.add_argument(
        "--sync", choices=("full", "normal"), default="full", help="--light: the server's SQLite synchronous setting"
    )
    p.add_argument("--sessions", type=int, default=1, help="--light: the server's broker.sessions (default 1)")
    p.add_argument(
        "--pin", action="store_true", help="--light: the server on CPU 1, broker, stations and operator on CPU 0"
    )
    # Hundreds of station threads per process thrash the GIL at the default 5 ms
    # switch interval (measured: 10x the CPU); threads here mostly block on I/O.
    p.add_argument(
        "--switch-interval", type=float, default=0.1, help="sys.setswitchinterval in the workers (default 0.1)"
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stations < 1 or args.per_process < 1:
        p.error("--stations and --per-process must be at least 1")
    return args


# -- worker: many stations in this process -----------------------------------


def worker(args: argparse.Namespace) -> int:
    from loaxa.province.simfleet import SimFleet, sim_settings, station_path

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(args.switch_interval)
    root = Path(args.root)
    settings = [
        sim_settings(root / f"st{i:05d}", args.host, args.port, station_path(i, args.province))
        for i in range(args.first, args.first + args.stations)
    ]
    fleet = SimFleet(settings)
    fleet.start()
    print("ready", flush=True)
    sys.stdin.readline()  # "stop", or EOF when the coordinator dies
    fleet.stop()
    return 0


# -- coordinator ----------------------------------------------------------------


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages 1000\nlog_dest file {folder / 'mosquitto.log'}\nlog_type error\nlog_type warning\n"
    )
    proc = subprocess.Popen(
        [mosquitto, "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_more_files,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"mosquitto did not start: {(folder / 'mosquitto.log').read_text(errors='replace')}")


def _more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


class Observer:
    """The operator's view: states and events of every station, timed on arrival."""

    def __init__(self, host: str, port: int, province: str) -> None:
        self.q: queue.Queue[tuple[str, str, dict[str, Any], float]] = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-sim-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=60)
        base = f"{PREFIX}/{province}/+/+"
        self.client.subscribe([(f"{base}/state", 1), (f"{base}/event", 1)])
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        arrived = time.monotonic()
        parts = msg.topic.split("/")
        self.q.put(("/".join(parts[-4:-1]), parts[-1], json.loads(msg.payload), arrived))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.storage or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    root = Path(tempfile.mkdtemp(prefix="loaxa-fleet-", dir=base))
    broker = None
    workers: list[subprocess.Popen[bytes]] = []
    try:
        if args.host:
            host, port = args.host, args.port
        else:
            broker, port = start_broker(root)
            host = "127.0.0.1"
        observer = Observer(host, port, args.province)
        t_start = time.monotonic()
        for first in range(0, args.stations, args.per_process):
            count = min(args.per_process, args.stations - first)
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                "--first",
                str(first),
                "--stations",
                str(count),
                "--host",
                host,
                "--port",
                str(port),
                "--province",
                args.province,
                "--root",
                str(root),
                "--switch-interval",
                str(args.switch_interval),
            ]
            log = open(root / f"worker-{first}.log", "wb")  # noqa: SIM115 - the worker's stderr for its lifetime
            workers.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log))
        for w in workers:
            assert w.stdout is not None
            if w.stdout.readline().strip() != b"ready":
                raise SystemExit(f"a worker failed to start; see {root}/worker-*.log")
        online: set[str] = set()
        deadline = time.monotonic() + 60 + args.stations * 0.1
        while len(online) < args.stations and time.monotonic() < deadline:
            try:
                station, kind, body, _ = observer.q.get(timeout=1)
            except queue.Empty:
                continue
            if kind == "state" and body.get("online") is True:
                online.add(station)
        startup_s = time.monotonic() - t_start
        if len(online) < args.stations:
            raise SystemExit(f"only {len(online)} of {args.stations} stations came online in {startup_s:.0f} s")
        pids = [w.pid for w in workers]
        idle0 = (sum(cpu_s(p) for p in pids), cpu_s(broker.pid) if broker else 0.0)
        time.sleep(args.idle)
        idle1 = (sum(cpu_s(p) for p in pids), cpu_s(broker.pid) if broker else 0.0)
        _drain(observer.q)

        bid = f"fleet-{uuid.uuid4().hex[:10]}"
        command = {"type": "bulletin", "id": bid, "priority": "high", "text": TEXT}
        t0 = time.monotonic()
        observer.client.publish(
            f"{PREFIX}/{args.province}/cmd", json.dumps(command, ensure_ascii=False).encode(), qos=1
        )
        received: dict[str, float] = {}
        finished: dict[str, float] = {}
        other: dict[str, str] = {}
        deadline = t0 + args.timeout
        while len(finished) + len(other) < args.stations and time.monotonic() < deadline:
            try:
                station, kind, body, arrived = observer.q.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind != "event" or body.get("id") != bid:
                continue
            if body["event"] == "received":
                received.setdefault(station, arrived - t0)
            elif body["event"] == "finished":
                finished.setdefault(station, arrived - t0)
            elif body["event"] in ("failed", "rejected", "expired", "missed"):
                other[station] = f"{body['event']}: {body.get('detail')}"
        t_end = time.monotonic()
        busy = (sum(cpu_s(p) for p in pids), cpu_s(broker.pid) if broker else 0.0)
        peak = (sum(rss_mb(p) for p in pids), rss_mb(broker.pid) if broker else 0.0)
        observer.close()
        window = max(1e-6, t_end - t0)
        return {
            "stations": args.stations,
            "processes": len(workers),
            "received": len(received),
            "finished": len(finished),
            "failed": len(other),
            "p50_received_s": _round(percentile(list(received.values()), 50)),
            "p99_received_s": _round(percentile(list(received.values()), 99)),
            "max_received_s": _round(max(received.values(), default=None)),
            "p50_finished_s": _round(percentile(list(finished.values()), 50)),
            "p99_finished_s": _round(percentile(list(finished.values()), 99)),
            "max_finished_s": _round(max(finished.values(), default=None)),
            "complete": len(received) == len(finished) == args.stations,
            "startup_s": round(startup_s, 1),
            "idle_cpu_pct": {
                "simulator": _pct(idle1[0] - idle0[0], args.idle),
                "broker": _pct(idle1[1] - idle0[1], args.idle),
            },
            "bulletin_cpu_s": {"simulator": round(busy[0] - idle1[0], 2), "broker": round(busy[1] - idle1[1], 2)},
            "bulletin_window_s": round(window, 2),
            "peak_rss_mb": {"simulator": round(peak[0], 1), "broker": round(peak[1], 1)},
            "storage": str(root.parent),
            "problems": dict(list(other.items())[:10]),
        }
    finally:
        for w in workers:
            if w.poll() is None and w.stdin is not None:
                try:
                    w.stdin.write(b"stop\n")
                    w.stdin.flush()
                except OSError:
                    pass
        for w in workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        if broker is not None:
            broker.send_signal(signal.SIGTERM)
            broker.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _drain(q: queue.Queue) -> None:
    while not q.empty():
        q.get_nowait()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _pct(cpu: float, wall: float) -> float:
    return round(100 * cpu / max(wall, 1e-6), 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.light:
        light = run_light(args.stations, args.timeout, args.storage, args.sync, args.sessions, args.pin)
        print(json.dumps(light) if args.json else json.dumps(light, indent=1))
        return 0 if light["complete"] else 1
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['stations']} stations in {result['processes']} process(es), online after {result['startup_s']} s"
        )
        print(
            f"received: {result['received']}  p50 {result['p50_received_s']} s"
            f"  p99 {result['p99_received_s']} s  max {result['max_received_s']} s"
        )
        print(
            f"finished: {result['finished']}  p50 {result['p50_finished_s']} s"
            f"  p99 {result['p99_finished_s']} s  max {result['max_finished_s']} s"
        )
        print(
            f"idle CPU: {result['idle_cpu_pct']} %   bulletin CPU: {result['bulletin_cpu_s']} s"
            f"   peak RSS: {result['peak_rss_mb']} MB"
        )
        for station, problem in result["problems"].items():
            print(f"  {station}: {problem}")
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
