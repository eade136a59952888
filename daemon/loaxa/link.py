"""The MQTT link: one supervised paho client, persistent session, QoS 1.

paho's network thread only hands commands over (a bounded queue, through
`on_command`) and never does work itself. Subscriptions are made in
`on_connect`, so they come back after a broker restart; the state is
republished there too. The session is persistent (clean start off, a
session expiry of days, a fixed client id) so that commands sent while the
station was offline arrive when it returns.

`Link.status()` says whether the link is up and, if not, why and since when.

A connection can be up and still carry nothing: a broker under a flood may
drop what it queued to the station, PUBACKs included, and paho never
retransmits while connected, so its in-flight window stays full for good.
`check_stall()` notices QoS 1 publishes that went unacknowledged for
`ack_timeout_s` with no PUBACK at all meanwhile, and drops the connection;
paho reconnects on the persistent session and resends what is in flight,
and the reporter resends what its outbox still holds. Stalls are counted in
`status()`.

Failed connection attempts are logged with back-off: the first at once, then
at most once per doubling interval, and a line when the link comes back.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.config import MqttSettings
from loaxa.logsafe import shown
from loaxa.mqttclient import make_client
from loaxa.topics import target_of_topic

log = logging.getLogger(__name__)

CommandHandler = Callable[[bytes, bool, dict[str, Any]], None]
FIRST_REPEAT_S = 30.0  # after the first logged failure, the next one is logged no sooner than this
MAX_REPEAT_S = 30 * 60.0
ACK_TIMEOUT_S = 10.0  # a PUBACK on a working link takes milliseconds; this is a broker that lost it


class LinkState(StrEnum):
    CONNECTING = "connecting"  # started, the first attempt has not been answered yet
    CONNECTED = "connected"
    REFUSED = "refused"  # the broker answered and said no (login, ACL, ...): retrying alone will not help
    DISCONNECTED = "disconnected"  # no connection (broker unreachable, or the link dropped); retrying
    STOPPED = "stopped"


class FailureLog:
    """Logs repeated failures with back-off: the first at once, then once per doubling interval.

    `clock` is monotonic seconds; tests pass their own.
    """

    def __init__(
        self, first_s: float = FIRST_REPEAT_S, max_s: float = MAX_REPEAT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.first_s, self.max_s, self.clock = first_s, max_s, clock
        self.failures = 0  # since the last success
        self.started: float | None = None  # of the first failure since the last success
        self._next_at = 0.0
        self._interval = first_s

    def failed(self, what: str) -> None:
        now = self.clock()
        self.failures += 1
        if self.started is None:
            self.started = now
            log.warning("%s", what)
        elif now >= self._next_at:
            log.warning("%s (%d failed attempt(s) in %s)", what, self.failures, _duration(now - self.started))
            self._interval = min(self._interval * 2, self.max_s)
        else:
            return
        self._next_at = now + self._interval

    def succeeded(self) -> str | None:
        """Reset; says how long the trouble lasted, if there was any."""
        note = None
        if self.started is not None:
            note = f"after {self.failures} failed attempt(s) in {_duration(self.clock() - self.started)}"
        self.failures, self.started, self._next_at, self._interval = 0, None, 0.0, self.first_s
        return note


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Link:
    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        subscriptions: tuple[str, ...],
        will: tuple[str, bytes] | None,
        on_command: CommandHandler,
        *,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.ack_timeout_s = ack_timeout_s
        self.subscriptions = subscriptions
        self.on_command = on_command
        self.connected = threading.Event()
        self.on_connected: list[Callable[[], None]] = []
        self.where = f"{settings.host}:{settings.port}"
        self._failures = FailureLog()
        self._lock = threading.Lock()
        self._state = LinkState.CONNECTING
        self._since = _now()
        self._error: str | None = None
        self._unacked: list[tuple[mqtt.MQTTMessageInfo, float]] = []  # QoS 1 publishes and when they were sent
        self._last_ack = time.monotonic()
        self._stalls = 0
        self._connection = 0  # counts connections: a PUBACK belongs to the one its message came on
        self._last_stall: str | None = None
        self._last_stall_at: str | None = None
        # PUBACK only once the inbox has stored the command: a kill -9 must not lose it.
        client = make_client(settings, client_id, manual_ack=True)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=int(settings.reconnect_max_s))
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_error = self._on_connect_error
        client.on_publish = self._on_publish
        self.client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def stop(self, final: tuple[str, bytes] | None = None) -> None:
        """Publish `final` (the offline state) if connected, then disconnect."""
        if final is not None and self.connected.is_set():
            info = self.client.publish(final[0], final[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
        self._set(LinkState.STOPPED, None)

    def status(self) -> dict[str, Any]:
        """`state` (a `LinkState` value), `since` (ISO time), `error` (why it is not connected), and more."""
        with self._lock:
            return {
                "state": self._state.value,
                "since": self._since,
                "error": self._error,
                "broker": self.where,
                "failed_attempts": self._failures.failures,
                "stalls": self._stalls,
                "last_stall_at": self._last_stall_at,
                "last_stall": self._last_stall,
            }

    def _set(self, state: LinkState, error: str | None) -> None:
        with self._lock:
            if state != self._state:
                self._state, self._since = state, _now()
            self._error = error

    def alive(self) -> bool:
        """The network thread is running (connected or retrying)."""
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo | None:
        if not self.connected.is_set():
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        if qos > 0:
            self._track(info)
        return info

    def respond(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        """An MQTT 5 response on the requester's response topic, with its correlation data."""
        props = Properties(PacketTypes.PUBLISH)
        if correlation:
            props.CorrelationData = correlation
        if not self.connected.is_set():
            return
        try:
            info = self.client.publish(topic, payload, qos=1, properties=props)
        except ValueError as exc:  # a topic paho will not publish on (the inbox checks them first)
            log.warning("cannot answer on response topic %s: %s", shown(topic), exc)
            return
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._track(info)

    # -- stalled in-flight window -------------------------------------------------
    def _track(self, info: mqtt.MQTTMessageInfo) -> None:
        with self._lock:
            self._unacked = [(i, at) for i, at in self._unacked if not i.is_published()]
            self._unacked.append((info, time.monotonic()))

    def unacked(self) -> tuple[int, float]:
        """How many QoS 1 publishes wait for their PUBACK, and the age in seconds of the oldest."""
        now = time.monotonic()
        with self._lock:
            self._unacked = [(i, at) for i, at in self._unacked if not i.is_published()]
            if not self._unacked:
                return 0, 0.0
            return len(self._unacked), now - self._unacked[0][1]

    def check_stall(self) -> bool:
        """Drop a connection whose in-flight window has stalled; True when it had.

        Stalled: connected, a publish unacknowledged for `ack_timeout_s`, and no
        PUBACK at all for as long (a slow broker still acknowledges something).
        """
        if not self.connected.is_set():
            return False
        waiting, oldest = self.unacked()
        since_ack = time.monotonic() - self._last_ack
        if waiting == 0 or oldest < self.ack_timeout_s or since_ack < self.ack_timeout_s:
            return False
        reason = f"no PUBACK for {min(oldest, since_ack):.0f} s with {waiting} publish(es) in flight"
        with self._lock:
            self._stalls += 1
            self._last_stall, self._last_stall_at = reason, _now()
        log.warning("broker link stalled (%s); reconnecting to resend", reason)
        self._drop_connection()
        return True

    def _drop_connection(self) -> None:
        """Shut the socket under paho: its loop sees the connection lost and reconnects by itself."""
        shutdown = getattr(self.client.socket(), "shutdown", None)
        if shutdown is None:
            return
        try:
            shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed: paho is reconnecting anyway
            pass

    # -- paho callbacks (network thread: hand over, never work) ---------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            error = f"broker {self.where} refused the connection: {reason}"
            self._set(LinkState.REFUSED, error)
            self._failures.failed(error)
            return
        after = self._failures.succeeded()
        log.info(
            "connected to %s (session %s)%s",
            self.where,
            "resumed" if getattr(flags, "session_present", False) else "new",
            f" {after}" if after else "",
        )
        self._set(LinkState.CONNECTED, None)
        with self._lock:  # paho resends what is in flight now: each gets a fresh timeout
            self._connection += 1
            now = time.monotonic()
            self._last_ack = now
            self._unacked = [(i, now) for i, _ in self._unacked if not i.is_published()]
        # retainAsPublished: otherwise the broker clears the retain flag on live delivery
        # and a retained command published while connected would play.
        options = mqtt.SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(topic, options) for topic in self.subscriptions])
        self.connected.set()
        for hook in self.on_connected:
            hook()

    def _on_connect_error(self, client: mqtt.Client, exc: OSError) -> None:
        error = f"cannot connect to the broker at {self.where}: {_describe(exc)}"
        self._set(LinkState.DISCONNECTED, error)
        self._failures.failed(error)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        with self._lock:
            if self._state in (LinkState.REFUSED, LinkState.STOPPED):
                return  # the refusal (or the stop) says more than the disconnect that follows it
        if reason is None or getattr(reason, "value", 0) == 0:
            self._set(LinkState.DISCONNECTED, "disconnected")
            return
        self._set(LinkState.DISCONNECTED, f"disconnected: {reason}")
        if was_connected:
            self._failures.failed(f"broker link lost ({reason}); reconnecting")
        else:
            self._failures.failed(f"broker {self.where} closed the connection: {reason}")

    def _ack(self, msg: mqtt.MQTTMessage, connection: int) -> None:
        """PUBACK on the connection the message came on; after a reconnect the broker redelivers it instead.

        (Its packet id may be another message's on the new connection.)
        """
        if connection == self._connection and msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._last_ack = time.monotonic()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        connection = self._connection
        meta: dict[str, Any] = {
            "topic": msg.topic,
            "target": target_of_topic(msg.topic, self.settings.prefix),  # what a command's `to` must say
            "qos": msg.qos,
            "ack": lambda: self._ack(msg, connection),
        }
        props = getattr(msg, "properties", None)
        if props is not None:
            meta["response_topic"] = getattr(props, "ResponseTopic", None)
            meta["correlation_data"] = getattr(props, "CorrelationData", None)
        self.on_command(bytes(msg.payload), bool(msg.retain), meta)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _describe(exc: OSError) -> str:
    """`connection refused`, `timed out`, a TLS reason, ...: words, without the errno clutter."""
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]
