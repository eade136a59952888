"""What a technician does at the station: status, say, play, ping."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.errors import ControlError
from loaxa.testing.audio import read_wav, voiced_seconds, wait_for_files
from loaxa.testing.broker import free_port, start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config


def loaxa(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loaxa", *args], capture_output=True, text=True, input=input, timeout=timeout
    )


@pytest.fixture
def setup(tmp_path):
    broker = start_mosquitto(tmp_path)
    operator = Operator(broker.host, broker.port)
    out = tmp_path / "aired"
    station = StationProcess(tmp_path / "st", station_config(tmp_path / "st", broker.port, f"wav:{out}")).start()
    operator.wait_state(lambda st: st["online"], 30)
    yield station, operator, out
    assert station.stop() == 0, station.log()
    operator.close()
    broker.stop()


def test_status_reads_the_running_daemon(setup):
    station, _, _ = setup
    result = loaxa("status", "--json", "--config", str(station.config_path))
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["state"]["station"] == "hue/phu-vang/loa-1"
    assert reply["state"]["online"] is True
    assert reply["health"] == []
    table = loaxa("status", "--config", str(station.config_path))
    assert "hue/phu-vang/loa-1" in table.stdout and "espeak:vi" in table.stdout


def test_status_without_a_daemon_says_so(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(station_config(tmp_path, 1883, "wav:" + str(tmp_path))))
    result = loaxa("status", "--config", str(config))
    assert result.returncode == 1
    assert "no loaxa daemon is running" in result.stderr


def test_say_goes_through_the_daemon_and_is_reported(setup):
    station, operator, out = setup
    result = loaxa("say", "--config", str(station.config_path), "Xin chào bà con. Đây là buổi thử loa.")
    assert result.returncode == 0, result.stderr + station.log()
    assert "played by the daemon" in result.stdout
    [wav] = wait_for_files(out, 1)
    samples, rate = read_wav(wav)
    assert voiced_seconds(samples, rate) > 1.5
    ids = {ev["id"] for ev in operator.events if ev["event"] == "finished"}
    assert any(i.startswith("say-") for i in ids)


def test_play_a_file_through_the_daemon(setup, tmp_path):
    station, _, out = setup
    path = tmp_path / "tone.wav"
    t = np.arange(22050 * 2) / 22050
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes((0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes())
    result = loaxa("play", "--no-chime", "--config", str(station.config_path), str(path))
    assert result.returncode == 0, result.stderr + station.log()
    [wav] = wait_for_files(out, 1)
    samples, rate = read_wav(wav)
    assert 1.8 < voiced_seconds(samples, rate, threshold=0.1) < 2.3


def test_say_to_a_file_without_a_daemon(tmp_path):
    out = tmp_path / "out.wav"
    result = loaxa(
        "say",
        "--text",
        "Xin chào bà con. Hôm nay trời đẹp.",
        "--output",
        str(out),
        "--silence-duration",
        "0.2",
        "--rate",
        "1.0",
    )
    assert result.returncode == 0, result.stderr
    samples, rate = read_wav(out)
    assert rate == 22050 and voiced_seconds(samples, rate) > 1.0


def test_say_here_without_a_daemon_plays_on_the_configured_output(tmp_path):
    out = tmp_path / "aired"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(station_config(tmp_path, 1883, f"wav:{out}")))
    result = loaxa("say", "--config", str(config), "Xin chào.")
    assert result.returncode == 0, result.stderr
    assert "played here" in result.stdout
    [wav] = wait_for_files(out, 1)
    samples, rate = read_wav(wav)
    assert voiced_seconds(samples, rate) > 1.0  # the chimes and the words


def test_ping_answers_on_the_event_topic_and_the_response_topic(setup):
    _, operator, _ = setup
    replies: list[tuple[str, bytes]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: replies.append((m.topic, m.properties.CorrelationData))
    host, port = operator.client.host, operator.client.port
    client.connect(host, port)
    reply_topic = f"{operator.base}/response/ops/1"  # the station's response namespace (issue 17)
    client.subscribe(reply_topic, qos=1)
    client.loop_start()
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = b"corr-42"
        client.publish(
            f"{operator.base}/cmd", b'{"type":"ping","id":"ping-7"}', qos=1, properties=props
        ).wait_for_publish(5)
        pong = operator.wait_for("ping-7", "pong", 20)
        assert pong["station"] == "hue/phu-vang/loa-1"
        deadline = time.monotonic() + 10
        while not replies and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replies == [(reply_topic, b"corr-42")]
    finally:
        client.loop_stop()
        client.disconnect()


def test_duplicate_and_older_revisions(setup):
    _, operator, _ = setup
    operator.send({"type": "bulletin", "id": "dup-1", "rev": 2, "text": "Xin chào."})
    operator.wait_for("dup-1", "finished", 60)
    operator.send({"type": "bulletin", "id": "dup-1", "rev": 2, "text": "Xin chào."})
    assert "already received" in operator.wait_for("dup-1", "duplicate", 20)["detail"]
    operator.send({"type": "bulletin", "id": "dup-1", "rev": 1, "text": "Xin chào."})
    assert "older than rev 2" in operator.wait_for("dup-1", "rejected", 20)["detail"]
    assert operator.of("dup-1") == ["received", "started", "finished", "duplicate", "rejected"]


def test_without_a_broker_the_station_says_so_and_still_plays_here(tmp_path):
    """Broker unreachable: `status` once said online with empty health; now the fault is named."""
    out = tmp_path / "aired"
    station = StationProcess(tmp_path / "st", station_config(tmp_path / "st", free_port(), f"wav:{out}")).start()
    try:
        deadline = time.monotonic() + 30
        reply: dict = {}
        while time.monotonic() < deadline:
            try:
                reply = station.control({"cmd": "status"})
            except ControlError:  # the socket appears once the daemon is up
                time.sleep(0.2)
                continue
            if reply["faults"]:
                break
            time.sleep(0.2)
        link = reply["state"]["link"]
        assert link["state"] == "disconnected" and "refused" in link["error"]
        assert any(f.startswith("broker 127.0.0.1:") and "refused" in f for f in reply["faults"])
        assert reply["health"] == []  # the loops are fine: no watchdog restart for a missing broker
        said = loaxa("say", "--config", str(station.config_path), "Xin chào bà con.")
        assert said.returncode == 0, said.stderr
        assert wait_for_files(out, 1, 10)
        table = loaxa("status", "--config", str(station.config_path))
        assert "disconnected" in table.stdout and "faults" in table.stdout
        doctor = loaxa("doctor", "--json", "--config", str(station.config_path))
        service = next(f for f in json.loads(doctor.stdout) if f["check"] == "service")
        assert service["status"] == "FAIL" and "broker 127.0.0.1:" in service["detail"], service
    finally:
        assert station.stop() == 0, station.log()
