"""The local control socket: `loaxa status`, `say` and `play` talk to the daemon.

One JSON object per line each way over a Unix stream socket that only the
daemon's user and group can open (the socket file is mode 0660).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loaxa.errors import ControlError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 256 * 1024


class ControlServer:
    def __init__(self, path: Path, handle: Handler) -> None:
        self.path = path
        self.handle = handle
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if _alive(self.path):
                raise ControlError(f"another daemon is running (control socket {self.path} answers)")
            self.path.unlink()
        handle = self.handle

        class _Request(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_REQUEST)
                try:
                    reply = handle(json.loads(line))
                except Exception as exc:  # answer, never die
                    reply = {"ok": False, "error": str(exc)}
                self.wfile.write((json.dumps(reply, ensure_ascii=False) + "\n").encode())

        server = socketserver.ThreadingUnixStreamServer(str(self.path), _Request)
        server.daemon_threads = True
        os.chmod(self.path, 0o660)
        self._server = server
        threading.Thread(target=server.serve_forever, name="control", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.path.unlink(missing_ok=True)


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Send one request to the running daemon; ControlError when none answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(f"no loaxa daemon is running (no control socket at {path})") from None
        except OSError as exc:
            raise ControlError(f"no loaxa daemon answers at {path}: {exc.strerror or exc}") from None
        sock.sendall((json.dumps(message, ensure_ascii=False) + "\n").encode())
        data = b""
        try:
            while not data.endswith(b"\n"):
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except TimeoutError:
            raise ControlError(f"the daemon did not answer within {timeout_s:g} s") from None
    if not data:
        raise ControlError("the daemon closed the control socket without answering")
    reply = json.loads(data)
    if not reply.get("ok", False):
        raise ControlError(reply.get("error", "the daemon refused the request"))
    return reply
