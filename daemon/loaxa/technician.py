"""What the technician's commands ask of the running daemon, over the control socket.

`status` and `queue` read; `say`, `play` and `cancel` become commands that
the inbox applies on its own thread, exactly like commands from the
province (same store transaction, same receipts), and the answer waits on
the ledger's completion signal for the bulletin's play.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, TimeoutError
from typing import Any

from loaxa.approval import LOCAL_ISSUER, TECHNICIAN
from loaxa.broadcast_queue import BroadcastQueue
from loaxa.content import Audio, resume_point
from loaxa.control import FILE_KEY, GONE_KEY
from loaxa.errors import ControlError
from loaxa.inbox import Inbox
from loaxa.protocol import Approve, Bulletin, Cancel, Decline, validate_command
from loaxa.schedule import Scheduler
from loaxa.sources.registry import AudioSource
from loaxa.states import PlayState, Priority
from loaxa.store import Accepted, Answer, Ledger, StoredBulletin
from loaxa.timing import parse_instant

ANSWER_TIMEOUT_S = 10.0  # the inbox answers within this, or the station is wedged
DEFAULT_WAIT_S = 600.0
POLL_S = 0.2  # how often a waiting say/play looks at its caller and the audio output

log = logging.getLogger(__name__)


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
        if cmd == "pending":
            return {"ok": True, "pending": [pending_row(b) for b in self.ledger.awaiting()]}
        if cmd in ("approve", "decline"):
            return self._reply(request)
        if cmd == "live" and self.live is not None:
            return self.live(request)
        raise ControlError(f"unknown control request {cmd!r}")

    def _plays(self) -> list[dict[str, Any]]:
        return [
            {
                "id": p.id,
                "priority": p.priority,
                "state": p.state,
                "occurrence": p.occurrence,
                "sentence": p.sentence,
                "resume": resume_point(p.body, p.sentence),  # `sentence 3`, or `part 2, sentence 1`
            }
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

    def _reply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The commune's answer given at the station: the same store step and receipts as over MQTT."""
        fields: dict[str, Any] = {"type": request["cmd"], "id": str(request.get("id", ""))}
        if request["cmd"] == "decline":
            fields["reason"] = str(request.get("reason", ""))
        command = validate_command(fields)
        assert isinstance(command, (Approve, Decline))
        at = parse_instant(request["at"], "--at") if request.get("at") else None
        answer = _answer(self.inbox.local(TECHNICIAN, command, at=at))
        assert isinstance(answer, Answer)
        if not answer.ok:
            raise ControlError(f"cannot {request['cmd']} {command.id}: {answer.detail}")
        return {"ok": True, "id": command.id, "detail": answer.detail, "issuers": list(answer.issuers)}

    def _air_now(self, request: dict[str, Any]) -> dict[str, Any]:
        bid = f"{request['cmd']}-{uuid.uuid4().hex[:12]}"
        command: dict[str, Any] = {"type": "bulletin", "id": bid, "priority": Priority.HIGH.value}
        if request["cmd"] == "say":
            command["text"] = request.get("text", "")
        else:
            command["audio"] = self._admit(request).model_dump(include={"url", "sha256"})
        for key in ("rate", "volume", "chime"):
            if request.get(key) is not None:
                command[key] = request[key]
        bulletin = validate_command(command)
        assert isinstance(bulletin, Bulletin)
        gone: Callable[[], bool] = request.get(GONE_KEY) or (lambda: False)
        done = self.ledger.watch(LOCAL_ISSUER, bid)
        try:
            accepted = _answer(self.inbox.local(LOCAL_ISSUER, bulletin))
            if isinstance(accepted, Accepted) and not accepted.stored:
                return {"ok": False, "id": bid, "error": "the station refused it; see `loaxa log`"}
            deadline = time.monotonic() + float(request.get("timeout_s", DEFAULT_WAIT_S))
            while not done.wait(POLL_S):
                why = self._why_not(gone, deadline)
                if why:
                    self._withdraw(bid)
                    return {"ok": False, "id": bid, "error": f"not aired, withdrawn: {why}"}
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

    def _why_not(self, gone: Callable[[], bool], deadline: float) -> str | None:
        """Why a technician's `say`/`play` should stop waiting, or None to go on."""
        if gone():
            log.info("the control client left: its say/play is withdrawn")
            return "the caller left"
        if time.monotonic() > deadline:
            return "it did not finish in time; `loaxa queue` shows what is on air"
        audio = (self.status().get("state") or {}).get("audio") or {}
        if audio.get("error"):
            return f"audio output: {audio['error']}"
        return None

    def _withdraw(self, bid: str) -> None:
        cancel = validate_command({"type": "cancel", "id": bid})
        assert isinstance(cancel, Cancel)
        try:
            _answer(self.inbox.local(LOCAL_ISSUER, cancel))
        except ControlError as exc:
            log.warning("could not withdraw %s: %s", bid, exc)

    def _admit(self, request: dict[str, Any]) -> Audio:
        """The file the client passed (opened with its own rights) into the audio cache.

        The daemon never opens a path it is sent: it may read what the person
        asking could not.
        """
        if self.audio is None:
            raise ControlError("this station cannot play recorded audio")
        fd = request.get(FILE_KEY)
        if not isinstance(fd, int):
            raise ControlError("send the file itself, not its name (this `loaxa play` is older than the daemon)")
        folder = self.audio.cache_dir
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / f".local-{uuid.uuid4().hex}.part"
        try:
            with os.fdopen(os.dup(fd), "rb") as src, open(copy, "xb") as dst:
                os.fchmod(dst.fileno(), 0o600)
                copied = 0
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > self.audio.max_bytes:
                        raise ControlError(f"the file is larger than {self.audio.max_bytes // 2**20} MiB")
                    dst.write(chunk)
            return self.audio.admit(copy)
        except OSError as exc:
            raise ControlError(f"cannot read the file: {exc.strerror or exc}") from None
        finally:
            copy.unlink(missing_ok=True)


def _answer(future: Future[Accepted | bool | Answer]) -> Accepted | bool | Answer:
    try:
        return future.result(ANSWER_TIMEOUT_S)
    except TimeoutError:
        raise ControlError(f"the station did not take the command within {ANSWER_TIMEOUT_S:g} s") from None


def pending_row(b: StoredBulletin) -> dict[str, Any]:
    """One bulletin awaiting approval, as `loaxa pending` shows it."""
    return {
        "id": b.id,
        "issuer": b.issuer or "(unsigned)",
        "priority": b.priority,
        "kind": _kind(b.body),
        "preview": preview(b.body),
        "received_at": b.received_at,
        "deadline": b.approval_until,
        "schedule": b.body.get("schedule"),
    }


def _kind(body: dict[str, Any]) -> str:
    return next((k for k in ("text", "audio", "stream", "parts") if body.get(k) is not None), "?")


def preview(body: dict[str, Any], chars: int = 60) -> str:
    """The first words of a bulletin's text (its first text part), or what it is when it has none."""
    texts = [body.get("text")] + [p.get("text") for p in body.get("parts") or []]
    text = next((t for t in texts if t), None)
    if text is None:
        return "(recorded audio)" if body.get("audio") or body.get("parts") else "(stream relay)"
    words = " ".join(text.split())
    return words if len(words) <= chars else words[: chars - 1].rsplit(" ", 1)[0] + "…"


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
