"""The operator's MQTT connection: broker options, and a feed of station messages.

paho's network thread only decodes and hands each state or event over
through a queue; the command-line tools read the queue on their own thread.
An operator subscribes to the exact filters the province ACL grants
(`{prefix}/{p}/+/+/state` and `…/event`), never to `#`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.errors import LinkError
from loaxa.mqttclient import Login, Tls, make_client
from loaxa.topics import province_reports, station_of

log = logging.getLogger(__name__)

PASSWORD_ENV = "LOAXA_MQTT_PASSWORD"
HOST_ENV, PORT_ENV = "LOAXA_MQTT_HOST", "LOAXA_MQTT_PORT"  # the province broker, for every command at once


def add_broker_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("broker")
    g.add_argument(
        "--host",
        default=os.environ.get(HOST_ENV, "localhost"),
        help=f"province broker (default ${HOST_ENV} or localhost)",
    )
    g.add_argument("--port", type=int, default=int(os.environ.get(PORT_ENV, 1883)), help=f"default ${PORT_ENV} or 1883")
    g.add_argument("--username", help="operator login")
    g.add_argument("--password", help=f"operator password (better: ${PASSWORD_ENV})")
    g.add_argument("--ca-file", help="CA certificate: connect with TLS")
    g.add_argument("--prefix", default="loaxa/v1", help="topic prefix (default loaxa/v1)")


def login_of(args: argparse.Namespace) -> Login:
    """The operator's broker login from `add_broker_args` options (the password also from the environment)."""
    return Login(
        username=args.username,
        password=args.password or os.environ.get(PASSWORD_ENV),
        tls=Tls(ca_file=args.ca_file) if args.ca_file else None,
    )


@dataclass(frozen=True)
class Message:
    """One station state or event as the operator received it."""

    station: str  # p/c/s
    kind: str  # "state" or "event"
    body: dict[str, Any]
    retained: bool
    arrived: float  # time.monotonic()


class Feed:
    """A connected operator client; `messages` fills with states and events."""

    def __init__(
        self, args: argparse.Namespace, provinces: list[str], states: bool = True, events: bool = True
    ) -> None:
        self.prefix: str = args.prefix
        self.messages: queue.Queue[Message] = queue.Queue()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self._refused: str | None = None
        self.filters = [
            f for p in sorted(set(provinces)) for f in province_reports(self.prefix, p, states=states, events=events)
        ]
        client = make_client(login_of(args), f"loaxa-op-{uuid.uuid4().hex[:10]}")
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        self.client = client
        self.where = f"{args.host}:{args.port}"
        try:
            client.connect(args.host, args.port, keepalive=30)
        except OSError as exc:
            raise LinkError(f"cannot reach the broker at {self.where}: {exc}") from None
        client.loop_start()
        if not self._connected.wait(10) or self._refused:
            self.close()
            raise LinkError(f"broker {self.where} {self._refused or 'did not answer the connection within 10 s'}")
        if self.filters and not self._subscribed.wait(10):
            self.close()
            raise LinkError(f"broker {self.where} did not confirm the subscriptions")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = f"refused the login: {reason}"
        elif self.filters:
            client.subscribe([(f, mqtt.SubscribeOptions(qos=1)) for f in self.filters])
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        where = station_of(msg.topic, self.prefix)
        if where is None:
            return
        try:
            body = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("unreadable %s from %s", where[1], where[0])
            return
        if isinstance(body, dict):
            self.messages.put(Message(where[0], where[1], body, bool(msg.retain), time.monotonic()))

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """QoS 1, never retained; returns once the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=1, retain=False)
        try:
            info.wait_for_publish(timeout=timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise LinkError(f"could not publish to {topic}: {exc}") from None
        if not info.is_published():
            raise LinkError(f"the broker did not acknowledge the command on {topic} within {timeout_s:g} s")

    def drain(self, quiet_s: float, max_s: float) -> list[Message]:
        """Messages until none came for `quiet_s` (retained ones arrive in a burst), at most `max_s`."""
        out: list[Message] = []
        deadline = time.monotonic() + max_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.messages.get(timeout=min(quiet_s, left)))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        try:
            self.client.disconnect()
        except OSError:
            pass
        self.client.loop_stop()
