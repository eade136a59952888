"""Multi-part bulletins (issue 13, item 3): the protocol's rules for `parts`, and `loaxa publish --part-…`.

What airs is checked end to end in `test_parts_e2e.py`.
"""

from __future__ import annotations

import json
import re

import pytest

from loaxa.cli import build_parser
from loaxa.cli.publish import build_command
from loaxa.config import TextSettings, TtsSettings
from loaxa.content import PART_STRIDE, Audio, Parts, Text, resume_point
from loaxa.errors import CommandError, LoaxaError
from loaxa.protocol import Bulletin, parse_command
from loaxa.speech.ahead import VoiceAhead
from loaxa.speech.pipeline import build_speaker
from loaxa.testing.tinyvoice import make_tiny_voice

SHA = "ab" * 32
AUDIO = {"audio": {"url": "http://province.example/hmong.mp3", "sha256": SHA}}


def bulletin(**fields) -> bytes:
    return json.dumps({"type": "bulletin", "id": "p1", **fields}).encode()


def test_text_and_recorded_parts_become_one_content_in_their_order():
    b = parse_command(bulletin(parts=[{"text": "Thông báo họp dân.", "rate": 1.2}, AUDIO]))
    assert isinstance(b, Bulletin)
    content = b.content
    assert isinstance(content, Parts)
    text, audio = content.parts
    assert isinstance(text, Text) and (text.text, text.rate) == ("Thông báo họp dân.", 1.2)
    assert isinstance(audio, Audio) and audio.sha256 == SHA


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([], "parts must be a list of 1-20 parts"),
        ([{"text": "Một."}] * 21, "parts must be a list of 1-20 parts"),
        ([{"text": "Một.", **AUDIO}], "parts.1: each part is {text, voice?, rate?} or {audio: {url, sha256}}"),
        ([{"text": "Một."}, {"audio": {"url": "http://x/a.mp3", "sha256": "zz"}}], "parts.2.audio.sha256"),
        ([{"text": "   "}], "parts.1.text: must be text to read"),
        ([{"text": "Một.", "colour": "red"}], "parts.1: unknown field: colour"),
        ([{"text": "Một.", "rate": 3}], "parts.1.rate: must be a number from 0.5 to 2"),
        ([{"text": "a" * 15_000}, {"text": "b" * 5_001}], "parts: 20001 characters of text is over the 20000"),
        ([{**AUDIO, "volume": 1}], "parts.1: a recorded part has only 'audio'"),
    ],
)
def test_a_bad_part_rejects_the_bulletin_with_the_part_named(parts, reason):
    with pytest.raises(CommandError) as err:
        parse_command(bulletin(parts=parts))
    assert str(err.value).startswith(reason), str(err.value)


def test_parts_are_the_whole_content_not_an_addition_to_text():
    with pytest.raises(CommandError, match="exactly one of text, audio, stream, parts"):
        parse_command(bulletin(text="Một.", parts=[{"text": "Hai."}]))


def test_the_resume_point_names_the_part_and_its_sentence():
    assert resume_point({"parts": []}, 1 * PART_STRIDE + 3) == "part 2, sentence 4"
    assert resume_point({"text": "…"}, 3) == "sentence 4"  # as before, for a plain text


def publish(*argv: str) -> dict:
    return build_command(build_parser().parse_args(["publish", "--province", "hue", *argv]))


def test_publish_builds_the_parts_in_the_order_given_each_recording_with_its_hash():
    command = publish(
        "--part-text",
        "Thông báo.",
        "--part-audio",
        "http://h/hmong.mp3",
        "--sha256",
        SHA.upper(),
        "--part-text",
        "Hết.",
    )
    assert command["parts"] == [
        {"text": "Thông báo."},
        {"audio": {"url": "http://h/hmong.mp3", "sha256": SHA}},
        {"text": "Hết."},
    ]
    assert isinstance(parse_command(json.dumps(command).encode()), Bulletin)


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (("--part-audio", "http://h/a.mp3"), "--part-audio http://h/a.mp3 needs a --sha256 right after it"),
        (("--text", "Một.", "--part-text", "Hai."), "--part-text/--part-audio make the whole bulletin"),
        ((), "one of --text, --file, --audio-url, --part-text/--part-audio or --cancel is required"),
    ],
)
def test_publish_refuses_parts_it_cannot_send(argv, reason):
    with pytest.raises(LoaxaError, match=re.escape(reason)):
        publish(*argv)


def test_the_text_parts_of_a_scheduled_multi_part_bulletin_are_voiced_ahead(tmp_path):
    """A scheduled multi-part bulletin starts on time like a scheduled text: its text parts are in the cache."""
    make_tiny_voice(tmp_path / "voices" / "vi", name="vi_VN-tiny-x_low")
    tts = TtsSettings(voice="vi_VN-tiny-x_low", voices_dir=tmp_path / "voices")
    speaker = build_speaker(tts, TextSettings(), 22050, cache_dir=tmp_path / "cache")
    ahead = VoiceAhead(speaker)
    try:
        ahead.start()
        ahead.prepare({"parts": [{"text": "Thông báo họp dân."}, AUDIO, {"text": "Xin cảm ơn."}]})
        ahead.stop()
        ahead.join(60)  # it ends after what was queued before the stop
        assert not ahead.alive()
        assert speaker.prepare("Thông báo họp dân.") == 0 and speaker.prepare("Xin cảm ơn.") == 0  # nothing new
        assert speaker.prepare("Một câu khác.") == 1  # while a text not given is voiced now
    finally:
        speaker.close()
