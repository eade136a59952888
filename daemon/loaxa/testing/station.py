"""A real station daemon in a child process, and the province side that watches it.

`StationProcess` writes a config, starts `loaxa run` and can kill it (-9)
and start it again on the same store. `Operator` is a paho client that
publishes commands and collects the station's events; `Province` does the
same on a persistent session that outlives broker restarts. `store_rows`
and `integrity` read the station's SQLite store from outside.

    station = StationProcess(root, station_config(root, broker.port, f"wav:{root / 'aired'}")).start()
    op = Operator(broker.host, broker.port)
    op.send({"type": "bulletin", "id": "b1", "text": "Xin chào bà con."})
    op.wait_for("b1", "finished")
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

PREFIX = "loaxa/v1"
STATION = ("hue", "phu-vang", "loa-1")


def station_config(root: Path, port: int, output: str, **overrides: Any) -> dict[str, Any]:
    """A test station: espeak voice, no quiet hours, no clock hold, no chime wait.

    `overrides` are dotted with `__`: `audio__chime=False` sets `audio.chime`.
    """
    config: dict[str, Any] = {
        "station": {"province": STATION[0], "commune": STATION[1], "id": STATION[2]},
        "mqtt": {"host": "127.0.0.1", "port": port, "keepalive_s": 5, "reconnect_max_s": 2},
        "audio": {"output": output, "lead_silence_s": 0.1},
        "storage": {"dir": str(root / "var")},
        "tts": {"voice": "espeak:vi", "voices_dir": str(root / "voices")},
        "broadcast": {"quiet_hours": None},
        "clock": {"require_sync": False},
    }
    for dotted, value in overrides.items():
        node = config
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def logged_amplifier(log: Path, *, warmup_s: float, hold_s: float) -> dict[str, Any]:
    """`station_config` overrides: a `command` amplifier whose switches append `on|off TIME` to `log`."""

    def switch(word: str) -> list[str]:
        return ["sh", "-c", f"echo {word} $(date +%s.%N) >> {log}"]

    return {
        "amplifier__backend": "command",
        "amplifier__on_command": switch("on"),
        "amplifier__off_command": switch("off"),
        "amplifier__warmup_s": warmup_s,
        "amplifier__hold_s": hold_s,
    }


def switches(log: Path) -> list[tuple[str, float]]:
    """What a `logged_amplifier` did so far: `(on|off, wall-clock time)`, in order."""
    words = log.read_text().split() if log.exists() else []
    return [(words[i], float(words[i + 1])) for i in range(0, len(words) - 1, 2)]


@dataclass
class StationProcess:
    """`loaxa run` in a child process on `config`, writing its log under `root`."""

    root: Path
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "loaxa.yaml"

    @property
    def store_path(self) -> Path:
        """The station's SQLite store."""
        return Path(self.config["storage"]["dir"]) / "station.db"

    def start(self) -> StationProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, allow_unicode=True), encoding="utf-8")
        self.log_path = self.root / f"daemon-{int(time.time() * 1000)}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loaxa", "-v", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (None if never started)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        """The tail of every run's log, for failure messages."""
        logs = sorted(self.root.glob("daemon-*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)[-6000:]

    def control(self, message: dict[str, Any]) -> dict[str, Any]:
        """One request on the daemon's control socket."""
        from loaxa.control import request

        return request(Path(self.config["storage"]["dir"]) / "control.sock", message)


def _connect_ro(station: StationProcess) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{station.store_path}?mode=ro", uri=True)


def store_rows(station: StationProcess) -> dict[str, list[tuple[Any, ...]]]:
    """Everything but the events outbox: what a command may change."""
    db = _connect_ro(station)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in ("bulletins", "seen", "plays")}
    finally:
        db.close()


def integrity(station: StationProcess) -> str:
    """SQLite's `PRAGMA integrity_check` of the store: "ok" when intact."""
    db = _connect_ro(station)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def distinct_by_seq(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with QoS 1 redeliveries removed, in `seq` order."""
    return sorted({e["seq"]: e for e in events if "seq" in e}.values(), key=lambda e: e["seq"])


class Operator:
    """Publishes commands and collects every event and state from the station."""

    def __init__(
        self,
        host: str,
        port: int,
        station: tuple[str, str, str] = STATION,
        login: tuple[str, str] | None = None,
    ) -> None:
        """`login`: (username, password) for a broker that wants one."""
        self.base = f"{PREFIX}/{'/'.join(station)}"
        self.events: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self._new = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.connect(host, port)
        self.client.subscribe([(f"{self.base}/event", 1), (f"{self.base}/state", 1)])
        self.client.loop_start()
        time.sleep(0.2)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        with self._new:
            (self.events if msg.topic.endswith("/event") else self.states).append(body)
            self._new.notify_all()

    def send(self, command: dict[str, Any] | bytes, topic: str | None = None, retain: bool = False) -> None:
        """Publish a command (a dict as JSON, or raw bytes) at QoS 1 to the station's cmd topic or `topic`."""
        payload = command if isinstance(command, bytes) else json.dumps(command, ensure_ascii=False).encode()
        self.client.publish(topic or f"{self.base}/cmd", payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, id: str | None, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first `event` for bulletin `id`; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while True:
                for ev in self.events:
                    if ev.get("id") == id and ev.get("event") == event:
                        return ev
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {event!r} for {id!r} within {timeout_s} s; events: {self.of(id)}")
                self._new.wait(remaining)

    def next_event(self, since: int, timeout_s: float = 20.0) -> dict[str, Any]:
        """The first event published after `since` events had arrived; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while len(self.events) <= since:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no event within {timeout_s} s")
                self._new.wait(remaining)
            return self.events[since]

    def wait_state(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0) -> dict[str, Any]:
        """The latest state for which `predicate` holds; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while True:
                for st in reversed(self.states):
                    if predicate(st):
                        return st
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching state within {timeout_s} s; last: {self.states[-1:]}")
                self._new.wait(remaining)

    def of(self, id: str | None) -> list[str]:
        """The event names for bulletin `id`, in arrival order."""
        with self._new:
            return [ev["event"] for ev in self.events if ev.get("id") == id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Province:
    """The province side: a persistent MQTT session that survives broker restarts.

    Like `Operator`, but with a fixed client id, clean start off and
    subscriptions made on every connect, so no event is missed while the
    broker is down.
    """

    def __init__(self, host: str, port: int, client_id: str = "province-test") -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.base = f"{PREFIX}/{'/'.join(STATION)}"
        self.events: list[dict[str, Any]] = []  # in arrival order, redeliveries included
        self.states: list[dict[str, Any]] = []
        self._new = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe([(f"{self.base}/event", 1), (f"{self.base}/state", 1)])
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(host, port, clean_start=False, properties=props)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if not msg.payload:
            return
        body = json.loads(msg.payload)
        with self._new:
            (self.events if msg.topic.endswith("/event") else self.states).append(body)
            self._new.notify_all()

    def wait_connected(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise AssertionError(f"the province client did not reconnect within {timeout_s} s")
            time.sleep(0.05)

    def send(self, command: dict[str, Any]) -> None:
        """Publish a command at QoS 1, once the client is connected."""
        self.wait_connected()
        info = self.client.publish(f"{self.base}/cmd", json.dumps(command, ensure_ascii=False).encode(), qos=1)
        info.wait_for_publish(10)

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Until `predicate()` holds (checked on every message); AssertionError naming `what` after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = [(e["id"], e["event"]) for e in self.events[-20:]]
                    raise AssertionError(f"{what} not within {timeout_s} s; events: {last}")
                self._new.wait(min(remaining, 0.5))

    def wait_for(self, id: str | None, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first `event` for bulletin `id`."""

        def seen() -> bool:
            return any(e["id"] == id and e["event"] == event for e in self.events)

        self.wait(seen, timeout_s, f"{event} of {id}")
        return next(e for e in self.events if e["id"] == id and e["event"] == event)

    def of(self, id: str | None) -> list[str]:
        """The event names for bulletin `id`, redeliveries removed, in `seq` order."""
        with self._new:
            return [e["event"] for e in distinct_by_seq(self.events) if e["id"] == id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
