"""Audio device faults: missing at start, vanishing mid-bulletin.

The station names its device (`audio.output: loaxa-speaker`); the device is
an ALSA pcm defined in ~/.asoundrc that writes into a pipe drained in real
time (see `FifoSpeaker`). Missing, it is retried by name and reported in
the state; the daemon never crashes; when it comes back the bulletin plays,
resuming from the sentence where the sound stopped.
"""

from __future__ import annotations

import time

import pytest

from loaxa.testing.audio import RATE, FifoSpeaker, voiced_seconds
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

THREE = (
    "Thông báo của ủy ban nhân dân xã về lịch tiêm phòng. Sáng thứ hai, cán bộ thú y đến từng thôn. "
    "Mọi thắc mắc xin liên hệ trưởng thôn."
)


@pytest.fixture
def rig(tmp_path):
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    speaker = FifoSpeaker(tmp_path)
    root = tmp_path / "station"
    config = station_config(root, broker.port, speaker.name, audio__chime=False, audio__retry_s=0.5)
    station = StationProcess(root, config, env=speaker.env)
    yield op, speaker, station
    code = station.stop()
    speaker.unplug()
    op.close()
    broker.stop()
    assert code == 0, station.log()


def audio_error(st: dict) -> str | None:
    return st.get("audio", {}).get("error")


def test_device_missing_at_start_is_retried_by_name_reported_and_plays_when_it_appears(rig):
    op, speaker, station = rig
    station.start()
    op.wait_state(lambda st: st["online"], 30)
    op.send({"type": "bulletin", "id": "dev-1", "text": "Xin chào bà con."})
    st = op.wait_state(lambda st: audio_error(st) is not None, 30)
    assert "no sound device named 'loaxa-speaker'; devices found: " in audio_error(st)  # in words (issue 12)
    held = op.wait_for("dev-1", "held", 10)  # the province hears why nothing airs, in words
    assert held["detail"].startswith("audio output unavailable: no sound device named 'loaxa-speaker'")
    time.sleep(1.5)  # a few retries
    assert station.alive()
    assert op.of("dev-1") == ["received", "held"]  # once per cause, not once per retry
    speaker.plug_in()  # PortAudio is re-initialised after a failure, and ALSA re-reads the file
    op.wait_for("dev-1", "finished", 30)
    assert speaker.heard(0.5) > 0.5
    op.wait_state(lambda st: st["online"] and audio_error(st) is None, 70)


def test_device_vanishing_mid_bulletin_is_reported_and_the_bulletin_resumes_when_it_returns(rig):
    op, speaker, station = rig
    speaker.plug_in()
    station.start()
    op.wait_state(lambda st: st["online"], 30)
    op.send({"type": "bulletin", "id": "dev-2", "text": THREE})
    op.wait_for("dev-2", "started", 30)
    time.sleep(1.0)
    speaker.unplug()
    st = op.wait_state(lambda st: audio_error(st) is not None, 30)
    assert "loaxa-speaker" in audio_error(st)
    assert station.alive()
    heard_before = voiced_seconds(speaker.samples(), RATE)
    speaker.plug_in()
    op.wait_for("dev-2", "finished", 60)
    events = op.of("dev-2")
    assert events[:2] == ["received", "started"] and events[-1] == "finished"
    assert "resumed" in events and "failed" not in events
    assert speaker.heard(heard_before + 1.0) > heard_before + 1.0
    op.wait_state(lambda st: audio_error(st) is None, 70)
