"""The server's MQTT session: states and events in, acknowledged only once stored.

A persistent session (clean start off, a fixed client id, a long session
expiry, QoS 1) on `{prefix}/{province}/+/+/state` and `…/event`. paho runs
with manual acknowledgement: its network thread only hands each message to
a bounded queue; the writer thread takes a batch, commits it, and only then
sends the PUBACKs. A kill -9 between the two loses nothing: the broker
redelivers what was not acknowledged, and the database skips what it has
already (the same station and `seq`). A PUBACK is sent only on the
connection the message came on; after a reconnect the broker redelivers.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.errors import LinkError
from loaxa.mqttclient import make_client
from loaxa.province.server.database import Database, DatabaseError, Incoming
from loaxa.province.server.settings import ProvinceServerSettings
from loaxa.topics import province_reports, station_of

log = logging.getLogger(__name__)

RETRY_DB_S = 2.0  # a failed commit is retried (nothing was acknowledged) after this long


@dataclass(frozen=True)
class _Delivery:
    msg: mqtt.MQTTMessage
    connection: int
    arrived: float


class Ingest:
    """The MQTT session and the writer thread that stores and then acknowledges."""

    def __init__(self, settings: ProvinceServerSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        b = settings.broker
        self.prefix = settings.province.prefix
        filters = province_reports(self.prefix, settings.province.id)
        if b.shared_group:
            filters = tuple(f"$share/{b.shared_group}/{f}" for f in filters)
        self.filters = filters
        self.where = f"{b.host}:{b.port}"
        self.connected = threading.Event()
        self._stats_lock = threading.Lock()  # the writer counts, the API thread reads
        self.stats = {"stored": 0, "duplicates": 0, "gaps": 0, "states": 0, "unreadable": 0, "db_errors": 0}
        self.db_error: str | None = None
        self.link_error: str | None = "connecting"
        self._queue: queue.Queue[_Delivery] = queue.Queue(maxsize=max(b.receive_maximum * 2, 1000))
        self._connection = 0  # counted by paho's thread, compared by the writer: a PUBACK only on the same connection
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        client = make_client(b, b.client_id, manual_ack=True)
        client.reconnect_delay_set(min_delay=1, max_delay=int(b.reconnect_max_s))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_error = self._on_connect_error
        self.client = client

    def start(self) -> None:
        b = self.settings.broker
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = b.session_expiry_s
        props.ReceiveMaximum = b.receive_maximum
        self._writer.start()
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        """Store what has arrived, then disconnect; unacknowledged messages stay with the broker."""
        self._stop.set()
        self._writer.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """A command to stations: QoS 1, never retained; returns once the broker acknowledged it."""
        if not self.connected.is_set():
            raise LinkError(f"not connected to the broker at {self.where}: {self.link_error}")
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
            "connected": self.connected.is_set(),
            "error": self.link_error,
            "database_error": self.db_error,
            "waiting": self._queue.qsize(),
            **stats,
        }

    # -- paho's network thread: hand over, never work --------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.link_error = f"broker {self.where} refused the connection: {reason}"
            log.error("%s", self.link_error)
            return
        self._connection += 1
        log.info(
            "connected to %s (session %s)", self.where, "resumed" if getattr(flags, "session_present", False) else "new"
        )
        client.subscribe([(f, mqtt.SubscribeOptions(qos=1)) for f in self.filters])
        self.link_error = None
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            self.link_error = f"disconnected from {self.where}: {reason}"
            log.warning("%s; reconnecting", self.link_error)

    def _on_connect_error(self, client: mqtt.Client, exc: OSError) -> None:
        self.link_error = f"cannot connect to the broker at {self.where}: {exc.strerror or exc}"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Blocks paho's thread when the writer is behind: the broker then holds the rest (receive maximum).
        self._queue.put(_Delivery(msg, self._connection, time.time()))

    # -- the writer thread ------------------------------------------------------
    def _run(self) -> None:
        batch_max = self.settings.database.batch_max
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < batch_max:
                try:
                    batch.append(self._queue.get_nowait())
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
                if self._stop.wait(RETRY_DB_S):
                    return
            except Exception:  # a bug must not stop the station's receipts from being kept: log and retry
                self._count(db_errors=1)
                log.exception("storing a batch of %d failed; retrying", len(incoming))
                if self._stop.wait(RETRY_DB_S):
                    return
        self.db_error = None
        for station, first, last in result.gaps:
            log.warning("%s: events %d–%d never arrived (recorded as a gap)", station, first, last)
        self._count(stored=result.stored, duplicates=result.duplicates, gaps=len(result.gaps), states=result.states)
        for d in batch:
            if d.connection == self._connection and d.msg.qos > 0:
                self.client.ack(d.msg.mid, d.msg.qos)

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
