"""Shared pieces of the fault tests (no tests here).

`FifoSpeaker` is an audio device the station finds by name through the real
path (sounddevice, PortAudio, ALSA): an ~/.asoundrc defines a pcm whose
`file` plugin writes into a named pipe, and a reader thread drains the pipe
in real time, as a sound card would. The test can make the device vanish
(the reader goes and the pcm definition is removed), come back, or never be
drained at all (a wedged driver: writes and opens block).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

RATE = 22050
PCM = """pcm.{name} {{ type plug; slave {{ pcm "{name}-file"; format S16_LE; channels 1; rate {rate} }} }}
pcm.{name}-file {{ type file; slave.pcm "null"; file "{fifo}"; format "raw" }}
"""


class FifoSpeaker:
    """A named ALSA output drained at `RATE` samples per second."""

    def __init__(self, root: Path, name: str = "loaxa-speaker") -> None:
        self.name = name
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.fifo = root / "speaker.fifo"
        os.mkfifo(self.fifo)
        self.asoundrc = self.home / ".asoundrc"
        self.asoundrc.write_text("# no devices yet\n")
        self.received = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home)}

    def define(self) -> None:
        """The pcm exists (ALSA re-reads a changed file when PortAudio re-initialises)."""
        self.asoundrc.write_text(PCM.format(name=self.name, rate=RATE, fifo=self.fifo))

    def plug_in(self) -> None:
        """Define the pcm and start draining it."""
        self.define()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._drain, daemon=True)
            self._thread.start()

    def unplug(self) -> None:
        """The device goes: writes fail (EPIPE) and its name is no longer found."""
        self.asoundrc.write_text("# unplugged\n")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _drain(self) -> None:
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            last = time.monotonic()
            while not self._stop.wait(0.02):
                now = time.monotonic()
                budget = int((now - last) * RATE) * 2
                last = now
                while budget > 0:
                    try:
                        block = os.read(fd, min(budget, 65536))
                    except BlockingIOError:
                        break
                    if not block:  # no writer right now
                        break
                    with self._lock:
                        self.received.extend(block)
                    budget -= len(block)
        finally:
            os.close(fd)

    def samples(self) -> np.ndarray:
        with self._lock:
            data = bytes(self.received[: len(self.received) // 2 * 2])
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768

    def release_blocked_writer(self) -> None:
        """Open and close the read end once, so a writer blocked in open() goes on."""
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        time.sleep(0.2)
        os.close(fd)


def store_path(station: Any) -> Path:
    return Path(station.config["storage"]["dir"]) / "station.db"


def integrity(station: Any) -> str:
    db = sqlite3.connect(f"file:{store_path(station)}?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def distinct_by_seq(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with QoS 1 redeliveries removed, in `seq` order."""
    return sorted({e["seq"]: e for e in events if "seq" in e}.values(), key=lambda e: e["seq"])


class Province:
    """The province side: a persistent MQTT session that survives broker restarts.

    Like `stations.Operator`, but with a fixed client id, clean start off and
    subscriptions made on every connect, so no event is missed while the
    broker is down.
    """

    def __init__(self, host: str, port: int, client_id: str = "province-test") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from stations import PREFIX, STATION

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
        import json

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
        import json

        self.wait_connected()

        info = self.client.publish(f"{self.base}/cmd", json.dumps(command, ensure_ascii=False).encode(), qos=1)
        info.wait_for_publish(10)

    def wait(self, predicate: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        with self._new:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{what} not within {timeout_s} s; events: {[(e['id'], e['event']) for e in self.events[-20:]]}")
                self._new.wait(min(remaining, 0.5))

    def wait_for(self, id: str | None, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
        self.wait(lambda: any(e["id"] == id and e["event"] == event for e in self.events), timeout_s, f"{event} of {id}")
        return next(e for e in self.events if e["id"] == id and e["event"] == event)

    def of(self, id: str | None) -> list[str]:
        with self._new:
            return [e["event"] for e in distinct_by_seq(self.events) if e["id"] == id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
