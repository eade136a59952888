"""Multi-part bulletins end to end (issue 13, item 3): a real `loaxa run`, Mosquitto, local HTTP, the audio path.

A part in Vietnamese read by the voice and a recorded part (here a 660 Hz
tone, easy to find in what aired: a recording in a minority language in
the field) go out in one on-air session, in order, between one opening and
one closing chime. A recording that cannot be fetched or does not match its
hash fails the bulletin before any sound. An emergency during the second
part cuts in, and the bulletin resumes at that part, not from the top.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from audio_servers import FileServer, tone, write_wav
from loaxa.content import PART_STRIDE
from loaxa.player.chime import chime
from loaxa.testing.audio import read_wav, voiced_seconds, wait_for_files
from loaxa.testing.station import StationProcess, station_config
from test_broadcast_onair import ALARM, LONG, SENTENCES, paced_station, sessions, wait_on_air

RATE = 22050
TONE_HZ = 660.0
TEXT = "Ủy ban nhân dân xã thông báo. Sáng mai toàn xã ra quân làm vệ sinh môi trường."
WINDOW_S = 0.1


def recording(folder: Path, seconds: float) -> tuple[bytes, str]:
    data = write_wav(folder / "hmong.wav", tone(seconds, TONE_HZ)).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def tone_windows(samples: np.ndarray) -> np.ndarray:
    """Per 0.1 s window: True where the window is the recorded part's tone (not speech, not a chime)."""
    step = int(WINDOW_S * RATE)
    n = len(samples) // step
    found = np.zeros(n, bool)
    freqs = np.fft.rfftfreq(step, 1 / RATE)
    band = np.abs(freqs - TONE_HZ) < 40
    for i in range(n):
        window = samples[i * step : (i + 1) * step]
        if np.sqrt(np.mean(window**2)) < 0.05:
            continue
        power = np.abs(np.fft.rfft(window * np.hanning(step))) ** 2
        found[i] = power[band].sum() > 0.9 * power.sum()
    return found


def chimes(samples: np.ndarray, opening: bool) -> list[float]:
    """Where the opening (or closing) chime starts, in seconds: normalised correlation over 0.9, at every lag."""
    template = chime(RATE, opening)[: int(0.9 * RATE)].astype(np.float64)  # its two notes, without the silence
    x = samples.astype(np.float64)
    if len(x) < len(template):
        return []
    size = 1 << (len(x) + len(template)).bit_length()
    dots = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(template, size)), size)[: len(x) - len(template) + 1]
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    norms = np.sqrt(np.maximum(energy[len(template) :] - energy[: -len(template)], 0.0)) * np.linalg.norm(template)
    score = np.where(norms > 1e-6, dots / np.maximum(norms, 1e-12), 0.0)
    hits: list[float] = []
    for offset in np.flatnonzero(score > 0.9):
        at = offset / RATE
        if not hits or at - hits[-1] > 0.5:
            hits.append(at)
    return hits


@pytest.fixture
def station(tmp_path, broker, operator):
    root = tmp_path / "station"
    s = StationProcess(root, station_config(root, broker.port, f"wav:{root / 'aired'}")).start()
    operator.wait_state(lambda st: st["online"], 30)
    yield s
    assert s.stop() == 0, s.log()


def test_a_text_part_and_a_recorded_part_air_in_order_in_one_session_with_one_chime_pair(tmp_path, station, operator):
    data, digest = recording(tmp_path, 1.5)
    with FileServer({"hmong.wav": data}) as server:
        parts = [{"text": TEXT}, {"audio": {"url": server.url("hmong.wav"), "sha256": digest}}]
        operator.send({"type": "bulletin", "id": "two-part", "parts": parts})
        finished = operator.wait_for("two-part", "finished", 60)
    assert operator.of("two-part") == ["received", "started", "finished"]
    [wav] = wait_for_files(station.root / "aired", 1)
    samples, rate = read_wav(wav)
    assert rate == RATE
    assert len(chimes(samples, opening=True)) == 1 and len(chimes(samples, opening=False)) == 1
    [opening], [closing] = chimes(samples, True), chimes(samples, False)
    tone_at = np.flatnonzero(tone_windows(samples)) * WINDOW_S
    assert 1.3 <= len(tone_at) * WINDOW_S <= 1.7  # the whole recording, once
    assert tone_at[-1] - tone_at[0] < 1.7  # in one piece
    step = int(WINDOW_S * RATE)
    speech = voiced_seconds(samples[int((opening + 1.0) * RATE) : int(tone_at[0] * RATE) - step], RATE)
    assert speech > 2.0  # the text part, read before the recording
    assert opening < tone_at[0] and tone_at[-1] < closing  # text, recording, then the closing chime
    assert voiced_seconds(samples[int((tone_at[-1] + 0.2) * RATE) : int(closing * RATE)], RATE) < 0.2
    assert float(finished["detail"].split(" s on air")[0]) == pytest.approx(len(samples) / RATE, abs=0.5)


@pytest.mark.parametrize("fault", ["wrong hash", "not found"])
def test_a_part_that_fails_fails_the_bulletin_before_any_sound(tmp_path, station, operator, fault):
    data, digest = recording(tmp_path, 1.0)
    with FileServer({"hmong.wav": data}) as server:
        url, sha = server.url("hmong.wav"), digest
        if fault == "wrong hash":
            sha = hashlib.sha256(b"another file").hexdigest()
        else:
            url = server.url("missing.wav")
        parts = [{"text": TEXT}, {"audio": {"url": url, "sha256": sha}}, {"text": "Hết."}]
        operator.send({"type": "bulletin", "id": "broken", "parts": parts})
        failed = operator.wait_for("broken", "failed", 60)
    assert failed["detail"].startswith("part 2 (the recording) cannot air: "), failed["detail"]
    assert failed["detail"].endswith("nothing of the bulletin aired")
    assert operator.of("broken") == ["received", "failed"]
    operator.send({"type": "bulletin", "id": "after", "text": "Xin chào bà con."})
    operator.wait_for("after", "finished", 60)
    [wav] = wait_for_files(station.root / "aired", 1)  # only the bulletin after it reached the output
    assert "after" in wav.name


def test_an_emergency_during_part_two_cuts_in_and_the_bulletin_resumes_at_that_part(tmp_path, broker, operator):
    data, digest = recording(tmp_path, 1.0)
    with FileServer({"hmong.wav": data}) as server:
        station = paced_station(tmp_path, broker, operator)
        try:
            parts = [{"audio": {"url": server.url("hmong.wav"), "sha256": digest}}, {"text": LONG, "rate": 2.0}]
            operator.send({"type": "bulletin", "id": "cut", "parts": parts})
            wait_on_air(station, "cut", sentence=PART_STRIDE + 2)  # part 2, past its second sentence
            [row] = [p for p in station.control({"cmd": "queue"})["plays"] if p["id"] == "cut"]
            assert row["resume"].startswith("part 2, sentence ")  # as `loaxa queue` shows it
            operator.send({"type": "bulletin", "id": "alarm", "text": ALARM, "priority": "emergency", "rate": 2.0})
            operator.wait_for("cut", "interrupted", 20)
            operator.wait_for("alarm", "finished", 30)
            resumed = operator.wait_for("cut", "resumed", 30)
            operator.wait_for("cut", "finished", 60)
        finally:
            assert station.stop() == 0, station.log()
    assert operator.of("cut") == ["received", "started", "interrupted", "resumed", "finished"]
    part, sentence = resumed["detail"].removeprefix("from part ").split(", sentence ")
    assert part == "2" and 3 <= int(sentence) < len(SENTENCES)  # neither part 1 again nor what was cut skipped
    first, alarm, rest = sessions(station.aired, 3)
    assert tone_windows(first.samples).sum() * WINDOW_S >= 0.8  # part 1 aired before the cut
    assert voiced_seconds(alarm.samples, RATE) > 1.0
    assert not tone_windows(rest.samples).any()  # the recording is not played again
    assert voiced_seconds(rest.samples, RATE) > 1.0
