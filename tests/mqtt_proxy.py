"""A loopback TCP relay between a station and its broker that can lose PUBACKs.

What a broker under a flood does to a station: it drops packets queued to
it, PUBACKs of the station's own publishes included, while the connection
stays up. `drop_pubacks` set, every PUBACK from the broker is swallowed (and
counted); everything else passes, both ways, packet by packet.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

PUBACK = 4


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_packet(sock: socket.socket) -> bytes | None:
    """One MQTT packet: the fixed header byte, the remaining length (a varint), the rest."""
    first = _read_exactly(sock, 1)
    if first is None:
        return None
    header, length, shift = bytearray(first), 0, 0
    while True:
        byte = _read_exactly(sock, 1)
        if byte is None:
            return None
        header += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    body = _read_exactly(sock, length) if length else b""
    return None if body is None else bytes(header) + body


class PubackDropper:
    """Listens on 127.0.0.1; each connection is relayed to `broker_port`."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.drop_pubacks = threading.Event()
        self.dropped = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._open: list[socket.socket] = []
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.broker_port), timeout=5)
            broker.settimeout(None)
            with self._lock:
                self.connections += 1
                self._open += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_broker: bool) -> None:
        try:
            while (packet := _read_packet(src)) is not None:
                if from_broker and packet[0] >> 4 == PUBACK and self.drop_pubacks.is_set():
                    with self._lock:
                        self.dropped += 1
                    continue
                dst.sendall(packet)
        except OSError:
            pass
        finally:  # one side gone: close both, as a broker or a NAT would
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._stopping = True
        self._server.close()
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
