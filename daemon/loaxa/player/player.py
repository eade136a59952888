"""The on-air loop: takes the next play from the queue and puts it on air.

One thread owns the audio output and the amplifier. Others talk to it only
through `attention()` (something changed: look again) and `stop_play()`
(stop this play), both of which set flags it reads between audio blocks.

A receipt is a promise: once a play or its bulletin is withdrawn
(`cancelled`, `superseded`, `expired`, or any other state that ends it),
not one more sample of it reaches the output. The session asks before
every block (`_stop_reason`: the flags, and the play's state in the store
after each commit), and a play that is withdrawn before its first sound
airs nothing at all, not even the closing chime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from loaxa.broadcast_queue import BroadcastQueue
from loaxa.config import Settings
from loaxa.errors import AudioError, LoaxaError, VoiceError
from loaxa.player.chime import chime
from loaxa.player.output import Output, Sink
from loaxa.player.session import Session, Stopped
from loaxa.sources import NotReady
from loaxa.sources.registry import Program, SourceRegistry
from loaxa.states import Outcome, PlayState
from loaxa.store import Ledger, Play
from loaxa.timing import parse_instant

log = logging.getLogger(__name__)

# Every change that can make a play eligible commits to the store, which wakes
# the player; the timeout only catches the end of quiet hours. A short poll
# would cost a query per station every fraction of a second for nothing.
IDLE_WAIT_S = 5.0

# Stop reasons that end the play for good; its receipt was sent by whoever withdrew it. Any reason
# not in _REQUEUED (`cancelled`, `superseded`, `declined`, or one a later protocol adds) is a withdrawal.
_REQUEUED = frozenset({Outcome.PREEMPTED, Outcome.SHUTDOWN, Outcome.AUDIO_ERROR})
_WITHDRAWN_STATES = frozenset({PlayState.CANCELLED, PlayState.SUPERSEDED, PlayState.DECLINED})


class AmpControl(Protocol):
    def ensure_on(self) -> float: ...

    def release(self) -> None: ...


@dataclass
class OnAir:
    play: Play
    stop_reason: str | None = None


class Player(threading.Thread):
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        queue: BroadcastQueue,
        sources: SourceRegistry,
        sink: Sink,
        amplifier: AmpControl,
        voice_name: Callable[[], str] = lambda: "",
    ) -> None:
        super().__init__(name="player", daemon=True)
        self.settings = settings
        self.ledger = ledger
        self.queue = queue
        self.sources = sources
        self.sink = sink
        self.amplifier = amplifier
        self.voice_name = voice_name
        self.rate = settings.audio.sample_rate_hz
        chime(self.rate, True), chime(self.rate, False)  # made once, before the first bulletin needs it
        self.heartbeat = time.monotonic()
        self.audio_error: str | None = None
        self.on_air: OnAir | None = None
        self._lock = threading.Lock()
        self._wake = ledger.store.listen()
        self._committed = ledger.store.listen()  # a commit since the session last read its play's state
        self._look_again = threading.Event()
        self._stopping = threading.Event()
        self._stream_stop = threading.Event()
        self._holds = _Holds()
        self.not_ready: dict[int, str] = {}  # play id -> why its content is not ready yet (NotReady.reason)

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
                play = self._next(_now())
                if play is None:
                    if not self._wake.wait(IDLE_WAIT_S):
                        self.not_ready.clear()  # not woken: ask again anyway
                    continue
                self._air(play)
            except Exception:  # a bug in one play must not silence the station
                log.exception("player error; continuing")
                self._stopping.wait(1.0)

    def _next(self, now: datetime) -> Play | None:
        """The best play that may start now; the due ones that wait say why, once per cause."""
        if self._wake.is_set():  # woken since (a fetch ended, a commit): ask the unready again
            self._wake.clear()
            self.not_ready.clear()
        eligible, holds = self.queue.survey(now)
        self._holds.keep({p.pid for p in eligible} | {h.play.pid for h in holds})
        for hold in holds:
            self._hold(hold.play, hold.cause, hold.detail, now)
        for play in eligible:
            if play.pid not in self.not_ready and not self._held_too_long(play, now):
                return play
        return None

    def _hold(self, play: Play, cause: str, detail: str, now: datetime) -> None:
        if self._held_too_long(play, now):
            return
        if self._holds.new(play.pid, cause, detail):
            log.info("%s held: %s", play.id, detail)
            self.ledger.hold(play, detail)

    def _held_too_long(self, play: Play, now: datetime) -> bool:
        """A scheduled slot held past the grace is missed, not aired hours late."""
        late = now.timestamp() - play.due_at
        grace = self.settings.broadcast.grace_s
        why = self._holds.why(play.pid)
        if why is None or play.occurrence is None or play.started_at is not None or late <= grace:
            return False
        self.ledger.miss(play, f"held {late:.0f} s ({why}), beyond the {grace:g} s grace")
        self._holds.forget(play.pid)
        return True

    def _air(self, play: Play) -> None:
        if _expired(play):
            self.ledger.expire(play, "expired before it could start")
            return
        try:  # what can fail without sound fails here: before the amplifier and the chime
            program = self.sources.prepare(play.content)
        except NotReady as exc:
            # Still being fetched: not a failure and no receipt (fetching is no hold cause of the
            # protocol); the next play goes first and this one is asked again when the player wakes.
            self.not_ready[play.pid] = exc.reason
            return
        except LoaxaError as exc:
            self.ledger.end(play, Outcome.FAILED, _cannot_prepare(play, exc))
            return
        try:
            self._put_on_air(play, program)
        finally:
            program.close()

    def _put_on_air(self, play: Play, program: Program) -> None:
        try:  # a missing device is retried: `held` once, no `started` until sound can flow
            self.amplifier.ensure_on()
            output = self.sink.open(self.rate, label=play.id)
        except AudioError as exc:
            self.amplifier.release()
            now = _now()
            for waiting in self.queue.eligible(now):  # every due play waits for the device
                self._hold(waiting, "audio", f"audio output unavailable: {exc}", now)
            self._after(play, Outcome.AUDIO_ERROR, str(exc))
            return
        self.audio_error = None
        self._holds.forget(play.pid)
        with self._lock:  # on air before `started`, so a cancel from now on reaches the session
            self.on_air = OnAir(play)
            self._stream_stop.clear()
        try:
            # The warm-up and the open took time: the play may have been withdrawn or have expired meanwhile.
            expired = _expired(play)
            if expired or not self.ledger.start(play):  # only a play still open starts: not one sample
                output.close()
                self.amplifier.release()
                if expired:
                    self.ledger.expire(play, "expired before it could start")
                return
            self._committed.clear()  # the play as `start` left it is the one the session knows
            outcome, detail = self._session(play, output, program)
        finally:
            with self._lock:
                self.on_air = None
        self._after(play, outcome, detail)

    def _session(self, play: Play, output: Output, program: Program) -> tuple[Outcome, str | None]:
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

                def reached(sentence: int, run: int = run) -> None:
                    self.ledger.progress(play, sentence=sentence, played=run)

                start = play.sentence if run == play.played else 0
                program.run(session, start=start, progress=reached, stop=self._stream_stop)
                self.ledger.progress(play, sentence=0, played=run + 1 if run < repeat - 1 else run)
                if run < repeat - 1:
                    session.silence(float(body.get("gap_s", 3.0)))
            if with_chime:
                # The ending itself: a withdrawal now lets it finish (a chime cut short, or played again,
                # is no ending), and is still what the play ends with.
                closing = Session(output, self.rate, volume, self._cut_reason, self._beat)
                closing.chime(opening=False)
                session.written_s += closing.written_s
            withdrawn = self._withdrawn(play)
            if withdrawn is not None:
                return withdrawn, None
            detail = f"{session.written_s:.1f} s on air, voice {self.voice_name()}"
            extra = program.summary()
            return Outcome.FINISHED, f"{detail}; {extra}" if extra else detail
        except Stopped as stopped:
            outcome = _outcome_of(stopped.reason)
            if outcome not in _REQUEUED and with_chime and session.aired:
                # On air and withdrawn: stop, then the closing chime, so listeners hear an ending.
                # Withdrawn before its first sound: nothing of it airs, not even this chime.
                Session(output, self.rate, volume).chime(opening=False)
            if outcome is Outcome.PREEMPTED and _live_waits(self.queue.eligible(_now()), play):
                return outcome, "a live announcement cut in"
            return outcome, None
        except AudioError as exc:
            return Outcome.AUDIO_ERROR, str(exc)
        except VoiceError as exc:
            return Outcome.FAILED, f"no voice could speak it: {exc}"
        except LoaxaError as exc:
            return Outcome.FAILED, str(exc)
        finally:
            try:
                output.close()
            except (OSError, AudioError) as exc:
                log.warning("closing output: %s", exc)
            self.amplifier.release()

    def _after(self, play: Play, outcome: Outcome, detail: str | None) -> None:
        self.ledger.end(play, outcome, detail)
        if outcome is Outcome.AUDIO_ERROR:
            log.warning("audio output unavailable: %s; retrying in %.0f s", detail, self.settings.audio.retry_s)
            self.audio_error = detail
            self._stopping.wait(self.settings.audio.retry_s)

    def _stop_reason(self, play: Play) -> str | None:
        """Why the session must write nothing more, asked before every block; None to go on."""
        reason = self._cut_reason()
        if reason is not None:
            return reason
        withdrawn = self._withdrawn(play)
        if withdrawn is not None:
            return withdrawn
        if self._look_again.is_set():
            self._look_again.clear()
            if self.queue.preempts(play, _now()) and self._emergency_ready(play):
                self._stream_stop.set()
                return Outcome.PREEMPTED
        return None

    def _cut_reason(self) -> str | None:
        """What cuts even the closing chime: the station stopping."""
        return Outcome.SHUTDOWN if self._stopping.is_set() else None

    def _withdrawn(self, play: Play) -> Outcome | None:
        """Whether the play on air was withdrawn: told by `stop_play`, or seen in the store.

        The store is read only after a commit (the store wakes `_committed`), not for every block.
        """
        current = self.on_air
        if current is not None and current.stop_reason:
            return _outcome_of(current.stop_reason)
        if not self._committed.is_set():
            return None
        self._committed.clear()
        now = self.ledger.play(play.pid)
        if now is None:  # its bulletin is at another rev now
            reason: Outcome | None = Outcome.SUPERSEDED
        elif now.state.terminal:  # closed by a withdrawal, or by anything else: it ends as withdrawn
            reason = _outcome_of(now.state) if now.state in _WITHDRAWN_STATES else Outcome.CANCELLED
        else:
            return None
        with self._lock:
            if self.on_air is not None and self.on_air.play.pid == play.pid and not self.on_air.stop_reason:
                self.on_air.stop_reason = reason
                self._stream_stop.set()
        return reason

    def _emergency_ready(self, current: Play) -> bool:
        """An emergency (or live, `BroadcastQueue.cuts_in`) cuts in once it can sound: a fetch is waited for."""
        return any(
            self.queue.cuts_in(p, current) and self.sources.ready(p.content) for p in self.queue.eligible(_now())
        )

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()


def _live_waits(eligible: list[Play], current: Play) -> bool:
    """What cut `current` in is live, not an emergency (for the `interrupted` receipt's words)."""
    cutting = [p for p in eligible if BroadcastQueue.cuts_in(p, current)]
    return bool(cutting) and "live" in cutting[0].body


def _cannot_prepare(play: Play, exc: LoaxaError) -> str:
    return f"cannot prepare the text: {exc}" if play.content.kind == "text" else str(exc)


def _now() -> datetime:
    return datetime.now(UTC)


def _expired(play: Play) -> bool:
    expires = play.body.get("expires")
    return bool(expires) and parse_instant(expires, "expires") <= _now()


def _outcome_of(reason: str) -> Outcome:
    """The session outcome for a stop reason. A withdrawal without an outcome of its own (one a later
    protocol adds) closes the play as a cancel does: its receipt was the withdrawal's."""
    try:
        return Outcome(reason)
    except ValueError:
        return Outcome.CANCELLED


class _Holds:
    """Which cause each waiting play was last reported `held` for (this run of the daemon)."""

    def __init__(self) -> None:
        self._cause: dict[int, tuple[str, str]] = {}

    def new(self, pid: int, cause: str, detail: str) -> bool:
        """Record the cause; True when it is news (first hold, or another cause than before)."""
        known = self._cause.get(pid)
        self._cause[pid] = (cause, detail)
        return known is None or known[0] != cause

    def why(self, pid: int) -> str | None:
        """The words of the last hold reported for this play."""
        known = self._cause.get(pid)
        return known[1] if known else None

    def forget(self, pid: int) -> None:
        self._cause.pop(pid, None)

    def keep(self, pids: set[int]) -> None:
        """Drop plays that are no longer open."""
        for pid in set(self._cause) - pids:
            del self._cause[pid]
