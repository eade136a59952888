"""Fuzzing a live daemon over Mosquitto: a few hundred hostile commands, each
answered by one `rejected` receipt; the daemon stays up and the next good
bulletin plays.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings

from loaxa.errors import CommandError
from loaxa.protocol import parse_command
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config
from test_fuzz_commands import hostile_payloads

COUNT = 300


def refused_payloads(count: int) -> list[bytes]:
    """`count` distinct payloads the protocol refuses, the same on every run."""
    found: dict[bytes, None] = {}

    @settings(
        max_examples=count * 3, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(payload=hostile_payloads)
    def collect(payload: bytes) -> None:
        if len(found) < count:
            try:
                parse_command(payload)
            except CommandError:
                found[payload] = None

    collect()
    return list(found)


def test_hundreds_of_hostile_commands_each_get_rejected_and_the_station_plays_on(tmp_path):
    payloads = refused_payloads(COUNT)
    assert len(payloads) >= COUNT * 0.9
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}")).start()
    try:
        op.wait_state(lambda st: st["online"], 30)
        since = len(op.events)
        for payload in payloads:
            op.send(payload)
        deadline = time.monotonic() + 120
        while True:
            received = {e["seq"]: e for e in op.events[since:]}  # by seq: a QoS 1 redelivery counts once
            if len(received) >= len(payloads) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        kinds = [e["event"] for e in received.values()]
        assert kinds.count("rejected") == len(payloads), (len(kinds), station.log())
        assert set(kinds) == {"rejected"}
        assert all(e["detail"] for e in received.values())
        assert station.alive()
        op.send({"type": "bulletin", "id": "after-fuzz", "text": "Xin chào bà con.", "chime": False})
        op.wait_for("after-fuzz", "finished", 60)
        assert op.of("after-fuzz") == ["received", "started", "finished"]
        assert len({e["seq"] for e in op.events[since:]}) == len(payloads) + 3
        print(f"live fuzz: {len(payloads)} hostile commands, {kinds.count('rejected')} rejected")
    finally:
        code = station.stop()
        op.close()
        broker.stop()
    assert code == 0, station.log()
