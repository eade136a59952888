"""The Piper voice on real onnxruntime, with a tiny model of Piper's exact I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from piper.phoneme_ids import phonemes_to_ids as piper_phonemes_to_ids

from loaxa.errors import VoiceError
from loaxa.speech.piper import MAX_PIECE_PHONEMES, NeuralVoice, VoiceModel, split_phonemes
from loaxa.testing.tinyvoice import SAMPLES_PER_ID, decode_header, decode_ids, make_tiny_voice

TEXT = "Xin chào bà con, hôm nay trời mưa to. Thông báo khẩn: nước lũ dâng cao!"


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> NeuralVoice:
    v = NeuralVoice.load(make_tiny_voice(tmp_path_factory.mktemp("voice")), threads=1)
    yield v
    v.close()


def test_load_reads_the_config_and_names_the_voice(voice: NeuralVoice) -> None:
    assert voice.name == "piper:xx_XX-tiny-x_low"
    assert voice.sample_rate == 22050
    assert voice.config.espeak_voice == "vi"


def test_phonemize_vietnamese_keeps_tones_and_punctuation_per_sentence(voice: NeuralVoice) -> None:
    sentences = voice.phonemize(TEXT)
    assert len(sentences) == 2
    first = "".join(sentences[0])
    assert "," in first and first.rstrip().endswith(".")
    assert any(ch.isdigit() for ch in first)  # tone digits, as vais1000's map expects


def test_ids_are_bos_then_each_phoneme_with_pad_then_eos_like_piper(voice: NeuralVoice) -> None:
    phonemes = voice.phonemize(TEXT)[0]
    ids = voice.phonemes_to_ids(phonemes)
    assert ids == piper_phonemes_to_ids(phonemes, voice.config.phoneme_id_map)
    id_map = voice.config.phoneme_id_map
    assert ids[:2] == id_map["^"] + id_map["_"] and ids[-1:] == id_map["$"]
    assert ids[3::2] == id_map["_"] * (len(phonemes))


def test_phonemes_missing_from_the_map_are_skipped(voice: NeuralVoice) -> None:
    assert voice.phonemes_to_ids(["a", "☃", "b"]) == voice.phonemes_to_ids(["a", "b"])


def test_the_model_gets_the_ids_and_the_configured_scales(voice: NeuralVoice) -> None:
    ids = voice.phonemes_to_ids(list("tˈoŋ"))
    raw = voice.ids_to_audio(ids)
    assert raw.dtype == np.float32 and raw.ndim == 1  # rank-4 output flattened
    assert decode_ids(raw) == ids
    noise, length, noise_w, sid = decode_header(raw)
    assert (noise, length, noise_w) == pytest.approx((0.667, 1.0, 0.8))
    assert sid == -1  # single speaker: no sid input at all


def test_rate_shortens_length_scale(voice: NeuralVoice) -> None:
    ids = voice.phonemes_to_ids(list("ban"))
    fast = voice.ids_to_audio(ids, rate=2.0)
    assert decode_header(fast)[1] == pytest.approx(0.5)
    assert len(fast) - 4 == len(ids) * SAMPLES_PER_ID // 2
    assert decode_ids(fast, length_scale=0.5) == ids


def test_multi_speaker_voice_gets_sid(tmp_path: Path) -> None:
    voice = NeuralVoice.load(make_tiny_voice(tmp_path, num_speakers=3), threads=1)
    ids = voice.phonemes_to_ids(list("a"))
    assert decode_header(voice.ids_to_audio(ids))[3] == 0
    assert decode_header(voice.ids_to_audio(ids, speaker_id=2))[3] == 2


def test_long_sentences_are_cut_at_clause_marks_into_capped_pieces(voice: NeuralVoice) -> None:
    text = ", ".join(["đề nghị bà con sơ tán ngay đến nơi an toàn"] * 8) + "."
    pieces = voice.pieces(text, first_max=40)
    assert len(pieces[0]) <= 40
    assert all(len(p) <= MAX_PIECE_PHONEMES for p in pieces)
    assert all(p[-1] in ",." for p in pieces[1:])  # past the short first piece, cuts fall on commas
    joined = [ph for p in pieces for ph in p if ph != " "]
    assert joined == [ph for s in voice.phonemize(text) for ph in s if ph != " "]


def test_split_without_punctuation_cuts_at_spaces() -> None:
    words = list(" ".join(["abcdefg"] * 40))
    pieces = split_phonemes(words, 50)
    assert all(len(p) <= 50 and p[0] != " " and p[-1] != " " for p in pieces)
    assert "".join("".join(p) + " " for p in pieces).split() == ["abcdefg"] * 40


def test_synthesize_concatenates_pieces(voice: NeuralVoice) -> None:
    audio = voice.synthesize(TEXT)
    expected = sum(len(voice.phonemes_to_ids(p)) * SAMPLES_PER_ID + 4 for p in voice.pieces(TEXT))
    assert len(audio) == expected
    assert len(voice.synthesize("   ")) == 0


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_malformed_config_names_every_bad_key(tmp_path: Path) -> None:
    bad = {"audio": {"sample_rate": "fast"}, "espeak": {}, "phoneme_id_map": {"a": [1]}, "num_speakers": 0}
    with pytest.raises(VoiceError) as err:
        VoiceModel.from_file(_write(tmp_path / "v.onnx.json", bad))
    message = str(err.value)
    for key in ("audio.sample_rate", "espeak.voice", "'^'", "num_speakers"):
        assert key in message


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not a readable JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"phoneme_type": "pinyin"}', "not supported"),
    ],
)
def test_unreadable_config_is_a_clear_error(tmp_path: Path, content: str, words: str) -> None:
    with pytest.raises(VoiceError, match=words):
        VoiceModel.from_file(_write(tmp_path / "v.onnx.json", content))


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    onnx_path = make_tiny_voice(tmp_path)
    onnx_path.with_name(onnx_path.name + ".json").unlink()
    with pytest.raises(VoiceError, match="voice config not found"):
        NeuralVoice.load(onnx_path)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    onnx_path = make_tiny_voice(tmp_path)
    onnx_path.write_bytes(b"this is not a model")
    with pytest.raises(VoiceError, match="cannot load the model"):
        NeuralVoice.load(onnx_path)


def test_a_model_without_piper_inputs_is_refused(tmp_path: Path) -> None:
    onnx_path = make_tiny_voice(tmp_path)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(onnx_path))
    with pytest.raises(VoiceError, match="not a Piper voice"):
        NeuralVoice.load(onnx_path)


def test_a_model_that_fails_raises_voice_error(tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match="warm-up failed"):
        NeuralVoice.load(make_tiny_voice(tmp_path, mode="fail"))
    voice = NeuralVoice.load(tmp_path / "xx_XX-tiny-x_low.onnx", warm_up=False)
    with pytest.raises(VoiceError, match="failed on"):
        voice.ids_to_audio([1, 0, 2])


def test_a_model_that_hangs_at_warm_up_is_refused_at_the_deadline(tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match="no audio within 0.3 s"):
        NeuralVoice.load(make_tiny_voice(tmp_path, mode="hang"), deadline_s=0.3)
