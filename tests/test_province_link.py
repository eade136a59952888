"""The province server's own MQTT 5 link: its packets, a real Mosquitto, and brokers that misbehave.

The split of received bytes into packets is checked against reads cut at
every place; the session against a real Mosquitto with TLS, a refused login,
ACLs that refuse a filter and a command, and a broker that stops answering
(SIGSTOP); and against hostile peers on a loopback socket (garbage after the
CONNACK, no CONNACK at all, a DISCONNECT), where the session must report,
reconnect and keep going. A command the broker did not acknowledge before
the connection broke is sent again, as a duplicate, on the next one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509

from loaxa.errors import LinkError
from loaxa.province.server import link as link_module
from loaxa.province.server import mqttwire as wire
from loaxa.province.server.database import Database
from loaxa.province.server.ingest import Ingest
from loaxa.province.server.link import Link
from loaxa.province.server.settings import BrokerSettings, parse_settings
from loaxa.testing.broker import Broker, start_mosquitto
from loaxa.testing.province_broker import start_province_broker
from test_mqttclient import make_ca

WAIT_S = 15.0
STATE = "loaxa/v1/hn/xa-a/st-a/state"


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the packets -----------------------------------------------------------------------


def publish_with_properties(topic: str, payload: bytes, pid: int, retain: bool = False) -> bytes:
    """A PUBLISH as a broker may write it: payload format, message expiry and a user property."""
    props = b"\x01\x01" + b"\x02" + (60).to_bytes(4, "big") + b"\x26" + wire._string("k") + wire._string("v")
    body = wire._string(topic) + pid.to_bytes(2, "big") + wire.varint(len(props)) + props + payload
    return bytes([0x32 | int(retain)]) + wire.varint(len(body)) + body


def test_a_stream_cut_anywhere_splits_into_the_same_packets() -> None:
    """Reads end anywhere, even inside a four-byte length: the packets come out whole and in order, once."""
    big = json.dumps({"detail": "Ủy ban " * 40_000}).encode()  # 320 KB: a three-byte remaining length
    packets = [
        (wire.publish(STATE, b'{"online": true}', 7), (STATE, b'{"online": true}', 1, False, 7)),
        (publish_with_properties("a/b", "xã".encode(), 65535, retain=True), ("a/b", "xã".encode(), 1, True, 65535)),
        (wire.publish("a/big", big, 9), ("a/big", big, 1, False, 9)),
        (b"\x30\x05\x00\x01q\x00!", ("q", b"!", 0, False, 0)),  # QoS 0: no packet id
        (wire.publish("e/mpty", b"", 3), ("e/mpty", b"", 1, False, 3)),
    ]
    stream = b"".join(p for p, _ in packets) + b"\xd0\x00" + b"\x40\x02\x00\x05"  # PINGRESP, PUBACK 5
    expected = [wire.Message(*m) for _, m in packets]
    rng = random.Random(14)
    for cuts in [[1] * 64, [2, 3, 5, 7], [len(stream)], [rng.randint(1, 5000) for _ in range(50)]]:
        splitter = wire.Splitter()
        messages: list[wire.Message] = []
        others: list[tuple[int, bytes]] = []
        pos, k = 0, 0
        while pos < len(stream):
            size = cuts[k % len(cuts)] if cuts != [1] * 64 or pos < 64 else 4096
            got, other = splitter.feed(stream[pos : pos + size])
            messages += got
            others += other
            pos += size
            k += 1
        assert messages == expected
        assert others == [(0xD0, b""), (0x40, b"\x00\x05")]
        assert wire.puback(others[1][1]) == (5, 0)


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\x30\xff\xff\xff\xff\x01", "longer than four bytes"),
        (b"\x32\x04\x00\x09ab", "shorter than its fields"),
        (b"\x32\x07\x00\x02\xff\xfe\x00\x01\x00", "not UTF-8"),
        (b"\x34\x07\x00\x01a\x00\x01\x00!", "QoS 2"),
        (b"\x36\x07\x00\x01a\x00\x01\x00!", "QoS 3"),
        (b"\x32\x06\x00\x01a\x00\x01\x09", "shorter than its fields"),  # properties longer than the packet
    ],
)
def test_bytes_that_are_not_mqtt_are_refused_by_name(data: bytes, why: str) -> None:
    with pytest.raises(wire.ProtocolError, match=why):
        wire.Splitter().feed(data)


def test_the_packets_sent_are_read_by_another_implementation() -> None:
    """paho's own decoder reads the varints and strings the session writes."""
    from paho.mqtt.properties import VariableByteIntegers

    for n in (0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, wire.MAX_LENGTH):
        assert VariableByteIntegers.decode(wire.varint(n)) == (n, len(wire.varint(n)))
    assert wire.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    assert wire.disconnected(b"\x8e\x00") == (0x8E, {})
    assert wire.reason_name("DISCONNECT", 0x8E) == "Session taken over"
    assert wire.reason_name("CONNACK", 0x03).startswith("reason code 0x03")


# -- against a real Mosquitto ---------------------------------------------------------


def settings(port: int, **broker: Any) -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=port, keepalive_s=5, **broker)


def send(broker: Broker, topic: str, payload: bytes, retain: bool = False, **login: Any) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if login:
        c.username_pw_set(login["username"], login["password"])
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT_S)
    c.disconnect()
    c.loop_stop()


def messages_until(link: Link, n: int) -> list[wire.Message]:
    got: list[wire.Message] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < n and time.monotonic() < deadline:
        got += link.read(0.2)
    return got


@pytest.fixture
def listener(broker: Broker) -> Iterator[tuple[mqtt.Client, list[tuple[str, bytes, int]]]]:
    """An operator's paho client that sees what the link publishes (topic, payload, dup)."""
    seen: list[tuple[str, bytes, int]] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: seen.append((m.topic, m.payload, m.dup))
    c.connect(broker.host, broker.port)
    c.subscribe("loaxa/v1/hn/cmd", qos=1)
    c.loop_start()
    time.sleep(0.3)
    yield c, seen
    c.disconnect()
    c.loop_stop()


def test_the_session_resumes_with_what_was_queued_and_publishes_once_acknowledged(broker: Broker, listener) -> None:
    """A retained state for a new subscription; messages sent while it was away when it comes back; a command."""
    _, seen = listener
    send(broker, STATE, b'{"online": true}', retain=True)
    link = Link(settings(broker.port), "t-resume", ("loaxa/v1/hn/+/+/state", "loaxa/v1/hn/+/+/event"))
    try:
        link.open()
        assert not link.session_present
        (first,) = messages_until(link, 1)
        assert (first.topic, first.retain) == (STATE, True)
        link.ack([first.pid])
        link.disconnect()
        events = [json.dumps({"seq": i}).encode() for i in range(300)]
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.connect(broker.host, broker.port)
        c.loop_start()
        infos = [c.publish("loaxa/v1/hn/xa-a/st-a/event", e, qos=1) for e in events]
        infos[-1].wait_for_publish(WAIT_S)
        c.disconnect()
        c.loop_stop()
        link.open()
        assert link.session_present
        got = messages_until(link, 300)
        assert [m.payload for m in got] == events and not any(m.retain for m in got)
        link.ack([m.pid for m in got])
        reader = threading.Thread(target=lambda: [link.read(0.1) for _ in range(20)])  # as the session's thread
        reader.start()
        link.publish("loaxa/v1/hn/cmd", b'{"type": "ping"}', timeout_s=WAIT_S)
        reader.join()
        wait_for(lambda: seen, WAIT_S, "the command at the operator")
        assert seen == [("loaxa/v1/hn/cmd", b'{"type": "ping"}', 0)]
    finally:
        link.shut()


def test_tls_with_the_provinces_ca_and_a_refused_certificate(tmp_path: Path) -> None:
    files = make_ca(tmp_path / "pki", "province", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    other = make_ca(tmp_path / "other", "other", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    tls = f"cafile {files['ca']}\ncertfile {files['server']}\nkeyfile {files['server_key']}"
    from loaxa.testing.broker import free_port

    port = free_port()
    broker = start_mosquitto(tmp_path, f"listener {port} 127.0.0.1\n{tls}")
    try:
        send(broker, STATE, b'{"online": true}', retain=True)
        good = Link(settings(port, tls={"ca_file": str(files["ca"])}), "t-tls", ("loaxa/v1/hn/+/+/state",))
        good.open()
        (m,) = messages_until(good, 1)
        assert m.payload == b'{"online": true}'
        good.shut()
        bad = Link(settings(port, tls={"ca_file": str(other["ca"])}), "t-tls-bad", ("loaxa/v1/hn/+/+/state",))
        with pytest.raises(OSError, match="certificate verify failed"):
            bad.open()
        bad.shut()
    finally:
        broker.stop()


def ingest_for(tmp_path: Path, port: int, **broker: Any) -> Ingest:
    s = parse_settings(
        {
            "province": {"id": "hn"},
            "data_dir": str(tmp_path / "data"),
            "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 5, **broker},
        }
    )
    return Ingest(s, Database.open(s))


def test_a_refused_login_and_a_refused_command_are_said_in_words(tmp_path: Path) -> None:
    """The province broker as shipped: a wrong password; another province's operator sending this one's command."""
    stations = {
        "stations": [{"province": "hn", "commune": "xa-a", "station": "st-a", "groups": []}],
        "operators": [{"username": "op-qn", "province": "qn"}],
    }
    province = start_province_broker(tmp_path, stations)
    port = province.broker.port
    wrong = ingest_for(tmp_path / "wrong", port, username="op-qn", password="sai")
    foreign = ingest_for(tmp_path / "foreign", port, username="op-qn", password=province.passwords["op-qn"])
    try:
        wrong.start()
        refused = wait_for(lambda: "refused" in (wrong.status()["error"] or "") and wrong.status()["error"], WAIT_S, "")
        assert refused == f"broker 127.0.0.1:{port} refused the connection of loaxa-province-server: Not authorized"
        assert not wrong.status()["connected"]
        wrong.stop()
        foreign.start()
        wait_for(lambda: foreign.status()["connected"], WAIT_S, "connected")
        with pytest.raises(LinkError, match="the broker refused the command on loaxa/v1/hn/cmd: Not authorized"):
            foreign.publish("loaxa/v1/hn/cmd", b'{"type": "ping"}', timeout_s=WAIT_S)
        foreign.publish("loaxa/v1/qn/cmd", b'{"type": "ping"}', timeout_s=WAIT_S)  # its own province's: taken
    finally:
        wrong.stop()
        foreign.stop()
        province.broker.stop()


def test_a_broker_that_stops_answering_is_noticed_by_the_keepalive_and_the_session_comes_back(
    tmp_path: Path, broker: Broker
) -> None:
    """SIGSTOP: the socket stays open and silent; within two keep-alives the server says so, then resumes."""
    ingest = ingest_for(tmp_path, broker.port)
    ingest.start()
    assert broker.proc is not None
    try:
        wait_for(lambda: ingest.status()["connected"], WAIT_S, "connected")
        os.kill(broker.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        error = wait_for(lambda: ingest.status()["error"], 20, "the silent broker noticed")
        assert "did not answer a ping" in error and time.monotonic() - t0 < 2 * 5 + 3
        os.kill(broker.proc.pid, signal.SIGCONT)
        wait_for(lambda: ingest.status()["connected"] and not ingest.status()["error"], 40, "the session back")
        send(broker, STATE, json.dumps({"online": True, "at": "2026-12-01T08:00:00+07:00"}).encode())
        wait_for(lambda: ingest.status()["states"] >= 1, WAIT_S, "a state stored after the pause")
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
        ingest.stop()


# -- peers that misbehave -------------------------------------------------------------


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """Whole packets as (first byte, body), for a peer that reads what the session writes."""
    out, p = [], 0
    while p < len(data):
        length, start = wire._varint_at(data, p + 1)
        out.append((data[p], data[start : start + length]))
        p = start + length
    return out


class FakeBroker:
    """A loopback listener that runs `script(peer, n)` for its n-th connection, on a thread."""

    def __init__(self, script: Callable[[FakeBroker, socket.socket, int], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.connections = 0
        self.publishes: list[tuple[int, int, bytes]] = []  # (connection, first byte, body) of each PUBLISH
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(conn, self.connections), daemon=True).start()

    def _run(self, conn: socket.socket, n: int) -> None:
        try:
            self.script(self, conn, n)
        except OSError:
            pass
        finally:
            conn.close()

    def expect(self, conn: socket.socket, kind: int, n: int, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """Read until a packet of this type comes (CONNECT 1, SUBSCRIBE 8, PUBLISH 3)."""
        conn.settimeout(timeout_s)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionResetError("the session closed")
            data += chunk
            try:
                found = packets(data)
            except IndexError:
                continue  # cut inside a packet
            for first, body in found:
                if first >> 4 == 3:
                    self.publishes.append((n, first, body))
            for first, body in found:
                if first >> 4 == kind:
                    return first, body
            data = b""

    def handshake(self, conn: socket.socket, n: int) -> None:
        self.expect(conn, 1, n)
        conn.sendall(CONNACK)
        self.expect(conn, 8, n)

    def close(self) -> None:
        self.sock.close()


CONNACK = b"\x20\x03\x00\x00\x00"


def test_garbage_a_refused_filter_or_a_disconnect_is_reported_and_the_session_reconnects(tmp_path: Path) -> None:
    def script(fake: FakeBroker, conn: socket.socket, n: int) -> None:
        fake.handshake(conn, n)
        if n == 1:
            conn.sendall(b"\x30\xff\xff\xff\xff\x01")  # a five-byte length
        elif n == 2:
            conn.sendall(b"\xe0\x02\x8e\x00")  # DISCONNECT: session taken over
        else:
            conn.sendall(b"\x90\x05\x00\x01\x00\x01\x87")  # SUBACK: the state filter granted, events refused
        time.sleep(30)

    fake = FakeBroker(script)
    ingest = ingest_for(tmp_path, fake.port)
    errors: set[str] = set()
    ingest.start()
    try:
        wait_for(lambda: errors.add(ingest.status()["error"] or "") or "refused to subscribe" in str(errors), 20, "")
        said = " | ".join(sorted(errors))
        assert "a remaining length longer than four bytes" in said, said
        assert "the broker ended the connection: Session taken over" in said, said
        assert f"broker 127.0.0.1:{fake.port} refused to subscribe loaxa/v1/hn/+/+/event (Not authorized)" in said
        assert ingest.status()["connected"] and fake.connections == 3
        assert all(s._thread.is_alive() for s in ingest.sessions)
    finally:
        ingest.stop()
        fake.close()


def test_a_broker_that_never_answers_the_connect_is_given_up_on_and_tried_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(link_module, "CONNECT_TIMEOUT_S", 1.0)
    fake = FakeBroker(lambda fake, conn, n: time.sleep(5))
    ingest = ingest_for(tmp_path, fake.port)
    ingest.start()
    try:
        error = wait_for(lambda: ingest.status()["error"] if fake.connections >= 2 else None, 15, "a second try")
        assert error == f"cannot connect to the broker at 127.0.0.1:{fake.port}: timed out", error
    finally:
        ingest.stop()
        fake.close()


def test_a_command_the_broker_did_not_acknowledge_is_sent_again_on_the_next_connection(tmp_path: Path) -> None:
    def script(fake: FakeBroker, conn: socket.socket, n: int) -> None:
        fake.handshake(conn, n)
        early = [b for c, _, b in fake.publishes if c == n]  # resent with the SUBSCRIBE, in the same read
        body = early[0] if early else fake.expect(conn, 3, n, timeout_s=15)[1]
        if n == 1:
            return  # the connection breaks before the PUBACK
        size = int.from_bytes(body[:2], "big")
        conn.sendall(b"\x40\x02" + body[2 + size : 4 + size])  # PUBACK for its packet id
        time.sleep(30)

    fake = FakeBroker(script)
    ingest = ingest_for(tmp_path, fake.port)
    ingest.start()
    try:
        wait_for(lambda: ingest.status()["connected"], WAIT_S, "connected")
        ingest.publish("loaxa/v1/hn/cmd", b'{"type": "ping"}', timeout_s=WAIT_S)
        (c1, first1, body1), (c2, first2, body2) = fake.publishes
        assert (c1, c2) == (1, 2)
        assert first1 == 0x32 and first2 == 0x3A  # QoS 1; the second marked as a duplicate
        assert body1 == body2 and body1.endswith(b'{"type": "ping"}')
    finally:
        ingest.stop()
        fake.close()


def test_a_bug_while_handling_a_message_is_reported_and_the_message_stored_after_the_reconnect(
    tmp_path: Path, broker: Broker, monkeypatch
) -> None:
    """Nothing that arrives stops the session: the first decode raises (as a bug would); the thread reports
    it, reconnects, and the broker's redelivery of the unacknowledged message is stored."""
    ingest = ingest_for(tmp_path, broker.port)
    real = Ingest.decode
    calls = []

    def flaky(self: Ingest, msg: wire.Message, arrived: float) -> Any:
        calls.append(msg.topic)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(self, msg, arrived)

    monkeypatch.setattr(Ingest, "decode", flaky)
    ingest.start()
    try:
        wait_for(lambda: ingest.status()["connected"], WAIT_S, "connected")
        send(broker, STATE, json.dumps({"online": True, "at": "2026-12-01T08:00:00+07:00"}).encode())
        error = wait_for(lambda: ingest.status()["error"], WAIT_S, "the bug reported")
        assert error == "loaxa-province-server failed and reconnects: RuntimeError: a bug"
        wait_for(lambda: ingest.status()["states"] == 1, WAIT_S, "the state stored after the reconnect")
        assert calls == [STATE, STATE] and ingest.status()["error"] is None
    finally:
        ingest.stop()
