"""A paho client's network loop on a thread of its own, through paho's external-loop callbacks.

paho's `loop_start()` wakes its thread through a socket pair for every packet
another thread queues: the writer's 500 PUBACKs after a commit were 500
wake-ups, each a hand-over of the GIL (measured by `scripts/bench_ingest.py`,
`mqtt` against `mqtt_threaded`: about 40 µs a message). paho asks an external
loop to watch for writability once until the queue is empty
(`on_socket_register_write`), so here a batch of acknowledgements is one
wake-up. Reconnecting is this loop's too: a lost connection is tried again
with a doubling delay up to `max_delay_s`, and the session resumes.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

MISC_EVERY_S = 1.0  # keep-alive pings and retries of unacknowledged publishes


class NetworkLoop:
    """Runs `client`'s reads, writes and keep-alive; `connect()` once, `stop()` at the end."""

    def __init__(self, client: mqtt.Client, name: str, min_delay_s: float = 1.0, max_delay_s: float = 30.0) -> None:
        self.client = client
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._sock: Any = None
        self._stop = threading.Event()
        self._connect_args: tuple[Any, ...] = ()
        self._connect_kwargs: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        client.on_socket_open = self._on_open
        client.on_socket_close = self._on_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = lambda c, u, sock: None

    def connect(self, host: str, port: int, **kwargs: Any) -> None:
        """Start the thread; it connects (and reconnects) with these arguments."""
        self._connect_args = (host, port)
        self._connect_kwargs = kwargs
        self._thread.start()

    def stop(self) -> None:
        """End the thread, then disconnect (the session stays with the broker)."""
        self._stop.set()
        self._wake()
        self._thread.join(timeout=10)
        if self._sock is not None:
            self.client.disconnect()
            self.client.loop_write()  # the DISCONNECT, from here now that the thread has ended
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- paho's callbacks (on this thread, or on the thread that queued a packet) ----
    def _on_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._sock = sock
        self._selector.register(sock, selectors.EVENT_READ)

    def _on_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        self._sock = None

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._wake()  # once until paho's queue is empty again, however many packets are queued meanwhile

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is pending already, or the loop is gone

    # -- the thread ---------------------------------------------------------------
    def _run(self) -> None:
        delay = self.min_delay_s
        misc_at = 0.0
        while not self._stop.is_set():
            if self._sock is None:
                if not self._reconnect():
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.max_delay_s)
                    continue
                delay = self.min_delay_s
            for key, _ in self._selector.select(timeout=MISC_EVERY_S):
                if key.fileobj is self._wake_r:
                    self._drain_wake()
                elif self._sock is not None:
                    self.client.loop_read()
            # Asked every round, not only when woken: a packet queued just as a write ended is sent within a second.
            if self._sock is not None and self.client.want_write():
                self.client.loop_write()
            if time.monotonic() - misc_at >= MISC_EVERY_S:
                misc_at = time.monotonic()
                if self._sock is not None:
                    self.client.loop_misc()

    def _reconnect(self) -> bool:
        try:
            if self._connect_args:
                host, port = self._connect_args
                self._connect_args = ()
                self.client.connect(host, port, **self._connect_kwargs)
            else:
                self.client.reconnect()
        except OSError as exc:
            log.debug("connecting failed: %s", exc)
            return False
        return True

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
