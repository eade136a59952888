"""Simulated stations: the real `Station` minus audio, many in one process.

Each simulated station is a full `loaxa.daemon.Station` (MQTT link, inbox,
SQLite store, scheduler, queue, player with its receipts, reporter, control
socket) built from ordinary `Settings`; only the voice is an instant one and
the audio goes to the `null` sink. Used by `scripts/fleet_sim.py` and by the
operator-tool tests, which need many stations quickly.
"""

from __future__ import annotations

import logging
import resource
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from loaxa.config import (
    AudioSettings,
    BroadcastSettings,
    ClockSettings,
    ControlSettings,
    MqttSettings,
    SecuritySettings,
    Settings,
    StationSettings,
    StorageSettings,
    TtsSettings,
)
from loaxa.daemon import Station
from loaxa.mqttclient import allow_high_descriptors

log = logging.getLogger(__name__)

SIM_RATE_HZ = 16000


class InstantVoice:
    """A voice that answers at once with 50 ms of a quiet tone per sentence."""

    name = "sim:instant"
    sample_rate = SIM_RATE_HZ

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        t = np.arange(int(0.05 * self.sample_rate), dtype=np.float32) / self.sample_rate
        return (0.1 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)

    def close(self) -> None:
        pass


def station_path(index: int, province: str = "sim", per_commune: int = 10) -> tuple[str, str, str]:
    """Station `index` of a simulated province: communes of `per_commune` stations."""
    return province, f"c{index // per_commune:03d}", f"s{index % per_commune:02d}"


def sim_settings(
    root: Path,
    host: str,
    port: int,
    path: tuple[str, str, str],
    groups: tuple[str, ...] = (),
    security: SecuritySettings | None = None,
) -> Settings:
    """Settings of one simulated station; its store and socket live under `root`."""
    p, c, s = path
    return Settings(
        station=StationSettings(province=p, commune=c, id=s),
        mqtt=MqttSettings(host=host, port=port, groups=groups, keepalive_s=30, reconnect_max_s=5),
        audio=AudioSettings(output="null", sample_rate_hz=SIM_RATE_HZ, lead_silence_s=0.1),
        storage=StorageSettings(dir=root),
        tts=TtsSettings(voice="espeak:vi", fallback="", cache_max_mb=0),
        broadcast=BroadcastSettings(quiet_hours=None),
        clock=ClockSettings(require_sync=False),
        security=security or SecuritySettings(),
        control=ControlSettings(socket=root / "control.sock"),
    )


def build_station(settings: Settings) -> Station:
    """A real Station with an instant voice."""
    return Station(settings, voice=InstantVoice())


class SimFleet:
    """Many stations in this process; `start`/`stop` run them in parallel."""

    def __init__(self, settings: list[Settings]) -> None:
        raise_fd_limit(len(settings) * 8 + 256)
        if len(settings) > 100:
            allow_high_descriptors()
        self.stations = [build_station(s) for s in settings]

    def start(self) -> None:
        for station in self.stations:
            station.start()

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(_stop_quietly, self.stations))

    def __enter__(self) -> SimFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_quietly(station: Station) -> None:
    try:
        station.stop()
    except Exception:  # one station's teardown must not keep the others running
        log.exception("stopping %s", station.settings.station.path)


def raise_fd_limit(wanted: int) -> None:
    """Each station holds a socket, SQLite files and a control socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
