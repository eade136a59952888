"""Commands from the network: parse, verify, dedupe, store, answer.

paho's thread only puts raw messages on a bounded queue; this thread does
the rest. Each command is applied in one store transaction together with
its receipts, or rejected with a reason and nothing changed.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loaxa.content import Audio, Content
from loaxa.errors import CommandError, ControlError
from loaxa.protocol import ID_PATTERN, Bulletin, Cancel, Ping, decode_payload, validate_command
from loaxa.schedule import Scheduler
from loaxa.security import RateLimiter, Verifier
from loaxa.states import Event
from loaxa.store import Accepted, Ledger

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
PUT_TIMEOUT_S = 5.0


@dataclass
class _Message:
    """A command as it came from the broker."""

    payload: bytes
    retained: bool
    meta: dict[str, Any]


@dataclass
class _Local:
    """A technician's command, already valid; `done` gets what the store made of it."""

    issuer: str
    command: Bulletin | Cancel
    done: Future[Accepted | bool] = field(default_factory=Future)


class Inbox(threading.Thread):
    """The one thread that applies commands, from the network and from the technician."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        scheduler: Scheduler,
        verifier: Verifier,
        limiter: RateLimiter,
        max_queue: int,
        on_queued: Callable[[Bulletin], None],
        stop_play: Callable[[str, str, str], bool],
        respond: Callable[[str, bytes, bytes | None], None],
        fetch_ahead: Callable[[Content], None] = lambda content: None,
    ) -> None:
        super().__init__(name="inbox", daemon=True)
        self.ledger = ledger
        self.scheduler = scheduler
        self.verifier = verifier
        self.limiter = limiter
        self.max_queue = max_queue
        self.on_queued = on_queued
        self.stop_play = stop_play
        self.respond = respond
        self.fetch_ahead = fetch_ahead
        self.last_command_at: str | None = None
        self.heartbeat = time.monotonic()
        self._queue: queue.Queue[_Message | _Local | None] = queue.Queue(QUEUE_SIZE)

    # -- other threads --------------------------------------------------------------
    def submit(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> None:
        """paho's thread: hand a message over, never work."""
        try:
            self._queue.put(_Message(payload, retained, meta), timeout=PUT_TIMEOUT_S)
        except queue.Full:
            log.error("inbox full; dropped a command on %s", meta.get("topic"))

    def local(self, issuer: str, command: Bulletin | Cancel) -> Future[Accepted | bool]:
        """A technician's bulletin or cancel, applied by this thread like any command.

        The future gives the store's answer: `Accepted` for a bulletin, whether
        it was cancelled for a cancel.
        """
        item = _Local(issuer, command)
        try:
            self._queue.put(item, timeout=PUT_TIMEOUT_S)
        except queue.Full:
            raise ControlError("the station is busy taking commands; try again") from None
        return item.done

    def stop(self) -> None:
        self._queue.put(None)

    # -- this thread --------------------------------------------------------------
    def run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=5.0)
            except queue.Empty:
                self.heartbeat = time.monotonic()
                continue
            self.heartbeat = time.monotonic()
            if item is None:
                return
            if isinstance(item, _Local):
                self._apply_local(item)
                continue
            try:
                self.handle(item.payload, item.retained, item.meta)
            except Exception:  # a bug must not stop the station taking commands
                log.exception("error handling a command")
                self.ledger.receipt(
                    Event.REJECTED, _receipt_ids(item.payload)[0], detail="internal error while handling the command"
                )
            ack = item.meta.get("ack")
            if ack is not None:  # after the store commit: until then the broker keeps the command
                ack()

    def _apply_local(self, item: _Local) -> None:
        try:
            if isinstance(item.command, Cancel):
                item.done.set_result(self._cancel(item.issuer, item.command))
            else:
                item.done.set_result(self._bulletin(item.issuer, item.command, datetime.now(UTC)))
        except Exception as exc:  # the technician hears of it; the inbox goes on
            log.exception("error applying a local command")
            item.done.set_exception(exc)

    def handle(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> None:
        if retained:
            log.warning("ignored a retained command on %s (commands must not be retained)", meta.get("topic"))
            return
        now = datetime.now(UTC)
        self.last_command_at = now.isoformat(timespec="seconds")
        try:
            data = decode_payload(payload)
            issuer = self.verifier.check(data, now) or ""
            command = validate_command(data)
            if not self.limiter.allow(issuer, time.monotonic()):
                raise CommandError(f"too many commands from issuer {issuer or '(unsigned)'}; try again in a minute")
        except CommandError as exc:
            log.info("rejected command: %s", exc)
            id, rev = _receipt_ids(payload)
            self.ledger.receipt(Event.REJECTED, id, rev, detail=str(exc))
            return
        if isinstance(command, Ping):
            self.ledger.receipt(Event.PONG, command.id)
            if meta.get("response_topic"):
                reply = json.dumps({"id": command.id, "event": "pong"}).encode()
                self.respond(meta["response_topic"], reply, meta.get("correlation_data"))
        elif isinstance(command, Cancel):
            self._cancel(issuer, command)
        else:
            self._bulletin(issuer, command, now)

    def _bulletin(self, issuer: str, b: Bulletin, now: datetime) -> Accepted:
        first = self.scheduler.first_slot(b, now) if b.schedule is not None else None
        accepted = self.ledger.accept(issuer, b, now, max_queue=self.max_queue, first_slot=first)
        if not accepted.stored:
            return accepted
        if accepted.superseded_rev is not None:
            self.scheduler.removed(issuer, b.id)
            self.stop_play(issuer, b.id, "superseded")
        self.scheduler.added(issuer, b)
        content = b.content
        if isinstance(content, Audio):  # on receipt, so that the player never waits on the network
            self.fetch_ahead(content)
        self.on_queued(b)
        return accepted

    def _cancel(self, issuer: str, c: Cancel) -> bool:
        if not self.ledger.cancel(issuer, c.id):
            return False
        self.scheduler.removed(issuer, c.id)
        self.stop_play(issuer, c.id, "cancelled")
        return True


def _receipt_ids(payload: bytes) -> tuple[str | None, int | None]:
    """The command's id and rev for a receipt, when they can be read safely."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    id, rev = data.get("id"), data.get("rev")
    id = id if isinstance(id, str) and re.match(ID_PATTERN, id) else None
    rev = rev if isinstance(rev, int) and not isinstance(rev, bool) and 1 <= rev <= 2**53 else None
    return id, rev
