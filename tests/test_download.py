"""The one downloader: whole-exchange deadline, stall limit, byte cap, redirect rules, against real local servers."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from audio_servers import FileServer
from loaxa.download import DownloadError, DownloadTimeout, HttpStatus, TooLarge, download

BODY = bytes(range(256)) * 400  # 100 kB, more than one read
SMALL = b"0123456789" * 100
MB = 1_000_000


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer({"f.bin": BODY, "small.bin": SMALL}, slow_s=10.0, drip_s=0.1) as srv:
        yield srv


def fetch(url: str, **limits: float) -> tuple[bytes, str]:
    out = io.BytesIO()
    got = download(
        url, out, max_bytes=int(limits.pop("max_bytes", 50 * MB)), deadline_s=limits.pop("deadline_s", 10), **limits
    )
    return out.getvalue(), got.sha256


def test_download_writes_the_body_and_returns_its_digest_and_progress(server: FileServer) -> None:
    seen: list[int] = []
    out = io.BytesIO()
    got = download(server.url("f.bin"), out, max_bytes=MB, deadline_s=10, progress=seen.append)
    assert out.getvalue() == BODY
    assert (got.sha256, got.size, got.url) == (hashlib.sha256(BODY).hexdigest(), len(BODY), server.url("f.bin"))
    assert seen == sorted(seen) and seen[-1] == len(BODY)


def test_headers_trickled_one_byte_at_a_time_are_cut_at_the_deadline(server: FileServer) -> None:
    # Each byte comes well within any per-read timeout; only a deadline over the whole exchange stops this.
    started = time.monotonic()
    with pytest.raises(DownloadTimeout, match=r"^timed out after 1 s$"):
        fetch(server.url("dribble/f.bin"), deadline_s=1.0)
    assert time.monotonic() - started < 1.0 + 1.0


def test_the_deadline_also_covers_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hanging_resolver(*args: object, **kwargs: object) -> list[object]:
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_resolver)
    started = time.monotonic()
    try:
        with pytest.raises(DownloadTimeout, match="timed out after 0.5 s"):
            fetch("http://resolver-hangs.invalid/f.bin", deadline_s=0.5)
        assert time.monotonic() - started < 0.5 + 1.0
    finally:
        release.set()


def test_a_stall_shorter_than_the_deadline_names_the_silent_host() -> None:
    # The status line came, then the headers stop: an HTTP server that went quiet.
    with FileServer({"f.bin": BODY}, drip_s=30.0) as quiet:
        started = time.monotonic()
        with pytest.raises(DownloadTimeout, match=r"127\.0\.0\.1 sent nothing for 0.5 s"):
            fetch(quiet.url("dribble/f.bin"), deadline_s=30, stall_s=0.5)
    assert time.monotonic() - started < 0.5 + 1.0


def test_a_server_silent_before_its_status_line_is_no_http_answer_within_the_stall(server: FileServer) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"^no HTTP answer from 127\.0\.0\.1$"):
        fetch(server.url("slow/f.bin"), deadline_s=30, stall_s=0.5)
    assert time.monotonic() - started < 0.5 + 1.0


def test_a_slow_but_steady_body_outlasts_the_stall_limit(server: FileServer) -> None:
    # 1000 bytes at 100 bytes per 0.1 s: longer than stall_s in all, never silent that long
    body, _ = fetch(server.url("trickle/small.bin"), deadline_s=10, stall_s=0.5)
    assert body == SMALL


def test_the_byte_cap_holds_with_and_without_a_declared_length(server: FileServer) -> None:
    with pytest.raises(TooLarge, match="download larger than 0.01 MB") as declared:
        fetch(server.url("lying/f.bin"), max_bytes=10_000)
    assert declared.value.limit == 10_000
    with pytest.raises(TooLarge, match="download larger than 0.01 MB"):
        fetch(server.url("nolength/f.bin"), max_bytes=10_000)


def test_redirects_are_followed_but_bounded(server: FileServer) -> None:
    body, _ = fetch(server.url("redirect/f.bin"))
    assert body == BODY
    before = server.requests
    with pytest.raises(DownloadError, match=r"too many redirects from 127\.0\.0\.1"):
        fetch(server.url("loop/f.bin"))
    assert server.requests - before == 6  # the request and five redirects, no more


def test_a_redirect_out_of_http_is_refused(server: FileServer) -> None:
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1 redirected to a non-HTTP address"):
        fetch(server.url("escape/f.bin"))


def test_an_error_status_names_the_status_and_host(server: FileServer) -> None:
    with pytest.raises(HttpStatus, match=r"HTTP 404 from 127\.0\.0\.1") as info:
        fetch(server.url("nothing.bin"))
    assert info.value.status == 404


def test_a_body_shorter_than_promised_is_an_error_not_a_file(server: FileServer) -> None:
    with pytest.raises(DownloadError, match=f"ended after {len(BODY):,} of {len(BODY) + 1000} bytes"):
        fetch(server.url("short/f.bin"))


def test_a_refused_connection_is_no_http_answer(server: FileServer) -> None:
    """Issue 17, receipts leak: refused reads as any other failure before an answer (see test_trust_leaks)."""
    url = server.url("f.bin")
    server.stop()
    with pytest.raises(DownloadError, match=r"^no HTTP answer from 127\.0\.0\.1$"):
        fetch(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/f.bin", "http:///f.bin"])
def test_only_http_and_https_addresses_are_fetched(url: str) -> None:
    with pytest.raises(DownloadError, match="only http:// and https://"):
        fetch(url)
