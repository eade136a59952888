"""Text to a stream of voiced chunks, with a cache and the fallback voice behind it.

`Speaker.chunks` synthesises on a worker thread into a bounded queue, so
sentence k+1 is being voiced while sentence k plays, and the first sound
comes after the first short piece, not after the whole bulletin. On a board
where synthesis is slower than playback the first chunk is held back just
long enough for the rest to be made before the sound runs out (`pace`). Each chunk
is levelled to one loudness. If the neural voice is missing, raises, or
misses the deadline, the rest of that bulletin is spoken by the fallback
voice and `status()` says why until a bulletin is spoken by the neural voice
again (a voice process restarting after a crash says so too).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import wave
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np

from loaxa.config import TextSettings, TtsSettings
from loaxa.errors import VoiceError
from loaxa.pcm import to_int16
from loaxa.speech.cache import AudioCache, cache_key
from loaxa.speech.engine import Chunk, PhonemeVoice, Sentence, Voice, resample
from loaxa.speech.level import level
from loaxa.speech.normalize import Lexicon, normalize
from loaxa.speech.pace import HOLD_BLOCK_S, HOLD_STEP_S, Cost, Hold, Pace, Part
from loaxa.speech.pieces import Work, pieces_of, ready_until
from loaxa.speech.piper import MAX_PIECE_PHONEMES
from loaxa.speech.split import split_sentences

log = logging.getLogger(__name__)

ENGINE_VERSION = "piper-ort-1"  # part of every cache key: bump when audio for the same text changes
FIRST_PIECE_PHONEMES = 40  # the first piece of a bulletin is short so sound starts sooner
QUEUE_CHUNKS = 3  # chunks handed over from the synthesis thread and not yet taken


class Speaker:
    """Turns bulletin text into levelled chunks at the output sample rate."""

    def __init__(
        self,
        voice: Voice | None,
        fallback: Voice | None,
        tts: TtsSettings,
        text: TextSettings,
        sample_rate: int,
        cache: AudioCache | None = None,
        load_error: str | None = None,
    ) -> None:
        if voice is None and fallback is None:
            raise VoiceError("no voice at all: neither the neural voice nor the fallback could load")
        self.voice = voice
        self.fallback = fallback
        self.tts = tts
        self.text = text
        self.lexicon = Lexicon.load(text.lexicon)  # a bad local lexicon stops start-up with its reason
        self.sample_rate = sample_rate
        self.cache = cache
        self.load_error = load_error
        self.fallback_reason: str | None = load_error
        self._synth = threading.Lock()  # one model run at a time: prepare() and the player share it
        self._state = threading.Lock()
        self._restarts_at_fallback: int | None = None  # the voice process's restart count when it was last given up
        self.pace = Pace()  # how fast each voice runs here, remembered across bulletins

    # -- text -----------------------------------------------------------------
    def sentences(self, text: str, pause_s: float | None = None) -> list[Sentence]:
        spoken = normalize(text, dialect=self.text.dialect, lexicon=self.lexicon)
        pause = self.tts.sentence_silence_s if pause_s is None else pause_s
        return split_sentences(spoken, pause_s=pause)

    # -- sound ----------------------------------------------------------------
    def chunks(
        self, sentences: list[Sentence], start: int = 0, rate: float | None = None, *, hold: bool = True
    ) -> Iterator[Chunk]:
        """Chunks from sentence `start` on; stop iterating (close) to cancel.

        For a real-time consumer (`hold`), speech from a voice too slow to keep
        up is held back; a hold longer than HOLD_BLOCK_S is handed out as silent
        chunks (empty `text`, at most HOLD_STEP_S each), so that the player keeps
        beating and can be stopped meanwhile.
        """
        rate = rate or self.tts.rate
        if self.voice is None:
            yield from self._fallback_chunks(sentences, start, rate, self.load_error or "no neural voice")
            return
        items: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=QUEUE_CHUNKS)
        stop = threading.Event()
        worker = threading.Thread(
            target=self._produce, args=(sentences, start, rate, items, stop), name="speech-synth", daemon=True
        )
        worker.start()
        bounded = MAX_PIECE_PHONEMES if isinstance(self.voice, PhonemeVoice) else None
        held = Hold(self.pace, self._voice_id(), rate, max_units=bounded)
        if not hold:  # written to a file, not played: nothing can run out
            held.release()
        ready: deque[tuple[Chunk, bool]] = deque()  # arrived, not yet handed to the player
        next_index = start  # first sentence not yet fully handed to the player
        waiting_since: float | None = None
        silence_end = 0.0  # when the silence handed out while holding has played
        done = False
        try:
            while True:
                now = time.monotonic()
                release = held.release_at() if ready else None
                # Speech handed out now plays after the silence already handed out.
                if done or (release is not None and max(now, silence_end) >= release):
                    held.release()
                # A voice that may not keep up makes every piece it can: taken from the queue before each hand-over.
                if ready and held.released and (done or not held.planned or items.empty()):
                    chunk, last = ready.popleft()
                    if last:
                        next_index = chunk.index + 1
                    waiting_since = None
                    yield chunk
                    continue
                if done:
                    with self._state:
                        self.fallback_reason = self.load_error
                    return
                left = release - max(now, silence_end) if release is not None and not held.released else 0.0
                if left > HOLD_BLOCK_S and items.empty():  # a long hold: the player keeps beating, and can stop
                    silence = self._silence(ready[0][0].index - 1, min(left, HOLD_STEP_S))
                    silence_end = max(now, silence_end) + silence.duration_s
                    yield silence
                    continue
                waiting_since = now if waiting_since is None else waiting_since
                deadline = waiting_since + self.tts.deadline_s
                wake = deadline if release is None or held.released else min(deadline, release)
                try:
                    kind, payload = items.get(timeout=max(0.0, wake - now))
                except queue.Empty:
                    if time.monotonic() < deadline:
                        continue  # the hold is over: hand out what is ready
                    self._abort(stop)
                    reason = f"{self.voice.name} gave no audio within {self.tts.deadline_s:g} s"
                    yield from (c for c, _ in ready)
                    yield from self._fallback_chunks(sentences, ready_until(ready, next_index), rate, reason)
                    return
                waiting_since = None
                if kind == "chunk":
                    chunk, last = cast(tuple[Chunk, bool], payload)
                    ready.append((chunk, last))
                    held.chunk(chunk, time.monotonic())
                elif kind == "plan":
                    held.plan(cast(list[Part], payload))
                elif kind == "error":
                    stop.set()
                    yield from (c for c, _ in ready)
                    yield from self._fallback_chunks(sentences, ready_until(ready, next_index), rate, str(payload))
                    return
                else:  # done: everything is made, nothing to wait for
                    done = True
        finally:
            stop.set()

    def _silence(self, index: int, seconds: float) -> Chunk:
        """Silence played while speech is held back (as `index`: resuming starts at the sentence after)."""
        samples = np.zeros(max(1, int(seconds * self.sample_rate)), dtype=np.float32)
        return Chunk(index=index, text="", samples=samples, sample_rate=self.sample_rate)

    def _produce(
        self, sentences: list[Sentence], start: int, rate: float, items: queue.Queue, stop: threading.Event
    ) -> None:
        def put(item: tuple[str, object]) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        voice = self.voice
        assert voice is not None  # only called when the neural voice is there
        try:
            work = {start: self._work(sentences[start].text, rate, first=True)} if start < len(sentences) else {}
            for index in range(start, len(sentences)):
                sentence = sentences[index]
                todo = work.pop(index, None) or self._work(sentence.text, rate, first=False)
                for n, (samples, last) in enumerate(self._voiced(todo, rate, stop=stop)):
                    if not put(("chunk", (self._chunk(index, sentence, samples, voice, last), last))):
                        return
                    if index == start and n == 0:  # sound can start: now split the rest, to know what is to come
                        parts = todo.parts(sentence.pause_s, skip=1)
                        for later in range(index + 1, len(sentences)):
                            if stop.is_set():
                                return
                            work[later] = self._work(sentences[later].text, rate, first=False)
                            parts += work[later].parts(sentences[later].pause_s)
                        if not put(("plan", parts)):
                            return
            put(("done", None))
        except VoiceError as exc:
            put(("error", exc))
        except Exception as exc:  # a bug in a voice must not silence the station
            log.exception("neural voice crashed")
            put(("error", VoiceError(f"{self.voice.name if self.voice else 'voice'} crashed: {exc}")))

    def _work(self, text: str, rate: float, first: bool) -> Work:
        """A sentence's cache key and, unless the cache has it, its pieces (phonemised now)."""
        voice = self.voice
        assert voice is not None
        key = self._key(text, rate)
        cached_s = self._cached_s(key, voice.sample_rate)
        if cached_s is not None:
            return Work(text=text, key=key, pieces=[], cached_s=cached_s)
        return Work(text=text, key=key, pieces=pieces_of(voice, text, FIRST_PIECE_PHONEMES if first else None))

    def _cached_s(self, key: str, sample_rate: int) -> float | None:
        if self.cache is None or key not in self.cache:
            return None
        try:  # the header alone: how long the entry plays
            return len(np.load(self.cache.path_of(key), mmap_mode="r", allow_pickle=False)) / sample_rate
        except (OSError, ValueError):
            return None

    def _voiced(
        self, work: Work, rate: float, stop: threading.Event | None = None
    ) -> Iterator[tuple[np.ndarray, bool]]:
        """Levelled samples of one sentence, piece by piece, through the cache."""
        voice = self.voice
        assert voice is not None
        if self.cache is not None:
            cached = self.cache.get(work.key)
            if cached is not None:
                yield cached, True
                return
        parts: list[np.ndarray] = []
        pieces = work.pieces or pieces_of(voice, work.text, None)  # planned as cached, gone since
        for i, (units, piece) in enumerate(pieces):
            if stop is not None and stop.is_set():
                return
            if not self._synth.acquire(timeout=self.tts.deadline_s):
                raise VoiceError(f"{voice.name} is still busy with an earlier run")
            try:
                began = time.monotonic()
                raw = piece(rate)
                took = time.monotonic() - began
            finally:
                self._synth.release()
            self.pace.observe(
                self._voice_id(), Cost(units=units, audio_s=len(raw) / voice.sample_rate, synth_s=took), rate
            )
            parts.append(level(raw, voice.sample_rate))
            yield parts[-1], i == len(pieces) - 1
        if self.cache is not None and parts:
            self.cache.put(work.key, np.concatenate(parts))

    def _voice_id(self) -> str:
        return str(getattr(self.voice, "identity", getattr(self.voice, "name", "")))

    def _key(self, text: str, rate: float) -> str:
        # The identity changes with the voice files, so a replaced model never plays stale audio.
        return cache_key(text, getattr(self.voice, "identity", getattr(self.voice, "name", "")), rate, ENGINE_VERSION)

    def _chunk(self, index: int, sentence: Sentence, samples: np.ndarray, voice: Voice, last: bool) -> Chunk:
        return Chunk(
            index=index,
            text=sentence.text,
            samples=resample(samples, voice.sample_rate, self.sample_rate),
            sample_rate=self.sample_rate,
            pause_s=sentence.pause_s if last else 0.0,
            voice=voice.name,
        )

    def _fallback_chunks(self, sentences: list[Sentence], start: int, rate: float, reason: str) -> Iterator[Chunk]:
        fallback = self.fallback
        if fallback is None:
            raise VoiceError(f"{reason}; no fallback voice configured")
        if start < len(sentences):
            log.warning("speaking with %s: %s", fallback.name, reason)
        with self._state:
            self.fallback_reason = reason
            restarts = getattr(self.voice, "restarts", None)
            self._restarts_at_fallback = restarts if isinstance(restarts, int) else None
        for index in range(start, len(sentences)):
            sentence = sentences[index]
            samples = level(fallback.synthesize(sentence.text, rate), fallback.sample_rate)
            yield self._chunk(index, sentence, samples, fallback, last=True)

    def _abort(self, stop: threading.Event) -> None:
        stop.set()
        terminate = getattr(self.voice, "terminate", None)
        if terminate is not None:
            terminate()

    # -- ahead of time --------------------------------------------------------
    def prepare(self, text: str, rate: float | None = None) -> int:
        """Synthesise a bulletin into the cache now; returns sentences newly voiced."""
        if self.voice is None or self.cache is None or not self.cache.enabled:
            return 0
        rate = rate or self.tts.rate
        made = 0
        for sentence in self.sentences(text):
            if self._key(sentence.text, rate) in self.cache:
                continue
            for _ in self._voiced(self._work(sentence.text, rate, first=False), rate):
                pass
            made += 1
        return made

    # -- state ----------------------------------------------------------------
    def status(self) -> dict[str, object]:
        """What the station `state` reports as `voice`."""
        with self._state:
            reason = self.fallback_reason
        problem = getattr(self.voice, "problem", None)
        down = problem() if callable(problem) else None
        if reason is None:
            reason = down  # a voice process that died outside a bulletin (voicing ahead) is down all the same
        elif down is None and reason != self.load_error and self._restarted_since_fallback():
            reason = f"{reason}; the voice process was restarted since: the next bulletin uses it"
        active = self.fallback if (reason is not None or self.voice is None) else self.voice
        name = active.name if active is not None else "none"
        return {"engine": name.split(":", 1)[0], "name": name, "fallback": reason is not None, "reason": reason}

    def _restarted_since_fallback(self) -> bool:
        restarts = getattr(self.voice, "restarts", None)
        before = self._restarts_at_fallback
        return isinstance(restarts, int) and before is not None and restarts > before

    def close(self) -> None:
        for voice in (self.voice, self.fallback):
            if voice is not None:
                try:
                    voice.close()
                except Exception:  # closing must not stop the others from closing
                    log.exception("closing %s failed", voice.name)


ESPEAK_FLOOR_S = 5.0


def load_voice(spec: str, tts: TtsSettings) -> Voice:
    """`espeak:VOICE` is the espeak-ng voice; anything else a Piper voice name or path."""
    if spec.startswith("espeak:"):
        from loaxa.speech.espeak import EspeakVoice

        # espeak-ng is the last voice: nothing speaks a sentence it drops, so its hang
        # guard never goes below ESPEAK_FLOOR_S, even where `deadline_s` is short
        # for a neural voice that has a fallback (a loaded board takes seconds).
        return EspeakVoice(spec.split(":", 1)[1] or "vi", timeout_s=min(max(tts.deadline_s, ESPEAK_FLOOR_S), 15.0))
    from loaxa.speech.voice_process import VoiceProcess
    from loaxa.speech.voices import find_voice

    # In a child process: an onnxruntime that crashes on this CPU, or a model that aborts, costs only that process.
    return VoiceProcess.start(find_voice(spec, tts.voices_dir), threads=tts.threads, deadline_s=tts.deadline_s)


def build_speaker(
    tts: TtsSettings,
    text: TextSettings,
    sample_rate: int,
    cache_dir: Path | None = None,
    *,
    voice: Voice | None = None,
) -> Speaker:
    """The configured voice with the fallback behind it, or the fallback alone.

    `voice`, when given, is the primary voice instead of loading `tts.voice`
    (simulated stations and tests bring their own).
    """
    fallback: Voice | None = None
    if tts.fallback:
        try:
            fallback = load_voice(tts.fallback, tts)
        except VoiceError as exc:
            log.error("fallback voice %s unavailable: %s", tts.fallback, exc)
    reason = None
    if voice is None:
        try:
            voice = load_voice(tts.voice, tts)
        except VoiceError as exc:
            reason = f"voice {tts.voice} unavailable: {exc}"
            log.warning("%s; using %s", reason, fallback.name if fallback else "nothing")
    cache = AudioCache(cache_dir, tts.cache_max_mb * 1024 * 1024) if cache_dir is not None else None
    return Speaker(voice, fallback, tts, text, sample_rate, cache=cache, load_error=reason)


def synthesize_to_wav(
    speaker: Speaker, text: str, path: str | Path, rate: float | None = None, silence_s: float | None = None
) -> float:
    """Speak `text` into a 16-bit mono WAV (for `loaxa say --output`); returns seconds."""
    total = 0
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(speaker.sample_rate)
        for chunk in speaker.chunks(speaker.sentences(text, pause_s=silence_s), rate=rate, hold=False):
            gap = np.zeros(int(round(chunk.pause_s * speaker.sample_rate)), dtype=np.float32)
            pcm = to_int16(np.concatenate([chunk.samples, gap]))
            wav.writeframes(pcm.tobytes())
            total += len(pcm)
    return total / speaker.sample_rate
