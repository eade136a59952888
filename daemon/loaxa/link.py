"""The MQTT link: one supervised paho client, persistent session, QoS 1.

paho's network thread only hands commands over (a bounded queue, through
`on_command`) and never does work itself. Subscriptions are made in
`on_connect`, so they come back after a broker restart; the state is
republished there too. The session is persistent (clean start off, a
session expiry of days, a fixed client id) so that commands sent while the
station was offline arrive when it returns.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.config import MqttSettings

log = logging.getLogger(__name__)

CommandHandler = Callable[[bytes, bool, dict[str, Any]], None]


class Link:
    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        subscriptions: tuple[str, ...],
        will: tuple[str, bytes] | None,
        on_command: CommandHandler,
    ) -> None:
        self.settings = settings
        self.subscriptions = subscriptions
        self.on_command = on_command
        self.connected = threading.Event()
        self.on_connected: list[Callable[[], None]] = []
        self.last_error: str | None = None
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=True,
            manual_ack=True,  # PUBACK only once the inbox has stored the command: a kill -9 must not lose it
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            tls = settings.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(tls.insecure)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=int(settings.reconnect_max_s))
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s, clean_start=False, properties=props
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

    def alive(self) -> bool:
        """The network thread is running (connected or retrying)."""
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo | None:
        if not self.connected.is_set():
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    # -- paho callbacks (network thread: hand over, never work) ---------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("%s", self.last_error)
            return
        log.info(
            "connected to %s:%s (session %s)", self.settings.host, self.settings.port,
            "resumed" if getattr(flags, "session_present", False) else "new",
        )  # fmt: skip
        self.last_error = None
        # retainAsPublished: otherwise the broker clears the retain flag on live delivery
        # and a retained command published while connected would play.
        options = mqtt.SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(topic, options) for topic in self.subscriptions])
        self.connected.set()
        for hook in self.on_connected:
            hook()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason is not None and getattr(reason, "value", 0) != 0:
            self.last_error = f"disconnected: {reason}"
            log.warning("broker link lost (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        meta: dict[str, Any] = {"topic": msg.topic, "ack": lambda: client.ack(msg.mid, msg.qos)}
        props = getattr(msg, "properties", None)
        if props is not None:
            meta["response_topic"] = getattr(props, "ResponseTopic", None)
            meta["correlation_data"] = getattr(props, "CorrelationData", None)
        self.on_command(msg.payload, bool(msg.retain), meta)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
