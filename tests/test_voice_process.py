"""The neural voice in its own process: same answers, and crashes cost only that process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loaxa.config import TextSettings, TtsSettings
from loaxa.errors import VoiceError
from loaxa.speech.espeak import EspeakVoice
from loaxa.speech.pipeline import Speaker, build_speaker
from loaxa.speech.piper import NeuralVoice
from loaxa.speech.runtime_probe import probe_runtime
from loaxa.speech.voice_process import BACKOFF_FIRST_S, VoiceProcess
from loaxa.testing.tinyvoice import decode_ids, make_tiny_voice

TEXT = "Xin chào bà con, hôm nay trời mưa to. Thông báo khẩn: nước lũ dâng cao!"
TWO = "Xin chào bà con. Hôm nay trời nắng đẹp, bà con ra đồng làm việc."


def wait_until(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.02)


def crashing_onnxruntime(tmp_path: Path, how: str) -> dict[str, str]:
    """An environment whose `import onnxruntime` dies the way a Pi 4 sees it."""
    fake = tmp_path / "fake-ort" / "onnxruntime"
    fake.mkdir(parents=True)
    body = {
        "sigill": "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n",
        "missing": "raise ImportError('libonnxruntime.so: cannot open shared object file')\n",
    }[how]
    (fake / "__init__.py").write_text(body, encoding="utf-8")
    return {"PYTHONPATH": str(fake.parent)}


@pytest.fixture()
def fallback() -> EspeakVoice:
    voice = EspeakVoice("vi")
    voice.synthesize("xin chào")  # its worker is up: timings below measure the hand-over only
    yield voice
    voice.close()


def test_the_process_answers_like_the_voice_in_this_process(tmp_path: Path) -> None:
    onnx = make_tiny_voice(tmp_path)
    local = NeuralVoice.load(onnx, threads=1)
    remote = VoiceProcess.start(onnx, threads=1)
    try:
        assert (remote.name, remote.sample_rate, remote.identity) == (local.name, local.sample_rate, local.identity)
        assert remote.pieces(TEXT, first_max=20) == local.pieces(TEXT, first_max=20)
        ids = remote.phonemes_to_ids(remote.pieces(TEXT)[0])
        assert ids == local.phonemes_to_ids(local.pieces(TEXT)[0])
        audio = remote.ids_to_audio(ids, rate=1.0)
        assert audio.dtype == np.float32 and decode_ids(audio) == ids
        np.testing.assert_array_equal(audio, local.ids_to_audio(ids))
        np.testing.assert_array_equal(remote.synthesize(TEXT), local.synthesize(TEXT))
    finally:
        remote.close()
        local.close()


def test_the_daemon_side_never_imports_onnxruntime(tmp_path: Path) -> None:
    onnx = make_tiny_voice(tmp_path / "voices")
    script = f"""
import json, sys
from loaxa.config import TextSettings, TtsSettings
from loaxa.speech.pipeline import build_speaker
sp = build_speaker(TtsSettings(voice={str(onnx)!r}, threads=1), TextSettings(), 22050)
voices = [c.voice for c in sp.chunks(sp.sentences("Xin chào bà con. Tạm biệt."))]
sp.close()
print(json.dumps({{"voices": voices, "ort": "onnxruntime" in sys.modules, "piper": "piper" in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"voices": ["piper:xx_XX-tiny-x_low"] * 2, "ort": False, "piper": False}


@pytest.mark.parametrize("crash, signal_words", [("segv", "SIGSEGV (signal 11)"), ("abort", "SIGABRT (signal 6)")])
def test_a_crash_mid_bulletin_hands_the_rest_to_espeak_at_once_and_the_voice_comes_back(
    tmp_path: Path, fallback: EspeakVoice, crash: str, signal_words: str
) -> None:
    voice = VoiceProcess.start(make_tiny_voice(tmp_path, crash=crash, crash_run=2), threads=1)
    sp = Speaker(voice, fallback, TtsSettings(deadline_s=20.0), TextSettings(), 22050)
    try:
        seen: list[tuple[int, str, float]] = []
        for chunk in sp.chunks(sp.sentences(TWO)):
            seen.append((chunk.index, chunk.voice, time.monotonic()))
        assert [(i, v) for i, v, _ in seen] == [(0, "piper:xx_XX-tiny-x_low"), (1, "espeak:vi")]
        # the death is seen on the pipe at once, not at the 20 s deadline (one espeak sentence included)
        assert seen[1][2] - seen[0][2] < 5.0
        status = sp.status()
        assert status["fallback"] is True and status["name"] == "espeak:vi"
        assert f"neural voice process died: {signal_words}" in str(status["reason"])
        wait_until(lambda: voice.problem() is None, 30, "the voice process restarts")
        assert voice.restarts == 1
        assert "restarted since" in str(sp.status()["reason"])
        assert [c.voice for c in sp.chunks(sp.sentences("Tạm biệt bà con."))] == ["piper:xx_XX-tiny-x_low"]
        assert sp.status() == {"engine": "piper", "name": "piper:xx_XX-tiny-x_low", "fallback": False, "reason": None}
    finally:
        sp.close()


def test_a_hung_process_is_killed_at_the_deadline_and_restarted(tmp_path: Path, fallback: EspeakVoice) -> None:
    voice = VoiceProcess.start(make_tiny_voice(tmp_path, crash="hang", crash_run=1), threads=1, deadline_s=1.0)
    sp = Speaker(voice, fallback, TtsSettings(deadline_s=1.0), TextSettings(), 22050)
    try:
        assert {c.voice for c in sp.chunks(sp.sentences(TWO))} == {"espeak:vi"}
        assert "1 s" in str(sp.status()["reason"])
        wait_until(lambda: voice.problem() is None, 30, "the voice process restarts")
        assert [c.voice for c in sp.chunks(sp.sentences("Tạm biệt."))] == ["piper:xx_XX-tiny-x_low"]
    finally:
        sp.close()


def test_a_request_past_its_deadline_names_the_deadline(tmp_path: Path) -> None:
    voice = VoiceProcess.start(make_tiny_voice(tmp_path, crash="hang", crash_run=1), threads=1, deadline_s=0.5)
    try:
        with pytest.raises(VoiceError, match="did not answer within 0.5 s"):
            voice.ids_to_audio([1, 0, 2])
        assert voice.problem() == "neural voice process did not answer within 0.5 s; restarting it"
    finally:
        voice.close()


def test_restarts_back_off_while_the_process_keeps_dying(tmp_path: Path) -> None:
    voice = VoiceProcess.start(make_tiny_voice(tmp_path, crash="exit", crash_run=1, crash_once=False), threads=1)
    try:
        delays = []
        for _ in range(3):
            with pytest.raises(VoiceError, match="died: exit code 70"):
                voice.ids_to_audio([1, 0, 2])
            delays.append(voice.restart_delay_s)
            with pytest.raises(VoiceError, match="unavailable: .*restarting it"):
                voice.ids_to_audio([1, 0, 2])  # while it is down, requests fail at once
            wait_until(lambda: voice.problem() is None, 60, "the voice process restarts")
        assert delays == [BACKOFF_FIRST_S, 2 * BACKOFF_FIRST_S, 4 * BACKOFF_FIRST_S]
    finally:
        voice.close()


def test_a_voice_process_dying_while_voicing_ahead_shows_in_the_status(tmp_path: Path, fallback: EspeakVoice) -> None:
    from loaxa.speech.cache import AudioCache

    voice = VoiceProcess.start(make_tiny_voice(tmp_path, crash="segv", crash_run=1), threads=1)
    sp = Speaker(voice, fallback, TtsSettings(), TextSettings(), 22050, cache=AudioCache(tmp_path / "c", 10**7))
    try:
        with pytest.raises(VoiceError):
            sp.prepare("Xin chào bà con.")
        status = sp.status()
        assert status["fallback"] is True and "SIGSEGV" in str(status["reason"])
        wait_until(lambda: sp.status()["fallback"] is False, 30, "the restarted voice shows in the status")
    finally:
        sp.close()


@pytest.mark.parametrize(
    "how, words",
    [
        ("sigill", "died while importing onnxruntime: SIGILL (signal 4)"),
        ("missing", "onnxruntime cannot be imported: ImportError: libonnxruntime.so"),
    ],
)
def test_a_process_that_cannot_import_onnxruntime_means_espeak_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, words: str
) -> None:
    onnx = make_tiny_voice(tmp_path / "voices")
    for key, value in crashing_onnxruntime(tmp_path, how).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(VoiceError, match=re.escape(words)):
        VoiceProcess.start(onnx)
    sp = build_speaker(TtsSettings(voice=str(onnx)), TextSettings(), 22050)
    try:
        status = sp.status()
        assert status["fallback"] is True and status["name"] == "espeak:vi" and words in str(status["reason"])
        assert [c.voice for c in sp.chunks(sp.sentences("Xin chào."))] == ["espeak:vi"]
    finally:
        sp.close()


def test_the_runtime_probe_says_whether_this_cpu_runs_onnxruntime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = probe_runtime()
    assert good.ok and "ran xx_XX-tiny-x_low.onnx" in good.verdict, good
    for key, value in crashing_onnxruntime(tmp_path, "sigill").items():
        monkeypatch.setenv(key, value)
    bad = probe_runtime()
    assert not bad.ok
    assert bad.verdict == (
        f"onnxruntime {bad.version} crashed on import with SIGILL: this CPU cannot run it; "
        "the station speaks with espeak-ng"
    )


def test_closing_ends_the_process_and_concurrent_callers_take_turns(tmp_path: Path) -> None:
    voice = VoiceProcess.start(make_tiny_voice(tmp_path), threads=1)
    ids = voice.phonemes_to_ids(list("ban"))
    results: list[list[int]] = []

    def speak() -> None:
        for _ in range(20):
            results.append(decode_ids(voice.ids_to_audio(ids)))

    threads = [threading.Thread(target=speak) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [ids] * 60  # answers never cross between callers
    pid = voice._child.proc.pid  # type: ignore[union-attr]
    voice.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(VoiceError, match="unavailable"):
        voice.ids_to_audio(ids)
