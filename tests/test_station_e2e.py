"""End to end: a bulletin over a real Mosquitto becomes speech on the audio output."""

from __future__ import annotations

import numpy as np
import pytest

from loaxa.testing.audio import read_wav, voiced_seconds, wait_for_files, with_alsa_file
from loaxa.testing.station import StationProcess, station_config

TEXT = "Ủy ban nhân dân xã thông báo. Sáng mai toàn xã ra quân làm vệ sinh môi trường. Đề nghị bà con tham gia đầy đủ."


@pytest.fixture
def wav_station(tmp_path, broker, operator):
    out = tmp_path / "aired"
    station = StationProcess(tmp_path / "station", station_config(tmp_path / "station", broker.port, f"wav:{out}"))
    station.start()
    station.out = out
    operator.wait_state(lambda st: st["online"], 30)
    yield station
    code = station.stop()
    assert code == 0, station.log()


def test_bulletin_is_received_started_finished_and_the_recording_holds_the_speech(wav_station, operator):
    operator.send({"type": "bulletin", "id": "tb-001", "text": TEXT})
    operator.wait_for("tb-001", "finished", 60)
    assert operator.of("tb-001") == ["received", "started", "finished"]
    [wav] = wait_for_files(wav_station.out, 1)
    samples, rate = read_wav(wav)
    speech_s = voiced_seconds(samples, rate)
    # three short sentences of espeak-ng speech, plus two chimes
    assert 4.0 < speech_s < 20.0, speech_s
    assert np.abs(samples).max() > 0.1


def test_events_carry_the_station_and_a_sequence(wav_station, operator):
    operator.send({"type": "bulletin", "id": "tb-002", "text": "Xin chào bà con."})
    finished = operator.wait_for("tb-002", "finished", 60)
    received = operator.wait_for("tb-002", "received")
    assert finished["station"] == "hue/phu-vang/loa-1"
    assert finished["rev"] == 1
    assert received["seq"] < finished["seq"]


def test_real_alsa_path_hears_what_was_played(tmp_path, broker, operator):
    env, raw = with_alsa_file(tmp_path)
    root = tmp_path / "alsa-station"
    station = StationProcess(root, station_config(root, broker.port, "default"), env=env).start()
    try:
        operator.wait_state(lambda st: st["online"], 30)
        operator.send({"type": "bulletin", "id": "alsa-1", "text": "Xin chào bà con. Hôm nay trời nắng đẹp."})
        operator.wait_for("alsa-1", "finished", 60)
    finally:
        assert station.stop() == 0, station.log()
    samples = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float32) / 32768
    assert voiced_seconds(samples, 22050) > 1.5
