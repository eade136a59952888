"""Bad input end to end: each bad command gets its exact `rejected` receipt,
the daemon keeps running, nothing is stored, and the next good bulletin plays.

One station serves the whole module (a fresh one per test would cost more
than the tests); each test compares the store before and after.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config, store_rows

GOOD = "Xin chào bà con."
LONG_TEXT = "ạ" * 20_001  # 60 kB of UTF-8: under the payload limit, over the text limit


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    broker = start_mosquitto(root)
    op = Operator(broker.host, broker.port)
    station = StationProcess(root / "station", station_config(root / "station", broker.port, f"wav:{root / 'aired'}"))
    station.start()
    try:
        op.wait_state(lambda st: st["online"], 30)
        yield broker, op, station
    finally:
        code = station.stop()
        op.close()
        broker.stop()
        assert code == 0, station.log()


def good_bulletin_plays(op: Operator, station: StationProcess, id: str) -> None:
    op.send({"type": "bulletin", "id": id, "text": GOOD, "chime": False})
    op.wait_for(id, "finished", 60)
    assert op.of(id) == ["received", "started", "finished"]
    assert station.alive()


def _bulletin(**fields: Any) -> bytes:
    return json.dumps({"type": "bulletin", **fields}, ensure_ascii=False).encode()


CASES = [
    pytest.param(
        b'{"type": "bulletin", "id": "bi-json"',
        None,
        None,
        "payload is not valid JSON: Expecting ',' delimiter",
        id="invalid-json",
    ),
    pytest.param(b"\xff\xfe{}", None, None, "payload is not UTF-8 (byte 0)", id="invalid-utf8"),
    pytest.param(b'["bulletin"]', None, None, "payload must be a JSON object", id="not-an-object"),
    pytest.param(
        _bulletin(id="bi-type", text=123), "bi-type", None, "text: Input should be a valid string", id="wrong-type-text"
    ),
    pytest.param(
        _bulletin(id="bi-rev", text=GOOD, rev="2", priority=1),
        "bi-rev",
        None,
        "rev: Input should be a valid integer; priority: Input should be 'emergency', 'high', 'normal' or 'low'",
        id="wrong-types-rev-priority",
    ),
    pytest.param(_bulletin(text=GOOD), None, None, "missing field: id", id="missing-id"),
    pytest.param(b'{"id": "bi-notype", "text": "x"}', "bi-notype", None, "missing field: type", id="missing-type"),
    pytest.param(
        _bulletin(id="bi-none"),
        "bi-none",
        None,
        "exactly one of text, audio, stream, parts is required (got none)",
        id="missing-content",
    ),
    pytest.param(
        _bulletin(id="bi-extra", text=GOOD, colour="red"), "bi-extra", None, "unknown field: colour", id="extra-field"
    ),
    pytest.param(
        _bulletin(id="bi-long", rev=3, text=LONG_TEXT),
        "bi-long",
        3,
        "text: 20001 characters is over the 20000-character limit",
        id="over-long-text",
    ),
    pytest.param(
        b'{"type": "reboot", "id": "bi-reboot"}',
        "bi-reboot",
        None,
        "unknown command type 'reboot' (expected one of bulletin, cancel, ping, approve, decline)",
        id="unknown-type",
    ),
    pytest.param(
        _bulletin(id="../../etc/passwd", text=GOOD),
        None,
        None,
        "id: must be 1-64 of A-Z a-z 0-9 . _ : -",
        id="path-in-id",
    ),
]


@pytest.mark.parametrize("payload, rid, rev, detail", CASES)
def test_bad_command_is_rejected_with_its_reason_and_changes_nothing(rig, request, payload, rid, rev, detail):
    _, op, station = rig
    before = store_rows(station)
    since = len(op.events)
    op.send(payload)
    ev = op.next_event(since)
    assert (ev["event"], ev["id"], ev["rev"]) == ("rejected", rid, rev)
    assert ev["detail"].startswith(detail), ev["detail"]
    assert ev["station"] == "hue/phu-vang/loa-1"
    assert store_rows(station) == before
    good_bulletin_plays(op, station, f"good-after-{request.node.callspec.id}")


def test_retained_command_is_ignored_and_never_plays_even_after_a_restart(rig):
    broker, op, station = rig
    bad = {"type": "bulletin", "id": "bi-retained", "text": GOOD}
    op.send(bad, retain=True)
    try:
        op.send({"type": "ping", "id": "bi-marker-1"})
        op.wait_for("bi-marker-1", "pong", 20)
        # A restart re-subscribes: the broker hands the retained command over again.
        assert station.stop() == 0, station.log()
        station.start()
        op.wait_state(lambda st: st["online"] and st["uptime_s"] < 30, 30)
        op.send({"type": "ping", "id": "bi-marker-2"})
        op.wait_for("bi-marker-2", "pong", 20)
    finally:
        op.send(b"", retain=True)  # clears the retained message
    assert op.of("bi-retained") == []
    rows = store_rows(station)
    assert not any("bi-retained" in map(str, row) for table in rows.values() for row in table)
    assert "ignored a retained command" in station.log()
    good_bulletin_plays(op, station, "good-after-retained")
