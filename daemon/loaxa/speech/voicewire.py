"""The framing between the daemon and its neural voice process.

One message is an 8-byte header (the lengths of a JSON object and of a raw
payload, big-endian), the JSON object, then the payload: float32 samples go
as their bytes, never as JSON numbers. Reads take a deadline, so a child
that hangs is noticed; an empty read means the other side is gone.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import time
from typing import Any

HEADER = struct.Struct(">II")
MAX_JSON = 16 * 1024 * 1024  # far above any request; a garbled header is refused, not allocated
MAX_PAYLOAD = 512 * 1024 * 1024
SAMPLE_DTYPE = "<f4"


class Closed(Exception):
    """The other end closed its pipe (it exited or was killed)."""


class Late(Exception):
    """No complete message before the deadline."""


def write_message(fd: int, meta: dict[str, Any], payload: bytes = b"") -> None:
    body = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    data = memoryview(HEADER.pack(len(body), len(payload)) + body + payload)
    while data:
        try:
            sent = os.write(fd, data)
        except BrokenPipeError:
            raise Closed("pipe closed") from None
        data = data[sent:]


def read_message(fd: int, deadline: float | None = None) -> tuple[dict[str, Any], bytes]:
    """One message; `deadline` is a `time.monotonic()` instant, None waits for ever."""
    json_len, payload_len = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    if json_len > MAX_JSON or payload_len > MAX_PAYLOAD:
        raise Closed(f"garbled message header ({json_len}, {payload_len})")
    meta = json.loads(_read_exact(fd, json_len, deadline).decode("utf-8"))
    payload = _read_exact(fd, payload_len, deadline) if payload_len else b""
    if not isinstance(meta, dict):
        raise Closed("garbled message")
    return meta, payload


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise Late()
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise Closed("pipe closed")
        buf += chunk
    return bytes(buf)


def describe_exit(returncode: int | None) -> str:
    """`SIGSEGV (signal 11)` for a child killed by a signal, `exit code 3` otherwise."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        return f"{name} (signal {-returncode})"
    return f"exit code {returncode}"
