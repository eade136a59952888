"""One way to fetch a file over HTTP(S): bounded in size, in redirects and in time.

`download` streams a URL into a file object and returns the SHA-256 of
what it wrote. One deadline covers the whole exchange: name resolution,
connect, TLS handshake, request, status line, headers and body. Each
socket operation may block only for what is left of it (or `stall_s`, if
that is shorter), and a watchdog shuts the connection down when the
deadline passes, so a server that sends one header byte every few
seconds is cut off as surely as one that sends nothing. Every hop speaks
http or https only, and at most `max_redirects` redirects are followed.

Which addresses it may connect to is an `AddressPolicy`, checked on the
very address each connection is made to (after every redirect, so a name
that resolves to a public address once and a private one the next time
gains nothing). Errors say what failed in the station's own words; what
the other side said goes to the local log only, escaped. Before a server
has answered with an HTTP status line, every failure reads the same
("no HTTP answer from HOST"): refused, unreachable, timed out, reset or a
banner that is not HTTP are not told apart, so a URL is no port scanner.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

from loaxa import __version__
from loaxa.errors import LoaxaError

SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
WATCH_S = 0.1  # how soon a download notices `stop`
USER_AGENT = f"loaxa/{__version__}"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddressPolicy:
    """Where a download may connect: public addresses, and more only when allowed.

    `allow_private` lets it reach loopback, private, link-local, shared and
    reserved addresses too; `hosts` are names allowed whatever they resolve
    to (the province's own media server on the commune's network).
    """

    allow_private: bool = False
    hosts: frozenset[str] = frozenset()

    def allows(self, host: str, address: str) -> bool:
        if self.allow_private or host.lower().rstrip(".") in self.hosts:
            return True
        return is_public(address)


ANY_ADDRESS = AddressPolicy(allow_private=True)
PUBLIC_ONLY = AddressPolicy()


def is_public(address: str) -> bool:
    """Whether an IP address is a global unicast one (an IPv4-mapped IPv6 address as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class DownloadError(LoaxaError):
    """A download failed; the text says why in the station's own words, never the server's."""


class NotAllowed(DownloadError):
    """The address is one the station's `AddressPolicy` does not fetch from."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"{host} is at a private or reserved address; this station fetches only from public ones"
            " (security.allow_private_urls, security.private_url_hosts)"
        )


class DownloadTimeout(DownloadError):
    """The deadline (or the stall limit) passed before the download finished."""


class NoAnswer(DownloadError):
    """No HTTP status line came back: refused, unreachable, timed out, reset, or not an HTTP server."""

    def __init__(self, host: str) -> None:
        super().__init__(f"no HTTP answer from {host}")


class TooLarge(DownloadError):
    """The body is, or says it will be, larger than the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"download larger than {limit / 1e6:g} MB")
        self.limit = limit


class HttpStatus(DownloadError):
    """The server answered with an error status (or a redirect without a target)."""

    def __init__(self, status: int, host: str) -> None:
        super().__init__(f"HTTP {status} from {host}")
        self.status = status
        self.host = host


@dataclass(frozen=True)
class Downloaded:
    sha256: str  # lower-case hex digest of the bytes written
    size: int
    url: str  # where the body came from, after redirects


def download(
    url: str,
    out: BinaryIO,
    *,
    max_bytes: int,
    deadline_s: float,
    stall_s: float | None = None,
    max_redirects: int = MAX_REDIRECTS,
    progress: Callable[[int], None] | None = None,
    addresses: AddressPolicy = ANY_ADDRESS,
    stop: threading.Event | None = None,
) -> Downloaded:
    """Stream `url` into `out` within `deadline_s` seconds and `max_bytes` bytes.

    `stall_s`, when given, also fails a download on which no single socket
    operation made progress for that long. `progress` gets the byte count
    after each block. `addresses` says where it may connect (anywhere, by
    default: what a bulletin names must pass the station's policy); `stop`,
    when set, ends the download at once as the deadline would. Raises
    DownloadError (or a subclass); `out` may then hold part of the body,
    which the caller discards.
    """
    exchange = _Exchange(deadline_s=deadline_s, stall_s=stall_s, addresses=addresses, stop=stop)
    try:
        return exchange.run(url, out, max_bytes=max_bytes, max_redirects=max_redirects, progress=progress)
    finally:
        exchange.close()


def host_of(url: str) -> str:
    return urlsplit(url).hostname or url


class _Exchange:
    """The state of one download: its deadline, its sockets and its watchdog."""

    def __init__(
        self,
        *,
        deadline_s: float,
        stall_s: float | None,
        addresses: AddressPolicy = ANY_ADDRESS,
        stop: threading.Event | None = None,
    ) -> None:
        self.deadline_s = deadline_s
        self.stall_s = stall_s
        self.addresses = addresses
        self.deadline = time.monotonic() + deadline_s
        self.host = ""
        self.resolved = False  # the name of the current hop resolved: later failures are the connection's
        self.answered = False  # a status line arrived: later failures are the transfer's, not the connection's
        self.sock: socket.socket | None = None  # the connection of the current hop
        self._limited_by_stall = False
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self._expired = False
        self._tls: ssl.SSLContext | None = None
        self._stop = stop if stop is not None else threading.Event()
        self._over = threading.Event()  # the exchange is over: the watchdog ends
        self._watchdog = threading.Thread(target=self._watch_time, name="download-deadline", daemon=True)
        self._watchdog.start()

    # -- the exchange ---------------------------------------------------------
    def run(
        self, url: str, out: BinaryIO, *, max_bytes: int, max_redirects: int, progress: Callable[[int], None] | None
    ) -> Downloaded:
        current = url
        self.host = host_of(url)
        _check_scheme(current)
        for _ in range(max_redirects + 1):
            self.host, self.resolved, self.answered = host_of(current), False, False
            try:
                connection = self._open(current)
                try:
                    response = connection.getresponse()
                    if self._expired:  # headers cut short by the watchdog can still parse
                        raise self._timeout()
                    self.answered = True
                    if response.status in REDIRECT_STATUSES and response.getheader("Location"):
                        current = self._redirect(current, response.getheader("Location") or "")
                        continue
                    if not 200 <= response.status < 300:
                        raise HttpStatus(response.status, self.host)
                    return self._body(response, out, current, max_bytes=max_bytes, progress=progress)
                finally:
                    connection.close()
            except NotAllowed:
                raise
            except (OSError, http.client.HTTPException) as exc:
                raise self._explain(exc) from None
        raise DownloadError(f"too many redirects from {host_of(url)}")

    def _open(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        tls = self._tls_context() if parts.scheme.lower() == "https" else None
        port = parts.port or (443 if tls else 80)
        connection = _Connection(parts.hostname or "", port, exchange=self, tls=tls)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Connection": "close"}
        connection.request("GET", target, headers=headers)
        self._arm()  # the status line and headers get what is left
        return connection

    def _redirect(self, current: str, location: str) -> str:
        target = urljoin(current, location)
        parts = urlsplit(target)
        if parts.scheme.lower() not in SCHEMES or not parts.hostname:
            raise DownloadError(f"{self.host} redirected to a non-HTTP address")
        return target

    def _body(
        self,
        response: http.client.HTTPResponse,
        out: BinaryIO,
        url: str,
        *,
        max_bytes: int,
        progress: Callable[[int], None] | None,
    ) -> Downloaded:
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(max_bytes)
        digest = hashlib.sha256()
        total = 0
        while True:
            self._arm()
            block = response.read1(CHUNK_BYTES)
            if self._expired:  # the watchdog's shutdown reads as an end of file
                raise self._timeout()
            if not block:
                break
            total += len(block)
            if total > max_bytes:
                raise TooLarge(max_bytes)
            digest.update(block)
            out.write(block)
            if progress is not None:
                progress(total)
        if response.length:  # http.client counts down what Content-Length promised
            raise DownloadError(f"download from {self.host} ended after {total:,} of {declared} bytes")
        return Downloaded(sha256=digest.hexdigest(), size=total, url=url)

    # -- sockets ----------------------------------------------------------------
    def connect(self, host: str, port: int, tls: ssl.SSLContext | None) -> socket.socket:
        """A connected (and, for https, handshaken) socket, within the budget."""
        last: OSError = OSError(f"no address for {host}")
        found = self._resolve(host, port)
        self.resolved = True
        allowed = [a for a in found if self.addresses.allows(host, a[4][0])]
        if not allowed:  # refused before a packet is sent to it
            log.warning(
                "not fetching from %s: it resolves to %s only", host, ", ".join(sorted({a[4][0] for a in found}))
            )
            raise NotAllowed(host)
        # The address checked is the address connected to: no second lookup a rebinding name could answer.
        for family, kind, proto, _, address in allowed:
            sock = socket.socket(family, kind, proto)
            self._watch(sock)
            try:
                sock.settimeout(self._budget())
                sock.connect(address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            break
        else:
            raise last
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            sock.settimeout(self._budget())
            sock.do_handshake()
        self.sock = sock
        return sock

    def _resolve(self, host: str, port: int) -> list[Any]:
        # getaddrinfo cannot be interrupted, so it runs on a helper thread; past
        # the budget the download fails and the thread ends when the resolver does.
        box: dict[str, Any] = {}
        done = threading.Event()

        def resolve() -> None:
            try:
                box["found"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=resolve, name="download-resolve", daemon=True).start()
        if not done.wait(self._budget()):
            raise self._timeout()
        if "error" in box:
            raise box["error"]
        return box["found"]

    def _watch(self, sock: socket.socket) -> None:
        """Give the watchdog its own handle on `sock`, valid however `sock` is wrapped."""
        handle = sock.dup()
        with self._lock:
            self._handles.append(handle)
            expired = self._expired
        if expired:
            _shutdown(handle)

    def _watch_time(self) -> None:
        """Past the deadline, or once told to stop, shut the exchange's sockets down."""
        while not self._over.is_set():
            if self._stop.is_set() or time.monotonic() >= self.deadline:
                self._expire()
                return
            self._over.wait(min(WATCH_S, max(0.0, self.deadline - time.monotonic())))

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            handles = list(self._handles)
        for handle in handles:
            _shutdown(handle)  # wakes a blocked recv, which then returns or raises

    def close(self) -> None:
        self._over.set()
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()

    # -- time -------------------------------------------------------------------
    def _budget(self) -> float:
        """How long the next socket operation may block; DownloadTimeout if nothing is left."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or self._expired:
            raise self._timeout()
        self._limited_by_stall = self.stall_s is not None and self.stall_s < remaining
        return self.stall_s if self._limited_by_stall and self.stall_s is not None else remaining

    def _arm(self) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._budget())

    def _timeout(self) -> DownloadError:
        if self._stop.is_set():
            return DownloadError("stopped")
        if self.resolved and not self.answered:
            return NoAnswer(self.host)
        if self._limited_by_stall and not self._expired and self.stall_s is not None:
            return DownloadTimeout(f"{self.host} sent nothing for {self.stall_s:g} s")
        return DownloadTimeout(f"timed out after {self.deadline_s:g} s")

    def _explain(self, exc: OSError | http.client.HTTPException) -> DownloadError:
        """The station's words for what http.client, ssl or the socket raised; theirs go to the log."""
        log.info("download from %s: %s", self.host, _escaped(exc))
        if self._expired or isinstance(exc, TimeoutError):
            return self._timeout()
        if not self.resolved:
            return DownloadError(f"cannot find the address of {self.host}")
        if isinstance(exc, ssl.SSLCertVerificationError) and not self.answered:
            # OpenSSL's words about the certificate, not the server's: the province can fix its server.
            return DownloadError(f"the TLS certificate of {self.host} was not accepted ({exc.verify_message})")
        if not self.answered:
            return NoAnswer(self.host)
        if isinstance(exc, http.client.HTTPException):
            return DownloadError(f"the answer from {self.host} is not valid HTTP")
        return DownloadError(f"the download from {self.host} broke off")

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


class _Connection(http.client.HTTPConnection):
    """HTTP on a socket the exchange opened, so its deadline covers the connect too."""

    def __init__(self, host: str, port: int, *, exchange: _Exchange, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self._exchange = exchange
        self._tls = tls
        if tls is not None:
            self.default_port = 443  # leaves the port out of the Host header, as for http on 80
        self.response_class = functools.partial(_Response, exchange=exchange)  # type: ignore[assignment]

    def connect(self) -> None:
        self.sock = self._exchange.connect(self.host, self.port, self._tls)


class _Response(http.client.HTTPResponse):
    """Marks the exchange answered as soon as a valid status line is read, before the headers."""

    def __init__(self, sock: socket.socket, *args: Any, exchange: _Exchange, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self._exchange = exchange

    def _read_status(self) -> tuple[str, int, str]:
        status: tuple[str, int, str] = super()._read_status()  # type: ignore[misc]
        self._exchange.answered = True
        return status


def _check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise DownloadError(f"only http:// and https:// addresses can be downloaded, not {url[:80]!r}")


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed


def _escaped(exc: BaseException) -> str:
    """What a lower layer said (it may quote the server), as one escaped line for the log."""
    return f"{type(exc).__name__}: {str(exc)[:300]!r}"
