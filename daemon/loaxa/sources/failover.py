"""Which of a stream's URLs to relay (protocol 1.1 `stream.urls`): one to three, in order.

The first is the one the province wants; on a drop the relay moves to the
next at once (the reconnect pause is for a single URL); while on another,
the first is asked every `back_check_s` whether it answers again, and the
relay goes back to it when it does. How long each URL played and why each
last dropped are kept for the `finished` receipt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from loaxa.download import AddressPolicy, DownloadError, download, host_of
from loaxa.errors import CommandError
from loaxa.sources._common import check_keys, check_number, check_url

MAX_URLS = 3
BACK_CHECK_S = 30.0
PROBE_BYTES = 16 * 1024  # this much of a stream answers for it
MAX_DURATION_S = 86400.0


def validate_stream_spec(obj: Any) -> None:
    """Check a bulletin's `stream` object; raise CommandError saying what is wrong.

    `duration_s` (a number of seconds from 1 to 86400) and either `url`
    (http/https, same rules as `audio.url`) or `urls` (protocol 1.1: a list
    of one to three such URLs, all different, tried in order).
    """
    if isinstance(obj, dict) and "urls" in obj:
        spec = check_keys(obj, "stream", ("urls", "duration_s"))
        urls = spec["urls"]
        if not isinstance(urls, list) or not 1 <= len(urls) <= MAX_URLS:
            raise CommandError(f"stream.urls must be a list of 1 to {MAX_URLS} URLs")
        for i, url in enumerate(urls):
            check_url(url, f"stream.urls[{i}]")
        if len(set(urls)) != len(urls):
            raise CommandError("stream.urls lists the same URL twice")
    else:
        spec = check_keys(obj, "stream", ("url", "duration_s"))
        check_url(spec["url"], "stream.url")
    check_number(spec["duration_s"], "stream.duration_s", 1, MAX_DURATION_S)


def urls_of(spec: dict[str, Any]) -> tuple[str, ...]:
    """The URLs of a validated `stream` object, in order."""
    return tuple(spec["urls"]) if spec.get("urls") else (spec["url"],)


class Failover:
    """The URL in use, the next one on a drop, and when to ask the first again (one reader thread)."""

    def __init__(self, urls: Sequence[str], back_check_s: float = BACK_CHECK_S) -> None:
        if not urls:
            raise ValueError("a stream needs at least one URL")
        self.urls = tuple(urls)
        self.back_check_s = back_check_s
        self.index = 0
        self.played_s = [0.0] * len(self.urls)  # written by the consuming thread
        self.errors: dict[int, str] = {}  # the last reason each URL failed or dropped
        self.tried: set[int] = set()
        self._next_check = 0.0

    @property
    def url(self) -> str:
        self.tried.add(self.index)
        return self.urls[self.index]

    def dropped(self, reason: str, now: float) -> bool:
        """The URL in use failed; move to the next. True when that starts another round of all of them."""
        self.errors[self.index] = reason
        self.index = (self.index + 1) % len(self.urls)
        if self.index != 0:
            self._next_check = now + self.back_check_s
        return self.index == 0

    def all_tried(self) -> bool:
        return len(self.tried) == len(self.urls)

    def first_due(self, now: float) -> bool:
        """Whether to ask the first URL again now (the relay is on another one)."""
        if self.index == 0 or now < self._next_check:
            return False
        self._next_check = now + self.back_check_s
        return True

    def back_to_first(self) -> None:
        self.index = 0

    def why_none(self) -> str:
        """Why no URL gave audio, in the station's words."""
        if len(self.urls) == 1:
            return self.errors.get(0, "no audio")
        return "; ".join(f"#{i + 1} {self.errors.get(i, 'no audio')}" for i in range(len(self.urls)))

    def played(self) -> str:
        """How long each URL played, for a stream with more than one."""
        if len(self.urls) == 1:
            return ""
        return ", ".join(
            f"#{i + 1} ({host_of(u)}) {s:.1f} s" for i, (u, s) in enumerate(zip(self.urls, self.played_s, strict=True))
        )


def answers(url: str, addresses: AddressPolicy, stop: threading.Event, deadline_s: float = 10.0) -> bool:
    """Whether `url` gives a stream again: an HTTP 2xx and the first `PROBE_BYTES` of a body."""
    probe = _Probe()
    try:
        download(url, probe, max_bytes=PROBE_BYTES * 4, deadline_s=deadline_s, addresses=addresses, stop=stop)  # type: ignore[arg-type]
    except DownloadError:
        return probe.got >= PROBE_BYTES
    return probe.got > 0


class _Probe:
    """A download's output that has seen enough after `PROBE_BYTES`."""

    def __init__(self, enough: Callable[[int], bool] = lambda got: got >= PROBE_BYTES) -> None:
        self.got = 0
        self.enough = enough

    def write(self, data: bytes) -> int:
        self.got += len(data)
        if self.enough(self.got):
            raise OSError("enough of the stream to know it answers")
        return len(data)
