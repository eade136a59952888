"""One persistent MQTT 5 session of the province server, its socket owned by one thread.

The session's thread does every read and write on the socket (`open`,
`read`, `ack`, `tick`, `disconnect`); other threads only queue a command
(`publish`) and wake it, so a TLS connection is never used by two threads
at once. A read takes whatever the socket holds (up to 256 KiB) and splits
it into packets in one pass (`mqttwire`); the thread that reads also stores
and then acknowledges, so a message is never handed to another thread.

The session is persistent: clean start off, the configured session expiry
and receive maximum (the broker sends at most that many unacknowledged
messages, which bounds what waits here). A command not yet acknowledged
when the connection breaks is sent again, marked as a duplicate, on the next
one; the stations recognise a command they have already (its `id`).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from loaxa.errors import LinkError
from loaxa.mqttclient import tls_context
from loaxa.province.server import mqttwire as wire
from loaxa.province.server.settings import BrokerSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # TCP, TLS and the CONNACK
IO_TIMEOUT_S = 10.0  # a write the broker does not take for this long: the connection is dead
READ_BYTES = 256 * 1024


@dataclass
class _Command:
    topic: str
    payload: bytes
    done: threading.Event = field(default_factory=threading.Event)
    reason: int = 0


class Link:
    """`open()`, then `read()` / `ack()` / `tick()` in a loop on one thread; `publish()` from any thread."""

    def __init__(self, broker: BrokerSettings, client_id: str, filters: tuple[str, ...]) -> None:
        self.broker = broker
        self.client_id = client_id
        self.filters = filters
        self.where = f"{broker.host}:{broker.port}"
        self._tls = tls_context(broker.tls) if broker.tls is not None else None  # unreadable files fail here
        self.connected = threading.Event()
        self.connection = 0  # counts connections: a PUBACK goes only on the one its message came on
        self.session_present = False
        self.refused: str | None = None  # a filter the broker would not subscribe (an ACL)
        self._sock: socket.socket | None = None
        self._splitter = wire.Splitter()
        self._early: list[wire.Message] = []  # messages that came in the same read as the CONNACK
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()  # the outbox and the commands, shared with publishing threads
        self._outbox: list[bytes] = []
        self._commands: dict[int, _Command] = {}  # packet id → a command waiting for its PUBACK
        self._pid = 0
        self._subscribe_pid = 0
        self._quota = 65535  # the broker's receive maximum: commands in flight at once
        self._keepalive = float(broker.keepalive_s)
        self._last_sent = 0.0
        self._ping_sent: float | None = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    # -- the session's thread -----------------------------------------------------
    def open(self) -> None:
        """Connect, resume (or start) the session and subscribe; raises OSError, LinkError or ProtocolError."""
        b = self.broker
        sock = socket.create_connection((b.host, b.port), timeout=CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=b.host)
            sock.sendall(
                wire.connect(
                    self.client_id,
                    keepalive_s=b.keepalive_s,
                    clean_start=False,
                    session_expiry_s=b.session_expiry_s,
                    receive_maximum=b.receive_maximum,
                    username=b.username,
                    password=b.password,
                )
            )
            first, body = self._connack(sock)
            present, code, props = wire.connack(body)
            if code >= 0x80:
                raise LinkError(
                    f"broker {self.where} refused the connection of {self.client_id}: "
                    + wire.reason_name("CONNACK", code)
                )
        except BaseException:
            sock.close()
            self._splitter.reset()
            self._early = []
            raise
        sock.settimeout(IO_TIMEOUT_S)
        self._sock = sock
        self._selector.register(sock, selectors.EVENT_READ)
        self._keepalive = float(props.get(wire.SERVER_KEEP_ALIVE, b.keepalive_s)) or 3600.0
        self._quota = props.get(wire.RECEIVE_MAXIMUM, 65535)
        self._ping_sent = None
        self.connection += 1
        self.session_present = present
        with self._lock:
            self._outbox.clear()  # acknowledgements of the last connection mean nothing on this one
            self._subscribe_pid = self._next_pid()
            resend = [wire.publish(c.topic, c.payload, pid, dup=True) for pid, c in self._commands.items()]
        self._send(wire.subscribe(self._subscribe_pid, self.filters) + b"".join(resend))
        self.connected.set()

    def _connack(self, sock: socket.socket) -> tuple[int, bytes]:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = sock.recv(READ_BYTES)
            if not chunk:
                raise LinkError(f"broker {self.where} closed the connection before answering {self.client_id}")
            messages, others = self._splitter.feed(chunk)
            if others:
                first, body = others[0]
                if first >> 4 != wire.CONNACK:
                    raise wire.ProtocolError(f"packet type {first >> 4} before the CONNACK")
                self._early = messages  # a resumed session's queue may follow the CONNACK in the same read
                for extra in others[1:]:
                    self._control(*extra)
                return first, body
            if messages or time.monotonic() > deadline:
                raise LinkError(f"broker {self.where} sent no CONNACK to {self.client_id}")

    def read(self, timeout_s: float) -> list[wire.Message]:
        """The messages that have arrived, waiting up to `timeout_s` for some; also answers what else came."""
        self._flush()
        messages, self._early = self._early, []
        if messages:
            timeout_s = 0.0
        sock = self._sock
        if sock is None:
            raise LinkError(f"{self.client_id} is not connected")
        for key, _ in self._selector.select(timeout_s):
            if key.fileobj is self._wake_r:
                self._drain_wake()
                continue
            chunk = sock.recv(READ_BYTES)
            if isinstance(sock, ssl.SSLSocket):
                while sock.pending():
                    chunk += sock.recv(READ_BYTES)
            if not chunk:
                raise LinkError("the broker closed the connection")
            got, others = self._splitter.feed(chunk)
            messages += got
            for first, body in others:
                self._control(first, body)
        self._flush()
        return messages

    def ack(self, pids: list[int]) -> None:
        """PUBACKs for these packet ids, in one write (the caller checks they came on this connection)."""
        if pids:
            self._send(wire.pubacks(pids))

    def tick(self) -> None:
        """Keep-alive: a ping when nothing was sent for the keep-alive; no answer within another: broken."""
        now = time.monotonic()
        if self._ping_sent is not None:
            if now - self._ping_sent > self._keepalive:
                raise LinkError(f"the broker did not answer a ping for {self._keepalive:.0f} s")
        elif now - self._last_sent >= self._keepalive:
            self._send(wire.PINGREQ)
            self._ping_sent = now

    def close(self) -> None:
        """Drop the connection at once (the broker keeps the session and what was not acknowledged)."""
        self.connected.clear()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self._splitter.reset()
        self._early = []

    def disconnect(self) -> None:
        """A normal DISCONNECT (the session stays for its expiry), then close."""
        if self._sock is not None:
            try:
                self._flush()
                self._send(wire.disconnect())
            except OSError:
                pass
        self.close()

    def shut(self) -> None:
        """The end: close the connection and the wake-up sockets."""
        self.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- any thread -----------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, timeout_s: float) -> None:
        """A command, QoS 1; returns once the broker acknowledged it, raises LinkError otherwise."""
        if not self.connected.is_set():
            raise LinkError(f"not connected to the broker at {self.where}")
        command = _Command(topic, payload)
        with self._lock:
            if len(self._commands) >= self._quota:
                raise LinkError(f"{len(self._commands)} commands are waiting for the broker {self.where} already")
            pid = self._next_pid()
            self._commands[pid] = command
            self._outbox.append(wire.publish(topic, payload, pid))
        self.wake()
        if not command.done.wait(timeout_s):
            with self._lock:
                self._commands.pop(pid, None)
            raise LinkError(f"the broker did not acknowledge the command on {topic} within {timeout_s:g} s")
        if command.reason >= 0x80:
            raise LinkError(f"the broker refused the command on {topic}: {wire.reason_name('PUBACK', command.reason)}")

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # a wake-up is pending already, or the link is shut

    # -- inside ---------------------------------------------------------------------
    def _next_pid(self) -> int:
        """A packet id no command or subscription in flight has (called with the lock held)."""
        for _ in range(65535):
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._commands and self._pid != self._subscribe_pid:
                return self._pid
        raise LinkError("no packet id is free")

    def _control(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == wire.PUBACK:
            pid, reason = wire.puback(body)
            with self._lock:
                command = self._commands.pop(pid, None)
            if command is not None:
                command.reason = reason
                command.done.set()
        elif kind == wire.PINGRESP:
            self._ping_sent = None
        elif kind == wire.SUBACK:
            _, codes, _ = wire.suback(body)
            named = zip(self.filters, codes, strict=False)  # a broker that answers fewer codes: the rest are unknown
            refused = [f"{f} ({wire.reason_name('SUBACK', c)})" for f, c in named if c >= 0x80]
            self.refused = f"broker {self.where} refused to subscribe {', '.join(refused)}" if refused else None
            if refused:
                log.error("%s", self.refused)
        elif kind == wire.DISCONNECT:
            reason, props = wire.disconnected(body)
            why = props.get(wire.REASON_STRING)
            raise LinkError(
                "the broker ended the connection: "
                + wire.reason_name("DISCONNECT", reason)
                + (f" ({why})" if why else "")
            )
        else:
            raise wire.ProtocolError(f"an unexpected packet of type {kind}")

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise LinkError(f"{self.client_id} is not connected")
        self._sock.sendall(data)
        self._last_sent = time.monotonic()

    def _flush(self) -> None:
        with self._lock:
            if not self._outbox:
                return
            data = b"".join(self._outbox)
            self._outbox.clear()
        self._send(data)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
