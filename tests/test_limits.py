"""Limits through the real daemon: queue size, per-issuer rate, payload and
download size. Each breach gives a receipt with a reason and keeps nothing
of the command; the station goes on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audio_servers import FileServer, tone, write_wav
from loaxa.security import public_key_b64, sign
from loaxa.testing.station import Operator, StationProcess, station_config, store_rows

TEXT = "Xin chào bà con."


def run_station(tmp_path: Path, broker, op: Operator, **overrides: Any) -> StationProcess:
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}", **overrides)).start()
    op.wait_state(lambda st: st["online"], 30)
    return station


def stop(station: StationProcess) -> None:
    assert station.stop() == 0, station.log()


def quiet_now() -> dict[str, str]:
    """Quiet hours from an hour ago to an hour ahead, station time."""
    now = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    return {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=1)).strftime("%H:%M")}


def test_full_queue_rejects_the_next_bulletin_and_keeps_nothing_of_it(tmp_path, broker, operator):
    station = run_station(tmp_path, broker, operator, broadcast__max_queue=2, broadcast__quiet_hours=quiet_now())
    try:
        for n in (1, 2):  # held by the quiet hours: they stay in the queue
            operator.send({"type": "bulletin", "id": f"q-{n}", "text": TEXT})
            operator.wait_for(f"q-{n}", "received", 20)
        before = store_rows(station)
        operator.send({"type": "bulletin", "id": "q-3", "priority": "emergency", "text": TEXT})
        ev = operator.wait_for("q-3", "rejected", 20)
        assert ev["detail"] == "the queue is full (2 waiting)"
        assert store_rows(station) == before
        assert operator.wait_state(lambda st: st["queue"] == 2)["online"]
        # room again once one leaves the queue
        operator.send({"type": "cancel", "id": "q-1"})
        operator.wait_for("q-1", "cancelled", 20)
        operator.send({"type": "bulletin", "id": "q-4", "text": TEXT})
        operator.wait_for("q-4", "received", 20)
        assert operator.of("q-3") == ["rejected"]
    finally:
        stop(station)


def test_payload_over_the_size_limit_is_rejected(tmp_path, broker, operator):
    station = run_station(tmp_path, broker, operator)
    try:
        payload = json.dumps({"type": "bulletin", "id": "big-1", "text": "ạ" * 19_000, "pad": "x" * 10_000}).encode()
        assert len(payload) > 64 * 1024
        before = store_rows(station)
        operator.send(payload)
        ev = operator.wait_for("big-1", "rejected", 20)
        assert ev["detail"] == f"payload of {len(payload)} bytes is over the 65536-byte limit"
        assert store_rows(station) == before
        operator.send({"type": "bulletin", "id": "big-2", "text": TEXT, "chime": False})
        operator.wait_for("big-2", "finished", 60)
    finally:
        stop(station)


def test_issuer_over_its_rate_is_rejected_while_another_issuer_goes_on(tmp_path, broker, operator):
    key = Ed25519PrivateKey.generate()
    issuers = [{"kid": "province", "public_key": public_key_b64(key)}]
    station = run_station(tmp_path, broker, operator, security__max_commands_per_min=3, security__issuers=issuers)
    try:
        for n in (1, 2, 3):
            operator.send({"type": "ping", "id": f"r-{n}"})
            operator.wait_for(f"r-{n}", "pong", 20)
        before = store_rows(station)
        operator.send({"type": "bulletin", "id": "r-4", "text": TEXT})
        ev = operator.wait_for("r-4", "rejected", 20)
        assert ev["detail"] == "too many commands from issuer (unsigned); try again in a minute"
        assert store_rows(station) == before
        # the limit is per issuer: a signed issuer still gets through, and plays
        now = datetime.now(UTC)
        operator.send(
            sign(
                {"type": "bulletin", "id": "r-5", "text": TEXT, "chime": False, "to": "hue/phu-vang/loa-1"},
                key,
                "province",
                issued=now,
            )
        )
        operator.wait_for("r-5", "finished", 60)
        assert operator.of("r-4") == ["rejected"]
    finally:
        stop(station)


@pytest.mark.parametrize("mode", ["", "nolength/"], ids=["content-length", "no-content-length"])
def test_download_over_the_size_limit_fails_with_a_reason_and_leaves_no_file(tmp_path, broker, operator, mode):
    wav = write_wav(tmp_path / "long.wav", tone(1.0)).read_bytes()  # 44 kB
    with FileServer({"long.wav": wav}) as files:
        station = run_station(tmp_path, broker, operator, security__max_download_mb=0.01)
        try:
            audio = {"url": files.url(f"/{mode}long.wav"), "sha256": hashlib.sha256(wav).hexdigest()}
            operator.send({"type": "bulletin", "id": "dl-1", "audio": audio, "chime": False})
            ev = operator.wait_for("dl-1", "failed", 60)
            assert ev["detail"].startswith("download larger than 0.01"), ev["detail"]
            cache = Path(station.config["storage"]["dir"]) / "audio"
            assert sorted(p.name for p in cache.iterdir()) == []
            operator.send({"type": "bulletin", "id": "dl-2", "text": TEXT, "chime": False})
            operator.wait_for("dl-2", "finished", 60)
        finally:
            stop(station)
