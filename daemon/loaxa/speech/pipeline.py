"""Text to a stream of voiced sentences, with the fallback voice behind it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from loaxa.config import TextSettings, TtsSettings
from loaxa.errors import VoiceError
from loaxa.speech.engine import Chunk, Sentence, Voice, resample
from loaxa.speech.normalize import normalize
from loaxa.speech.split import split_sentences

log = logging.getLogger(__name__)


class Speaker:
    """Turns bulletin text into chunks at the output sample rate."""

    def __init__(
        self,
        voice: Voice,
        fallback: Voice | None,
        tts: TtsSettings,
        text: TextSettings,
        sample_rate: int,
    ) -> None:
        self.voice = voice
        self.fallback = fallback
        self.tts = tts
        self.text = text
        self.sample_rate = sample_rate
        self.fallback_reason: str | None = None

    def sentences(self, text: str) -> list[Sentence]:
        spoken = normalize(text, dialect=self.text.dialect)
        return split_sentences(spoken, pause_s=self.tts.sentence_silence_s)

    def chunks(self, sentences: list[Sentence], start: int = 0, rate: float | None = None) -> Iterator[Chunk]:
        rate = rate or self.tts.rate
        for index in range(start, len(sentences)):
            sentence = sentences[index]
            voice = self.voice
            try:
                samples = voice.synthesize(sentence.text, rate)
            except VoiceError as exc:
                if self.fallback is None or self.fallback is voice:
                    raise
                log.warning("voice %s failed (%s); speaking with %s", voice.name, exc, self.fallback.name)
                self.fallback_reason = str(exc)
                voice = self.fallback
                samples = voice.synthesize(sentence.text, rate)
            yield Chunk(
                index=index,
                text=sentence.text,
                samples=resample(samples, voice.sample_rate, self.sample_rate),
                sample_rate=self.sample_rate,
                pause_s=sentence.pause_s,
                voice=voice.name,
            )

    def status(self) -> dict[str, object]:
        """What the station `state` reports as `voice`."""
        return {
            "engine": self.voice.name.split(":", 1)[0],
            "name": self.voice.name,
            "fallback": self.fallback_reason is not None,
            "reason": self.fallback_reason,
        }

    def close(self) -> None:
        self.voice.close()
        if self.fallback is not None and self.fallback is not self.voice:
            self.fallback.close()


def load_voice(spec: str, tts: TtsSettings) -> Voice:
    """`espeak:VOICE` is the espeak-ng voice; anything else a Piper voice (not yet)."""
    if spec.startswith("espeak:"):
        from loaxa.speech.espeak import EspeakVoice

        return EspeakVoice(spec.split(":", 1)[1] or "vi", timeout_s=tts.deadline_s)
    raise VoiceError(f"voice {spec!r} is not installed")


def build_speaker(tts: TtsSettings, text: TextSettings, sample_rate: int) -> Speaker:
    """The configured voice, or the fallback alone when it cannot load."""
    fallback = load_voice(tts.fallback, tts)
    try:
        voice = load_voice(tts.voice, tts)
        reason = None
    except VoiceError as exc:
        log.warning("voice %s unavailable (%s); using %s", tts.voice, exc, fallback.name)
        voice, reason = fallback, str(exc)
    speaker = Speaker(voice, fallback, tts, text, sample_rate)
    speaker.fallback_reason = reason
    return speaker
