"""The speaker: streaming order, cache, loudness, fallback, WAV output."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from loaxa.config import TextSettings, TtsSettings
from loaxa.speech.engine import Sentence
from loaxa.speech.espeak import EspeakVoice
from loaxa.speech.level import TARGET_RMS, level
from loaxa.speech.pipeline import QUEUE_CHUNKS, Speaker, build_speaker, synthesize_to_wav
from loaxa.speech.piper import NeuralVoice
from loaxa.testing.tinyvoice import make_tiny_voice

BULLETIN = " ".join(
    f"Thông báo số {n}: đề nghị bà con thôn {n} đến nhà văn hóa họp."
    for n in ("một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám")
)
LONG_FIRST = (
    "Đề nghị bà con khẩn trương gia cố nhà cửa, chằng chống mái tôn, thu hoạch lúa và hoa màu đã chín. Xin cảm ơn."
)


class Counting:
    """A real Piper voice whose model runs are counted."""

    def __init__(self, voice: NeuralVoice) -> None:
        self._voice = voice
        self.runs = 0
        self.name, self.sample_rate, self.identity = voice.name, voice.sample_rate, voice.identity

    def __getattr__(self, attr: str) -> object:
        return getattr(self._voice, attr)

    def ids_to_audio(self, ids: list[int], rate: float = 1.0) -> np.ndarray:
        self.runs += 1
        return self._voice.ids_to_audio(ids, rate)


@pytest.fixture()
def voice(tmp_path: Path) -> Counting:
    return Counting(NeuralVoice.load(make_tiny_voice(tmp_path / "voices"), threads=1))


def speaker(voice: object, tmp_path: Path | None = None, fallback: object | None = None, **tts: object) -> Speaker:
    from loaxa.speech.cache import AudioCache

    cache = AudioCache(tmp_path / "cache", 50_000_000) if tmp_path else None
    return Speaker(voice, fallback, TtsSettings(**tts), TextSettings(), 22050, cache=cache)  # type: ignore[arg-type]


def voiced_rms(samples: np.ndarray) -> float:
    loud = samples[np.abs(samples) > 1e-3]
    return float(np.sqrt(np.mean(loud**2)))


def test_chunks_come_in_sentence_order_with_pauses_after_each_sentence(voice: Counting) -> None:
    sp = speaker(voice)
    sentences = sp.sentences(LONG_FIRST + " " + BULLETIN)
    chunks = list(sp.chunks(sentences))
    assert [c.index for c in chunks] == sorted(c.index for c in chunks)
    assert {c.index for c in chunks} == set(range(len(sentences)))
    for index in range(len(sentences)):
        mine = [c for c in chunks if c.index == index]
        assert [c.pause_s for c in mine] == [0.0] * (len(mine) - 1) + [sentences[index].pause_s]
        assert all(c.text == sentences[index].text and c.sample_rate == 22050 for c in mine)
    # the long first sentence starts with a short piece, so sound starts sooner
    assert len([c for c in chunks if c.index == 0]) >= 2


def test_first_chunk_arrives_before_the_bulletin_is_synthesised(voice: Counting) -> None:
    sp = speaker(voice)
    sentences = sp.sentences(BULLETIN)
    stream = sp.chunks(sentences)
    next(stream)
    runs_at_first_sound = voice.runs
    rest = list(stream)
    assert runs_at_first_sound <= QUEUE_CHUNKS + 2  # the bounded queue holds the rest back
    assert voice.runs >= len(sentences) > runs_at_first_sound
    assert len(rest) >= len(sentences) - 1


def test_closing_the_stream_stops_synthesis(voice: Counting) -> None:
    sp = speaker(voice)
    stream = sp.chunks(sp.sentences(BULLETIN * 3))
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while any(t.name == "speech-synth" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "speech-synth" for t in threading.enumerate())
    assert voice.runs < len(sp.sentences(BULLETIN * 3))


def test_start_resumes_at_a_sentence(voice: Counting) -> None:
    sp = speaker(voice)
    sentences = sp.sentences(BULLETIN)
    indices = [c.index for c in sp.chunks(sentences, start=5)]
    assert sorted(set(indices)) == list(range(5, len(sentences))) and indices == sorted(indices)


def test_a_repeated_bulletin_is_synthesised_once(voice: Counting, tmp_path: Path) -> None:
    sp = speaker(voice, tmp_path)
    first = [c.samples for c in sp.chunks(sp.sentences(BULLETIN))]
    runs = voice.runs
    for _ in range(13):  # twice a day for a week, less the first
        again = [c.samples for c in sp.chunks(sp.sentences(BULLETIN))]
    assert voice.runs == runs
    assert np.allclose(np.concatenate(first), np.concatenate(again), atol=1e-4)
    assert sp.cache is not None and sp.cache.hits == 13 * len(sp.sentences(BULLETIN))


def test_another_rate_is_another_entry(voice: Counting, tmp_path: Path) -> None:
    sp = speaker(voice, tmp_path)
    slow = sum(len(c.samples) for c in sp.chunks(sp.sentences("Xin chào bà con."), rate=1.0))
    runs = voice.runs
    fast = sum(len(c.samples) for c in sp.chunks(sp.sentences("Xin chào bà con."), rate=2.0))
    assert voice.runs > runs and fast < slow


def test_prepare_fills_the_cache_ahead(voice: Counting, tmp_path: Path) -> None:
    sp = speaker(voice, tmp_path)
    assert sp.prepare(BULLETIN) == len(sp.sentences(BULLETIN))
    runs = voice.runs
    assert sp.prepare(BULLETIN) == 0
    assert len(list(sp.chunks(sp.sentences(BULLETIN)))) == len(sp.sentences(BULLETIN))
    assert voice.runs == runs


class PeakNormalised:
    """Sentences as Piper leaves them: each scaled to its own peak."""

    name, sample_rate, identity = "fake:peaks", 22050, "fake:peaks"

    def synthesize(self, text: str, rate: float = 1.0) -> np.ndarray:
        body = 0.2 * np.sin(np.arange(22050) / 3.0)
        if "spike" in text:
            body[100] = 1.0  # one plosive: peak normalising leaves the rest quiet
        else:
            body = body / np.max(np.abs(body))
        return body.astype(np.float32)

    def close(self) -> None:
        pass


def test_loudness_is_steady_across_sentences() -> None:
    sp = speaker(PeakNormalised())
    raw = [PeakNormalised().synthesize(t) for t in ("calm", "spike")]
    assert voiced_rms(raw[0]) / voiced_rms(raw[1]) > 4  # what Piper's own normalising gives
    chunks = list(sp.chunks([Sentence("calm."), Sentence("spike.")]))
    ratio_db = 20 * np.log10(voiced_rms(chunks[0].samples) / voiced_rms(chunks[1].samples))
    assert abs(ratio_db) < 1.0
    assert all(np.max(np.abs(c.samples)) < 1.0 for c in chunks)


def test_level_keeps_silence_silent_and_peaks_below_full_scale() -> None:
    assert not level(np.zeros(4000, dtype=np.float32), 22050).any()
    loud = level((0.01 * np.sin(np.arange(22050) / 3.0)).astype(np.float32), 22050)
    assert np.sqrt(np.mean(loud**2)) == pytest.approx(TARGET_RMS, rel=0.05)
    clipped = level(np.sign(np.sin(np.arange(22050) / 3.0)).astype(np.float32) * 0.001, 22050)
    assert np.max(np.abs(clipped)) < 1.0


def test_output_rate_is_resampled(voice: Counting) -> None:
    sp = Speaker(voice, None, TtsSettings(), TextSettings(), 16000)  # type: ignore[arg-type]
    chunk = next(iter(sp.chunks(sp.sentences("Xin chào."))))
    assert chunk.sample_rate == 16000
    raw = voice.synthesize("Xin chào.")
    assert len(chunk.samples) == pytest.approx(len(raw) * 16000 / 22050, abs=2)


# -- fallback ------------------------------------------------------------------


def test_no_installed_voice_speaks_with_espeak_and_says_why(tmp_path: Path) -> None:
    tts = TtsSettings(voice="vi_VN-vais1000-medium", voices_dir=tmp_path)
    sp = build_speaker(tts, TextSettings(), 22050, cache_dir=tmp_path / "cache")
    try:
        status = sp.status()
        assert status["fallback"] is True and status["engine"] == "espeak"
        assert "not installed" in str(status["reason"])
        chunks = list(sp.chunks(sp.sentences("Xin chào bà con. Tạm biệt.")))
        assert [c.voice for c in chunks] == ["espeak:vi", "espeak:vi"]
        assert all(len(c.samples) > 1000 for c in chunks)
    finally:
        sp.close()


def test_a_broken_model_file_falls_back(tmp_path: Path) -> None:
    onnx_path = make_tiny_voice(tmp_path)
    onnx_path.write_bytes(b"\x00" * 64)
    sp = build_speaker(TtsSettings(voice=str(onnx_path)), TextSettings(), 22050)
    try:
        assert sp.status()["fallback"] is True and "cannot load" in str(sp.status()["reason"])
        assert next(iter(sp.chunks(sp.sentences("Xin chào.")))).voice == "espeak:vi"
    finally:
        sp.close()


def test_a_voice_found_by_name_in_the_voices_folder_is_used(tmp_path: Path) -> None:
    make_tiny_voice(tmp_path / "voices" / "vi", name="vi_VN-tiny-x_low")
    tts = TtsSettings(voice="vi_VN-tiny-x_low", voices_dir=tmp_path / "voices")
    sp = build_speaker(tts, TextSettings(), 22050, cache_dir=tmp_path / "cache")
    try:
        assert sp.status() == {"engine": "piper", "name": "piper:vi_VN-tiny-x_low", "fallback": False, "reason": None}
        list(sp.chunks(sp.sentences("Xin chào.")))
        assert sp.cache is not None and sp.cache.size_bytes > 0
    finally:
        sp.close()


def test_a_synthesis_that_raises_hands_the_bulletin_to_espeak(tmp_path: Path) -> None:
    broken = NeuralVoice.load(make_tiny_voice(tmp_path, mode="fail"), warm_up=False)
    sp = speaker(broken, fallback=EspeakVoice("vi"))
    try:
        chunks = list(sp.chunks(sp.sentences("Xin chào bà con. Tạm biệt.")))
        assert [(c.index, c.voice) for c in chunks] == [(0, "espeak:vi"), (1, "espeak:vi")]
        assert sp.status()["fallback"] is True and "failed on" in str(sp.status()["reason"])
    finally:
        sp.close()


class Replaced:
    """A voice whose model files are swapped between bulletins (a technician reinstalls it)."""

    def __init__(self, voice: NeuralVoice) -> None:
        self.current = voice

    def __getattr__(self, attr: str) -> object:
        return getattr(self.current, attr)


def test_a_hanging_model_is_cut_off_at_the_deadline_and_recovers(tmp_path: Path) -> None:
    hanging = NeuralVoice.load(make_tiny_voice(tmp_path / "hang", mode="hang"), warm_up=False)
    voice = Replaced(hanging)
    sp = speaker(voice, fallback=EspeakVoice("vi"), deadline_s=0.3)
    try:
        chunks = list(sp.chunks(sp.sentences("Xin chào bà con. Tạm biệt.")))
        assert [c.voice for c in chunks] == ["espeak:vi", "espeak:vi"]
        assert "within 0.3 s" in str(sp.status()["reason"])
        # the stuck run was terminated: the speaker is free again for the next bulletin
        voice.current = NeuralVoice.load(make_tiny_voice(tmp_path / "ok"))
        assert [c.voice for c in sp.chunks(sp.sentences("Xin chào."))] == ["piper:xx_XX-tiny-x_low"]
        assert sp.status()["fallback"] is False
    finally:
        sp.close()
        hanging.close()


def test_an_injected_voice_is_used_instead_of_loading_tts_voice(voice: Counting, tmp_path: Path) -> None:
    tts = TtsSettings(voice="vi_VN-not-installed", voices_dir=tmp_path / "empty")
    sp = build_speaker(tts, TextSettings(), 22050, cache_dir=tmp_path / "cache", voice=voice)  # type: ignore[arg-type]
    try:
        assert sp.status() == {"engine": "piper", "name": "piper:xx_XX-tiny-x_low", "fallback": False, "reason": None}
        assert {c.voice for c in sp.chunks(sp.sentences("Xin chào bà con."))} == {"piper:xx_XX-tiny-x_low"}
        assert voice.runs > 0 and sp.fallback is not None and sp.fallback.name == "espeak:vi"
    finally:
        sp.close()


def test_synthesize_to_wav_writes_speech_with_the_silence_asked(voice: Counting, tmp_path: Path) -> None:
    sp = speaker(voice)
    out = tmp_path / "out.wav"
    seconds = synthesize_to_wav(sp, "Xin chào. Tạm biệt.", out, rate=1.0, silence_s=0.2)
    with wave.open(str(out)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (22050, 1, 2)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert len(frames) / 22050 == pytest.approx(seconds)
    sentences = sp.sentences("Xin chào. Tạm biệt.", pause_s=0.2)
    assert sentences[0].pause_s == pytest.approx(0.2)
    speech = sum(len(c.samples) for c in sp.chunks(sentences))
    assert len(frames) == speech + sum(int(round(s.pause_s * 22050)) for s in sentences)


def test_the_configured_local_lexicon_reaches_what_is_spoken(tmp_path):
    from loaxa.config import TextSettings, TtsSettings
    from loaxa.speech.pipeline import build_speaker

    lexicon = tmp_path / "lexicon.yaml"
    lexicon.write_text("HTXDV: hợp tác xã dịch vụ\n", encoding="utf-8")
    speaker = build_speaker(TtsSettings(voice="espeak:vi"), TextSettings(lexicon=lexicon), 22050)
    try:
        spoken = " ".join(s.text for s in speaker.sentences("HTXDV thôn 3 họp lúc 7h30."))
    finally:
        speaker.close()
    assert "hợp tác xã dịch vụ thôn ba họp lúc bảy giờ ba mươi" in spoken.lower()


def test_a_broken_local_lexicon_stops_the_speaker_with_its_reason(tmp_path):
    from loaxa.config import TextSettings, TtsSettings
    from loaxa.errors import ConfigError
    from loaxa.speech.pipeline import build_speaker

    lexicon = tmp_path / "lexicon.yaml"
    lexicon.write_text("- not: [a mapping\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lexicon"):
        build_speaker(TtsSettings(voice="espeak:vi"), TextSettings(lexicon=lexicon), 22050)
