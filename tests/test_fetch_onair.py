"""The player never waits on the network: recordings are fetched beside it, through the real station.

Regression guarded: a recorded bulletin whose server sent the status line
and then one header byte every 20 s held the player in the download, so an
emergency sent a second later did not start, and the player's heartbeat
stopped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from audio_servers import FileServer, tone, write_wav
from loaxa.testing.station import Operator, StationProcess, station_config

ALARM = "Khẩn cấp. Nước sông đang lên nhanh."
TEXT = "Xin chào bà con."


def run_station(tmp_path: Path, broker, op: Operator) -> StationProcess:
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}")).start()
    op.wait_state(lambda st: st["online"], 30)
    return station


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def recording(tmp_path: Path) -> tuple[bytes, str]:
    data = write_wav(tmp_path / "notice.wav", tone(1.0, 660.0)).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def started_at(event: dict) -> float:
    return datetime.fromisoformat(event["at"]).timestamp()


def test_emergency_starts_within_a_second_while_a_recording_trickles_its_headers(tmp_path, broker, operator):
    data, digest = recording(tmp_path)
    with FileServer({"notice.wav": data}, drip_s=20.0) as server:
        station = run_station(tmp_path, broker, operator)
        try:
            audio = {"url": server.url("dribble/notice.wav"), "sha256": digest}
            operator.send({"type": "bulletin", "id": "rec-1", "audio": audio, "chime": False})
            wait_until(lambda: server.requests >= 1, 20, "the station to ask for the recording")
            time.sleep(1.0)  # the scenario: the emergency comes a second into the stalled download
            sent = time.time()
            operator.send({"type": "bulletin", "id": "alarm", "priority": "emergency", "text": ALARM})
            started = operator.wait_for("alarm", "started", 20)
            assert started_at(started) - sent < 1.0
            operator.wait_for("alarm", "finished", 60)
            # Still being fetched: not failed, not started, and no receipt for each look at it.
            assert operator.of("rec-1") == ["received"]
            assert server.requests == 1
        finally:
            assert station.stop() == 0, station.log()


def test_text_behind_a_recording_still_fetching_goes_first_and_the_recording_follows(tmp_path, broker, operator):
    data, digest = recording(tmp_path)
    with FileServer({"notice.wav": data}, slow_s=3.0) as server:
        station = run_station(tmp_path, broker, operator)
        try:
            audio = {"url": server.url("slow/notice.wav"), "sha256": digest}
            operator.send({"type": "bulletin", "id": "rec-2", "audio": audio, "chime": False})
            wait_until(lambda: server.requests >= 1, 20, "the station to ask for the recording")
            operator.send({"type": "bulletin", "id": "hello", "text": TEXT, "chime": False})
            text_started = operator.wait_for("hello", "started", 20)
            rec_started = operator.wait_for("rec-2", "started", 30)
            finished = operator.wait_for("rec-2", "finished", 30)
            assert started_at(text_started) < started_at(rec_started)
            assert operator.of("rec-2") == ["received", "started", "finished"]
            assert finished["detail"].startswith("1.")  # the 1 s recording, whole
            assert server.requests == 1
        finally:
            assert station.stop() == 0, station.log()
