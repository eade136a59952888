"""The server's MQTT sessions: states and events in, acknowledged only once stored.

Each session is persistent (clean start off, a fixed client id, a long
session expiry, QoS 1) on `{prefix}/{province}/+/+/state` and `…/event`.
paho runs with manual acknowledgement: its network thread (`netloop`) only
hands each message to a bounded queue; the one writer thread takes a batch, commits
it, and only then sends the PUBACKs. A kill -9 between the two loses
nothing: the broker redelivers what was not acknowledged, and the database
skips what it has already (the same station and `seq`). A PUBACK is sent
only by the session the message came on and on the same connection; after
a reconnect the broker redelivers.

`broker.sessions` > 1 opens that many sessions (client ids `client_id`,
`client_id-2`, …) on an MQTT 5 shared subscription, so the broker spreads
the messages over them; each has its own network thread and all feed the
one writer. Session 1 publishes the server's commands.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.errors import LinkError
from loaxa.mqttclient import make_client
from loaxa.province.server.database import Database, DatabaseError, Incoming
from loaxa.province.server.netloop import NetworkLoop
from loaxa.province.server.settings import ProvinceServerSettings
from loaxa.topics import province_reports, station_of

log = logging.getLogger(__name__)

RETRY_DB_S = 2.0  # a failed commit is retried (nothing was acknowledged) after this long
SHARED_GROUP = "loaxa-province"  # the shared subscription of several sessions when broker.shared_group is not set


class _Delivery(NamedTuple):
    session: Session
    connection: int
    msg: mqtt.MQTTMessage
    arrived: float


class Session:
    """One persistent MQTT session; its network thread hands every message to the writer's queue."""

    def __init__(self, ingest: Ingest, client_id: str, filters: tuple[str, ...]) -> None:
        b = ingest.settings.broker
        self.ingest = ingest
        self.client_id = client_id
        self.filters = filters
        self.where = f"{b.host}:{b.port}"
        self.connected = threading.Event()
        self.link_error: str | None = "connecting"
        self.connection = 0  # counted by paho's thread, compared by the writer: a PUBACK only on the same connection
        self.received = 0  # messages delivered on this session since start (paho's thread counts)
        client = make_client(b, client_id, manual_ack=True)
        self.loop = NetworkLoop(client, f"mqtt-{client_id}", max_delay_s=b.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_error = self._on_connect_error
        self.client = client

    def start(self) -> None:
        b = self.ingest.settings.broker
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = b.session_expiry_s
        props.ReceiveMaximum = b.receive_maximum
        self.loop.connect(b.host, b.port, keepalive=b.keepalive_s, clean_start=False, properties=props)

    def stop(self) -> None:
        self.loop.stop()
        log.info("%s: %d messages received", self.client_id, self.received)

    def ack(self, delivery: _Delivery) -> None:
        if delivery.connection == self.connection and delivery.msg.qos > 0:
            self.client.ack(delivery.msg.mid, delivery.msg.qos)

    # -- paho's network thread: hand over, never work --------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.link_error = f"broker {self.where} refused the connection of {self.client_id}: {reason}"
            log.error("%s", self.link_error)
            return
        self.connection += 1
        log.info(
            "connected to %s as %s (session %s)",
            self.where,
            self.client_id,
            "resumed" if getattr(flags, "session_present", False) else "new",
        )
        # Retained states only for a new subscription: a resumed session had every state queued meanwhile, and
        # 5,000 retained states again on each reconnect would be work for nothing (MQTT 5 retain handling 1).
        options = mqtt.SubscribeOptions(qos=1, retainHandling=mqtt.SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f, options) for f in self.filters])
        self.link_error = None
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if not self.ingest.stopping.is_set():
            self.link_error = f"{self.client_id} disconnected from {self.where}: {reason}"
            log.warning("%s; reconnecting", self.link_error)

    def _on_connect_error(self, client: mqtt.Client, exc: OSError) -> None:
        self.link_error = f"cannot connect to the broker at {self.where}: {exc.strerror or exc}"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Blocks paho's thread when the writer is behind: the broker then holds the rest (receive maximum).
        self.received += 1
        self.ingest.queue.put(_Delivery(self, self.connection, msg, time.time()))


class Ingest:
    """The MQTT sessions and the writer thread that stores and then acknowledges."""

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
        self.client = self.sessions[0].client  # the server's commands go out on the first session
        self.connected = self.sessions[0].connected
        self._stats_lock = threading.Lock()  # the writer counts, the API thread reads
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
        self.queue: queue.Queue[_Delivery] = queue.Queue(maxsize=max(b.receive_maximum * 2 * b.sessions, 1000))
        self.stopping = threading.Event()
        self._writer = threading.Thread(target=self._run, name="ingest-writer", daemon=True)

    @property
    def link_error(self) -> str | None:
        return next((s.link_error for s in self.sessions if s.link_error), None)

    def start(self) -> None:
        self._writer.start()
        for session in self.sessions:
            session.start()

    def stop(self) -> None:
        """Store what has arrived, then disconnect; unacknowledged messages stay with the broker."""
        self.stopping.set()
        self._writer.join(timeout=30)
        for session in reversed(self.sessions):
            session.stop()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """A command to stations: QoS 1, never retained; returns once the broker acknowledged it."""
        if not self.connected.is_set():
            raise LinkError(f"not connected to the broker at {self.where}: {self.sessions[0].link_error}")
        info = self.client.publish(topic, payload, qos=1, retain=False)
        try:
            info.wait_for_publish(timeout=timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise LinkError(f"could not publish to {topic}: {exc}") from None
        if not info.is_published():
            raise LinkError(f"the broker did not acknowledge the command on {topic} within {timeout_s:g} s")

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
            "waiting": self.queue.qsize(),
            **stats,
        }

    # -- the writer thread ------------------------------------------------------
    def _run(self) -> None:
        batch_max = self.settings.database.batch_max
        while True:
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.stopping.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < batch_max:  # what has arrived, up to a full batch: never waits for more
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._store(batch)

    def _store(self, batch: list[_Delivery]) -> None:
        incoming = [m for m in (self._decode(d) for d in batch) if m is not None]
        while True:
            try:
                result = self.db.ingest(incoming)
                break
            except DatabaseError as exc:  # nothing acknowledged: retry until it works, the broker keeps the rest
                self._count(db_errors=1)
                self.db_error = str(exc)
                log.error("%s; retrying in %.0f s", exc, RETRY_DB_S)
                if self.stopping.wait(RETRY_DB_S):
                    return
            except Exception:  # a bug must not stop the station's receipts from being kept: log and retry
                self._count(db_errors=1)
                log.exception("storing a batch of %d failed; retrying", len(incoming))
                if self.stopping.wait(RETRY_DB_S):
                    return
        self.db_error = None
        for station, first, last in result.gaps:
            log.warning("%s: events %d–%d never arrived (recorded as a gap)", station, first, last)
        self._count(
            stored=result.stored, duplicates=result.duplicates, gaps=len(result.gaps), states=result.states, batches=1
        )
        for d in batch:
            d.session.ack(d)

    def _decode(self, d: _Delivery) -> Incoming | None:
        """Topic and JSON, once: the text decoded here is also what is stored as the event's payload."""
        where = station_of(d.msg.topic, self.prefix)
        try:
            text = d.msg.payload.decode("utf-8")
            body = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            body = None
        if where is None or not isinstance(body, dict):
            self._count(unreadable=1)
            log.warning("unreadable message on %s (%d bytes): skipped", d.msg.topic, len(d.msg.payload))
            return None
        return Incoming(where[0], where[1], body, bool(d.msg.retain), d.arrived, text)
