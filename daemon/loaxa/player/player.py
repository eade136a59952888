"""The on-air loop: takes the next play from the queue and puts it on air.

One thread owns the audio output and the amplifier. Others talk to it only
through `attention()` (something changed: look again) and `stop_play()`
(stop this play), both of which set flags it reads between audio blocks.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from loaxa.config import Settings
from loaxa.errors import AudioError, LoaxaError, VoiceError
from loaxa.player.chime import chime
from loaxa.player.output import Output, Sink
from loaxa.player.session import Session, Stopped
from loaxa.protocol import parse_time
from loaxa.queue import BroadcastQueue
from loaxa.reports import Receipts
from loaxa.speech.pipeline import Speaker
from loaxa.store import Play, Store

log = logging.getLogger(__name__)

# Every change that can make a play eligible commits to the store, which wakes
# the player; the timeout only catches the end of quiet hours. A short poll
# would cost a query per station every fraction of a second for nothing.
IDLE_WAIT_S = 5.0


class AmpControl(Protocol):
    def ensure_on(self) -> float: ...

    def release(self) -> None: ...


class ContentSource(Protocol):
    """Recorded audio and relayed streams, as float32 blocks at `rate`."""

    def ready(self, body: dict[str, Any], rate: int) -> None: ...

    def blocks(self, body: dict[str, Any], rate: int, stop: threading.Event) -> Any: ...


@dataclass
class OnAir:
    play: Play
    stop_reason: str | None = None


class Player(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: BroadcastQueue,
        receipts: Receipts,
        speaker: Speaker,
        sink: Sink,
        amplifier: AmpControl,
        sources: ContentSource | None = None,
    ) -> None:
        super().__init__(name="player", daemon=True)
        self.settings = settings
        self.store = store
        self.queue = queue
        self.receipts = receipts
        self.speaker = speaker
        self.sink = sink
        self.amplifier = amplifier
        self.sources = sources
        self.rate = settings.audio.sample_rate_hz
        chime(self.rate, True), chime(self.rate, False)  # made once, before the first bulletin needs it
        self.heartbeat = time.monotonic()
        self.audio_error: str | None = None
        self.on_air: OnAir | None = None
        self._lock = threading.Lock()
        self._wake = store.listen()
        self._look_again = threading.Event()
        self._stopping = threading.Event()
        self._stream_stop = threading.Event()

    # -- called from other threads -------------------------------------------
    def attention(self) -> None:
        """Something was queued or changed: re-check the queue soon."""
        self._look_again.set()
        self._wake.set()

    def stop_play(self, issuer: str, id: str, reason: str) -> bool:
        """Stop the bulletin if it is on air; True when it was."""
        with self._lock:
            current = self.on_air
            if current is None or (current.play.issuer, current.play.id) != (issuer, id):
                return False
            current.stop_reason = reason
            self._stream_stop.set()
        return True

    def stop(self) -> None:
        self._stopping.set()
        self._stream_stop.set()
        self._wake.set()

    @property
    def on_air_id(self) -> str | None:
        current = self.on_air
        return current.play.id if current else None

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        while not self._stopping.is_set():
            self.heartbeat = time.monotonic()
            try:
                play = self.queue.next(_now())
                if play is None:
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                self._air(play)
            except Exception:  # a bug in one play must not silence the station
                log.exception("player error; continuing")
                self._stopping.wait(1.0)

    def _air(self, play: Play) -> None:
        body = play.body
        now = _now()
        expires = body.get("expires")
        if expires and parse_time(expires) <= now:
            self._close(play, "expired", "expired", detail="expired before it could start")
            return
        rate = body.get("rate") or self.settings.tts.rate
        try:
            sentences = self.speaker.sentences(body["text"]) if "text" in body else []
        except LoaxaError as exc:
            self._close(play, "failed", "failed", detail=f"cannot prepare the text: {exc}")
            return
        if "audio" in body and self.sources is not None:
            try:  # a bad download fails here, before the amplifier and the chime
                self.sources.ready(body, self.rate)
            except LoaxaError as exc:
                self._close(play, "failed", "failed", detail=str(exc))
                return
        try:  # a missing device is retried quietly: no receipt until sound can flow
            self.amplifier.ensure_on()
            output = self.sink.open(self.rate, label=play.id)
        except AudioError as exc:
            self.amplifier.release()
            self._after(play, "audio_error", str(exc))
            return
        self.audio_error = None
        resumed = play.started_at is not None
        with self.store.tx() as db:
            db.execute(
                "UPDATE plays SET state = 'on_air', started_at = COALESCE(started_at, ?) WHERE pid = ?",
                (time.time(), play.pid),
            )
            detail = f"from sentence {play.sentence + 1}" if resumed else None
            self.receipts.add(db, "resumed" if resumed else "started", play.id, play.rev, occurrence=play.occurrence, detail=detail)
        with self._lock:
            self.on_air = OnAir(play)
            self._stream_stop.clear()
        try:
            outcome, detail = self._session(play, output, sentences, rate)
        finally:
            with self._lock:
                self.on_air = None
        self._after(play, outcome, detail)

    def _session(self, play: Play, output: Output, sentences: list, rate: float) -> tuple[str, str | None]:
        body = play.body
        volume = body.get("volume", self.settings.audio.volume)
        with_chime = body.get("chime", True) and self.settings.audio.chime
        session = Session(output, self.rate, volume, lambda: self._stop_reason(play), self._beat)
        try:
            session.silence(self.settings.audio.lead_silence_s)
            if with_chime:
                session.chime(opening=True)
            repeat = int(body.get("repeat", 1))
            for run in range(play.played, repeat):
                start = play.sentence if run == play.played else 0
                self._content(session, play, sentences, start, run, rate)
                if run < repeat - 1:
                    self._progress(play.pid, 0, run + 1)
                    session.silence(float(body.get("gap_s", 3.0)))
            if with_chime:
                session.chime(opening=False)
            return "finished", f"{session.written_s:.1f} s on air, voice {self.speaker.status()['name']}"
        except Stopped as stopped:
            if stopped.reason in ("cancelled", "superseded") and with_chime:
                Session(output, self.rate, volume).chime(opening=False)
            return stopped.reason, None
        except AudioError as exc:
            return "audio_error", str(exc)
        except VoiceError as exc:
            return "failed", f"no voice could speak it: {exc}"
        except LoaxaError as exc:
            return "failed", str(exc)
        finally:
            try:
                output.close()
            except (OSError, AudioError) as exc:
                log.warning("closing output: %s", exc)
            self.amplifier.release()

    def _content(self, session: Session, play: Play, sentences: list, start: int, run: int, rate: float) -> None:
        if "text" in play.body:
            with closing(self.speaker.chunks(sentences, start=start, rate=rate)) as chunks:
                for chunk in chunks:
                    session.play(chunk.samples)
                    session.silence(chunk.pause_s)
                    self._progress(play.pid, chunk.index + 1, run)
            self._progress(play.pid, 0, run)
            return
        if self.sources is None:
            raise LoaxaError("recorded audio and streams are not available on this station")
        session.stream(self.sources.blocks(play.body, self.rate, self._stream_stop))

    def _progress(self, pid: int, sentence: int, played: int) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE plays SET sentence = ?, played = ? WHERE pid = ?", (sentence, played, pid))

    def _after(self, play: Play, outcome: str, detail: str | None) -> None:
        if outcome == "finished":
            self._close(play, "done", "finished", detail=detail)
        elif outcome == "failed":
            self._close(play, "failed", "failed", detail=detail)
        elif outcome in ("cancelled", "superseded"):
            self._close(play, outcome, None)
        elif outcome == "preempted":
            self._requeue(play, "interrupted", "an emergency bulletin cut in")
        elif outcome == "audio_error":
            log.warning("audio output unavailable: %s; retrying in %.0f s", detail, self.settings.audio.retry_s)
            self.audio_error = detail
            self._requeue(play, None, None)
            self._stopping.wait(self.settings.audio.retry_s)
        else:  # shutdown: resumes after the restart
            self._requeue(play, None, None)

    def _requeue(self, play: Play, event: str | None, detail: str | None) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE plays SET state = 'pending' WHERE pid = ? AND state = 'on_air'", (play.pid,))
            if event:
                self.receipts.add(db, event, play.id, play.rev, occurrence=play.occurrence, detail=detail)

    def _close(self, play: Play, state: str, event: str | None, detail: str | None = None) -> None:
        with self.store.tx() as db:
            db.execute(
                "UPDATE plays SET state = ?, ended_at = ?, detail = ? WHERE pid = ?", (state, time.time(), detail, play.pid)
            )
            if play.occurrence is None and state in ("done", "failed", "expired"):
                db.execute(
                    "UPDATE bulletins SET state = ? WHERE issuer = ? AND id = ? AND rev = ? AND state = 'active'",
                    ("done" if state == "done" else state, play.issuer, play.id, play.rev),
                )
            if event:
                self.receipts.add(db, event, play.id, play.rev, occurrence=play.occurrence, detail=detail)

    def _stop_reason(self, play: Play) -> str | None:
        if self._stopping.is_set():
            return "shutdown"
        current = self.on_air
        if current is not None and current.stop_reason:
            return current.stop_reason
        if self._look_again.is_set():
            self._look_again.clear()
            if self.queue.preempts(play, _now()):
                self._stream_stop.set()
                return "preempted"
        return None

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()


def _now() -> datetime:
    return datetime.now(timezone.utc)

