"""Broadcast policy end to end, on air: emergencies, cancels, new revisions, relays, the amplifier.

These need a bulletin that lasts on air as long as its sound, as with a
loudspeaker. The station plays through the real path (sounddevice,
PortAudio, ALSA) into ALSA's `file` plugin, whose output is a pipe to a
small reader that consumes the samples in real time: writes block as a
sound card's would, and each on-air session lands in its own file with the
wall-clock times of its first and last sample.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio_servers import StreamServer, tone_file
from loaxa.player.chime import chime
from loaxa.testing.audio import voiced_seconds
from loaxa.testing.station import Operator, StationProcess, logged_amplifier, station_config, switches

RATE = 22050
SENTENCES = [
    "Thông báo của ủy ban nhân dân xã về lịch tiêm phòng.",
    "Sáng thứ hai, cán bộ thú y đến từng thôn.",
    "Bà con nhốt gia súc và gia cầm để tiêm cho thuận tiện.",
    "Mỗi hộ cử một người lớn ở nhà trong buổi sáng.",
    "Mọi thắc mắc xin liên hệ trưởng thôn.",
    "Xin cảm ơn bà con đã lắng nghe.",
]
LONG = " ".join(SENTENCES)
ALARM = "Khẩn cấp. Nước sông đang lên nhanh."

PACER = r"""
import fcntl, json, os, sys, time
folder, bytes_per_s = sys.argv[1], int(sys.argv[2])
try:
    fcntl.fcntl(0, 1031, 4096)  # F_SETPIPE_SZ: the pipe holds ~0.1 s, as a sound card's buffer
except OSError:
    pass
name = os.path.join(folder, "%d-%d" % (time.time_ns(), os.getpid()))
src, got, first = sys.stdin.buffer.raw, 0, None
with open(name + ".part", "wb") as out:
    while True:
        block = src.read(2048)
        if not block:
            break
        if first is None:
            first, start = time.time(), time.monotonic()
        out.write(block)
        got += len(block)
        ahead = got / bytes_per_s - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
if got:
    os.rename(name + ".part", name + ".raw")
    with open(name + ".json", "w") as meta:
        json.dump({"first": first, "end": time.time()}, meta)
else:
    os.remove(name + ".part")
"""
ASOUNDRC = """pcm.!default {{ type plug; slave {{ pcm "rec"; format S16_LE; channels 1; rate {rate} }} }}
pcm.rec {{ type file; slave.pcm "null"; file "|{python} {pacer} {folder} {bytes_per_s}"; format "raw" }}
"""


@dataclass
class Aired:
    samples: np.ndarray
    first: float  # wall-clock time of the first sample
    end: float  # and of the end of the last

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def paced_env(root: Path) -> tuple[dict[str, str], Path]:
    home, folder = root / "home", root / "aired"
    home.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    pacer = root / "pacer.py"
    pacer.write_text(PACER)
    python = shutil.which("python3") or sys.executable
    asoundrc = ASOUNDRC.format(rate=RATE, python=python, pacer=pacer, folder=folder, bytes_per_s=2 * RATE)
    (home / ".asoundrc").write_text(asoundrc)
    return {"HOME": str(home)}, folder


def sessions(folder: Path, count: int, timeout_s: float = 30.0, since: float = 0.0) -> list[Aired]:
    """The first `count` on-air sessions (that began after `since`, wall clock), in order, once each has ended."""
    deadline = time.monotonic() + timeout_s
    while len(metas := [m for m in sorted(folder.glob("*.json")) if int(m.stem.split("-")[0]) / 1e9 >= since]) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} on-air session(s), found {len(metas)}")
        time.sleep(0.1)
    aired = []
    for meta in metas[:count]:
        times = json.loads(meta.read_text())
        raw = np.frombuffer(meta.with_suffix(".raw").read_bytes(), dtype="<i2").astype(np.float32) / 32768
        aired.append(Aired(raw, times["first"], times["end"]))
    return sorted(aired, key=lambda a: a.first)


def ends_with_closing_chime(samples: np.ndarray) -> bool:
    """The closing chime's shape, whatever the volume, within the last three seconds."""
    template = chime(RATE, False)[: int(0.9 * RATE)]  # the two notes, without the trailing silence
    tail = samples[-3 * RATE :]
    best = 0.0
    for offset in range(0, len(tail) - len(template), 32):
        window = tail[offset : offset + len(template)]
        norm = float(np.linalg.norm(window) * np.linalg.norm(template))
        if norm > 0:
            best = max(best, float(np.dot(window, template)) / norm)
    return best > 0.9


def paced_station(tmp_path: Path, broker: Any, operator: Operator, **overrides: Any) -> StationProcess:
    root = tmp_path / "station"
    env, folder = paced_env(root)
    station = StationProcess(root, station_config(root, broker.port, "default", **overrides), env=env).start()
    station.aired = folder
    operator.wait_state(lambda st: st["online"], 30)
    return station


@pytest.fixture
def station(tmp_path, broker, operator):
    s = paced_station(tmp_path, broker, operator)
    yield s
    assert s.stop() == 0, s.log()


def wait_on_air(station: StationProcess, id: str, sentence: int = 1, timeout_s: float = 30.0) -> None:
    """Until `id` is on air and past `sentence` sentences (the queue shows where it would resume)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        plays = station.control({"cmd": "queue"})["plays"]
        if any(p["id"] == id and p["state"] == "on_air" and p["sentence"] >= sentence for p in plays):
            return
        time.sleep(0.05)
    raise AssertionError(f"{id} did not reach sentence {sentence + 1} on air")


def wait_heard(folder: Path, seconds: float = 0.3, timeout_s: float = 30.0) -> None:
    """Until the session now on air has carried `seconds` of sound (not just silence)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for part in folder.glob("*.part"):
            raw = np.frombuffer(part.read_bytes(), dtype="<i2")
            if voiced_seconds(raw[: len(raw) // 2 * 2].astype(np.float32) / 32768, RATE) >= seconds:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing audible on air within {timeout_s} s")


def seq(operator: Operator, id: str, event: str, rev: int | None = None) -> int:
    ev = operator.wait_for(id, event, 0)
    matches = [e for e in operator.events if e["id"] == id and e["event"] == event and rev in (None, e["rev"])]
    return matches[0]["seq"] if matches else ev["seq"]


def test_an_emergency_interrupts_a_long_bulletin_which_resumes_from_its_sentence(station, operator):
    operator.send({"type": "bulletin", "id": "long", "text": LONG, "rate": 2.0})
    wait_on_air(station, "long", sentence=2)
    operator.send({"type": "bulletin", "id": "alarm", "text": ALARM, "priority": "emergency", "rate": 2.0})
    interrupted = operator.wait_for("long", "interrupted", 20)
    operator.wait_for("alarm", "finished", 30)
    resumed = operator.wait_for("long", "resumed", 30)
    operator.wait_for("long", "finished", 60)
    assert operator.of("long") == ["received", "started", "interrupted", "resumed", "finished"]
    assert interrupted["seq"] < seq(operator, "alarm", "started") < seq(operator, "alarm", "finished") < resumed["seq"]
    where = int(resumed["detail"].removeprefix("from sentence "))
    assert 3 <= where < len(SENTENCES)  # neither from the top nor skipping what was cut
    first_part, alarm, rest = sessions(station.aired, 3)
    assert first_part.end <= alarm.first and alarm.end <= rest.first
    assert voiced_seconds(alarm.samples, RATE) > 1.0
    assert voiced_seconds(rest.samples, RATE) > 1.0


def test_a_cancel_stops_the_bulletin_on_air_after_the_closing_chime(station, operator):
    operator.send({"type": "bulletin", "id": "to-cancel", "text": LONG, "rate": 2.0})
    wait_on_air(station, "to-cancel", sentence=1)
    operator.send({"type": "cancel", "id": "to-cancel"})
    cancelled = operator.wait_for("to-cancel", "cancelled", 20)
    [aired] = sessions(station.aired, 1)
    assert ends_with_closing_chime(aired.samples)
    # Cut at the next block, then the chime: not the four sentences still to come.
    assert aired.end < datetime.fromisoformat(cancelled["at"]).timestamp() + 3.0
    operator.send({"type": "bulletin", "id": "next", "text": ALARM})
    operator.wait_for("next", "finished", 30)
    assert "finished" not in operator.of("to-cancel")


def test_a_higher_rev_supersedes_a_pending_bulletin_and_one_on_air(station, operator):
    operator.send({"type": "bulletin", "id": "notice", "text": LONG, "rate": 2.0})
    wait_on_air(station, "notice", sentence=1)
    operator.send({"type": "bulletin", "id": "later", "text": "Bản tin cũ.", "rev": 1})
    operator.send({"type": "bulletin", "id": "later", "text": "Bản tin mới.", "rev": 2})
    pending_gone = operator.wait_for("later", "superseded", 10)
    assert pending_gone["rev"] == 1
    operator.send({"type": "bulletin", "id": "notice", "text": "Đính chính: lịch tiêm hoãn.", "rev": 2})
    operator.wait_for("notice", "finished", 30)
    operator.wait_for("later", "finished", 30)

    def named(id: str) -> list[tuple[str, int]]:
        return [(e["event"], e["rev"]) for e in operator.events if e["id"] == id]

    notice = named("notice")
    assert notice.index(("superseded", 1)) < notice.index(("started", 2))
    assert ("started", 1) in notice and ("finished", 1) not in notice and ("finished", 2) in notice
    assert ("started", 1) not in named("later") and ("finished", 2) in named("later")
    cut = sessions(station.aired, 3)[0]
    assert ends_with_closing_chime(cut.samples)


def test_a_stream_relay_is_interrupted_by_an_emergency_and_resumes(tmp_path, station, operator):
    clip = tone_file(tmp_path, "mp3", seconds=1.0, rate=RATE).read_bytes()
    with StreamServer(clip, 1.0, burst_s=0.5) as server:
        operator.send(
            {"type": "bulletin", "id": "relay", "stream": {"url": server.url("live"), "duration_s": 4}, "chime": False}
        )
        operator.wait_for("relay", "started", 20)
        wait_heard(station.aired)  # the relayed tone is on air
        operator.send({"type": "bulletin", "id": "alarm", "text": ALARM, "priority": "emergency", "chime": False})
        interrupted = operator.wait_for("relay", "interrupted", 20)
        operator.wait_for("alarm", "finished", 30)
        resumed = operator.wait_for("relay", "resumed", 30)
        operator.wait_for("relay", "finished", 30)
    assert interrupted["seq"] < seq(operator, "alarm", "started") < resumed["seq"]
    relay, alarm, rest = sessions(station.aired, 3)
    assert relay.seconds < 4.0  # cut short by the emergency
    assert voiced_seconds(relay.samples, RATE) >= 0.3
    assert rest.seconds > 1.0


def test_the_amplifier_warms_up_before_sound_holds_between_bulletins_and_is_off_at_exit(tmp_path, broker, operator):
    log = tmp_path / "amp.log"
    warmup_s, hold_s = 0.5, 2.0
    station = paced_station(tmp_path, broker, operator, **logged_amplifier(log, warmup_s=warmup_s, hold_s=hold_s))

    try:
        operator.send({"type": "bulletin", "id": "first", "text": "Bản tin thứ nhất."})
        operator.send({"type": "bulletin", "id": "second", "text": "Bản tin thứ hai."})
        operator.wait_for("second", "finished", 30)
        deadline = time.monotonic() + hold_s + 10
        while len(switches(log)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        operator.send({"type": "bulletin", "id": "third", "text": "Bản tin thứ ba."})
        operator.wait_for("third", "finished", 30)
    finally:
        stopping = time.time()
        assert station.stop() == 0, station.log()
    events = switches(log)
    words = [word for word, _ in events]
    # off at start, on, off after the hold, on, then off at exit (after the hold too, on a slow machine)
    assert words in (["off", "on", "off", "on", "off"], ["off", "on", "off", "on", "off", "off"]), words
    (_, on1), (_, off1), (_, on2), *later = events[1:]
    first, second, third = sessions(station.aired, 3)
    assert on1 + warmup_s <= first.first  # no sound before the warm-up is over
    assert first.end <= second.first and second.end < off1  # back to back: stayed on
    assert off1 - second.end >= hold_s - 0.01  # off only after the idle hold
    assert on2 + warmup_s <= third.first
    assert later[-1][1] >= stopping  # the exit switched it off
    assert all(when - third.end >= hold_s - 0.01 for _, when in later[:-1])
