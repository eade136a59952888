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
from datetime import datetime, timezone
from typing import Any

from loaxa.errors import CommandError
from loaxa.protocol import ID_PATTERN, Bulletin, Cancel, Ping, decode_payload, validate_command
from loaxa.reports import Receipts
from loaxa.schedule import Scheduler
from loaxa.security import RateLimiter, Verifier
from loaxa.store import Store

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000


class Inbox(threading.Thread):
    def __init__(
        self,
        store: Store,
        receipts: Receipts,
        scheduler: Scheduler,
        verifier: Verifier,
        limiter: RateLimiter,
        max_queue: int,
        on_queued: Callable[[Bulletin], None],
        stop_play: Callable[[str, str, str], bool],
        respond: Callable[[str, bytes, bytes | None], None],
    ) -> None:
        super().__init__(name="inbox", daemon=True)
        self.store = store
        self.receipts = receipts
        self.scheduler = scheduler
        self.verifier = verifier
        self.limiter = limiter
        self.max_queue = max_queue
        self.on_queued = on_queued
        self.stop_play = stop_play
        self.respond = respond
        self.last_command_at: str | None = None
        self.heartbeat = time.monotonic()
        self._queue: queue.Queue[tuple[bytes, bool, dict[str, Any]] | None] = queue.Queue(QUEUE_SIZE)

    # -- paho's thread -----------------------------------------------------------
    def submit(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> None:
        try:
            self._queue.put((payload, retained, meta), timeout=5)
        except queue.Full:
            log.error("inbox full; dropped a command on %s", meta.get("topic"))

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
            try:
                self.handle(*item)
            except Exception:  # a bug must not stop the station taking commands
                log.exception("error handling a command")
                self.receipts.emit("rejected", _receipt_ids(item[0])[0], detail="internal error while handling the command")
            ack = item[2].get("ack")
            if ack is not None:  # after the store commit: until then the broker keeps the command
                ack()

    def handle(self, payload: bytes, retained: bool, meta: dict[str, Any]) -> None:
        if retained:
            log.warning("ignored a retained command on %s (commands must not be retained)", meta.get("topic"))
            return
        now = datetime.now(timezone.utc)
        self.last_command_at = now.isoformat(timespec="seconds")
        try:
            data = decode_payload(payload)
            issuer = self.verifier.check(data, now) or ""
            command = validate_command(data)
            if not self.limiter.allow(issuer, time.monotonic()):
                raise CommandError(f"too many commands from issuer {issuer or '(unsigned)'}; try again in a minute")
        except CommandError as exc:
            log.info("rejected command: %s", exc)
            self.receipts.emit("rejected", *_receipt_ids(payload), detail=str(exc))
            return
        if isinstance(command, Ping):
            self.receipts.emit("pong", command.id)
            if meta.get("response_topic"):
                self.respond(meta["response_topic"], json.dumps({"id": command.id, "event": "pong"}).encode(), meta.get("correlation_data"))
        elif isinstance(command, Cancel):
            self._cancel(issuer, command)
        else:
            self._bulletin(issuer, command, now)

    def _bulletin(self, issuer: str, b: Bulletin, now: datetime) -> None:
        superseded = None
        with self.store.tx() as db:
            known = self.store.bulletin(db, issuer, b.id)
            if self.store.seen(db, issuer, b.id, b.rev):
                self.receipts.add(db, "duplicate", b.id, b.rev, detail="this id and rev were already received")
                return
            if known is not None and b.rev < known["rev"]:
                self.receipts.add(db, "rejected", b.id, b.rev, detail=f"rev {b.rev} is older than rev {known['rev']} already received")
                return
            waiting = db.execute("SELECT COUNT(*) FROM plays WHERE state = 'pending'").fetchone()[0]
            if b.schedule is None and waiting >= self.max_queue:
                self.receipts.add(db, "rejected", b.id, b.rev, detail=f"the queue is full ({waiting} waiting)")
                return
            db.execute("INSERT INTO seen (issuer, id, rev, at) VALUES (?, ?, ?, ?)", (issuer, b.id, b.rev, now.timestamp()))
            if known is not None:
                superseded = known["rev"]
                db.execute(
                    "UPDATE plays SET state = 'superseded' WHERE issuer = ? AND id = ? AND state = 'pending'", (issuer, b.id)
                )
                self.receipts.add(db, "superseded", b.id, known["rev"], detail=f"replaced by rev {b.rev}")
            db.execute(
                "INSERT OR REPLACE INTO bulletins (issuer, id, rev, priority, body, state, received_at, fired_until) "
                "VALUES (?, ?, ?, ?, ?, 'active', ?, NULL)",
                (issuer, b.id, b.rev, b.priority, b.model_dump_json(exclude_none=True), now.timestamp()),
            )
            self.receipts.add(db, "received", b.id, b.rev, detail=f"{b.priority}, {b.kind}")
            self.scheduler.plan(db, issuer, b, now)
        if superseded is not None:
            self.scheduler.removed(issuer, b.id)
            self.stop_play(issuer, b.id, "superseded")
        self.scheduler.added(issuer, b)
        self.on_queued(b)

    def _cancel(self, issuer: str, c: Cancel) -> None:
        with self.store.tx() as db:
            known = self.store.bulletin(db, issuer, c.id)
            on_air = db.execute(
                "SELECT 1 FROM plays WHERE issuer = ? AND id = ? AND state = 'on_air'", (issuer, c.id)
            ).fetchone()
            if known is None or (known["state"] != "active" and on_air is None):
                reason = "no such bulletin" if known is None else f"the bulletin is already {known['state']}"
                self.receipts.add(db, "rejected", c.id, detail=f"cannot cancel: {reason}")
                return
            db.execute("UPDATE bulletins SET state = 'cancelled' WHERE issuer = ? AND id = ?", (issuer, c.id))
            db.execute("UPDATE plays SET state = 'cancelled' WHERE issuer = ? AND id = ? AND state = 'pending'", (issuer, c.id))
            self.receipts.add(db, "cancelled", c.id, known["rev"])
        self.scheduler.removed(issuer, c.id)
        self.stop_play(issuer, c.id, "cancelled")


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
