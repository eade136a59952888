"""config/mosquitto/bridge.example.conf: a district relay broker bridged to the province.

Two real Mosquitto brokers. The relay runs the example file as shipped,
except the remote login lines (TLS and password towards the province),
which become a plain loopback connection. Stations connect to the relay and
the operator to the province, each exactly as without a relay.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from loaxa.cli import main
from loaxa.province.simfleet import SimFleet, sim_settings
from loaxa.testing.broker import Broker, start_mosquitto
from test_fleet_helpers import wait_online

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "mosquitto" / "bridge.example.conf"
REMOTE_LOGIN = ("remote_username", "remote_password", "bridge_cafile", "bridge_tls_version")
STATIONS = [("ha-noi", "ba-vi", "loa-1"), ("ha-noi", "son-tay", "loa-1")]


def relay_conf(province: Broker) -> str:
    lines = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        key = line.split(" ", 1)[0]
        if key in REMOTE_LOGIN:
            continue
        if key == "address":
            line = f"address {province.host}:{province.port}"
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture()
def relay(tmp_path: Path) -> tuple[Broker, Broker, SimFleet]:
    province = start_mosquitto(tmp_path / "province")
    district = start_mosquitto(tmp_path / "district", relay_conf(province))
    fleet = SimFleet(
        [sim_settings(tmp_path / "st" / p[1], district.host, district.port, p, ("flood",)) for p in STATIONS]
    )
    fleet.start()
    try:
        wait_online(province, ["/".join(p) for p in STATIONS])  # retained state crossed the bridge
        yield province, district, fleet
    finally:
        fleet.stop()
        district.stop()
        province.stop()


def publish(province: Broker, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["publish", *argv, "--json", "--timeout", "30", "--host", province.host, "--port", str(province.port)])
    return code, json.loads(capsys.readouterr().out)


def test_example_bridges_commands_in_and_receipts_out(
    relay: tuple[Broker, Broker, SimFleet], capsys: pytest.CaptureFixture[str]
) -> None:
    province, _, _ = relay
    code, out = publish(province, capsys, "--province", "ha-noi", "--text", "Qua trạm chuyển tiếp huyện.")
    assert code == 0 and out["counts"]["expected"] == 2 and out["counts"]["finished"] == 2
    code, out = publish(province, capsys, "--group", "ha-noi/flood", "--text", "Nhóm lũ.")
    assert code == 0 and out["counts"]["finished"] == 2


def test_commands_sent_while_the_relay_is_down_arrive_when_it_returns(relay: tuple[Broker, Broker, SimFleet]) -> None:
    province, district, _ = relay
    finished = threading.Event()

    def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        if body.get("id") == "mat-ket-noi" and body.get("event") == "finished":
            finished.set()

    observer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    observer.on_message = on_message
    observer.connect(province.host, province.port)
    observer.subscribe("loaxa/v1/ha-noi/+/+/event", 1)
    observer.loop_start()
    try:
        district.stop()  # the relay and its bridge are gone; the province queues for the bridge's session
        argv = [
            "publish",
            "--commune",
            "ha-noi/ba-vi",
            "--id",
            "mat-ket-noi",
            "--text",
            "Gửi khi mất kết nối.",
            "--wait",
            "none",
        ]
        assert main([*argv, "--host", province.host, "--port", str(province.port)]) == 0
        district.start()  # same port and persistence: the bridge and the stations resume their sessions
        assert finished.wait(45), district.log()[-2000:]
    finally:
        observer.disconnect()
        observer.loop_stop()


def test_example_file_keeps_the_protocol_topics() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    topics = re.findall(r"^topic (\S+) (in|out) 1$", text, re.M)
    assert ("loaxa/v1/ha-noi/cmd", "in") in topics and ("loaxa/v1/ha-noi/group/+/cmd", "in") in topics
    assert all(t.endswith("/cmd") for t, d in topics if d == "in")
    assert all(t.endswith(("/state", "/event", "/response/#")) for t, d in topics if d == "out")
    assert re.search(r"^cleansession false$", text, re.M) and re.search(r"^remote_clientid \S+$", text, re.M)
