"""What the technician's commands ask of the running daemon, over the control socket.

`status` and `queue` read; `say`, `play` and `cancel` become commands that
the inbox applies on its own thread, exactly like commands from the
province (same store transaction, same receipts), and the answer waits on
the ledger's completion signal for the bulletin's play.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, TimeoutError
from pathlib import Path
from typing import Any

from loaxa.broadcast_queue import BroadcastQueue
from loaxa.errors import ControlError
from loaxa.inbox import Inbox
from loaxa.protocol import Bulletin, Cancel, validate_command
from loaxa.schedule import Scheduler
from loaxa.sources.registry import AudioSource
from loaxa.states import PlayState, Priority
from loaxa.store import Accepted, Ledger

LOCAL_ISSUER = "local"  # technicians' `say` and `play` through the control socket
ANSWER_TIMEOUT_S = 10.0  # the inbox answers within this, or the station is wedged
DEFAULT_WAIT_S = 600.0


class Technician:
    def __init__(
        self,
        *,
        inbox: Inbox,
        ledger: Ledger,
        scheduler: Scheduler,
        queue: BroadcastQueue,
        audio: AudioSource | None,
        status: Callable[[], dict[str, Any]],
        on_air: Callable[[], str | None],
        live: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.inbox = inbox
        self.ledger = ledger
        self.scheduler = scheduler
        self.queue = queue
        self.audio = audio
        self.status = status
        self.on_air = on_air
        self.live = live  # `loaxa live` start/stop (loaxa.live.LiveControl.handle)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control-socket request; ControlError says what is wrong with it."""
        cmd = request.get("cmd")
        if cmd == "status":
            answer = self.status()
            return {"ok": True, **answer, "faults": faults(answer["state"]) + answer.get("faults", [])}
        if cmd == "queue":
            return {"ok": True, "on_air": self.on_air(), "plays": self._plays(), "next": self.scheduler.next_slots()}
        if cmd in ("say", "play"):
            return self._air_now(request)
        if cmd == "cancel":
            return self._cancel(str(request.get("id", "")))
        if cmd == "live" and self.live is not None:
            return self.live(request)
        raise ControlError(f"unknown control request {cmd!r}")

    def _plays(self) -> list[dict[str, Any]]:
        return [
            {"id": p.id, "priority": p.priority, "state": p.state, "occurrence": p.occurrence, "sentence": p.sentence}
            for p in self.ledger.open_plays()
        ]

    def _cancel(self, id: str) -> dict[str, Any]:
        """A technician's cancel: as if its issuer had sent it, receipts included."""
        cancel = validate_command({"type": "cancel", "id": id})
        assert isinstance(cancel, Cancel)
        issuers = self.ledger.issuers_of(id)
        if not issuers:
            raise ControlError(f"no bulletin {id!r} is queued, scheduled or on air")
        for issuer in issuers:
            _answer(self.inbox.local(issuer, cancel))
        return {"ok": True, "id": id, "issuers": issuers}

    def _air_now(self, request: dict[str, Any]) -> dict[str, Any]:
        bid = f"{request['cmd']}-{uuid.uuid4().hex[:12]}"
        command: dict[str, Any] = {"type": "bulletin", "id": bid, "priority": Priority.HIGH.value}
        if request["cmd"] == "say":
            command["text"] = request.get("text", "")
        else:
            if self.audio is None:
                raise ControlError("this station cannot play recorded audio")
            # The file enters the audio cache under its hash, where the player finds it.
            command["audio"] = self.audio.admit(Path(request.get("file", ""))).model_dump(include={"url", "sha256"})
        for key in ("rate", "volume", "chime"):
            if request.get(key) is not None:
                command[key] = request[key]
        bulletin = validate_command(command)
        assert isinstance(bulletin, Bulletin)
        done = self.ledger.watch(LOCAL_ISSUER, bid)
        try:
            accepted = _answer(self.inbox.local(LOCAL_ISSUER, bulletin))
            if isinstance(accepted, Accepted) and not accepted.stored:
                return {"ok": False, "id": bid, "error": "the station refused it; see `loaxa log`"}
            if not done.wait(float(request.get("timeout_s", DEFAULT_WAIT_S))):
                return {"ok": False, "id": bid, "error": "still queued or on air; see `loaxa queue`"}
        finally:
            self.ledger.unwatch(LOCAL_ISSUER, bid, done)
        state, detail = done.state, done.detail
        return {
            "ok": state is PlayState.DONE,
            "id": bid,
            "state": state,
            "detail": detail,
            "error": f"{state}: {detail}",
        }


def _answer(future: Future[Accepted | bool]) -> Accepted | bool:
    try:
        return future.result(ANSWER_TIMEOUT_S)
    except TimeoutError:
        raise ControlError(f"the station did not take the command within {ANSWER_TIMEOUT_S:g} s") from None


def faults(state: dict[str, Any]) -> list[str]:
    """What is wrong with the station's devices and links, in words, from its `state`.

    These degrade the station without stopping its loops, so they do not
    withhold the watchdog ping (a restart would not bring a broker back);
    `status` and `doctor` show them.
    """
    found = []
    link = state.get("link") or {}
    if link and link.get("state") != "connected":
        why = f": {link['error']}" if link.get("error") else ""
        found.append(f"broker {link.get('broker', '')} {link.get('state')} since {link.get('since')}{why}")
    audio = state.get("audio") or {}
    if audio.get("error"):
        found.append(f"audio output: {audio['error']}")
    amplifier = state.get("amplifier") or {}
    if amplifier.get("fault"):
        found.append(f"amplifier: {amplifier['fault']}")
    voice = state.get("voice") or {}
    if voice.get("fallback"):
        found.append(f"voice: speaking with the fallback ({voice.get('reason')})")
    return found
