"""The server's MQTT sessions: states and events in, acknowledged only once stored.

Each session is persistent (clean start off, a fixed client id, a long
session expiry, QoS 1) on `{prefix}/{province}/+/+/state` and `…/event`,
and has one thread that reads, stores and acknowledges (`link.Link`): it
takes what the socket holds, reads again while more is there (up to
`database.batch_max`), commits the batch, and only then sends its PUBACKs,
in one write. A kill -9 between the two loses nothing: the broker
redelivers what was not acknowledged, and the database skips what it has
already (the same station and `seq`). A PUBACK goes only on the connection
its message came on; after a reconnect the broker redelivers. While the
database fails, the thread keeps the connection alive and retries; the
broker holds the rest (at most `broker.receive_maximum` wait here).

`broker.sessions` > 1 opens that many sessions (client ids `client_id`,
`client_id-2`, …) on an MQTT 5 shared subscription, so the broker spreads
the messages over them; each stores its own batches. Session 1 publishes
the server's commands.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from loaxa.errors import LinkError
from loaxa.province.server.database import Database, DatabaseError, Incoming
from loaxa.province.server.link import Link
from loaxa.province.server.mqttwire import Message, ProtocolError
from loaxa.province.server.settings import ProvinceServerSettings
from loaxa.topics import province_reports, station_of

log = logging.getLogger(__name__)

RETRY_DB_S = 2.0  # a failed commit is retried (nothing was acknowledged) after this long
STABLE_S = 10.0  # a connection that lasted this long resets the reconnect delay
# At stop, the sessions' threads get this long in all to store what has arrived: a database that hangs must not
# hold the server past systemd's TimeoutStopSec=30 (HTTP's stop takes up to 10 s before).
STOP_S = 15.0
IDLE_S = 1.0  # the longest a session's thread waits for the socket before it looks at the keep-alive
SHARED_GROUP = "loaxa-province"  # the shared subscription of several sessions when broker.shared_group is not set


class Session:
    """One persistent MQTT session and the thread that reads, stores and acknowledges its messages."""

    def __init__(self, ingest: Ingest, client_id: str, filters: tuple[str, ...]) -> None:
        self.ingest = ingest
        self.client_id = client_id
        self.link = Link(ingest.settings.broker, client_id, filters)
        self.connected = self.link.connected
        self.error: str | None = "connecting"
        self.received = 0  # messages delivered on this session since start
        self.waiting = 0  # read but not yet stored
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)

    @property
    def link_error(self) -> str | None:
        return self.error or self.link.refused

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)
        log.info("%s: %d messages received", self.client_id, self.received)
        if self._thread.is_alive():  # a daemon thread: it ends with the process, having acknowledged nothing more
            log.error(
                "%s: still waiting for the database after %.0f s; stopping without it (the %d messages it holds "
                "were not acknowledged: the broker delivers them again)",
                self.client_id,
                STOP_S,
                self.waiting,
            )

    def _run(self) -> None:
        b = self.ingest.settings.broker
        stopping = self.ingest.stopping
        delay = 1.0
        try:
            while not stopping.is_set():
                if self._open():
                    opened = time.monotonic()
                    try:
                        self._serve()
                    except (OSError, LinkError, ProtocolError) as exc:
                        self.link.close()
                        if not stopping.is_set():
                            self.error = f"disconnected from {self.link.where} ({self.client_id}): {_reason(exc)}"
                            log.warning("%s; reconnecting", self.error)
                    except Exception as exc:  # a bug must not end the session's thread: report, start again
                        self.link.close()
                        self.error = f"{self.client_id} failed and reconnects: {type(exc).__name__}: {exc}"
                        log.exception("%s", self.error)
                    if time.monotonic() - opened > STABLE_S:
                        delay = 1.0  # a connection that held: the next try comes soon
                stopping.wait(delay)  # a broker that drops every connection at once is not hammered
                delay = min(delay * 2, b.reconnect_max_s)
        finally:
            self.link.disconnect()
            self.link.shut()

    def _open(self) -> bool:
        try:
            self.link.open()
        except (OSError, LinkError, ProtocolError) as exc:
            if isinstance(exc, LinkError):
                self.error = str(exc)
            else:
                self.error = f"cannot connect to the broker at {self.link.where}: {_reason(exc)}"
            log.warning("%s", self.error)
            return False
        self.error = None
        log.info(
            "connected to %s as %s (session %s)",
            self.link.where,
            self.client_id,
            "resumed" if self.link.session_present else "new",
        )
        return True

    def _serve(self) -> None:
        """Read, store, acknowledge on one connection until it breaks or the server stops."""
        ingest = self.ingest
        batch_max = ingest.settings.database.batch_max
        pending: list[tuple[int, Incoming | None]] = []  # (packet id, message) read and not yet stored
        retry_at = 0.0
        while True:
            stopping = ingest.stopping.is_set()
            now = time.monotonic()
            if stopping:
                wait = 0.0
            elif not pending:
                wait = IDLE_S
            else:
                wait = max(0.0, min(retry_at - now, IDLE_S))
            got = self.link.read(wait)
            if got:
                arrived = time.time()
                pending += [(m.pid, ingest.decode(m, arrived)) for m in got]
                self.received += len(got)
                self.waiting = len(pending)
                if len(pending) < batch_max and not stopping:
                    continue  # more may be there at once: a batch is what has arrived, not one read
            while pending and time.monotonic() >= retry_at:
                chunk = pending[:batch_max]
                if not ingest.store([m for _, m in chunk if m is not None]):
                    retry_at = time.monotonic() + RETRY_DB_S
                    break
                self.link.ack([pid for pid, _ in chunk if pid])
                del pending[: len(chunk)]
                self.waiting = len(pending)
            if stopping:
                return  # what could not be stored stays with the broker
            self.link.tick()


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


class Ingest:
    """The MQTT sessions, each storing and then acknowledging what it receives."""

    def __init__(self, settings: ProvinceServerSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        b = settings.broker
        self.prefix = settings.province.prefix
        filters = province_reports(self.prefix, settings.province.id)
        group = b.shared_group or (SHARED_GROUP if b.sessions > 1 else None)
        if group:
            filters = tuple(f"$share/{group}/{f}" for f in filters)
        self.filters = filters
        self.where = f"{b.host}:{b.port}"
        ids = [b.client_id] + [f"{b.client_id}-{k}" for k in range(2, b.sessions + 1)]
        self.sessions = [Session(self, client_id, filters) for client_id in ids]
        self.connected = self.sessions[0].connected  # the server's commands go out on the first session
        self._stats_lock = threading.Lock()  # the sessions count, the API thread reads
        self.stats = {
            "stored": 0,
            "duplicates": 0,
            "gaps": 0,
            "states": 0,
            "unreadable": 0,
            "db_errors": 0,
            "batches": 0,  # transactions committed: messages per batch shows how much each commit carries
        }
        self.db_error: str | None = None
        self.stopping = threading.Event()

    @property
    def link_error(self) -> str | None:
        return next((s.link_error for s in self.sessions if s.link_error), None)

    def start(self) -> None:
        for session in self.sessions:
            session.start()

    def stop(self) -> None:
        """Store what has arrived, then disconnect; unacknowledged messages stay with the broker."""
        self.stopping.set()
        for session in self.sessions:
            session.link.wake()
        deadline = time.monotonic() + STOP_S
        for session in self.sessions:
            session.join(max(0.0, deadline - time.monotonic()))

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """A command to stations: QoS 1, never retained; returns once the broker acknowledged it."""
        first = self.sessions[0]
        if not first.connected.is_set():
            raise LinkError(f"not connected to the broker at {self.where}: {first.link_error}")
        first.link.publish(topic, payload, timeout_s)

    def _count(self, **added: int) -> None:
        with self._stats_lock:
            for key, n in added.items():
                self.stats[key] += n

    def status(self) -> dict[str, Any]:
        with self._stats_lock:
            stats = dict(self.stats)
        return {
            "broker": self.where,
            "connected": all(s.connected.is_set() for s in self.sessions),
            "sessions": {
                s.client_id: {"connected": s.connected.is_set(), "received": s.received} for s in self.sessions
            },
            "error": self.link_error,
            "database_error": self.db_error,
            "waiting": sum(s.waiting for s in self.sessions),
            **stats,
        }

    # -- the sessions' threads ----------------------------------------------------------
    def store(self, batch: list[Incoming]) -> bool:
        """One transaction; False when the database failed (nothing stored, nothing to acknowledge)."""
        try:
            result = self.db.ingest(batch)
        except DatabaseError as exc:
            self._count(db_errors=1)
            self.db_error = str(exc)
            log.error("%s; retrying in %.0f s", exc, RETRY_DB_S)
            return False
        except Exception as exc:  # a bug must not stop the stations' receipts from being kept: say so and retry
            self._count(db_errors=1)
            self.db_error = f"storing a batch of {len(batch)} failed: {type(exc).__name__}: {exc}"
            log.exception("%s; retrying in %.0f s", self.db_error, RETRY_DB_S)
            return False
        self.db_error = None
        for station, first, last in result.gaps:
            log.warning("%s: events %d–%d never arrived (recorded as a gap)", station, first, last)
        self._count(
            stored=result.stored, duplicates=result.duplicates, gaps=len(result.gaps), states=result.states, batches=1
        )
        return True

    def decode(self, msg: Message, arrived: float) -> Incoming | None:
        """Topic and JSON, once: the text decoded here is also what is stored as the event's payload."""
        where = station_of(msg.topic, self.prefix)
        try:
            text = msg.payload.decode("utf-8")
            body = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            body = None
        if where is None or not isinstance(body, dict):
            self._count(unreadable=1)
            log.warning("unreadable message on %s (%d bytes): skipped", msg.topic, len(msg.payload))
            return None
        return Incoming(where[0], where[1], body, msg.retain, arrived, text)
