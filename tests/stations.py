"""A real station daemon in a child process, and an operator that watches it.

`StationProcess` writes a config, starts `loaxa run` with the audio going to
`wav:DIR` or to ALSA's `file` plugin (through a temporary HOME's .asoundrc),
and can kill it (-9) and start it again on the same store. `Operator` is a
paho client that publishes commands and collects the station's events.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml

PREFIX = "loaxa/v1"
STATION = ("hue", "phu-vang", "loa-1")
ASOUNDRC = """pcm.!default {{ type plug; slave {{ pcm "rec"; format S16_LE; channels 1; rate {rate} }} }}
pcm.rec {{ type file; slave.pcm "null"; file "{path}"; format "raw" }}
"""


def station_config(root: Path, port: int, output: str, **overrides: Any) -> dict[str, Any]:
    """A test station: espeak voice, no quiet hours, no clock hold, no chime wait."""
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


@dataclass
class StationProcess:
    root: Path
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "loaxa.yaml"

    def start(self) -> StationProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, allow_unicode=True), encoding="utf-8")
        self.log_path = self.root / f"daemon-{int(time.time() * 1000)}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loaxa", "-v", "run", "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
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
        logs = sorted(self.root.glob("daemon-*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)[-6000:]

    def control(self, message: dict[str, Any]) -> dict[str, Any]:
        from loaxa.control import request

        return request(Path(self.config["storage"]["dir"]) / "control.sock", message)


def with_alsa_file(root: Path, rate: int = 22050) -> tuple[dict[str, str], Path]:
    """Environment whose ALSA default device writes raw S16 mono into a file."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    raw = root / "played.raw"
    (home / ".asoundrc").write_text(ASOUNDRC.format(rate=rate, path=raw))
    return {"HOME": str(home)}, raw


class Operator:
    """Publishes commands and collects every event from the station."""

    def __init__(self, host: str, port: int, station: tuple[str, str, str] = STATION) -> None:
        self.base = f"{PREFIX}/{'/'.join(station)}"
        self.events: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self._new = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
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
        payload = command if isinstance(command, bytes) else json.dumps(command, ensure_ascii=False).encode()
        self.client.publish(topic or f"{self.base}/cmd", payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, id: str | None, event: str, timeout_s: float = 60.0) -> dict[str, Any]:
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

    def wait_state(self, predicate: Any, timeout_s: float = 30.0) -> dict[str, Any]:
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
        with self._new:
            return [ev["event"] for ev in self.events if ev.get("id") == id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def store_rows(station: StationProcess) -> dict[str, list[tuple[Any, ...]]]:
    """Everything but the events outbox: what a command may change."""
    import sqlite3

    db = sqlite3.connect(f"file:{Path(station.config['storage']['dir']) / 'station.db'}?mode=ro", uri=True)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in ("bulletins", "seen", "plays")}
    finally:
        db.close()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
        return data, wav.getframerate()


def wait_for_files(folder: Path, count: int, timeout_s: float = 30.0) -> list[Path]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.wav"))
        if len(files) >= count:
            return files
        time.sleep(0.1)
    raise AssertionError(f"expected {count} WAV file(s) in {folder}, found {sorted(folder.glob('*'))}")


def voiced_seconds(samples: np.ndarray, rate: int, threshold: float = 0.02) -> float:
    """Seconds of 20 ms frames whose RMS is above `threshold`."""
    frame = int(0.02 * rate)
    n = len(samples) // frame
    if n == 0:
        return 0.0
    rms = np.sqrt((samples[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    return float((rms > threshold).sum() * 0.02)


def drain(q: queue.Queue) -> list[Any]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items
