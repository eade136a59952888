"""A small simulated province for the operator-tool tests (helpers; no tests here).

Real `Station` objects (instant voice, null audio) in this process, on a real
Mosquitto, plus one station that is known but offline (its retained state
says `online: false`, as its Last Will would).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.cli import main
from loaxa.config import Issuer, SecuritySettings
from loaxa.province.simfleet import SimFleet, sim_settings
from loaxa.testing.broker import Broker

PREFIX = "loaxa/v1"
# province "tinh": commune "xa-a" has 3 stations, "xa-b" has 2; "flood" group: a/1, b/1.
LAYOUT = [
    (("tinh", "xa-a", "loa-1"), ("flood",)),
    (("tinh", "xa-a", "loa-2"), ()),
    (("tinh", "xa-a", "loa-3"), ()),
    (("tinh", "xa-b", "loa-1"), ("flood",)),
    (("tinh", "xa-b", "loa-2"), ()),
]
OFFLINE = "tinh/xa-b/loa-9"


@dataclass
class Province:
    broker: Broker
    fleet: SimFleet
    stations: list[str] = field(default_factory=list)

    def run(self, *argv: str) -> int:
        """`loaxa …` in this process against the test broker."""
        return main([*argv, "--host", self.broker.host, "--port", str(self.broker.port)])


def start_province(root: Path, broker: Broker, security: SecuritySettings | None = None) -> Province:
    settings = [
        sim_settings(root / "/".join(path), broker.host, broker.port, path, groups, security) for path, groups in LAYOUT
    ]
    fleet = SimFleet(settings)
    fleet.start()
    publish_retained(broker, f"{PREFIX}/{OFFLINE}/state", {"online": False, "station": OFFLINE, "groups": ["flood"]})
    wait_online(broker, [("/".join(p)) for p, _ in LAYOUT])
    return Province(broker, fleet, ["/".join(p) for p, _ in LAYOUT])


def publish_retained(broker: Broker, topic: str, body: dict[str, Any]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, json.dumps(body), qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def wait_online(broker: Broker, stations: list[str], timeout_s: float = 20.0) -> None:
    online: set[str] = set()

    def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        if json.loads(msg.payload).get("online") is True:
            online.add(msg.topic.split("/", 2)[2].rsplit("/", 1)[0])

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(f"{PREFIX}/+/+/+/state", 1)
    client.loop_start()
    deadline = time.monotonic() + timeout_s
    try:
        while not set(stations) <= online:
            if time.monotonic() > deadline:
                raise AssertionError(f"stations not online: {sorted(set(stations) - online)}")
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()


def signing_security(key_file: Path) -> SecuritySettings:
    """Stations that accept only commands signed by a fresh key written to `key_file`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from loaxa.security import public_key_b64, save_private_key

    key = Ed25519PrivateKey.generate()
    save_private_key(key_file, key, "test-province")
    return SecuritySettings(
        require_signature=True, issuers=(Issuer(kid="test-province", public_key=public_key_b64(key)),)
    )
