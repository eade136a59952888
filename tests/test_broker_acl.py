"""The province broker's access rules, checked against a real Mosquitto.

The ACL and password file come from scripts/make_broker_acl.py, exactly as a
province would make them, and the broker runs config/mosquitto/loaxa.conf as
shipped (loaxa.testing.province_broker: only listeners, TLS and paths are
changed), so the client-id binding is the real one. Facts of Mosquitto 2.0.11 these tests pin down: a
denied QoS 1 publish is answered with PUBACK reason 0x87 (not authorised) and
dropped; a SUBSCRIBE to a forbidden topic is granted, but nothing that the
user may not read is ever delivered on it; a refused login gets CONNACK 0x87.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from loaxa.testing.broker import Broker
from loaxa.testing.province_broker import start_province_broker

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_broker_acl.py"
WAIT_S = 10.0
NOT_AUTHORIZED = 0x87
ACCEPTED = {0x00, 0x10}  # success; "no matching subscribers"

A = "hn/xa-a/st-a"
B = "hn/xa-b/st-b"
A2 = "hn/xa-a/st-a2"  # same commune as A
OP = "op-hn"
P = "loaxa/v1"

STATIONS = {
    "stations": [
        {"province": "hn", "commune": "xa-a", "station": "st-a", "groups": ["flood"]},
        {"province": "hn", "commune": "xa-a", "station": "st-a2", "groups": []},
        {"province": "hn", "commune": "xa-b", "station": "st-b", "groups": ["coast"]},
        {"province": "qn", "commune": "xa-c", "station": "st-c", "groups": []},
    ],
    "operators": [{"username": OP, "province": "hn"}],
}


def run_script(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp / "stations.yaml"), "--acl", str(tmp / "acl"), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("acl")
    province = start_province_broker(tmp, STATIONS, {A: "mật khẩu của A"})
    assert province.passwords[A] == "mật khẩu của A"  # a given password is kept, missing ones are made
    try:
        yield province.broker, province.passwords
    finally:
        province.broker.stop()


@dataclass
class Peer:
    """A connected paho client whose callbacks report through queues."""

    client: mqtt.Client
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    acks: dict[int, int] = field(default_factory=dict)
    acked: threading.Condition = field(default_factory=threading.Condition)
    suback: queue.Queue[list[int]] = field(default_factory=queue.Queue)
    connects: int = 0
    disconnects: list[int] = field(default_factory=list)

    def subscribe(self, *topics: str) -> list[int]:
        self.client.subscribe([(t, 1) for t in topics])
        return self.suback.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.acks, timeout=WAIT_S), f"no PUBACK for {topic}"
            return self.acks.pop(info.mid)

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    broker: Broker,
    username: str | None,
    password: str | None = None,
    *,
    client_id: str | None = None,
    persistent: bool = False,
) -> tuple[Peer | None, int]:
    """(peer, CONNACK reason); the peer is None when the broker refused.

    `persistent`: as a station connects (clean start off, a session of days).
    """
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client_id = client_id or f"t-{username}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    peer = Peer(client)
    connack: queue.Queue[int] = queue.Queue()

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: mqtt.ReasonCode, props: object) -> None:
        if not rc.is_failure:
            peer.connects += 1  # more than one: paho reconnected after the broker closed this client
        connack.put(rc.value)

    client.on_connect = on_connect
    client.on_disconnect = lambda c, u, flags, rc, props: peer.disconnects.append(rc.value)
    client.on_message = lambda c, u, msg: peer.messages.put((msg.topic, msg.payload))
    client.on_subscribe = lambda c, u, mid, rcs, props: peer.suback.put([rc.value for rc in rcs])

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: mqtt.ReasonCode, props: object) -> None:
        with peer.acked:
            peer.acks[mid] = rc.value
            peer.acked.notify_all()

    client.on_publish = on_publish
    if username is not None:
        client.username_pw_set(username, password)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 7 * 24 * 3600 if persistent else 0
    client.connect(broker.host, broker.port, clean_start=not persistent, properties=props)
    client.loop_start()
    code = connack.get(timeout=WAIT_S)
    if code != 0:
        client.loop_stop()
        return None, code
    return peer, code


@pytest.fixture()
def peers(setup: tuple[Broker, dict[str, str]]) -> Iterator[dict[str, Peer]]:
    broker, passwords = setup
    made: dict[str, Peer] = {}
    for user in (A, A2, B, OP):
        peer, code = connect(broker, user, passwords[user])
        assert peer is not None, f"{user} refused with {code:#x}:\n{broker.log()[-2000:]}"
        made[user] = peer
    yield made
    for peer in made.values():
        peer.close()


def test_station_receives_its_station_commune_province_and_group_commands(peers: dict[str, Peer]) -> None:
    a, op = peers[A], peers[OP]
    own = [f"{P}/hn/cmd", f"{P}/hn/xa-a/cmd", f"{P}/{A}/cmd", f"{P}/hn/group/flood/cmd"]
    assert a.subscribe(*own) == [1, 1, 1, 1]
    for topic in own:
        assert op.publish(topic, topic.encode()) in ACCEPTED
        assert a.next_message() == (topic, topic.encode())


def test_station_cannot_publish_to_another_stations_topics(peers: dict[str, Peer]) -> None:
    a, b, op = peers[A], peers[B], peers[OP]
    b.subscribe(f"{P}/{B}/cmd")
    op.subscribe(f"{P}/hn/+/+/event")
    assert a.publish(f"{P}/{B}/cmd", b'{"type":"bulletin","id":"forged"}') == NOT_AUTHORIZED
    assert a.publish(f"{P}/{B}/event", b"forged event") == NOT_AUTHORIZED
    assert a.publish(f"{P}/hn/cmd", b"province-wide from a station") == NOT_AUTHORIZED
    # Markers sent after the refusals arrive first and alone: the forged
    # messages were dropped, not delayed.
    assert op.publish(f"{P}/{B}/cmd", b"marker") in ACCEPTED
    assert b.next_message() == (f"{P}/{B}/cmd", b"marker")
    assert b.messages.empty()
    assert b.publish(f"{P}/{B}/event", b"real event") in ACCEPTED
    assert op.next_message() == (f"{P}/{B}/event", b"real event")
    assert op.messages.empty()


def test_station_publishes_its_own_state_and_events(peers: dict[str, Peer]) -> None:
    a, op = peers[A], peers[OP]
    op.subscribe(f"{P}/hn/+/+/state", f"{P}/hn/+/+/event")
    assert a.publish(f"{P}/{A}/state", b'{"online":true}') in ACCEPTED
    assert op.next_message() == (f"{P}/{A}/state", b'{"online":true}')
    assert a.publish(f"{P}/{A}/event", b'{"event":"pong"}') in ACCEPTED
    assert op.next_message() == (f"{P}/{A}/event", b'{"event":"pong"}')


def test_station_cannot_receive_other_stations_or_groups_commands(peers: dict[str, Peer]) -> None:
    a, op = peers[A], peers[OP]
    # Mosquitto 2.0 grants these subscriptions; the ACL is enforced per message.
    a.subscribe(f"{P}/{B}/cmd", f"{P}/hn/xa-b/cmd", f"{P}/hn/group/coast/cmd", f"{P}/{B}/event")
    a.subscribe(f"{P}/{A}/cmd")
    for topic in (f"{P}/{B}/cmd", f"{P}/hn/xa-b/cmd", f"{P}/hn/group/coast/cmd", f"{P}/{A2}/cmd"):
        assert op.publish(topic, b"not for a") in ACCEPTED
    assert peers[B].publish(f"{P}/{B}/event", b"b's event") in ACCEPTED
    assert op.publish(f"{P}/{A}/cmd", b"marker") in ACCEPTED
    assert a.next_message() == (f"{P}/{A}/cmd", b"marker")
    assert a.messages.empty()


def test_station_wildcard_subscription_sees_only_its_own_commands(peers: dict[str, Peer]) -> None:
    a, op = peers[A], peers[OP]
    a.subscribe(f"{P}/#")
    assert op.publish(f"{P}/{B}/cmd", b"for b") in ACCEPTED
    assert op.publish(f"{P}/{A}/cmd", b"for a") in ACCEPTED
    assert a.next_message() == (f"{P}/{A}/cmd", b"for a")
    assert a.messages.empty()


def test_operator_writes_only_its_own_provinces_commands(peers: dict[str, Peer]) -> None:
    op = peers[OP]
    assert op.publish(f"{P}/hn/xa-a/st-a/cmd", b"x") in ACCEPTED
    assert op.publish(f"{P}/hn/group/flood/cmd", b"x") in ACCEPTED
    assert op.publish(f"{P}/qn/cmd", b"x") == NOT_AUTHORIZED
    assert op.publish(f"{P}/qn/xa-c/st-c/cmd", b"x") == NOT_AUTHORIZED
    assert op.publish(f"{P}/{A}/state", b'{"online":false}') == NOT_AUTHORIZED  # no faking a station


@pytest.mark.parametrize("user, password", [(None, None), (A, "wrong"), ("nobody", "x")])
def test_anonymous_and_wrong_logins_are_refused(
    setup: tuple[Broker, dict[str, str]], user: str | None, password: str | None
) -> None:
    peer, code = connect(setup[0], user, password)
    assert peer is None
    assert code == NOT_AUTHORIZED


# --- the generator on its own ------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"stations": [{"province": "HN", "commune": "a", "station": "s"}]}, "stations[0].province"),
        ({"stations": [{"province": "hn", "commune": "group", "station": "s"}]}, "reserved"),
        ({"stations": [{"province": "hn", "commune": "a", "station": "s"}] * 2}, "listed twice"),
        ({"stations": [{"province": "hn", "commune": "a", "station": "s", "group": ["x"]}]}, "unknown keys group"),
        ({"operators": [{"username": "op:1", "province": "hn"}]}, "operators[0].username"),
        ({"operators": [{"username": "op"}]}, "province"),
        ({"prefix": "loaxa/#", "operators": [{"username": "op", "province": "hn"}]}, "prefix"),
        ({}, "nothing to write"),
    ],
)
def test_generator_refuses_a_wrong_stations_file(tmp_path: Path, doc: dict, reason: str) -> None:
    (tmp_path / "stations.yaml").write_text(yaml.safe_dump(doc))
    result = run_script(tmp_path)
    assert result.returncode == 2
    assert reason in result.stderr
    assert not (tmp_path / "acl").exists()


def test_generator_writes_nothing_when_a_password_is_missing(tmp_path: Path) -> None:
    (tmp_path / "stations.yaml").write_text(yaml.safe_dump(STATIONS))
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({A: "x"}))
    result = run_script(tmp_path, "--passwd", str(tmp_path / "passwd"), "--passwords", str(tmp_path / "secrets.yaml"))
    assert result.returncode == 2
    assert f"no password for {A2}" in result.stderr
    assert not (tmp_path / "acl").exists() and not (tmp_path / "passwd").exists()


def test_example_stations_file_is_valid(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(ROOT / "config/mosquitto/stations.example.yaml"),
            "--acl",
            str(tmp_path / "acl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "user ha-noi/ba-vi/loa-1\n" in (tmp_path / "acl").read_text()


def test_shipped_broker_config_keeps_queued_commands_across_a_restart(tmp_path: Path) -> None:
    """loaxa.conf as shipped (client ids bound to logins) keeps a station's persistent session:
    a command queued while the station was offline arrives after a broker restart."""
    province = start_province_broker(tmp_path, STATIONS)
    broker, passwords = province.broker, province.passwords
    try:
        station = _station(broker, passwords, A)
        assert station.subscribe(f"{P}/{A}/cmd") == [1]
        station.close()  # the station goes offline; its session stays
        op, _ = connect(broker, OP, passwords[OP])
        assert op is not None
        assert op.publish(f"{P}/{A}/cmd", b"while you were away") in ACCEPTED
        op.close()
        broker.restart()
        station = _station(broker, passwords, A)
        assert station.next_message() == (f"{P}/{A}/cmd", b"while you were away")
        station.close()
    finally:
        broker.stop()


def _station(broker: Broker, passwords: dict[str, str], user: str, client_id: str | None = None) -> Peer:
    """Connect as the protocol says a station does: fixed client id, no clean start, long expiry."""
    client_id = client_id or "loaxa-" + user.replace("/", "-")
    peer, code = connect(broker, user, passwords[user], client_id=client_id, persistent=True)
    assert peer is not None, f"{user} refused with {code:#x}:\n{broker.log()[-2000:]}"
    return peer


# --- issue 17: sessions bound to logins, and the ACL end to end ---------------------


def test_another_stations_login_cannot_take_over_a_session(setup: tuple[Broker, dict[str, str]]) -> None:
    """Issue 17 "another station can take over a station's session": B's login with A's client id
    neither closes A nor gets A's session, and commands for A still reach A, also after B tried
    while A was offline."""
    broker, passwords = setup
    a = _station(broker, passwords, A)
    assert a.subscribe(f"{P}/{A}/cmd") == [1]
    op, _ = connect(broker, OP, passwords[OP])
    assert op is not None
    impostor = _station(broker, passwords, B, client_id="loaxa-hn-xa-a-st-a")
    impostor.subscribe(f"{P}/{A}/cmd")
    assert op.publish(f"{P}/{A}/cmd", b"for a, with the impostor connected") in ACCEPTED
    assert a.next_message() == (f"{P}/{A}/cmd", b"for a, with the impostor connected")
    assert a.disconnects == [] and a.connects == 1, "A's connection was closed by the impostor"
    impostor.close()
    a.close()  # A offline: its session holds what comes meanwhile
    assert op.publish(f"{P}/{A}/cmd", b"queued for a") in ACCEPTED
    impostor = _station(broker, passwords, B, client_id="loaxa-hn-xa-a-st-a")
    assert impostor.messages.empty()
    impostor.close()
    a = _station(broker, passwords, A)
    assert a.next_message() == (f"{P}/{A}/cmd", b"queued for a")
    assert op.publish(f"{P}/{A}/cmd", b"after the impostor left") in ACCEPTED
    assert a.next_message() == (f"{P}/{A}/cmd", b"after the impostor left")
    assert impostor.messages.empty()
    for peer in (a, op):
        peer.close()


@pytest.mark.parametrize(
    "topic",
    [
        f"{P}/{B}/cmd",  # another station
        f"{P}/{A2}/cmd",  # a neighbour in its own commune
        f"{P}/hn/xa-a/cmd",  # its own commune
        f"{P}/hn/xa-b/cmd",  # another commune
        f"{P}/hn/cmd",  # the province
        f"{P}/hn/group/flood/cmd",  # its own group
        f"{P}/qn/xa-c/st-c/cmd",  # another province
        f"{P}/{B}/state",
        f"{P}/{B}/event",
        f"{P}/{B}/response/op",
    ],
)
def test_station_login_cannot_write_command_topics_or_other_stations_reports(
    peers: dict[str, Peer], topic: str
) -> None:
    """Issue 17, the ACL end to end: each forbidden publish is refused (PUBACK 0x87) and never delivered."""
    a, op = peers[A], peers[OP]
    op.subscribe(f"{P}/#")  # the operator may not read everything, but what it may, it would see
    assert a.publish(topic, b"forged by a") == NOT_AUTHORIZED
    assert peers[B].publish(f"{P}/{B}/event", b"marker") in ACCEPTED
    assert op.next_message() == (f"{P}/{B}/event", b"marker")
    assert op.messages.empty()


def test_station_login_cannot_read_other_stations_events_state_or_responses(peers: dict[str, Peer]) -> None:
    """Issue 17, the ACL end to end: A subscribes to B's reports (granted by Mosquitto) and gets none."""
    a, b = peers[A], peers[B]
    a.subscribe(f"{P}/{B}/event", f"{P}/{B}/state", f"{P}/{B}/response/#", f"{P}/hn/+/+/event")
    a.subscribe(f"{P}/{A}/cmd")
    assert b.publish(f"{P}/{B}/event", b"b's event") in ACCEPTED
    assert b.publish(f"{P}/{B}/state", b'{"online":true}') in ACCEPTED
    assert b.publish(f"{P}/{B}/response/op", b"b's pong") in ACCEPTED
    assert peers[OP].publish(f"{P}/{A}/cmd", b"marker") in ACCEPTED
    assert a.next_message() == (f"{P}/{A}/cmd", b"marker")
    assert a.messages.empty()


def test_station_answers_in_its_own_response_namespace_and_the_operator_reads_it(peers: dict[str, Peer]) -> None:
    a, op = peers[A], peers[OP]
    op.subscribe(f"{P}/hn/+/+/response/#")
    assert a.publish(f"{P}/{A}/response/op-hn/1", b"pong") in ACCEPTED
    assert op.next_message() == (f"{P}/{A}/response/op-hn/1", b"pong")
    assert a.publish(f"{P}/{A}/state/x", b"not a response") == NOT_AUTHORIZED
