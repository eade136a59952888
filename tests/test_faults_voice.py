"""The neural voice crashing or hanging, seen from the whole station.

The pipeline's own tests cover the hand-over inside `Speaker`; here a real
daemon is configured with a broken or a hanging Piper model (the tiny test
voice in its `fail` and `hang` modes). It starts, airs the bulletin with
the espeak-ng fallback, and its retained state says fallback and why.
"""

from __future__ import annotations

import pytest

from loaxa.testing.audio import read_wav, voiced_seconds, wait_for_files
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config
from loaxa.testing.tinyvoice import make_tiny_voice


@pytest.mark.parametrize("mode, why", [("fail", "unavailable"), ("hang", "1 s")])
def test_a_station_with_a_broken_or_hanging_voice_airs_the_bulletin_with_the_fallback(tmp_path, mode, why):
    onnx = make_tiny_voice(tmp_path / "voices", mode=mode)
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    root = tmp_path / "station"
    out = tmp_path / "aired"
    config = station_config(root, broker.port, f"wav:{out}", tts__voice=str(onnx), tts__deadline_s=1.0)
    station = StationProcess(root, config).start()
    try:
        st = op.wait_state(lambda st: st["online"], 60)
        voice = st["voice"]
        assert voice["fallback"] is True and voice["name"] == "espeak:vi", voice
        assert why in voice["reason"] and "xx_XX-tiny-x_low" in voice["reason"], voice
        op.send({"type": "bulletin", "id": f"v-{mode}", "text": "Xin chào bà con. Hôm nay trời nắng đẹp."})
        finished = op.wait_for(f"v-{mode}", "finished", 60)
        assert "voice espeak:vi" in finished["detail"]
        assert op.of(f"v-{mode}") == ["received", "started", "finished"]
        [wav] = wait_for_files(out, 1)
        samples, rate = read_wav(wav)
        assert voiced_seconds(samples, rate) > 1.0
    finally:
        code = station.stop()
        op.close()
        broker.stop()
    assert code == 0, station.log()
