"""The station link says whether it is connected and why not, and logs connection trouble with back-off."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loaxa.config import MqttSettings
from loaxa.link import FailureLog, Link
from loaxa.testing.broker import Broker, free_port, start_mosquitto
from loaxa.topics import Topics

WAIT_S = 15.0


def wait_for(what: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return what()


def link_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "loaxa.link" and r.levelno >= logging.WARNING]


@pytest.fixture
def make_link() -> Iterator[Callable[[int], Link]]:
    made: list[Link] = []

    def make(port: int) -> Link:
        settings = MqttSettings(host="127.0.0.1", port=port, reconnect_max_s=1.0, keepalive_s=5)
        topics = Topics(settings.prefix, "hn", "xa-a", "loa-1")
        link = Link(settings, f"t-link-{port}", topics.commands, None, lambda payload, retained, meta: None)
        made.append(link)
        return link

    yield make
    for link in made:
        link.stop()


def test_a_closed_port_is_reported_not_connected_with_the_reason(make_link, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loaxa.link")
    port = free_port()  # nothing listens there
    link = make_link(port)
    assert link.status()["state"] == "connecting"
    link.start()
    assert wait_for(lambda: link.status()["failed_attempts"] >= 4), link.status()
    status = link.status()
    assert status["state"] == "disconnected"
    assert status["broker"] == f"127.0.0.1:{port}"
    assert "refused" in status["error"].lower()
    assert status["since"]  # an ISO time
    # Four attempts in a few seconds, one log line: the first failure, at once.
    warnings = link_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{port}" in warnings[0] and "refused" in warnings[0].lower()
    link.stop()
    assert link.status()["state"] == "stopped"


def test_a_lost_broker_is_reported_and_so_is_its_return(
    tmp_path: Path, make_link, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loaxa.link")
    broker: Broker = start_mosquitto(tmp_path)
    try:
        link = make_link(broker.port)
        link.start()
        assert wait_for(lambda: link.status()["state"] == "connected"), link.status()
        assert link.status()["error"] is None
        broker.stop()
        assert wait_for(lambda: link.status()["failed_attempts"] >= 2), link.status()
        down = link.status()
        assert down["state"] == "disconnected" and down["error"]
        assert any("link lost" in w for w in link_warnings(caplog)), link_warnings(caplog)
        broker.start()
        assert wait_for(lambda: link.status()["state"] == "connected"), link.status()
        assert link.status()["failed_attempts"] == 0
        back = [r.getMessage() for r in caplog.records if "connected to" in r.getMessage()]
        assert len(back) == 2 and "failed attempt" in back[-1], back
        assert len(link_warnings(caplog)) <= 2  # link lost, first failed reconnect
    finally:
        broker.stop()


def test_a_refused_login_is_reported_as_refused(tmp_path: Path, make_link, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loaxa.link")
    broker = start_mosquitto(tmp_path, anonymous=False)  # and no password file: nobody gets in
    try:
        link = make_link(broker.port)
        link.start()
        assert wait_for(lambda: link.status()["failed_attempts"] >= 3), link.status()
        status = link.status()
        assert status["state"] == "refused"
        assert "not authori" in status["error"].lower()
        assert len(link_warnings(caplog)) == 1, link_warnings(caplog)
    finally:
        broker.stop()


def test_failure_log_backs_off_then_resets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loaxa.link")
    now = [0.0]
    failures = FailureLog(first_s=30, max_s=1800, clock=lambda: now[0])
    for _ in range(7200):  # one failed attempt a second for two hours
        failures.failed("cannot connect")
        now[0] += 1.0
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "cannot connect"  # the first failure, at once
    assert 5 <= len(lines) <= 12, lines  # then 30 s, 60 s, 120 s ... apart, at most 30 min
    assert "failed attempt(s)" in lines[1]
    assert failures.succeeded() == "after 7200 failed attempt(s) in 2.0 h"
    caplog.clear()
    failures.failed("again")
    assert [r.getMessage() for r in caplog.records] == ["again"]  # a new outage is logged at once


def test_a_stalled_in_flight_window_is_counted_and_the_link_reconnects(tmp_path: Path) -> None:
    """Regression "QoS 0 flood wedges the receipts": PUBACKs lost while connected, paho would wait for ever."""
    from mqtt_proxy import PubackDropper

    broker = start_mosquitto(tmp_path)
    relay = PubackDropper(broker.port)
    settings = MqttSettings(host="127.0.0.1", port=relay.port, reconnect_max_s=1.0, keepalive_s=5)
    commands = Topics(settings.prefix, "hn", "xa-a", "loa-1").commands
    link = Link(settings, "t-stall", commands, None, lambda payload, retained, meta: None, ack_timeout_s=1.0)
    try:
        link.start()
        assert wait_for(link.connected.is_set), link.status()
        relay.drop_pubacks.set()
        info = link.publish("t/stall", b"lost ack")
        assert info is not None
        assert not link.check_stall()  # too soon to tell
        assert wait_for(lambda: relay.dropped >= 1)
        assert wait_for(link.check_stall, 5.0)
        relay.drop_pubacks.clear()
        info.wait_for_publish(WAIT_S)  # paho resends it on the new connection, and this time it is acknowledged
        assert info.is_published()
        status = link.status()
        assert status["stalls"] == 1 and "no PUBACK" in status["last_stall"] and status["last_stall_at"]
        assert relay.connections == 2
        assert link.unacked() == (0, 0.0)
    finally:
        link.stop()
        relay.close()
        broker.stop()


def test_each_command_comes_with_the_target_its_topic_names(tmp_path: Path) -> None:
    """Issue 17: the inbox checks a command's `to` against this, so the link must name it right."""
    import queue

    import paho.mqtt.client as mqtt

    broker = start_mosquitto(tmp_path)
    got: queue.Queue[dict] = queue.Queue()
    settings = MqttSettings(host="127.0.0.1", port=broker.port, reconnect_max_s=1.0, keepalive_s=5)
    topics = Topics(settings.prefix, "hn", "xa-a", "loa-1", ("flood",))
    link = Link(settings, "t-link-target", topics.commands, None, lambda payload, retained, meta: got.put(meta))
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    try:
        link.start()
        assert wait_for(lambda: link.status()["state"] == "connected"), link.status()
        assert wait_for(lambda: link.connected.is_set())
        sender.connect(broker.host, broker.port)
        sender.loop_start()
        # The subscriptions are made on connect, a moment after `connected`: probe until one answers.
        for _ in range(50):
            sender.publish(topics.commands[2], b"probe", qos=1).wait_for_publish(5)
            try:
                got.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        expected = {"hn", "hn/xa-a", "hn/xa-a/loa-1", "hn/group/flood"}
        for topic in topics.commands:
            sender.publish(topic, b"{}", qos=1).wait_for_publish(5)
        targets: set[str] = set()
        while not expected <= targets:
            targets.add(got.get(timeout=WAIT_S)["target"])  # a late probe adds hn/xa-a/loa-1 again
        assert targets == expected
    finally:
        sender.loop_stop()
        sender.disconnect()
        link.stop()
        broker.stop()
