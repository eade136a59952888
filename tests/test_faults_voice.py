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


@pytest.mark.parametrize("crash, signal_words", [("segv", "SIGSEGV (signal 11)"), ("abort", "SIGABRT (signal 6)")])
def test_a_voice_process_crash_mid_bulletin_finishes_it_with_espeak_then_the_neural_voice_returns(
    tmp_path, crash, signal_words
):
    # the second model run (the bulletin's second sentence) kills the voice process, once
    onnx = make_tiny_voice(tmp_path / "voices", crash=crash, crash_run=2)
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    root = tmp_path / "station"
    out = tmp_path / "aired"
    config = station_config(root, broker.port, f"wav:{out}", tts__voice=str(onnx))
    station = StationProcess(root, config).start()
    try:
        st = op.wait_state(lambda st: st["online"], 60)
        assert st["voice"]["fallback"] is False and st["voice"]["name"] == "piper:xx_XX-tiny-x_low", st["voice"]
        op.send({"type": "bulletin", "id": "c-1", "text": "Xin chào bà con. Hôm nay trời nắng đẹp."})
        finished = op.wait_for("c-1", "finished", 60)
        assert "voice espeak:vi" in finished["detail"]
        assert op.of("c-1") == ["received", "started", "finished"]  # one session: no cut, no second chime
        [wav] = wait_for_files(out, 1)
        samples, rate = read_wav(wav)
        assert voiced_seconds(samples, rate) > 1.0
        st = op.wait_state(lambda st: "restarted since" in str(st["voice"]["reason"]), 60)
        assert st["voice"]["fallback"] is True and f"neural voice process died: {signal_words}" in st["voice"]["reason"]
        op.send({"type": "bulletin", "id": "c-2", "text": "Tạm biệt bà con."})
        finished = op.wait_for("c-2", "finished", 60)
        assert "voice piper:xx_XX-tiny-x_low" in finished["detail"]
        assert op.of("c-2") == ["received", "started", "finished"]
        st = op.wait_state(lambda st: st["voice"]["fallback"] is False, 30)
        assert st["voice"] == {"engine": "piper", "name": "piper:xx_XX-tiny-x_low", "fallback": False, "reason": None}
    finally:
        code = station.stop()
        op.close()
        broker.stop()
    assert code == 0, station.log()


def test_a_station_whose_onnxruntime_crashes_on_import_speaks_with_espeak_and_says_why(tmp_path):
    onnx = make_tiny_voice(tmp_path / "voices")
    fake = tmp_path / "fake-ort" / "onnxruntime"
    fake.mkdir(parents=True)
    # what onnxruntime 1.21 does on a Pi 4; the daemon itself would die here if it imported onnxruntime
    (fake / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n", encoding="utf-8")
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    root = tmp_path / "station"
    out = tmp_path / "aired"
    config = station_config(root, broker.port, f"wav:{out}", tts__voice=str(onnx))
    station = StationProcess(root, config, env={"PYTHONPATH": str(fake.parent)}).start()
    try:
        st = op.wait_state(lambda st: st["online"], 60)
        assert st["voice"]["fallback"] is True and st["voice"]["name"] == "espeak:vi", st["voice"]
        assert "died while importing onnxruntime: SIGILL (signal 4)" in st["voice"]["reason"]
        op.send({"type": "bulletin", "id": "i-1", "text": "Xin chào bà con."})
        finished = op.wait_for("i-1", "finished", 60)
        assert "voice espeak:vi" in finished["detail"]
    finally:
        code = station.stop()
        op.close()
        broker.stop()
    assert code == 0, station.log()
