"""Hostile input through the real daemon and the broker as shipped (issue 17).

Two stations of one commune, `loa-1` and `loa-2`, each a `loaxa run` child
process that requires signatures, log in to the shipped broker config with
the ACL and passwords from scripts/make_broker_acl.py. The province watches
them through the broker's loopback listener, as the province server does.
Each test plays one attack a careful reviewer would try and checks what an
operator would check: the receipt and its reason, what aired, the log.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.jsonwire import compact
from loaxa.security import public_key_b64, save_private_key, sign
from loaxa.testing.attack import MUST_BE_ZERO
from loaxa.testing.province_broker import ProvinceBroker, start_province_broker
from loaxa.testing.station import Operator, StationProcess, station_config

P = "loaxa/v1"
PROVINCE, COMMUNE = "hue", "phu-vang"
ONE, TWO = f"{PROVINCE}/{COMMUNE}/loa-1", f"{PROVINCE}/{COMMUNE}/loa-2"
OPS = "hue-ops"
KID = "hue-2026"
TEXT = "Xin chào bà con."
STATIONS = {
    "stations": [
        {"province": PROVINCE, "commune": COMMUNE, "station": "loa-1", "groups": []},
        {"province": PROVINCE, "commune": COMMUNE, "station": "loa-2", "groups": []},
    ],
    "operators": [{"username": OPS, "province": PROVINCE}],
}


@dataclass
class Rig:
    province: ProvinceBroker
    key: Ed25519PrivateKey
    key_file: Path
    stations: dict[str, StationProcess]
    ops: dict[str, Operator]  # one watcher per station

    def signed(self, command: dict[str, Any], to: str | None) -> dict[str, Any]:
        body = {**command, "to": to} if to is not None else command
        return sign(body, self.key, KID, issued=datetime.now(UTC))

    def send(self, command: dict[str, Any] | bytes, topic: str) -> None:
        self.ops[ONE].send(command, topic=f"{P}/{topic}/cmd")


def _station(root: Path, name: str, port: int, password: str, key: Ed25519PrivateKey) -> StationProcess:
    folder = root / name
    config = station_config(
        folder,
        port,
        f"wav:{folder / 'aired'}",
        station__id=name,
        mqtt__username=f"{PROVINCE}/{COMMUNE}/{name}",
        mqtt__password=password,
        audio__chime=False,
        security__require_signature=True,
        security__issuers=[{"kid": KID, "public_key": public_key_b64(key)}],
    )
    return StationProcess(folder, config).start()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("hostile")
    province = start_province_broker(root / "broker", STATIONS)
    key = Ed25519PrivateKey.generate()
    key_file = save_private_key(root / "issuer.key", key, KID)
    stations: dict[str, StationProcess] = {}
    ops: dict[str, Operator] = {}
    try:
        for path in (ONE, TWO):
            name = path.rsplit("/", 1)[1]
            stations[path] = _station(root, name, province.broker.port, province.passwords[path], key)
            login = (OPS, province.passwords[OPS])
            ops[path] = Operator("127.0.0.1", province.local_port, tuple(path.split("/")), login)  # type: ignore[arg-type]
        for op in ops.values():
            op.wait_state(lambda st: st["online"], 60)
        yield Rig(province, key, key_file, stations, ops)
    finally:
        codes = {path: station.stop() for path, station in stations.items()}
        for op in ops.values():
            op.close()
        province.broker.stop()
        for path, code in codes.items():
            assert code == 0, stations[path].log()


def test_a_bulletin_signed_for_one_station_airs_there_and_nowhere_else(rig: Rig) -> None:
    """Issue 17 "a signed command can be replayed to the whole province": replayed verbatim on the
    province, commune and other station's topics it is rejected with a reason; where it was meant, it airs."""
    command = rig.signed({"type": "bulletin", "id": "for-one", "text": TEXT}, to=ONE)
    for topic in (PROVINCE, f"{PROVINCE}/{COMMUNE}", TWO):
        rig.send(command, topic)
    rig.send(command, ONE)
    rig.ops[ONE].wait_for("for-one", "finished", 60)
    # A ping behind the replays: once it is answered, loa-2 has answered everything sent before it.
    rig.ops[TWO].send(rig.signed({"type": "ping", "id": "after-for-one"}, to=TWO))
    rig.ops[TWO].wait_for("after-for-one", "pong", 30)
    one = [e for e in rig.ops[ONE].events if e["id"] == "for-one"]
    two = [e for e in rig.ops[TWO].events if e["id"] == "for-one"]
    assert [e["event"] for e in one] == ["rejected", "rejected", "received", "started", "finished"]
    assert [e["event"] for e in two] == ["rejected"] * 3
    assert {e["detail"] for e in one if e["event"] == "rejected"} == {
        f"'to' is '{ONE}' but the command came on the topic of '{PROVINCE}' (a replay elsewhere?)",
        f"'to' is '{ONE}' but the command came on the topic of '{PROVINCE}/{COMMUNE}' (a replay elsewhere?)",
    }
    assert f"'to' is '{ONE}' but the command came on the topic of '{TWO}' (a replay elsewhere?)" in {
        e["detail"] for e in two
    }


def test_a_signed_command_without_to_is_rejected(rig: Rig) -> None:
    """Protocol 1.1: `to` is required in signed commands."""
    rig.send(rig.signed({"type": "bulletin", "id": "no-to", "text": TEXT}, to=None), ONE)
    event = rig.ops[ONE].wait_for("no-to", "rejected", 30)
    assert event["detail"].startswith("signed command has no 'to'")
    assert rig.ops[ONE].of("no-to") == ["rejected"]


def test_loaxa_publish_with_a_key_addresses_and_signs_each_target(rig: Rig) -> None:
    """`loaxa publish --key` to two stations: each copy carries its own `to`, and both air."""
    env = {**os.environ, "LOAXA_MQTT_PASSWORD": rig.province.passwords[OPS]}
    result = subprocess.run(
        [sys.executable, "-m", "loaxa", "publish", "--station", ONE, "--station", TWO, "--text", TEXT]
        + ["--id", "published", "--key", str(rig.key_file), "--no-chime", "--json", "--timeout", "60"]
        + ["--host", "127.0.0.1", "--port", str(rig.province.local_port), "--username", OPS],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["counts"]["finished"] == 2
    for path in (ONE, TWO):
        assert rig.ops[path].of("published") == ["received", "started", "finished"]


def test_a_duplicate_text_key_is_rejected_even_under_a_good_signature(rig: Rig) -> None:
    """Issue 17 "duplicate keys": the signature covers the last `text`; a reader of the raw JSON sees
    the first. Neither airs."""
    command = rig.signed({"type": "bulletin", "id": "two-texts", "text": "Sơ tán ngay."}, to=ONE)
    body = compact(command)
    payload = ('{"text":"Họp thôn lúc 7 giờ.",' + body[1:]).encode()
    assert json.loads(payload)["text"] == "Sơ tán ngay."  # what a last-wins reader would verify and air
    rig.send(payload, ONE)
    event = rig.ops[ONE].wait_for("two-texts", "rejected", 30)
    assert event["detail"] == "duplicate key 'text' in the command (each key may appear once)"
    assert rig.ops[ONE].of("two-texts") == ["rejected"]


def _ping(rig: Rig, id: str, response_topic: str, correlation: bytes) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    payload = compact(rig.signed({"type": "ping", "id": id}, to=ONE)).encode()
    rig.ops[ONE].client.publish(f"{P}/{ONE}/cmd", payload, qos=1, properties=props).wait_for_publish(5)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        (f"{P}/{ONE}/state", "is not this station's to answer on"),
        (f"{P}/{TWO}/response/x", "is not this station's to answer on"),
        (f"{P}/{ONE}/response/#", "holds a wildcard"),
        (f"{P}/{ONE}/response/+/x", "holds a wildcard"),
    ],
)
def test_a_ping_naming_a_response_topic_outside_the_namespace_is_rejected_with_the_reason(
    rig: Rig, topic: str, reason: str
) -> None:
    """Issue 17: not the station's own `state` (it was answered there), not a filter ("internal error")."""
    id = f"ping-{abs(hash(topic)) % 10**8}"
    states_before = len(rig.ops[ONE].states)
    _ping(rig, id, topic, b"c-1")
    event = rig.ops[ONE].wait_for(id, "rejected", 30)
    assert reason in event["detail"] and "internal error" not in event["detail"]
    assert rig.ops[ONE].of(id) == ["rejected"]
    assert all("event" not in st for st in rig.ops[ONE].states[states_before:])  # no pong on the state topic


def test_a_ping_is_answered_on_a_response_topic_in_the_namespace_with_its_correlation(rig: Rig) -> None:
    topic = f"{P}/{ONE}/response/{OPS}/1"
    answers: list[tuple[bytes, bytes | None]] = []
    got = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(OPS, rig.province.passwords[OPS])
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()

    def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        answers.append((msg.payload, getattr(msg.properties, "CorrelationData", None)))
        got.set()

    client.on_message = on_message
    client.connect("127.0.0.1", rig.province.local_port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        _ping(rig, "ping-ok", topic, b"corr-42")
        assert got.wait(30), rig.stations[ONE].log()
        assert answers == [(b'{"id": "ping-ok", "event": "pong"}', b"corr-42")]
        rig.ops[ONE].wait_for("ping-ok", "pong", 30)  # the receipt on the event topic as well
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_key_holding_a_newline_cannot_forge_a_log_line(rig: Rig) -> None:
    """Issue 17 "log injection": the rejected command's field name is logged escaped, on one line."""
    forged = "CRITICAL loaxa.player: amplifier forced on"
    command = rig.signed({"type": "bulletin", "id": "inject", "text": TEXT, f"x\n{forged}": 1}, to=ONE)
    rig.send(command, ONE)
    event = rig.ops[ONE].wait_for("inject", "rejected", 30)
    assert event["detail"] == f"unknown field: x\\n{forged}"
    station = rig.stations[ONE]
    assert station.log_path is not None
    log = station.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"rejected command: unknown field: x\\n{forged}" in log
    assert not any(line.startswith(forged) for line in log.splitlines()), log[-3000:]


def test_another_stations_login_cannot_take_over_the_daemons_session(rig: Rig) -> None:
    """Issue 17 "another station can take over a station's session", against the running daemon:
    loa-2's login with loa-1's client id leaves loa-1 connected, and loa-1 still gets its commands."""
    station = rig.stations[ONE]
    assert station.log_path is not None
    connects_before = station.log_path.read_text().count("connected to 127.0.0.1")
    impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="loaxa-hue-phu-vang-loa-1", protocol=mqtt.MQTTv5)
    impostor.username_pw_set(TWO, rig.province.passwords[TWO])
    took: list[bytes] = []
    impostor.on_message = lambda c, u, msg: took.append(msg.payload)
    connected = threading.Event()
    impostor.on_connect = lambda *a: connected.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    impostor.connect("127.0.0.1", rig.province.broker.port, clean_start=False, properties=props)
    impostor.loop_start()
    try:
        assert connected.wait(10)
        impostor.subscribe(f"{P}/{ONE}/cmd", qos=1)
        rig.send(rig.signed({"type": "ping", "id": "still-mine"}, to=ONE), ONE)
        rig.ops[ONE].wait_for("still-mine", "pong", 30)
    finally:
        impostor.loop_stop()
        impostor.disconnect()
    rig.send(rig.signed({"type": "ping", "id": "still-mine-after"}, to=ONE), ONE)
    rig.ops[ONE].wait_for("still-mine-after", "pong", 30)
    assert took == []
    assert station.log_path.read_text().count("connected to 127.0.0.1") == connects_before, station.log()


# --- the attack soak, as docs/security.md writes it ---------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_attack_soak_as_the_security_doc_writes_it() -> None:
    """`scripts/soak.py attack`: every hostile command is answered with a reason, nothing is lost or
    doubled, no log line is forged, and the exit code says whether every must-be-zero figure is 0."""
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    found = re.search(r"^(\.venv/bin/python scripts/soak\.py attack [^\n]*)$", doc, re.M)
    assert found, "docs/security.md has no attack soak command"
    result = subprocess.run(shlex.split(found.group(1)), cwd=ROOT, capture_output=True, text=True, timeout=600)
    figures = json.loads(result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1])
    assert figures["hostile"] == figures["rejected_with_reason"] > 0, figures
    assert (figures["lost"], figures["doubled"], figures["forged_log_lines"], figures["seq_gaps"]) == (0, 0, 0, 0)
    assert figures["aired"] + figures["cancelled"] >= 3 and figures["sent"] > figures["hostile"]
    for name in MUST_BE_ZERO:
        assert isinstance(figures[name], int), name
    assert result.returncode == (1 if any(figures[name] for name in MUST_BE_ZERO) else 0), result.stdout
