"""Regression: a QoS 0 flood wedged the receipts (fault "QoS 0 flood wedges the receipts").

10,000 QoS 0 commands of 30 KB made Mosquitto drop packets queued to the
station, PUBACKs of its own QoS 1 events among them; paho never retransmits
while connected, so the in-flight window stayed full and no event or state
went out again on that connection, with health green. The station now notices
the stalled window, reconnects and resends; the shipped broker config limits
what one client can do.

The lost PUBACKs are made by a relay that swallows them (tests/mqtt_proxy.py),
so the stall happens every time; the flood test runs a real flood against a
broker with the shipped limits. Everything is on loopback, bounded.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from loaxa.protocol import MAX_PAYLOAD
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.soak import assert_in_order_without_gaps
from loaxa.testing.station import Province, StationProcess, distinct_by_seq, station_config
from mqtt_proxy import PubackDropper

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = ROOT / "config" / "mosquitto" / "loaxa.conf"
# The global limits of the shipped config; its listeners, TLS and ACL are the province's own.
LIMITS = {
    "max_queued_messages",
    "max_queued_bytes",
    "queue_qos0_messages",
    "max_inflight_messages",
    "max_inflight_bytes",
    "message_size_limit",
    "max_packet_size",
    "max_keepalive",
}
FLOOD_COUNT = 10_000
FLOOD_BYTES = 30_000
FLOOD_MAX_S = 120.0
WINDOW = 20  # paho's in-flight window


def shipped_limits() -> str:
    lines = [line.strip() for line in SHIPPED_CONF.read_text().splitlines()]
    kept = [line for line in lines if line and not line.startswith("#") and line.split()[0] in LIMITS]
    assert {line.split()[0] for line in kept} >= {"max_queued_messages", "message_size_limit", "max_inflight_messages"}
    return "\n".join(kept)


def pongs(province: Province, prefix: str) -> set[str]:
    with province._new:
        return {e["id"] for e in province.events if e["event"] == "pong" and e["id"].startswith(prefix)}


def test_lost_pubacks_stall_the_window_and_the_station_reconnects_and_resends(tmp_path):
    broker = start_mosquitto(tmp_path)
    relay = PubackDropper(broker.port)
    province = Province(broker.host, broker.port, client_id="province-stall")
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, relay.port, f"wav:{tmp_path / 'aired'}")).start()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        relay.drop_pubacks.set()  # the broker is losing what it queues to the station
        for n in range(WINDOW + 10):
            province.send({"type": "ping", "id": f"lost-{n}"})
        province.wait(lambda: relay.dropped >= WINDOW, 30, "a full in-flight window of lost PUBACKs")
        relay.drop_pubacks.clear()  # the flood is over; the connection never dropped
        province.send({"type": "ping", "id": "after"})
        province.wait_for("after", "pong", 60)
        province.wait(lambda: len(pongs(province, "lost-")) == WINDOW + 10, 30, "every pong sent during the loss")
        assert relay.connections >= 2, "the station reconnected to get out of the stall"
        province.wait(lambda: province.states[-1]["link"]["stalls"] >= 1, 30, "a stall in the state")
        last = province.states[-1]
        assert last["link"]["stalls"] >= 1, last["link"]
        assert last["link"]["last_stall_at"] and "no PUBACK" in last["link"]["last_stall"]
        assert_in_order_without_gaps(province)  # resent, deduplicated by seq, none missing
        status = station.control({"cmd": "status"})
        assert status["health"] == [], status
        assert station.alive()
    finally:
        code = station.stop()
        province.close()
        relay.close()
        broker.stop()
    assert code == 0, station.log()


class Flooder:
    """A misbehaving client: QoS 0 commands of FLOOD_BYTES, as fast as the broker takes them."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(200)  # back-pressure from the socket, not a huge local queue
        self.client.connect(host, port)
        self.client.loop_start()
        self.topic = topic
        self.sent = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        junk = b"{" + b"x" * (FLOOD_BYTES - 1)  # not JSON: each one a rejection, if it gets through
        deadline = time.monotonic() + FLOOD_MAX_S
        while self.sent < FLOOD_COUNT and time.monotonic() < deadline:
            if self.client.publish(self.topic, junk, qos=0).rc == mqtt.MQTT_ERR_SUCCESS:
                self.sent += 1
            else:
                time.sleep(0.001)  # the local queue is full: the broker is reading slower
        self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_shipped_broker_limits_refuse_oversize_and_receipts_flow_through_a_qos0_flood(tmp_path):
    broker = start_mosquitto(tmp_path, shipped_limits())
    province = Province(broker.host, broker.port, client_id="province-flood")
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}")).start()
    flooder = None
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        # Over the protocol's MAX_PAYLOAD: the broker drops it (an MQTT 5 sender at QoS 1 gets PUBACK 0x95).
        big = b'{"type":"bulletin","id":"big-1","text":"' + b"a" * MAX_PAYLOAD + b'"}'
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sender.connect(broker.host, broker.port)
        sender.loop_start()
        sender.publish(f"{province.base}/cmd", big, qos=0).wait_for_publish(10)
        sender.disconnect()
        sender.loop_stop()
        province.send({"type": "ping", "id": "before"})
        province.wait_for("before", "pong", 30)
        assert province.of("big-1") == [], "the oversize command reached the station"
        assert "Dropped too large PUBLISH" in broker.log()

        flooder = Flooder(broker.host, broker.port, f"{province.base}/cmd")
        flooder.thread.start()
        n = 0
        while not flooder.done.is_set():  # pings while it floods, answered while it floods
            province.send({"type": "ping", "id": f"during-{n}"})
            province.wait_for(f"during-{n}", "pong", 60)
            n += 1
        assert flooder.sent == FLOOD_COUNT, f"the flood was cut short at {flooder.sent}"
        assert n >= 1
        province.send({"type": "ping", "id": "after"})
        province.wait_for("after", "pong", 60)
        last = province.states[-1]
        assert last["online"] and last["link"]["state"] == "connected", last
        assert station.control({"cmd": "status"})["health"] == []
        received = {e["seq"] for e in distinct_by_seq(province.events)}
        assert len(received) == max(received) - min(received) + 1, "an event is missing"
        assert station.alive()
    finally:
        if flooder is not None:
            flooder.close()
        code = station.stop()
        province.close()
        broker.stop()
    assert code == 0, station.log()
