"""The compose page's previews: the words the voice will say, and how they sound.

Both run the station's own speech code, so an editor hears what a commune
will hear. The spoken preview is the normaliser and the sentence splitter
(`Speaker.sentences`' two steps), cheap enough to run on every pause in
typing. The audio preview is a WAV from the configured Piper voice in its
child process (`console.voice` in `console.voices_dir`), espeak-ng when that
voice is not installed; its `X-Loaxa-Voice` header names the voice used.

Synthesis runs in the thread pool, one request at a time: a second request
while one is voicing is answered 503 at once instead of queueing behind it.
A preview voices at most MAX_AUDIO_CHARS of spoken text (whole sentences,
the rest is named in `X-Loaxa-Sentences`) and stops at DEADLINE_S.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import wave
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loaxa.config import INSTALL_DIR, TextSettings, TtsSettings
from loaxa.content import MAX_TEXT
from loaxa.errors import VoiceError
from loaxa.pcm import to_int16
from loaxa.province.console.web import Console, User
from loaxa.province.server.settings import ConsoleSettings
from loaxa.speech.engine import Chunk, Sentence
from loaxa.speech.normalize import Lexicon, normalize
from loaxa.speech.pipeline import Speaker, build_speaker
from loaxa.speech.split import split_sentences

log = logging.getLogger(__name__)

MAX_SPOKEN_CHARS = MAX_TEXT  # a bulletin's own limit: a longer text cannot be sent anyway
MAX_AUDIO_CHARS = 1500  # about 90 s of speech; a preview, not the bulletin
DEADLINE_S = 30.0  # the whole preview, all its sentences
CACHE_BYTES = 64 * 1024 * 1024
SAMPLE_RATE = 22050
FALLBACK = "espeak:vi"


class Busy(Exception):
    """Another preview is being voiced."""


class TooSlow(Exception):
    """The preview was not voiced within DEADLINE_S."""


@dataclass(frozen=True)
class Audio:
    wav: bytes
    voice: str  # engine:name that spoke it
    fallback: bool  # not the configured voice, and why is in `reason`
    reason: str | None
    sentences: int  # voiced
    of: int  # in the text


class Previewer:
    """One Speaker for the whole server, built on the first audio preview."""

    def __init__(self, console: ConsoleSettings, deadline_s: float = DEADLINE_S) -> None:
        self.voice = console.voice
        self.deadline_s = deadline_s
        self.voices_dir = console.voices_dir or INSTALL_DIR / "tts_models"
        self.text = TextSettings()
        self.lexicon = Lexicon.load(None)
        self._speaker: Speaker | None = None
        self._voicing = threading.Lock()  # held for one synthesis; tried, never waited for
        self._cache: OrderedDict[tuple[str, str], Audio] = OrderedDict()
        self._cache_bytes = 0
        self._cache_lock = threading.Lock()

    def sentences(self, text: str) -> list[Sentence]:
        """What the voice will say, chunk by chunk, with the pause after each."""
        spoken = normalize(text[:MAX_SPOKEN_CHARS], dialect=self.text.dialect, lexicon=self.lexicon)
        return split_sentences(spoken, pause_s=TtsSettings().sentence_silence_s)

    def voice_status(self) -> dict[str, object]:
        """The voice the audio preview speaks with, without loading it."""
        if self._speaker is not None:
            return self._speaker.status()
        from loaxa.speech.voices import find_voice

        try:
            find_voice(self.voice, self.voices_dir)
        except VoiceError as exc:
            return {"name": FALLBACK, "fallback": True, "reason": str(exc)}
        return {"name": f"piper:{self.voice}", "fallback": False, "reason": None}

    def audio(self, text: str) -> Audio:
        """A WAV of the text's first sentences; Busy while another is voiced, TooSlow past the deadline."""
        sentences = self.sentences(text)
        take: list[Sentence] = []
        chars = 0
        for sentence in sentences:
            if take and chars + len(sentence.text) > MAX_AUDIO_CHARS:
                break
            take.append(sentence)
            chars += len(sentence.text)
        key_text = "\n".join(s.text for s in take)
        if not self._voicing.acquire(blocking=False):
            cached = self._cached(key_text)
            if cached is not None:
                return cached
            raise Busy()
        try:
            speaker = self._speaker_now()
            cached = self._cached(key_text, str(speaker.status()["name"]))
            if cached is not None:
                return cached
            wav = self._voice(speaker, take)
            status = speaker.status()
            reason = str(status["reason"]) if status["reason"] else None
            audio = Audio(wav, str(status["name"]), bool(status["fallback"]), reason, len(take), len(sentences))
        finally:
            self._voicing.release()
        self._remember(key_text, audio)
        return audio

    def voicing(self) -> bool:
        """Whether a preview is being voiced now."""
        return self._voicing.locked()

    def close(self) -> None:
        with self._voicing:
            speaker, self._speaker = self._speaker, None
        if speaker is not None:
            speaker.close()

    # -- inside the lock ----------------------------------------------------------
    def _speaker_now(self) -> Speaker:
        if self._speaker is None:
            # A sentence the neural voice does not voice in time is spoken by espeak-ng, within the preview's deadline.
            tts = TtsSettings(
                voice=self.voice,
                voices_dir=self.voices_dir,
                fallback=FALLBACK,
                threads=1,
                deadline_s=min(TtsSettings().deadline_s, self.deadline_s),
            )
            self._speaker = build_speaker(tts, self.text, SAMPLE_RATE)
            log.info("preview voice: %s", self._speaker.status()["name"])
        return self._speaker

    def _voice(self, speaker: Speaker, sentences: list[Sentence]) -> bytes:
        deadline = time.monotonic() + self.deadline_s
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(speaker.sample_rate)
            chunks = cast(Generator[Chunk, None, None], speaker.chunks(sentences, hold=False))
            try:
                for chunk in chunks:
                    gap = np.zeros(int(round(chunk.pause_s * speaker.sample_rate)), dtype=np.float32)
                    wav.writeframes(to_int16(np.concatenate([chunk.samples, gap])).tobytes())
                    if time.monotonic() > deadline:
                        raise TooSlow()
            finally:
                chunks.close()  # stops the synthesis thread when cut short
        return out.getvalue()

    # -- cache --------------------------------------------------------------------
    def _cached(self, text: str, voice: str | None = None) -> Audio | None:
        with self._cache_lock:
            keys = [(voice, text)] if voice else [k for k in self._cache if k[1] == text]
            for key in keys:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
        return None

    def _remember(self, text: str, audio: Audio) -> None:
        with self._cache_lock:
            key = (audio.voice, text)
            if key in self._cache:
                return
            self._cache[key] = audio
            self._cache_bytes += len(audio.wav)
            while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= len(old.wav)


def routes(console: Console) -> list[BaseRoute]:
    previewer = Previewer(console.ctx.settings.console)

    def spoken(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        text = str((form or {}).get("text") or "")
        return console.render(
            request,
            "preview_spoken.html",
            sentences=previewer.sentences(text),
            cut=len(text) > MAX_SPOKEN_CHARS,
            limit=MAX_SPOKEN_CHARS,
            audio_limit=MAX_AUDIO_CHARS,
            voice=previewer.voice_status(),
        )

    def audio(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        _ = console.gettext(user.language)
        text = str((form or {}).get("text") or "")
        if not text.strip():
            return Response(_("nothing to preview: the text is empty"), status_code=400, media_type="text/plain")
        try:
            got = previewer.audio(text)
        except Busy:
            message = _("another audio preview is being made; try again in a few seconds")
            return Response(message, status_code=503, headers={"Retry-After": "3"}, media_type="text/plain")
        except TooSlow:
            message = _("the audio preview took longer than {seconds} s; preview a shorter text")
            return Response(message.format(seconds=f"{DEADLINE_S:g}"), status_code=504, media_type="text/plain")
        headers = {"X-Loaxa-Voice": got.voice, "X-Loaxa-Sentences": f"{got.sentences}/{got.of}"}
        if got.fallback:
            headers["X-Loaxa-Voice-Fallback"] = _ascii(got.reason or "")
        return Response(got.wav, media_type="audio/wav", headers=headers)

    return [
        Route("/console/preview/spoken", console.page("editor")(spoken), methods=["POST"]),
        Route("/console/preview/audio", console.page("editor")(audio), methods=["POST"]),
    ]


def _ascii(text: str) -> str:
    """Header values are Latin-1 on the wire: a reason naming a folder may not be."""
    return text.encode("ascii", "replace").decode("ascii")[:300]
