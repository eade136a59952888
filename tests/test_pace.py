"""Buffering ahead on a slow board: no gaps in speech, and no delay where the voice keeps up."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from loaxa.bench.playout import Playout, play_paced
from loaxa.config import TextSettings, TtsSettings
from loaxa.speech.engine import Chunk, PhonemeVoice
from loaxa.speech.pace import HOLD_MARGIN, HOLD_MARGIN_S, HOLD_STEP_S, Cost, Hold, Pace, Part
from loaxa.speech.pipeline import Speaker

RATE_HZ = 8000
PHONEME_S = 0.008  # seconds of audio per phoneme of the test voice: a bulletin in a few seconds
REAL_PHONEME_S = 0.075  # what a Piper medium voice makes of a phoneme (measured: en_US-joe-medium)
# A short first sentence, then long ones: the second piece takes longer to make than the first plays.
TEXT = "Thông báo khẩn của xã. " + " ".join(
    f"Đề nghị bà con thôn số {n} khẩn trương gia cố nhà cửa, chằng chống mái tôn và thu hoạch lúa đã chín."
    for n in ("một", "hai", "ba", "bốn", "năm", "sáu")
)
GAP_S = 0.05  # a stall shorter than this is the test machine's scheduling, not silence


class PacedVoice:
    """A phoneme voice whose synthesis takes `rtf` seconds per second of audio it returns (letters as phonemes)."""

    name = "piper:paced"
    sample_rate = RATE_HZ

    def __init__(self, rtf: float, phoneme_s: float = PHONEME_S) -> None:
        self.rtf = rtf
        self.phoneme_s = phoneme_s
        self.identity = f"paced:{rtf}"
        self.made: list[tuple[float, float]] = []  # (audio seconds, when it was ready) per model run

    def pieces(self, text: str, first_max: int = 120, max_len: int = 120) -> list[list[str]]:
        out: list[list[str]] = []
        for word in text.split():
            limit = first_max if not out else max_len
            if out and len(out[-1]) + len(word) <= limit:
                out[-1].extend(word)
            else:
                out.append(list(word))
        return out

    def phonemes_to_ids(self, phonemes: list[str]) -> list[int]:
        return [ord(p) for p in phonemes]

    def ids_to_audio(self, ids: list[int], rate: float = 1.0, speaker_id: int | None = None) -> np.ndarray:
        audio_s = len(ids) * self.phoneme_s / rate
        time.sleep(audio_s * self.rtf)
        self.made.append((audio_s, time.monotonic()))
        t = np.arange(int(audio_s * RATE_HZ)) / RATE_HZ
        return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        return np.concatenate([self.ids_to_audio(self.phonemes_to_ids(p), rate) for p in self.pieces(text)])

    def close(self) -> None:
        pass


def speaker_of(voice: PacedVoice) -> Speaker:
    assert isinstance(voice, PhonemeVoice)
    return Speaker(voice, None, TtsSettings(), TextSettings(), RATE_HZ)  # type: ignore[arg-type]


def least_start_delay(made: list[tuple[float, float]], asked: float, chunks: list[Chunk]) -> float:
    """The smallest start delay at which every piece was ready in time, given when each was made."""
    due, worst = 0.0, -math.inf
    for (_, ready), chunk in zip(made, chunks, strict=True):
        worst = max(worst, ready - asked - due)
        due += chunk.duration_s + chunk.pause_s
    return worst


def play(sp: Speaker, voice: PacedVoice) -> tuple[Playout, float]:
    """One bulletin through a real-time consumer; its playout and the least start delay it needed."""
    got: list[Chunk] = []

    def kept(stream: Iterator[Chunk]) -> Iterator[Chunk]:
        for chunk in stream:
            if chunk.text:  # spoken, not the silence of the hold
                got.append(chunk)
            yield chunk

    voice.made.clear()
    asked = time.monotonic()
    result = play_paced(kept(sp.chunks(sp.sentences(TEXT))), min_gap_s=GAP_S)
    return result, least_start_delay(voice.made, asked, got)


@pytest.mark.parametrize("rtf", [1.6, 0.9])
def test_a_voice_slower_than_needed_plays_without_gaps_after_the_least_delay(rtf: float) -> None:
    voice = PacedVoice(rtf)
    result, need = play(speaker_of(voice), voice)
    assert result.gaps == []
    assert need > voice.made[0][0] * rtf + 2 * GAP_S  # played as made, this bulletin would stop mid-way
    made_s = sum(audio for audio, _ in voice.made) * rtf
    slack = HOLD_MARGIN * made_s + HOLD_MARGIN_S + 0.6  # the margin kept on purpose, and a loaded machine
    assert need - 0.05 <= result.start_delay_s <= need + slack


def test_the_real_time_factor_is_remembered_for_the_next_bulletin() -> None:
    voice = PacedVoice(1.6)
    sp = speaker_of(voice)
    play(sp, voice)
    rates = sp.pace.get(voice.identity)
    assert rates is not None and 1.5 <= rates.rtf <= 2.0
    assert rates.audio_per_unit == pytest.approx(PHONEME_S, rel=0.05)
    result, need = play(sp, voice)
    assert result.gaps == []
    assert need - 0.05 <= result.start_delay_s <= need + 1.5


EVEN = " ".join(f"Xin chào bà con thôn {n}." for n in ("một", "hai", "ba", "bốn", "năm", "sáu"))


@pytest.mark.parametrize(
    ("rtf", "text"),
    [(0.1, TEXT), (0.5, EVEN)],  # 10 s of speech made in 1 s (this machine); twice as fast, even sentences
)
def test_a_voice_faster_than_real_time_is_not_delayed_at_all(rtf: float, text: str) -> None:
    voice = PacedVoice(rtf, phoneme_s=REAL_PHONEME_S)
    sp = speaker_of(voice)
    stream = sp.chunks(sp.sentences(text))
    first = next(stream)
    out = time.monotonic()
    stream.close()
    assert first.index == 0 and len(voice.made) >= 1
    assert out - voice.made[0][1] < 0.1  # handed out as soon as it was made: nothing held back


def test_the_hold_is_the_lag_of_making_the_rest_behind_playing_it() -> None:
    pace = Pace()
    pace.observe("v", Cost(units=100, audio_s=1.0, synth_s=2.0), rate=1.0)  # rtf 2, 10 ms a phoneme
    hold = Hold(pace, "v", rate=1.0, max_units=120)
    assert hold.release_at() is None  # nothing to play yet
    chunk = Chunk(index=0, text="a", samples=np.zeros(RATE_HZ, np.float32), sample_rate=RATE_HZ, pause_s=0.5)
    hold.chunk(chunk, now=100.0)
    assert hold.release_at() is None  # too slow to release on the first chunk alone: the plan is needed
    hold.plan([Part(units=100), Part(units=100, pause_s=0.5), Part(units=0, cached_s=3.0)])
    # made after 2 s and 4 s (the cached part costs nothing), due after 1.5 s and 2.5 s of sound
    lag = max(2 * (1 + HOLD_MARGIN) - 0, 4 * (1 + HOLD_MARGIN) - 1.0, 4 * (1 + HOLD_MARGIN) - 2.5)
    assert hold.release_at() == pytest.approx(100.0 + lag - 1.5 + HOLD_MARGIN_S)


def test_a_voice_that_surely_keeps_up_is_released_on_its_first_chunk() -> None:
    pace = Pace()
    pace.observe("v", Cost(units=100, audio_s=1.0, synth_s=0.1), rate=1.0)
    hold = Hold(pace, "v", rate=1.0, max_units=120)
    chunk = Chunk(index=0, text="a", samples=np.zeros(RATE_HZ // 2, np.float32), sample_rate=RATE_HZ)
    hold.chunk(chunk, now=5.0)
    assert hold.release_at() == -math.inf  # no plan needed: the longest piece takes 0.13 s, 0.5 s is buffered


def test_while_speech_is_held_back_the_player_gets_silence_it_can_stop_in() -> None:
    voice = PacedVoice(1.6)
    sp = speaker_of(voice)
    stream = sp.chunks(sp.sentences(TEXT))
    asked = time.monotonic()
    first = next(stream)
    # silence in short steps, soon after the first piece is made: the player beats and can be stopped meanwhile
    assert first.text == "" and not first.samples.any() and 0 < first.duration_s <= HOLD_STEP_S + 1e-6
    assert time.monotonic() - asked < voice.made[0][0] * 1.6 + 1.0
    stream.close()  # an emergency cuts in
    deadline = time.monotonic() + 10
    while any(t.name == "speech-synth" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "speech-synth" for t in threading.enumerate())
    assert len(voice.made) < len(sp.sentences(TEXT))


def test_a_wav_file_is_written_without_holding_anything_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from loaxa.speech.pipeline import synthesize_to_wav

    voice = PacedVoice(1.6)
    sp = speaker_of(voice)
    seconds = synthesize_to_wav(sp, TEXT, tmp_path / "out.wav")  # played, this would be held back for seconds
    speech = sum(audio for audio, _ in voice.made)
    pauses = sum(s.pause_s for s in sp.sentences(TEXT))
    assert seconds == pytest.approx(speech + pauses, abs=0.01)  # no silence added
