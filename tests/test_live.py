"""Live announcements (issue 13 item 2): the station's input on air, through the real ALSA path.

The station's input is an ALSA capture device whose `file` plugin reads a
named pipe that a feeder fills in real time, like a microphone
(`FifoMicrophone`); its output is the paced ALSA path of the on-air tests.
The fed signal is short 1 kHz bursts, so the aired session shows where
each one went on air and how long after it reached the input.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loaxa.testing.audio import FifoMicrophone
from loaxa.testing.station import Operator, StationProcess, station_config
from test_broadcast_onair import LONG, RATE, paced_env, sessions, wait_on_air

BURST_EVERY_S, BURST_S = 0.5, 0.05
# The target for the added latency is 100 ms; it is a timing goal, so this test prints the figure
# (run it with -s) and asserts only what load cannot excuse: no buffering of half a second or more.
LATENCY_TARGET_S = 0.1
BUFFERED_S = 0.5


def bursts(seconds: float) -> tuple[np.ndarray, list[int]]:
    """Silence with a 1 kHz burst every BURST_EVERY_S; and where each burst starts."""
    signal = np.zeros(int(seconds * RATE), np.float32)
    starts = list(range(int(0.2 * RATE), len(signal) - RATE // 10, int(BURST_EVERY_S * RATE)))
    t = np.arange(int(BURST_S * RATE)) / RATE
    for s in starts:
        signal[s : s + len(t)] = 0.5 * np.sin(2 * np.pi * 1000 * t)
    return signal, starts


def onsets(samples: np.ndarray, threshold: float = 0.1) -> list[int]:
    """Where the fed bursts start in aired samples: sound rising above `threshold` that is a 1 kHz tone (no chime)."""
    return [at for at in _rises(samples, threshold) if _is_burst(samples[at : at + int(BURST_S * RATE)])]


def _is_burst(part: np.ndarray) -> bool:
    if len(part) < int(BURST_S * RATE) * 0.8:
        return False
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    return abs(float(np.fft.rfftfreq(len(part), 1 / RATE)[int(np.argmax(spectrum))]) - 1000) < 40


def _rises(samples: np.ndarray, threshold: float) -> list[int]:
    """Where sound starts (5 ms frames rising above `threshold` after 0.2 s of less)."""
    frame = RATE // 200
    n = len(samples) // frame
    loud = np.abs(samples[: n * frame].reshape(n, frame)).max(axis=1) > threshold
    found, last = [], -(10**9)
    for i in np.flatnonzero(loud):
        if i * frame - last > int(0.2 * RATE):  # a new burst, not the same one
            first = i * frame + int(np.argmax(np.abs(samples[i * frame : (i + 1) * frame]) > threshold))
            found.append(first)
        last = i * frame
    return found


def live_station(
    tmp_path: Path, broker: Any, operator: Operator, seconds: float
) -> tuple[StationProcess, FifoMicrophone]:
    root = tmp_path / "station"
    env, folder = paced_env(root)
    signal, _ = bursts(seconds)
    mic = FifoMicrophone(root, signal)
    asoundrc = Path(env["HOME"]) / ".asoundrc"
    asoundrc.write_text(asoundrc.read_text() + mic.pcm())
    config = station_config(root, broker.port, "default", audio__live_input="loaxa-mic", audio__chime=True)
    station = StationProcess(root, config, env=env).start()
    station.aired = folder  # type: ignore[attr-defined]
    operator.wait_state(lambda st: st["online"], 30)
    return station, mic.start()


def loaxa_live(station: StationProcess, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loaxa", "live", "--seconds", str(seconds), "--config", str(station.config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def latencies(mic: FifoMicrophone, aired_first: float, samples: np.ndarray) -> list[float]:
    """For each burst heard: when it was on air minus when it was spoken into the input.

    A burst is matched to the last one spoken before it aired that reached
    the input; bursts are 0.5 s apart, far more than any latency allowed.
    """
    _, starts = bursts(len(mic.signal) / RATE)
    found = []
    for at in onsets(samples):
        on_air = aired_first + at / RATE
        spoken = [mic.spoken_at(s) for s in starts if mic.reached_pipe(s) and mic.spoken_at(s) <= on_air]
        if spoken:
            found.append(on_air - spoken[-1])
    return found


BARE = r"""
import sys, time, numpy as np, sounddevice as sd
rate, block, latency, seconds = 22050, 441, float(sys.argv[1]), float(sys.argv[2])
mic = next(i for i, d in enumerate(sd.query_devices()) if d["name"] == "loaxa-mic" and d["max_input_channels"])
out = sd.OutputStream(samplerate=rate, channels=1, dtype="float32", latency=latency)
out.start()
out.write(np.zeros((int(1.2 * rate), 1), np.float32))  # as the opening chime
inp = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=mic, latency=latency, blocksize=block)
inp.start()
end = time.monotonic() + seconds
while time.monotonic() < end:
    data, _ = inp.read(block)
    out.write(data * 0.8)
inp.close()
out.stop()
out.close()
"""


CAPTURE = r"""
import sys, numpy as np, sounddevice as sd
mic = next(i for i, d in enumerate(sd.query_devices()) if d["name"] == "loaxa-mic" and d["max_input_channels"])
inp = sd.InputStream(samplerate=22050, channels=1, dtype="float32", device=mic, latency=0.03, blocksize=441)
inp.start()
data = np.concatenate([inp.read(441)[0][:, 0] for _ in range(int(float(sys.argv[1]) * 50))])
inp.close()
sys.stdout.write(repr([float(x) for x in data[np.abs(data) > 0][:8]]))
"""


def bare_pass_through(env: dict[str, str], root: Path, seconds: float) -> None:
    """The same input to the same output with nothing but PortAudio between: the rig's own latency."""
    script = root / "bare.py"
    script.write_text(BARE)
    done = subprocess.run(
        [sys.executable, str(script), "0.03", str(seconds)], env={**os.environ, **env}, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def test_live_airs_the_input_between_the_chimes_at_the_station_volume_with_little_latency(tmp_path, broker, operator):
    station, mic = live_station(tmp_path, broker, operator, seconds=60)
    try:
        bare_pass_through(station.env, tmp_path, 4.0)
        [bare] = sessions(station.aired, 1)
        rig = min(latencies(mic, bare.first, bare.samples)[1:])
        for old in station.aired.iterdir():
            old.unlink()
        # As the docs write it, with the config from the environment; Ctrl-C ends it.
        docs = (Path(__file__).resolve().parents[1] / "docs" / "broadcast.md").read_text(encoding="utf-8")
        argv = shlex.split(next(line for line in docs.splitlines() if line.strip().startswith("loaxa live")))
        env = {**os.environ, "LOAXA_CONFIG": str(station.config_path)}
        argv[0] = str(Path(sys.executable).with_name("loaxa"))
        cli = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert cli.stdout is not None and "press Ctrl-C" in cli.stdout.readline()
        time.sleep(4.0)  # the announcement's length, not a synchronisation
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err + station.log()
        (live_id,) = {e["id"] for e in operator.events if e["id"] and e["id"].startswith("live-")}
        started = operator.wait_for(live_id, "started", 5)
        finished = operator.wait_for(live_id, "finished", 5)
        assert started["detail"] == "live"
        assert "live: " in finished["detail"] and "from the input 'loaxa-mic'" in finished["detail"]
        live_s = float(finished["detail"].split("live: ")[1].split(" s")[0])
        assert 3.0 < live_s < 5.0
        assert f"{live_id}: done" in out

        [aired] = sessions(station.aired, 1)
        heard = onsets(aired.samples)
        assert len(heard) >= 6, heard  # a burst each half second of the live part
        peak = max(float(np.abs(aired.samples[h : h + int(BURST_S * RATE)]).max()) for h in heard)
        assert abs(peak - 0.8 * 0.5) < 0.05  # the station volume (0.8) applied to the input's 0.5
        # Nothing in the session is louder than that, bursts or not (the chimes peak at 0.33): no gain twice,
        # no overlapping blocks, and no sample the input never carried.
        loudest = int(np.argmax(np.abs(aired.samples)))
        assert abs(aired.samples[loudest]) < 0.8 * 0.5 + 0.005, (loudest / RATE, float(aired.samples[loudest]))
        lags = latencies(mic, aired.first, aired.samples)
        lags = lags[1:]  # the first may have waited for the opening chime's tail
        # The least of each run is its steady state: a moment of load on this shared machine (the
        # feeder, the pacer or the station late) can only delay a burst, or replay a stale one later.
        least, median = min(lags), float(np.median(lags))
        print(
            f"live latency through the ALSA rig: least {least * 1000:.0f} ms, median {median * 1000:.0f} ms"
            f" ({len(lags)} bursts); the rig alone (bare PortAudio pass-through) {rig * 1000:.0f} ms;"
            f" added by the station {(least - rig) * 1000:.0f} ms"
        )
        print(f"target {LATENCY_TARGET_S * 1000:.0f} ms: {'met' if least - rig <= LATENCY_TARGET_S else 'missed'}")
        assert least - rig < BUFFERED_S, (lags, rig)
    finally:
        mic.stop()
        assert station.stop() == 0, station.log()


def test_live_interrupts_a_normal_bulletin_which_then_resumes_from_its_sentence(tmp_path, broker, operator):
    station, mic = live_station(tmp_path, broker, operator, seconds=120)
    try:
        operator.send({"type": "bulletin", "id": "long", "text": LONG, "rate": 2.0})
        wait_on_air(station, "long", sentence=2)
        cli = loaxa_live(station, 4.0)
        interrupted = operator.wait_for("long", "interrupted", 20)
        assert interrupted["detail"] == "a live announcement cut in"
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err + station.log()
        resumed = operator.wait_for("long", "resumed", 30)
        operator.wait_for("long", "finished", 60)
        (live_id,) = {e["id"] for e in operator.events if e["id"] and e["id"].startswith("live-")}
        assert operator.of(live_id) == ["received", "started", "finished"]
        assert operator.of("long") == ["received", "started", "interrupted", "resumed", "finished"]
        order = [
            (e["id"], e["event"])
            for e in operator.events
            if e["event"] in ("interrupted", "started", "finished", "resumed")
        ]
        assert order.index(("long", "interrupted")) < order.index((live_id, "started"))
        assert order.index((live_id, "finished")) < order.index(("long", "resumed"))
        assert int(resumed["detail"].removeprefix("from sentence ")) >= 3  # not from the top

        first_part, live, rest = sessions(station.aired, 3)
        assert first_part.end <= live.first and live.end <= rest.first
        assert len(onsets(live.samples)) >= 2  # after the opening chime, a burst each half second
        # The bursts are in the live session only, not in the bulletin's speech.
        for part in (first_part, rest):
            spectrum = np.abs(np.fft.rfft(part.samples))
            freqs = np.fft.rfftfreq(len(part.samples), 1 / RATE)
            assert spectrum[np.abs(freqs - 1000) < 3].max() < 0.5 * spectrum.max()
    finally:
        mic.stop()
        assert station.stop() == 0, station.log()


def test_live_without_an_input_configured_is_refused_in_words(tmp_path, broker, operator):
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{root / 'aired'}")).start()
    try:
        operator.wait_state(lambda st: st["online"], 30)
        done = subprocess.run(
            [sys.executable, "-m", "loaxa", "live", "--seconds", "1", "--config", str(station.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1
        assert "this station has no live input: set audio.live_input" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        assert station.stop() == 0, station.log()


@pytest.fixture(autouse=True)
def _deadline():
    began = time.monotonic()
    yield
    assert time.monotonic() - began < 240


def wait_for_bursts(folder: Path, count: int, timeout_s: float = 30.0) -> None:
    """Until the session now on air has carried `count` of the fed bursts (read as the pacer writes it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for part in folder.glob("*.part"):
            raw = np.frombuffer(part.read_bytes(), dtype="<i2")
            if len(onsets(raw[: len(raw) // 2 * 2].astype(np.float32) / 32768)) >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"{count} bursts not on air within {timeout_s} s")


def test_an_emergency_cuts_in_on_live_which_resumes_after_it(tmp_path, broker, operator):
    station, mic = live_station(tmp_path, broker, operator, seconds=120)
    try:
        cli = loaxa_live(station, 60.0)  # ended by Ctrl-C once it has resumed
        assert cli.stdout is not None
        live_id = cli.stdout.readline().split(":")[0]
        operator.wait_for(live_id, "started", 20)
        wait_for_bursts(station.aired, 2)
        operator.send({"type": "bulletin", "id": "lu", "text": "Khẩn cấp. Nước sông lên.", "priority": "emergency"})
        interrupted = operator.wait_for(live_id, "interrupted", 20)
        assert interrupted["detail"] == "an emergency bulletin cut in"
        operator.wait_for("lu", "finished", 30)
        resumed = operator.wait_for(live_id, "resumed", 30)
        assert resumed["detail"] == "live"
        wait_for_bursts(station.aired, 2)
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err + station.log()
        operator.wait_for(live_id, "finished", 10)
        assert operator.of(live_id) == ["received", "started", "interrupted", "resumed", "finished"]
        live_before, alarm, live_after = sessions(station.aired, 3)
        assert live_before.end <= alarm.first and alarm.end <= live_after.first
        assert onsets(live_before.samples) and onsets(live_after.samples) and not onsets(alarm.samples)
    finally:
        mic.stop()
        assert station.stop() == 0, station.log()


def test_a_live_input_that_is_not_there_fails_the_live_play_with_the_reason_and_nothing_airs(
    tmp_path, broker, operator
):
    root = tmp_path / "station"
    config = station_config(root, broker.port, f"wav:{root / 'aired'}", audio__live_input="no-such-mic")
    station = StationProcess(root, config).start()
    try:
        operator.wait_state(lambda st: st["online"], 30)
        began = time.monotonic()
        cli = loaxa_live(station, 60.0)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 1, err
        assert time.monotonic() - began < 20  # told at once, not after the minute asked for
        (live_id,) = {e["id"] for e in operator.events if e["id"] and e["id"].startswith("live-")}
        failed = operator.wait_for(live_id, "failed", 10)
        assert failed["detail"] == "no audio input device named 'no-such-mic' (audio.live_input)"
        assert "started" not in operator.of(live_id)
        assert f"{live_id}: failed: no audio input device named 'no-such-mic'" in out
        assert not list((root / "aired").glob("*.wav"))  # not even a chime
    finally:
        assert station.stop() == 0, station.log()


def test_the_test_microphone_gives_a_reader_that_opens_it_a_whole_read_at_once(tmp_path):
    """The whole lead is in the pipe once a reader opens it, read as ALSA's `file` plugin reads (blocking).

    A short first read made the plugin hand on the rest of its buffer unfilled: memory of any value, which
    once aired at -0.652 inside a burst window and failed the live test's station-volume check.
    """
    mic = FifoMicrophone(tmp_path, np.full(10 * RATE, 0.25, np.float32)).start()
    try:
        time.sleep(0.2)  # no reader yet: what is due meanwhile is lost, but not the lead
        fd = os.open(mic.fifo, os.O_RDONLY)  # waits for the feeder to open its end, as the plugin's open does
        try:
            first = os.read(fd, 2 * 882)  # the largest read PortAudio makes of it
        finally:
            os.close(fd)
    finally:
        mic.stop()
    assert len(first) == 2 * 882
    assert set(np.frombuffer(first, dtype="<i2")) == {int(0.25 * 32767)}


def test_the_test_microphone_carries_only_what_was_fed_to_it_from_the_first_block(tmp_path):
    """Through PortAudio and ALSA as the station opens it: silence fed is silence captured, every sample."""
    mic = FifoMicrophone(tmp_path, np.zeros(30 * RATE, np.float32)).start()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(mic.pcm())
    script = tmp_path / "capture.py"
    script.write_text(CAPTURE)
    try:
        for _ in range(3):  # the first blocks of each opening are where a short read showed
            done = subprocess.run(
                [sys.executable, str(script), "0.5"],
                env={**os.environ, "HOME": str(home)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout == "[]"  # the first non-zero samples captured, were there any
    finally:
        mic.stop()


def test_doctor_says_whether_the_live_input_is_there_and_which_inputs_are(tmp_path):
    import json

    import yaml

    mic = FifoMicrophone(tmp_path, np.zeros(120 * RATE, np.float32)).start()  # PortAudio opens every device
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(mic.pcm())
    skip = [arg for check in ("service", "audio", "voice", "fallback", "broker", "clock") for arg in ("--skip", check)]
    verdicts = {}
    for name in ("loaxa-mic", "no-such-mic"):
        config = station_config(tmp_path / "station", 1, "null", audio__live_input=name)
        path = tmp_path / "doctor.yaml"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        done = subprocess.run(
            [sys.executable, "-m", "loaxa", "doctor", "--json", "--config", str(path), *skip],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(home)},
        )
        verdicts[name] = next(f for f in json.loads(done.stdout) if f["check"] == "live")
    mic.stop()
    assert verdicts["loaxa-mic"]["status"] == "OK", verdicts
    missing = verdicts["no-such-mic"]
    assert missing["status"] == "FAIL" and "no audio input device named 'no-such-mic'" in missing["detail"]
    assert "loaxa-mic" in missing["fix"]
