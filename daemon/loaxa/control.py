"""The local control socket: `loaxa status`, `say` and `play` talk to the daemon.

One JSON object per line each way over a Unix stream socket that only the
daemon's user and group can open (the socket file is mode 0660).

The daemon may have more rights than the person asking, so it never opens a
path it is sent: `play` sends the open file itself (SCM_RIGHTS), opened by
the client with its own rights, and the daemon reads from that descriptor.
At most `MAX_CONNECTIONS` are served at once, and one that sends no request
within `IDLE_S` is closed: idle connections cannot pile up threads.
"""

from __future__ import annotations

import array
import json
import logging
import os
import select
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loaxa.errors import ControlError
from loaxa.i18n import _

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 256 * 1024
MAX_CONNECTIONS = 16
IDLE_S = 5.0  # a connection must send its request line within this
FILE_KEY = "file_fd"  # in a request: the descriptor passed with it (set by the server, never by the client)
PEER_KEY = "peer_uid"  # in a request: the uid of the process that asked (SO_PEERCRED)
GONE_KEY = "caller_gone"  # in a request: a callable, true once the client has hung up


class ControlServer:
    def __init__(self, path: Path, handle: Handler) -> None:
        self.path = path
        self.handle = handle
        self._server: _BoundedServer | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if _alive(self.path):
                raise ControlError(f"another daemon is running (control socket {self.path} answers)")
            self.path.unlink()
        handle = self.handle

        class _Request(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                try:
                    request = _read_request(sock)
                except (OSError, ValueError) as exc:
                    log.info("control request not read: %s", exc)
                    return
                if request is None:
                    return
                try:
                    reply = handle(request)
                except Exception as exc:  # answer, never die
                    log.debug("control request failed", exc_info=True)
                    reply = {"ok": False, "error": str(exc)}
                finally:
                    fd = request.get(FILE_KEY)
                    if isinstance(fd, int):
                        _close_quietly(fd)
                try:
                    sock.sendall((json.dumps(reply, ensure_ascii=False) + "\n").encode())
                except OSError as exc:  # the client left: nothing to answer, nothing to trace
                    log.info("control client left before the answer (%s)", exc.strerror or exc)

        server = _BoundedServer(str(self.path), _Request)
        os.chmod(self.path, 0o660)
        self._server = server
        threading.Thread(target=server.serve_forever, name="control", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.path.unlink(missing_ok=True)


class _BoundedServer(socketserver.ThreadingUnixStreamServer):
    """A thread per connection, at most MAX_CONNECTIONS of them; the rest are told so and closed."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, handler: type[socketserver.BaseRequestHandler]) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(path, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b'{"ok": false, "error": "the daemon is busy with other requests; try again"}\n')
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("control request failed", exc_info=log.isEnabledFor(logging.DEBUG))


def _read_request(sock: socket.socket) -> dict[str, Any] | None:
    """The request line and any descriptor passed with it; None when the client sent nothing."""
    sock.settimeout(IDLE_S)
    fds = array.array("i")
    data = b""
    try:
        while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
            part, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            if not part:
                break
            data += part
    except TimeoutError:
        for fd in fds:
            _close_quietly(fd)
        raise ValueError(f"no request within {IDLE_S:g} s") from None
    for extra in fds[1:]:
        _close_quietly(extra)
    if not data.strip():
        for fd in fds[:1]:
            _close_quietly(fd)
        return None
    request = json.loads(data)
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    for key in (FILE_KEY, PEER_KEY, GONE_KEY):  # only the server says these
        request.pop(key, None)
    if fds:
        request[FILE_KEY] = fds[0]
    request[PEER_KEY] = _peer_uid(sock)
    request[GONE_KEY] = lambda: _hung_up(sock)
    return request


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


def _hung_up(sock: socket.socket) -> bool:
    """Whether the client closed its end (Ctrl-C, a dropped session) while waiting for the answer."""
    try:
        ready, _, _ = select.select([sock], [], [], 0)
        return bool(ready) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, message: dict[str, Any], timeout_s: float = 10.0, file: Path | None = None) -> dict[str, Any]:
    """Send one request to the running daemon; ControlError when none answers in time.

    With `file`, the file is opened here, with the caller's own rights, and
    passed to the daemon as an open descriptor.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(
                _("no loaxa daemon is running (no control socket at {path})").format(path=path)
            ) from None
        except OSError as exc:
            raise ControlError(f"no loaxa daemon answers at {path}: {exc.strerror or exc}") from None
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        data = b""
        try:
            if file is None:
                sock.sendall(line)
            else:
                _send_with_file(sock, line, file)
            while not data.endswith(b"\n"):
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except TimeoutError:
            raise ControlError(
                _("the daemon did not answer within {seconds} s; `loaxa status` shows what it is doing").format(
                    seconds=f"{timeout_s:g}"
                )
            ) from None
        except OSError as exc:
            raise ControlError(f"the daemon closed the control socket: {exc.strerror or exc}") from None
    if not data:
        raise ControlError("the daemon closed the control socket without answering")
    reply = json.loads(data)
    if not reply.get("ok", False):
        raise ControlError(reply.get("error", "the daemon refused the request"))
    return reply


def _send_with_file(sock: socket.socket, line: bytes, file: Path) -> None:
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ControlError(_("cannot read {file}: {reason}").format(file=file, reason=exc.strerror or exc)) from None
    try:
        socket.send_fds(sock, [line[:1]], [fd])
        sock.sendall(line[1:])
    finally:
        os.close(fd)
