"""A real Mosquitto on a free loopback port, for tests and soak scripts.

`start_mosquitto(tmp_path)` gives an anonymous broker with persistence in
`tmp_path`, so QoS 1 messages queued for an offline persistent session
survive `broker.restart()`. Pass `extra_conf` (password_file, acl_file, ...)
and `anonymous=False` for an access-controlled broker. The broker listens on
127.0.0.1 with plain TCP; `broker.log()` returns its log for assertions and
failure messages. Without the mosquitto binary, `start_mosquitto` raises
`MosquittoMissing` (the test suite's conftest turns that into a skip).

    broker = start_mosquitto(tmp_path)
    try:
        client.connect(broker.host, broker.port)
        ...
        broker.restart()          # same port, same persistence file
    finally:
        broker.stop()
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class MosquittoMissing(RuntimeError):
    """The mosquitto binary is not installed."""


def have_mosquitto() -> bool:
    """Whether the mosquitto binary is there to run."""
    return os.access(MOSQUITTO, os.X_OK)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (another process may take it before you bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    """One mosquitto process; `stop()` is safe to call twice."""

    host: str
    port: int
    directory: Path
    conf_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not accept on {self.host}:{self.port}:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM and wait: mosquitto writes its persistence file on the way out."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _unique_dir(tmp_path: Path) -> Path:
    for n in range(1000):
        path = tmp_path / ("mosquitto" if n == 0 else f"mosquitto-{n}")
        if not path.exists():
            path.mkdir(parents=True)
            return path
    raise RuntimeError(f"no free mosquitto directory under {tmp_path}")


def start_mosquitto(
    tmp_path: Path,
    extra_conf: str = "",
    *,
    anonymous: bool = True,
    persistence: bool = True,
    host: str = "127.0.0.1",
) -> Broker:
    """Write a config into `tmp_path`, start mosquitto and wait until it accepts.

    Raises `MosquittoMissing` when the mosquitto binary is not installed.
    """
    if not have_mosquitto():
        raise MosquittoMissing(f"mosquitto not installed ({MOSQUITTO})")
    directory = _unique_dir(Path(tmp_path))
    log_path = directory / "mosquitto.log"
    # As root, mosquitto would drop to the "mosquitto" user and could not
    # write its persistence file in tmp_path; it ignores `user` otherwise.
    user = pwd.getpwuid(os.getuid()).pw_name
    last_error: RuntimeError | None = None
    for _attempt in range(5):  # another process may grab the port between probe and bind
        port = free_port(host)
        conf = [
            f"user {user}",
            "per_listener_settings false",
            f"listener {port} {host}",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {directory}/",
            "autosave_interval 0",
            f"log_dest file {log_path}",
            "log_type all",
            "connection_messages true",
            extra_conf,
            "",
        ]
        conf_path = directory / "mosquitto.conf"
        conf_path.write_text("\n".join(conf), encoding="utf-8")
        broker = Broker(host=host, port=port, directory=directory, conf_path=conf_path, log_path=log_path)
        try:
            broker.start()
            return broker
        except RuntimeError as exc:
            last_error = exc
            if "Address already in use" not in broker.log():
                raise
    assert last_error is not None
    raise last_error
