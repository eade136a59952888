"""What both sources share: their error type and the URL rules."""

from __future__ import annotations

import math
import shutil
from typing import Any
from urllib.parse import urlsplit

from loaxa.download import SCHEMES, host_of
from loaxa.errors import CommandError, LoaxaError

MAX_URL_CHARS = 2048

# SCHEMES and host_of are the downloader's: what is accepted is what it can fetch.
__all__ = [
    "NotReady",
    "SourceError",
    "check_keys",
    "check_number",
    "check_url",
    "find_ffmpeg",
    "host_of",
    "stderr_tail",
]


class SourceError(LoaxaError):
    """A recorded file or a live stream could not be fetched or decoded."""


class NotReady(SourceError):
    """Not a failure: the content is still being fetched; ask again when woken.

    A subclass of SourceError so that a caller that does not know it fails
    closed (the play ends with the reason) instead of crashing.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_keys(obj: Any, field: str, required: tuple[str, ...]) -> dict[str, Any]:
    """`obj` as a dict with exactly the `required` keys, else CommandError."""
    if not isinstance(obj, dict):
        raise CommandError(f"{field} must be an object with {', '.join(required)}")
    unknown = sorted(set(obj) - set(required), key=str)
    if unknown:
        raise CommandError(f"{field}: unknown key {unknown[0]!r} (allowed: {', '.join(required)})")
    missing = [key for key in required if key not in obj]
    if missing:
        raise CommandError(f"{field}: missing {missing[0]!r}")
    return obj


def check_url(url: Any, field: str) -> str:
    """An absolute http(s) URL the station may fetch, else CommandError.

    User names and passwords in the URL are refused: the URL is stored,
    logged and echoed in events, so a secret in it would leak.
    """
    if not isinstance(url, str) or not url:
        raise CommandError(f"{field} must be a non-empty string")
    if len(url) > MAX_URL_CHARS:
        raise CommandError(f"{field} is longer than {MAX_URL_CHARS} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise CommandError(f"{field} must be plain ASCII without spaces (percent-encode the rest)")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise CommandError(f"{field} must start with http:// or https://, not {parts.scheme or 'nothing'}:")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise CommandError(f"{field} has an invalid port") from None
    if not parts.hostname:
        raise CommandError(f"{field} has no host name")
    if parts.username is not None or parts.password is not None:
        raise CommandError(f"{field} must not carry a user name or password")
    return url


def check_number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandError(f"{field} must be a number")
    if not low <= value <= high:
        raise CommandError(f"{field} must be between {low:g} and {high:g}, not {value:g}")
    return float(value)


def find_ffmpeg(ffmpeg: str) -> str:
    path = shutil.which(ffmpeg)
    if path is None:
        raise SourceError(f"{ffmpeg} not found: install the ffmpeg package")
    return path


def stderr_tail(data: bytes, limit: int = 300) -> str:
    """The last line ffmpeg wrote, shortened for an event detail."""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][-limit:] if lines else ""
