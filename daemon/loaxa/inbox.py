"""Commands from the network: parse, verify, dedupe, store, answer.

paho's thread only puts raw messages on a bounded queue; this thread does
the rest. Each command is applied in one store transaction together with
its receipts, or rejected with a reason and nothing changed.

A store that cannot write (a full disk, an I/O error) does not lose a
command: it is parsed and verified once, then held in memory, unacknowledged,
and retried with back-off until the store takes it; only then is the PUBACK
sent. Were the daemon killed meanwhile, the broker would redeliver it on the
persistent session. Later commands wait behind it, in order; the broker's
in-flight window bounds them. A QoS 0 command cannot come back, so it is
refused (with a `rejected` receipt if even that can be stored) and counted.
No exception ends this thread.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loaxa.approval import ApprovalPolicy
from loaxa.config import ApprovalSettings
from loaxa.content import Audio, Content, Parts
from loaxa.errors import CommandError, ControlError, StoreError
from loaxa.logsafe import shown
from loaxa.protocol import ID_PATTERN, Approve, Bulletin, Cancel, Decline, Ping, decode_payload, validate_command
from loaxa.schedule import Scheduler
from loaxa.security import RateLimiter, Verifier, check_target
from loaxa.states import Event
from loaxa.store import Accepted, Answer, Ledger
from loaxa.topics import response_problem

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
PUT_TIMEOUT_S = 5.0
SHED_QOS0_AT = QUEUE_SIZE // 2  # past this, QoS 0 messages are dropped at once: room is kept for QoS 1
IDLE_S = 5.0
HOLD_MAX = 100  # the broker's in-flight window (20) bounds the QoS 1 commands held; this bounds the rest
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 10.0
MAX_DETAIL = 2000  # characters of a `rejected` receipt's reason


@dataclass
class _Message:
    """A command as it came from the broker."""

    payload: bytes
    retained: bool
    meta: dict[str, Any]


@dataclass
class _Held:
    """A parsed, verified command the store could not take yet; `apply` writes it."""

    message: _Message
    apply: Callable[[], object]


@dataclass
class _Local:
    """A technician's command, already valid; `done` gets what the store made of it."""

    issuer: str
    command: Bulletin | Cancel | Approve | Decline
    done: Future[Accepted | bool | Answer] = field(default_factory=Future)
    at: datetime | None = None  # an approval's `--at`


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
        approval: ApprovalPolicy | None = None,
        response_root: str | None = None,
    ) -> None:
        """`response_root`: the topic level MQTT 5 answers may go under (`Topics.response`); None: no answers."""
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
        self.approval = approval or ApprovalPolicy(ApprovalSettings())
        self.response_root = response_root
        self.last_command_at: str | None = None
        self.heartbeat = time.monotonic()
        self.refused = 0  # commands the store could not take, since start
        self.shed = 0  # QoS 0 messages dropped at the door while the queue was busy
        self._queue: queue.Queue[_Message | _Local | None] = queue.Queue(QUEUE_SIZE)
        self._held: deque[_Held] = deque()
        self._retry_s = RETRY_FIRST_S
        self._retry_at = 0.0
        self._fault: str | None = None

    # -- other threads --------------------------------------------------------------
    def submit(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> None:
        """paho's thread: hand a message over, never work.

        A QoS 0 flood must not block this thread (PUBACKs and pings wait behind
        it), so QoS 0 is dropped at once while the queue is half full.
        """
        if meta.get("qos") == 0 and self._queue.qsize() >= SHED_QOS0_AT:
            self.shed += 1
            if self.shed == 1 or self.shed % 1000 == 0:
                log.warning("inbox busy; %d QoS 0 message(s) dropped so far", self.shed)
            return
        try:
            self._queue.put(_Message(payload, retained, meta), timeout=PUT_TIMEOUT_S)
        except queue.Full:
            log.error("inbox full; dropped a command on %s", shown(meta.get("topic")))

    def local(
        self, issuer: str, command: Bulletin | Cancel | Approve | Decline, at: datetime | None = None
    ) -> Future[Accepted | bool | Answer]:
        """A technician's bulletin, cancel, approve or decline, applied by this thread like any command.

        The future gives the store's answer: `Accepted` for a bulletin, whether
        it was cancelled for a cancel, an `Answer` for an approve or decline
        (`issuer` is then who answered, in the receipt's words; `at` when to air).
        """
        item = _Local(issuer, command, at=at)
        try:
            self._queue.put(item, timeout=PUT_TIMEOUT_S)
        except queue.Full:
            raise ControlError("the station is busy taking commands; try again") from None
        return item.done

    def stop(self) -> None:
        self._queue.put(None)

    def fault(self) -> str | None:
        """Why commands cannot be applied now (for the health report); None when they can."""
        if self._fault is None:
            return None
        return f"inbox: {self._fault}; {self.refused} command(s) not stored, {len(self._held)} held for retry"

    # -- this thread --------------------------------------------------------------
    def run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:  # nothing may end this thread: the station would answer no more
                log.exception("inbox error; continuing")
                time.sleep(1.0)

    def _step(self) -> bool:
        """Take one item (or time out), then retry what is held when due; False on stop."""
        timeout = max(0.0, self._retry_at - time.monotonic()) if self._held else IDLE_S
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            item = None
            empty = True
        else:
            empty = False
        self.heartbeat = time.monotonic()
        if item is None and not empty:
            return False
        if isinstance(item, _Local):
            self._apply_local(item)
        elif isinstance(item, _Message):
            self._take(item)
        self._retry_held()
        return True

    def _take(self, item: _Message) -> None:
        try:
            apply = self._prepare(item.payload, item.retained, item.meta)
        except Exception:  # a bug must not stop the station taking commands
            log.exception("error handling a command")
            apply = self._internal_error(item.payload)
        if apply is None:
            self._ack(item)
        elif self._held:  # in order: behind those already waiting for the store
            self._hold(_Held(item, apply), None)
        elif (error := self._attempt(_Held(item, apply))) is not None:
            self._hold(_Held(item, apply), error)

    def _attempt(self, held: _Held) -> StoreError | None:
        """Apply and acknowledge; the store's error when it could not write (nothing acknowledged then)."""
        try:
            held.apply()
        except StoreError as exc:
            return exc
        except Exception:  # a bug: answered, acknowledged, not retried for ever
            log.exception("error handling a command")
            self._try_receipt(held.message.payload, "internal error while handling the command")
        self._ack(held.message)
        return None

    def _hold(self, held: _Held, error: StoreError | None) -> None:
        self.refused += 1
        self.ledger.store.refused_command()
        if error is not None:
            self._faulted(error)
        if held.message.meta.get("qos") == 0 or len(self._held) >= HOLD_MAX:
            # Nothing brings it back: answer if even that can be stored, and let it go.
            detail = f"{self._fault or 'store unavailable'}; the command was not stored, send it again"
            if self._try_receipt(held.message.payload, detail):
                self._ack(held.message)
            return  # a QoS 1 one left unacknowledged is redelivered after the next reconnect
        self._held.append(held)

    def _retry_held(self) -> None:
        if not self._held or time.monotonic() < self._retry_at:
            return
        while self._held:
            error = self._attempt(self._held[0])
            if error is not None:
                self._faulted(error)
                return
            self._held.popleft()
        log.warning("store writable again; held commands applied (%d refused since start)", self.refused)
        self._fault, self._retry_s, self._retry_at = None, RETRY_FIRST_S, 0.0

    def _faulted(self, error: StoreError) -> None:
        if self._fault is None:
            log.error("cannot store commands: %s; holding them and retrying", error)
        else:
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
        self._fault = str(error)
        self._retry_at = time.monotonic() + self._retry_s

    def _try_receipt(self, payload: bytes, detail: str) -> bool:
        """A `rejected` receipt for `payload`, if the store can take it."""
        id, rev = _receipt_ids(payload)
        try:
            self.ledger.receipt(Event.REJECTED, id, rev, detail=detail)
        except Exception as exc:  # the receipt is best effort; the count and the state say it
            log.warning("could not store a rejected receipt for %s: %s", id, exc)
            return False
        return True

    def _internal_error(self, payload: bytes) -> Callable[[], object]:
        id, rev = _receipt_ids(payload)
        return lambda: self.ledger.receipt(Event.REJECTED, id, rev, detail="internal error while handling the command")

    @staticmethod
    def _ack(item: _Message) -> None:
        ack = item.meta.get("ack")
        if ack is not None:  # after the store commit: until then the broker keeps the command
            ack()

    def _apply_local(self, item: _Local) -> None:
        try:
            if isinstance(item.command, (Approve, Decline)):
                item.done.set_result(self.answer(item.issuer, item.command, datetime.now(UTC), item.at))
            else:
                item.done.set_result(self.apply(item.issuer, item.command))
        except StoreError as exc:  # the technician hears of it at once; nothing to redeliver it
            self.refused += 1
            self.ledger.store.refused_command()
            self._faulted(exc)
            item.done.set_exception(exc)
        except Exception as exc:  # the technician hears of it; the inbox goes on
            log.exception("error applying a local command")
            item.done.set_exception(exc)

    def apply(self, issuer: str, command: Bulletin | Cancel, now: datetime | None = None) -> Accepted | bool:
        """Apply one valid command from `issuer` (this thread's work; tests pass their own clock)."""
        if isinstance(command, Cancel):
            return self._cancel(issuer, command)
        return self._bulletin(issuer, command, now or datetime.now(UTC))

    def handle(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> None:
        """Parse, verify and apply one command now (a `StoreError` when the store cannot write)."""
        apply = self._prepare(payload, retained, meta)
        if apply is not None:
            apply()

    def _prepare(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> Callable[[], object] | None:
        """Parse, verify and rate-limit once; what is left is the store's part, safe to retry.

        None when there is nothing to write (a retained command, ignored).
        """
        if retained:
            log.warning("ignored a retained command on %s (commands must not be retained)", shown(meta.get("topic")))
            return None
        now = datetime.now(UTC)
        self.last_command_at = now.isoformat(timespec="seconds")
        try:
            data = decode_payload(payload)
            issuer = self.verifier.check(data, now) or ""
            self.ledger.store.check_issued(data)  # issued before the store was lost: maybe aired already
            command = validate_command(data)
            check_target(command.to, meta.get("target"), signed=bool(issuer))
            if isinstance(command, Ping):
                self._check_response(meta)
            if not self.limiter.allow(issuer, time.monotonic()):
                raise CommandError(f"too many commands from issuer {issuer or '(unsigned)'}; try again in a minute")
        except CommandError as exc:
            # The reason quotes what arrived (a field name, a value): escaped, it cannot forge a log line.
            detail = shown(exc, MAX_DETAIL)
            log.info("rejected command: %s", detail)
            id, rev = _receipt_ids(payload)
            return lambda: self.ledger.receipt(Event.REJECTED, id, rev, detail=detail)
        if isinstance(command, Ping):
            ping = command
            return lambda: self._ping(ping, meta)
        if isinstance(command, Cancel):
            cancel = command
            return lambda: self._cancel(issuer, cancel)
        if isinstance(command, (Approve, Decline)):
            return self._remote_answer(issuer, command, now)
        bulletin = command
        return lambda: self._bulletin(issuer, bulletin, now)

    def _check_response(self, meta: dict[str, Any]) -> None:
        """A ping's MQTT 5 response topic must lie in this station's response namespace."""
        topic = meta.get("response_topic")
        if not topic:
            return
        if self.response_root is None:
            raise CommandError("this station answers on no response topic; the pong goes to its event topic")
        problem = response_problem(topic, self.response_root)
        if problem is not None:
            raise CommandError(problem)

    def _ping(self, command: Ping, meta: dict[str, Any]) -> None:
        self.ledger.receipt(Event.PONG, command.id)
        if meta.get("response_topic"):
            reply = json.dumps({"id": command.id, "event": "pong"}).encode()
            self.respond(meta["response_topic"], reply, meta.get("correlation_data"))

    def _bulletin(self, issuer: str, b: Bulletin, now: datetime) -> Accepted:
        first = self.scheduler.first_slot(b, now) if b.schedule is not None else None
        until = self.approval.deadline(now, b.expires_at) if self.approval.needs(issuer, b.priority) else None
        accepted = self.ledger.accept(issuer, b, now, max_queue=self.max_queue, first_slot=first, approval_until=until)
        if not accepted.stored:
            return accepted
        if accepted.superseded_rev is not None:
            self.scheduler.removed(issuer, b.id)
            self.stop_play(issuer, b.id, "superseded")
        self.scheduler.added(issuer, b)
        content = b.content
        if isinstance(content, (Audio, Parts)):  # on receipt, so that the player never waits on the network
            self.fetch_ahead(content)
        self.on_queued(b)
        return accepted

    def _cancel(self, issuer: str, c: Cancel) -> bool:
        if not self.ledger.cancel(issuer, c.id):
            return False
        self.scheduler.removed(issuer, c.id)
        self.stop_play(issuer, c.id, "cancelled")
        return True

    # -- commune approval (protocol 1.1) ------------------------------------------
    def _remote_answer(self, issuer: str, command: Approve | Decline, now: datetime) -> Callable[[], object]:
        """An approve/decline over MQTT counts only from a key of `approval.approvers`."""
        refusal = self.approval.refusal(issuer)
        if refusal is not None:
            log.info("rejected %s of %s: %s", command.type, command.id, refusal)
            detail = f"cannot {command.type}: {refusal}"
            return lambda: self.ledger.receipt(Event.REJECTED, command.id, detail=detail)
        return lambda: self.answer(issuer, command, now, None)

    def answer(self, by: str, command: Approve | Decline, now: datetime, at: datetime | None = None) -> Answer:
        """Apply the commune's approve or decline from `by` (this thread's work; tests pass their own clock)."""
        if isinstance(command, Approve):
            answer = self.ledger.approve(by, command.id, now, at)
        else:
            answer = self.ledger.decline(by, command.id, command.reason, now)
            for issuer in answer.issuers:  # approved and on air already: not one more sample
                self.stop_play(issuer, command.id, "declined")
        return answer  # an approved play wakes the player as every commit does


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, duplicates kept."""


def _receipt_ids(payload: bytes) -> tuple[str | None, int | None]:
    """The command's id and rev for a receipt, when they can be read safely (and unambiguously)."""
    try:
        pairs = json.loads(payload, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None, None
    if not isinstance(pairs, _Pairs):
        return None, None
    ids = [value for key, value in pairs if key == "id"]
    revs = [value for key, value in pairs if key == "rev"]
    id = ids[0] if len(ids) == 1 else None  # two ids: no telling which one the receipt is for
    rev = revs[0] if len(revs) == 1 else None
    id = id if isinstance(id, str) and re.match(ID_PATTERN, id) else None
    rev = rev if isinstance(rev, int) and not isinstance(rev, bool) and 1 <= rev <= 2**53 else None
    return id, rev
