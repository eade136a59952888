"""The province broker as the project ships it, on free loopback ports.

`start_province_broker(tmp, stations)` writes the ACL and the hashed password
file with scripts/make_broker_acl.py (run as a province runs it) and starts
Mosquitto on config/mosquitto/loaxa.conf itself: only what is site-specific
is changed (the two listeners move to free loopback ports, the TLS lines go,
the ACL and password paths and the persistence folder point into `tmp`).
Every other line, the client-id binding included, is the shipped one.

    pb = start_province_broker(tmp_path, {"stations": [...], "operators": [...]})
    client.username_pw_set("hn/xa-a/st-a", pb.passwords["hn/xa-a/st-a"])
    client.connect(pb.broker.host, pb.broker.port)   # the stations' listener
    ...
    pb.broker.stop()
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loaxa.testing.broker import MOSQUITTO, Broker, MosquittoMissing, free_port, have_mosquitto

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_CONF = ROOT / "config" / "mosquitto" / "loaxa.conf"
GENERATOR = ROOT / "scripts" / "make_broker_acl.py"
TLS_LINES = ("certfile", "keyfile", "cafile", "require_certificate", "use_identity_as_username", "tls_version")
STATIONS_LISTENER = "listener 8883"
LOCAL_LISTENER = "listener 1883 127.0.0.1"


@dataclass
class ProvinceBroker:
    """The shipped broker: `broker.port` is the stations' listener, `local_port` the loopback one."""

    broker: Broker
    local_port: int
    passwords: dict[str, str]
    acl: Path


def generate_acl(tmp: Path, stations: dict[str, Any], given: dict[str, str] | None = None) -> dict[str, str]:
    """Run the generator on `stations`; every user's password (`given` ones kept, the rest made)."""
    (tmp / "stations.yaml").write_text(yaml.safe_dump(stations), encoding="utf-8")
    (tmp / "secrets.yaml").write_text(yaml.safe_dump(given or {}, allow_unicode=True), encoding="utf-8")
    command = [sys.executable, str(GENERATOR), str(tmp / "stations.yaml"), "--acl", str(tmp / "acl")]
    command += ["--passwd", str(tmp / "passwd"), "--passwords", str(tmp / "secrets.yaml"), "--new-passwords"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"make_broker_acl.py failed:\n{result.stderr}")
    return dict(yaml.safe_load((tmp / "secrets.yaml").read_text(encoding="utf-8")))


def shipped_conf(directory: Path, port: int, local_port: int, passwd: Path, acl: Path) -> str:
    """config/mosquitto/loaxa.conf with its site-specific lines made to fit a test folder."""
    user = pwd.getpwuid(os.getuid()).pw_name  # as root, mosquitto would drop to "mosquitto"
    lines = [f"user {user}", f"persistence_location {directory}/", f"log_dest file {directory / 'mosquitto.log'}"]
    lines += ["log_type all"]
    for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines():
        word = line.split(" ", 1)[0]
        if line == STATIONS_LISTENER:
            line = f"listener {port} 127.0.0.1"
        elif line == LOCAL_LISTENER:
            line = f"listener {local_port} 127.0.0.1"
        elif word in TLS_LINES:
            continue
        elif word == "password_file":
            line = f"password_file {passwd}"
        elif word == "acl_file":
            line = f"acl_file {acl}"
        elif word == "autosave_interval":
            line = "autosave_interval 0"  # at shutdown only: tests restart the broker on purpose
        lines.append(line)
    return "\n".join(lines) + "\n"


def start_province_broker(
    tmp: Path, stations: dict[str, Any], passwords: dict[str, str] | None = None
) -> ProvinceBroker:
    """Generate the ACL for `stations` and start the shipped broker config on it."""
    if not have_mosquitto():
        raise MosquittoMissing(f"mosquitto not installed ({MOSQUITTO})")
    tmp.mkdir(parents=True, exist_ok=True)
    made = generate_acl(tmp, stations, passwords)
    directory = tmp / "province-broker"
    directory.mkdir(exist_ok=True)
    port, local_port = free_port(), free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(shipped_conf(directory, port, local_port, tmp / "passwd", tmp / "acl"), encoding="utf-8")
    broker = Broker("127.0.0.1", port, directory, conf, directory / "mosquitto.log")
    broker.start()
    return ProvinceBroker(broker, local_port, made, tmp / "acl")
