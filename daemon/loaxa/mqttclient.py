"""One way to make a paho client: MQTT v5, the v2 callback API, login and TLS.

The station's link, `loaxa doctor` and the operator tools all connect the
same way, so a TLS or login setting means the same thing in each of them;
the province server's own MQTT link takes its TLS from `tls_context` too.
"""

from __future__ import annotations

import math
import select
import ssl
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt


class TlsLike(Protocol):
    """What the factory reads of TLS settings (`loaxa.config.TlsSettings` fits)."""

    @property
    def ca_file(self) -> Path | str | None: ...
    @property
    def cert_file(self) -> Path | str | None: ...
    @property
    def key_file(self) -> Path | str | None: ...
    @property
    def insecure(self) -> bool: ...


class LoginLike(Protocol):
    """What the factory reads of broker settings (`loaxa.config.MqttSettings` fits)."""

    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def tls(self) -> TlsLike | None: ...


@dataclass(frozen=True)
class Tls:
    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    insecure: bool = False  # skip host-name checks; only for a broker reached by IP


@dataclass(frozen=True)
class Login:
    """Broker credentials for callers that have no `MqttSettings` (the operator tools)."""

    username: str | None = None
    password: str | None = None
    tls: Tls | None = None


class Client(mqtt.Client):
    """A paho client that also says why a connection attempt failed.

    paho's `on_connect_fail(client, userdata)` is given no reason; the
    OSError it swallows (refused, unreachable, timed out, TLS, DNS) is what
    a technician needs. `on_connect_error(client, exc)` runs on paho's
    thread, just before `on_connect_fail`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_connect_error: Callable[[Client, OSError], None] | None = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            if self.on_connect_error is not None:
                self.on_connect_error(self, exc)
            raise


def make_client(
    settings: LoginLike,
    client_id: str,
    *,
    manual_ack: bool = False,
    high_descriptors: bool = False,
) -> Client:
    """A paho client ready to connect; callbacks, will and connect are the caller's.

    `manual_ack`: PUBACK only when the caller calls `client.ack()`.
    `high_descriptors`: see `allow_high_descriptors`.
    TLS files that cannot be read raise OSError or ValueError (from `ssl`).
    """
    if high_descriptors:
        allow_high_descriptors()
    client = Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    tls = settings.tls
    if tls is not None:
        client.tls_set_context(tls_context(tls))
        client.tls_insecure_set(tls.insecure)
    return client


def tls_context(tls: TlsLike) -> ssl.SSLContext:
    """The broker checked against `ca_file` (else the system's CAs), a client certificate when given.

    `insecure` skips only the host-name check. Files that cannot be read raise OSError or ValueError.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_path(tls.ca_file))
    if tls.cert_file:
        context.load_cert_chain(_path(tls.cert_file), _path(tls.key_file))  # type: ignore[arg-type]
    context.check_hostname = not tls.insecure
    return context


def _path(value: Path | str | None) -> str | None:
    return str(value) if value else None


# -- many clients in one process -------------------------------------------------


def allow_high_descriptors() -> None:
    """Let paho's network loops watch descriptors above 1023; idempotent.

    select() refuses descriptors past FD_SETSIZE (1024), which a process
    running a hundred stations reaches. Only paho's client module is given a
    poll()-based select: the `select` module itself, and everyone else who
    uses it, are left alone. paho's loop code stays the same.
    """
    if mqtt.select is not select:  # already done
        return
    shim = types.ModuleType("select", "select for paho: select() answered with poll()")
    shim.__dict__.update({k: v for k, v in vars(select).items() if not k.startswith("__")})
    shim.select = poll_select  # type: ignore[attr-defined]
    mqtt.select = shim


def poll_select(rlist: list, wlist: list, xlist: list, timeout: float | None = None) -> tuple[list, list, list]:
    """`select.select()` for readable and writable lists, done with poll(); `xlist` is not watched."""
    wanted: dict[int, int] = {}
    for objects, flag in ((rlist, select.POLLIN), (wlist, select.POLLOUT)):
        for obj in objects:
            fd = obj if isinstance(obj, int) else obj.fileno()
            if fd < 0:
                raise ValueError("file descriptor cannot be a negative integer")
            wanted[fd] = wanted.get(fd, 0) | flag
    poller = select.poll()
    for fd, mask in wanted.items():
        poller.register(fd, mask)
    ready = dict(poller.poll(None if timeout is None else math.ceil(max(0.0, timeout) * 1000)))
    # An error or hang-up counts as ready both ways, as with select(): the next read or write reports it.
    broken = select.POLLERR | select.POLLHUP | select.POLLNVAL
    readable = [o for o in rlist if ready.get(_fd(o), 0) & (select.POLLIN | broken)]
    writable = [o for o in wlist if ready.get(_fd(o), 0) & (select.POLLOUT | broken)]
    return readable, writable, []


def _fd(obj: object) -> int:
    return obj if isinstance(obj, int) else obj.fileno()  # type: ignore[attr-defined]
