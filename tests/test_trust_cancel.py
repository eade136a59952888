"""Issue 17, "the operator's word is obeyed": a receipt is a promise.

After `cancelled`, `superseded` or `expired`, not one sample of that play
reaches the output: each withdrawal is tried against each stage of airing
(queued, fetching, amplifier warm-up, the lead silence before its first
sound, the opening chime, speech, between repeats), through the real
daemon, Mosquitto, and the real audio path (sounddevice, PortAudio, ALSA)
into a paced reader that consumes samples as a sound card does.

The withdrawn bulletins carry a 1 kHz tone (or speech) that nothing else
on air carries, so "not one sample" is checked in the samples themselves.
The stages inside a session (the opening chime, speech, the gap between
repeats, the closing chime) last about a second, less than what the paced
device buffers, so those tests run the Station in this process on its real
`wav:` sink, watched block by block: the watch withdraws the play (through
the broker) just before the sample chosen is written, and holds the
station there until the receipt has come, so the test knows to the block
what the station wrote before and after the withdrawal.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio_servers import FileServer, dominant_hz, tone, write_wav
from loaxa.config import parse_config
from loaxa.daemon import Station
from loaxa.player.chime import chime
from loaxa.player.output import Output, WavDirSink
from loaxa.protocol import Bulletin, validate_command
from loaxa.states import Outcome, PlayState
from loaxa.store import Ledger, Store
from loaxa.testing.audio import read_wav, voiced_seconds, wait_for_files
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, logged_amplifier, station_config, switches
from test_broadcast_onair import LONG, RATE, Aired, paced_station, sessions

WITHDRAWN_HZ = 1000.0  # only the plays that are withdrawn carry this tone
OTHER_HZ = 300.0
WARMUP_S = 3.0
LEAD_S = 2.0  # long enough to withdraw a play after `started` and before its first sound
STAGES = ("queued", "slow", "warm", "lead", "chime", "repeat", "expiring")
WITHDRAWALS = ["cancel", "supersede"]
# One recording per test, each of its own length, so that none is in the station's cache before its test.
RECORDINGS = {
    f"{stage}-{how}": (1.0 if stage == "repeat" else 3.0) + 0.05 * i
    for i, (stage, how) in enumerate((stage, how) for stage in STAGES for how in WITHDRAWALS)
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One broker, one file server and one paced station for the whole module (a station takes seconds to start)."""
    root = tmp_path_factory.mktemp("trust")
    files = {}
    for name, seconds in RECORDINGS.items():
        files[f"{name}.wav"] = write_wav(root / f"{name}.wav", tone(seconds, WITHDRAWN_HZ)).read_bytes()
    files["other.wav"] = write_wav(root / "other.wav", tone(1.0, OTHER_HZ)).read_bytes()
    files["blocker.wav"] = write_wav(root / "blocker.wav", tone(6.0, OTHER_HZ)).read_bytes()
    broker = start_mosquitto(root / "broker")
    operator = Operator(broker.host, broker.port)
    amp_log = root / "amp.log"
    with FileServer(files, slow_s=10.0) as server:
        station = paced_station(
            root,
            broker,
            operator,
            audio__lead_silence_s=LEAD_S,
            **logged_amplifier(amp_log, warmup_s=WARMUP_S, hold_s=0.0),
        )
        try:
            yield {"station": station, "operator": operator, "server": server, "files": files, "amp_log": amp_log}
        finally:
            code = station.stop()
            operator.close()
            broker.stop()
            assert code == 0, station.log()


def audio(rig: dict[str, Any], name: str, mode: str = "") -> dict[str, str]:
    path = f"{mode}/{name}.wav" if mode else f"{name}.wav"
    return {"url": rig["server"].url(path), "sha256": hashlib.sha256(rig["files"][f"{name}.wav"]).hexdigest()}


def withdraw(rig: dict[str, Any], how: str, id: str) -> dict[str, Any]:
    """Cancel `id`, or supersede it with a rev 2 that carries the other tone; the receipt for rev 1."""
    op: Operator = rig["operator"]
    if how == "cancel":
        op.send({"type": "cancel", "id": id})
        return op.wait_for(id, "cancelled", 20)
    op.send({"type": "bulletin", "id": id, "rev": 2, "audio": audio(rig, "other"), "chime": False})
    return op.wait_for(id, "superseded", 20)


def settle(rig: dict[str, Any], how: str, id: str) -> None:
    """Until the station is past the withdrawn play: its rev 2 finished, or a marker played after it."""
    op: Operator = rig["operator"]
    if how == "supersede":
        op.wait_for(id, "finished", 60)  # rev 1 must not finish: the tests check which rev did
    else:
        op.send({"type": "bulletin", "id": f"{id}-after", "audio": audio(rig, "other"), "chime": False})
        op.wait_for(f"{id}-after", "finished", 60)
    wait_session_over(rig["station"].aired)


def rev1(op: Operator, id: str) -> list[str]:
    return [e["event"] for e in op.events if e["id"] == id and e["rev"] == 1]


def tone_seconds(samples: np.ndarray, freq: float) -> float:
    """Seconds of 50 ms frames whose sound is the tone at `freq`."""
    frame = RATE // 20
    found = 0
    for start in range(0, len(samples) - frame + 1, frame):
        window = samples[start : start + frame]
        if float(np.sqrt(np.mean(window**2))) > 0.05 and abs(dominant_hz(window, RATE) - freq) < 40:
            found += 1
    return found * 0.05


def withdrawn_tone_in(aired: list[Aired]) -> float:
    return sum(tone_seconds(a.samples, WITHDRAWN_HZ) for a in aired)


def aired_since(rig: dict[str, Any], since: float) -> list[Aired]:
    """Every on-air session that began since `since`, once each has ended."""
    folder: Path = rig["station"].aired
    count = sum(1 for m in folder.glob("*.raw") if int(m.stem.split("-")[0]) / 1e9 >= since)
    return sessions(folder, count, since=since)


def wait_session_over(folder: Path, timeout_s: float = 30.0) -> None:
    """Until no session is being written (each ended and was renamed)."""
    deadline = time.monotonic() + timeout_s
    while list(folder.glob("*.part")):
        assert time.monotonic() < deadline, "the on-air session did not end"
        time.sleep(0.05)


@pytest.fixture
def since(rig: dict[str, Any]) -> float:
    wait_session_over(rig["station"].aired)
    return time.time()


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_while_queued_airs_nothing(rig, since, how):
    op: Operator = rig["operator"]
    id = f"queued-{how}"
    op.send({"type": "bulletin", "id": f"{id}-blocker", "audio": audio(rig, "blocker"), "chime": False})
    op.wait_for(f"{id}-blocker", "started", 30)
    op.send({"type": "bulletin", "id": id, "audio": audio(rig, id)})
    op.wait_for(id, "received", 10)
    withdraw(rig, how, id)
    op.wait_for(f"{id}-blocker", "finished", 60)
    settle(rig, how, id)
    assert rev1(op, id) == ["received", "cancelled" if how == "cancel" else "superseded"]
    assert withdrawn_tone_in(aired_since(rig, since)) == 0.0


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_during_a_slow_download_airs_nothing(rig, since, how):
    """Issue 17: a recording whose download took ~10 s, cancelled 3 s in, used to air anyway."""
    op: Operator = rig["operator"]
    server: FileServer = rig["server"]
    id = f"slow-{how}"
    asked = server.requests
    target = audio(rig, id, "slow")
    op.send({"type": "bulletin", "id": id, "audio": target})
    deadline = time.monotonic() + 20
    while server.requests == asked:
        assert time.monotonic() < deadline, "the station never asked for the recording"
        time.sleep(0.02)
    time.sleep(3.0)  # the scenario: the withdrawal comes 3 s into the 10 s download
    withdraw(rig, how, id)
    decoded = Path(rig["station"].config["storage"]["dir"]) / "audio" / f"{target['sha256']}.{RATE}.f32"
    deadline = time.monotonic() + 30
    while not decoded.exists():  # the fetch runs to its end, and wakes the player
        assert time.monotonic() < deadline, "the download did not end"
        time.sleep(0.1)
    settle(rig, how, id)
    assert rev1(op, id) == ["received", "cancelled" if how == "cancel" else "superseded"]
    assert withdrawn_tone_in(aired_since(rig, since)) == 0.0


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_during_the_amplifier_warm_up_airs_nothing(rig, since, how):
    """Issue 17: with a 3 s warm-up, a cancel during it was answered and the bulletin then aired in full."""
    op: Operator = rig["operator"]
    id = f"warm-{how}"
    ons = [w for w, _ in switches(rig["amp_log"])].count("on")
    op.send({"type": "bulletin", "id": id, "audio": audio(rig, id)})
    deadline = time.monotonic() + 20
    while [w for w, _ in switches(rig["amp_log"])].count("on") == ons:
        assert time.monotonic() < deadline, "the amplifier was never switched on"
        time.sleep(0.02)
    withdraw(rig, how, id)
    settle(rig, how, id)
    assert rev1(op, id) == ["received", "cancelled" if how == "cancel" else "superseded"]
    assert withdrawn_tone_in(aired_since(rig, since)) == 0.0


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_after_started_before_its_first_sound_airs_not_even_the_closing_chime(rig, since, how):
    """Issue 17, the known gap: a cancel just before the first sample used to play a lone closing chime."""
    op: Operator = rig["operator"]
    id = f"lead-{how}"
    op.send({"type": "bulletin", "id": id, "audio": audio(rig, id)})
    op.wait_for(id, "started", 30)  # the output is open; LEAD_S of silence comes before the chime
    withdraw(rig, how, id)
    settle(rig, how, id)
    assert rev1(op, id) == ["received", "started", "cancelled" if how == "cancel" else "superseded"]
    first, *later = aired_since(rig, since)
    assert voiced_seconds(first.samples, RATE) == 0.0  # silence only: no chime, no tone
    assert withdrawn_tone_in(later) == 0.0


# -- inside the session: the station in this process, its WAV sink watched block by block ---------------
class WatchedSink:
    """The real `wav:` sink, with `watch(label, offset, block)` called before each block is written.

    A watch that withdraws the play and waits for the receipt holds the station exactly there: the
    block it holds was handed to the output before the withdrawal, and nothing after it may follow
    but the closing chime.
    """

    def __init__(self, folder: Path, watch: Callable[[str, int, np.ndarray], None]) -> None:
        self.inner = WavDirSink(folder)
        self.watch = watch

    def describe(self) -> str:
        return self.inner.describe()

    def open(self, sample_rate: int, label: str) -> Output:
        return _Watched(self.inner.open(sample_rate, label), label, self.watch)


class _Watched:
    def __init__(self, inner: Output, label: str, watch: Callable[[str, int, np.ndarray], None]) -> None:
        self.inner, self.label, self.watch, self.offset = inner, label, watch, 0

    def write(self, samples: np.ndarray) -> None:
        self.watch(self.label, self.offset, samples)
        self.inner.write(samples)
        self.offset += len(samples)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def watched(tmp_path, broker, operator) -> Iterator[dict[str, Any]]:
    """A Station in this process on a real broker; `rig["at"] = (id, offset, how)` withdraws `id` when its
    session is about to write the sample at `offset`; `rig["held"]` is the offset of the block held then."""
    rig: dict[str, Any] = {"operator": operator, "at": None, "held": None}

    def watch(label: str, offset: int, block: np.ndarray) -> None:
        if rig["at"] is None:
            return
        id, at, how = rig["at"]
        if label == id and offset <= at < offset + len(block):
            rig["at"] = None
            rig["held"] = offset + len(block)  # where the block held when the withdrawal came ends
            rig["receipt"] = withdraw(rig, how, id)

    files = {name: write_wav(tmp_path / name, tone(1.0, WITHDRAWN_HZ)).read_bytes() for name in ("one.wav",)}
    files["other.wav"] = write_wav(tmp_path / "other.wav", tone(1.0, OTHER_HZ)).read_bytes()
    rig["files"] = files
    config = station_config(tmp_path / "station", broker.port, "null", audio__lead_silence_s=0.3)
    station = Station(parse_config(config), sink=WatchedSink(tmp_path / "aired", watch))
    with FileServer(files) as server:
        rig["server"] = server
        station.start()
        try:
            operator.wait_state(lambda st: st["online"], 30)
            rig.update(station=station, aired=tmp_path / "aired")
            yield rig
        finally:
            station.stop()


def held_session(rig: dict[str, Any], id: str) -> np.ndarray:
    """The samples of `id`'s first session (its WAV file is named after it)."""
    wait_for_files(rig["aired"], 1)
    files = sorted(rig["aired"].glob(f"*-{id}.wav"))
    assert files, f"no session of {id}: {sorted(rig['aired'].iterdir())}"
    return read_wav(files[0])[0]


def after_the_hold(rig: dict[str, Any], samples: np.ndarray) -> np.ndarray:
    """What the session wrote after the block held when the withdrawal came."""
    held = rig["held"]
    assert held is not None, "the session never reached the point where the test withdraws it"
    return samples[held:]


def is_closing_chime(samples: np.ndarray, volume: float = 0.8) -> bool:
    expected = chime(RATE, False) * volume
    return len(samples) == len(expected) and float(np.max(np.abs(samples - expected))) < 3 / 32768


LEAD = int(0.3 * RATE)
OPENING = len(chime(RATE, True))


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_during_the_opening_chime_airs_none_of_its_content(watched, how):
    op: Operator = watched["operator"]
    id = f"chime-{how}"
    watched["at"] = (id, LEAD + OPENING // 2, how)
    op.send({"type": "bulletin", "id": id, "audio": audio(watched, "one")})
    settle_watched(watched, how, id)
    samples = held_session(watched, id)
    assert "finished" not in rev1(op, id)
    assert tone_seconds(samples, WITHDRAWN_HZ) == 0.0  # none of the content
    assert is_closing_chime(after_the_hold(watched, samples))  # the block on its way, then the ending


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_during_speech_stops_at_the_next_block_then_the_closing_chime(watched, how):
    op: Operator = watched["operator"]
    id = f"speech-{how}"
    watched["at"] = (id, LEAD + OPENING + RATE, how)  # a second into the speech
    op.send({"type": "bulletin", "id": id, "text": LONG})
    settle_watched(watched, how, id)
    samples = held_session(watched, id)
    assert "finished" not in rev1(op, id)
    assert is_closing_chime(after_the_hold(watched, samples))  # not the sentences to come


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_between_repeats_airs_no_further_run(watched, how):
    op: Operator = watched["operator"]
    id = f"repeat-{how}"
    watched["at"] = (id, LEAD + OPENING + RATE + 2 * RATE, how)  # 2 s into the 4 s gap after the first run
    op.send({"type": "bulletin", "id": id, "audio": audio(watched, "one"), "repeat": 3, "gap_s": 4.0})
    settle_watched(watched, how, id)
    samples = held_session(watched, id)
    assert "finished" not in rev1(op, id)
    assert tone_seconds(samples, WITHDRAWN_HZ) == pytest.approx(1.0, abs=0.1)  # the first run only
    assert is_closing_chime(after_the_hold(watched, samples))


@pytest.mark.parametrize("how", WITHDRAWALS)
def test_withdrawn_during_the_closing_chime_lets_it_end_once_and_is_not_finished(watched, how):
    """The ending was already playing: it is neither cut nor played again, and no `finished` follows the receipt."""
    op: Operator = watched["operator"]
    id = f"closing-{how}"
    content = RATE  # the one-second recording
    watched["at"] = (id, LEAD + OPENING + content + RATE // 2, how)
    op.send({"type": "bulletin", "id": id, "audio": audio(watched, "one")})
    settle_watched(watched, how, id)
    samples = held_session(watched, id)
    assert "finished" not in rev1(op, id)
    assert len(samples) == LEAD + OPENING + content + len(chime(RATE, False))  # one closing chime, whole
    assert is_closing_chime(samples[LEAD + OPENING + content :])


def settle_watched(rig: dict[str, Any], how: str, id: str) -> None:
    op: Operator = rig["operator"]
    op.wait_for(id, "cancelled" if how == "cancel" else "superseded", 30)
    marker = f"{id}-after"
    op.send({"type": "bulletin", "id": marker, "audio": audio(rig, "other"), "chime": False})
    op.wait_for(marker, "finished", 30)


def test_a_bulletin_that_expires_during_the_amplifier_warm_up_airs_nothing(rig, since):
    """Issue 17: `expires` was looked at once, before the warm-up; a play could start after it."""
    op: Operator = rig["operator"]
    id = "expiring-cancel"
    ons = [w for w, _ in switches(rig["amp_log"])].count("on")
    expires = (datetime.now(UTC) + timedelta(seconds=WARMUP_S / 2)).isoformat()
    op.send({"type": "bulletin", "id": id, "audio": audio(rig, id), "expires": expires})
    expired = op.wait_for(id, "expired", 30)
    settle(rig, "cancel", id)
    assert [w for w, _ in switches(rig["amp_log"])].count("on") > ons  # it got as far as the warm-up
    assert op.of(id) == ["received", "expired"]
    assert expired["detail"] == "expired before it could start"
    assert withdrawn_tone_in(aired_since(rig, since)) == 0.0


def test_a_play_that_ends_as_it_is_cancelled_sends_no_finished_after_the_cancelled(tmp_path):
    """Issue 17: the cancel committed after the player's last look; the province had `cancelled`, then `finished`."""
    store = Store(tmp_path / "station.db")
    ledger = Ledger(store, "hue/phu-vang/loa-1")
    try:
        command = validate_command({"type": "bulletin", "id": "ending", "text": "Xin chào."})
        assert isinstance(command, Bulletin)
        ledger.accept("province", command, datetime.now(UTC), max_queue=10, first_slot=None)
        [play] = ledger.open_plays()
        assert ledger.start(play)
        assert ledger.cancel("province", "ending")
        ledger.end(play, Outcome.FINISHED, "3.0 s on air")
        events = [json.loads(p)["event"] for _, p in store.unsent_events() if json.loads(p)["id"] == "ending"]
        assert events == ["received", "started", "cancelled"]
        closed = ledger.play(play.pid)
        assert closed is not None and closed.state is PlayState.CANCELLED
    finally:
        store.close()
