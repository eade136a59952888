"""Local HTTP servers and test tones for the recorded-audio and stream tests.

Everything binds to a free loopback port and stops cleanly; any test that
needs a file download or an Icecast-like stream can reuse them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from loaxa.pcm import to_int16_bytes

RATE = 22050


def tone(seconds: float, freq: float = 440.0, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_int16_bytes(samples))
    return path


def tone_file(
    folder: Path, fmt: str, seconds: float = 1.0, freq: float = 440.0, rate: int = 44100, bitrate: str = "64k"
) -> Path:
    """A tone as `wav`, `mp3` or `ogg`, written by numpy + wave, encoded by ffmpeg."""
    wav = write_wav(folder / f"tone-{seconds:g}s-{rate}.wav", tone(seconds, freq, rate), rate)
    if fmt == "wav":
        return wav
    codec = {
        "mp3": ["-c:a", "libmp3lame", "-b:a", bitrate, "-write_xing", "0", "-id3v2_version", "0"],
        "ogg": ["-c:a", "libvorbis"],
    }[fmt]
    out = folder / f"tone-{seconds:g}s-{rate}.{fmt}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), *codec, str(out)], check=True)
    return out


def dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def ffmpeg_children() -> list[int]:
    """Pids of this process's ffmpeg children, zombies included."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended while we looked (another test's relay, a timer)
            continue
        for pid in children:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "ffmpeg":
                    pids.append(int(pid))
            except FileNotFoundError:
                pass
    return pids


class _Server:
    def __init__(self) -> None:
        self.requests = 0
        self.closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                owner.requests += 1
                try:
                    owner.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.lstrip('/')}"

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class FileServer(_Server):
    """Serves `files` by name, with misbehaving variants for the failure paths.

    `/NAME` plain; `/slow/NAME` waits `slow_s` before answering;
    `/nolength/NAME` omits Content-Length; `/lying/NAME` claims a huge
    Content-Length; `/trickle/NAME` sends 100 bytes every 0.1 s;
    `/redirect/NAME` answers 302 to `/NAME`, `/escape/NAME` 302 to
    `file:///etc/passwd`, `/loop/NAME` 302 to itself; `/short/NAME` promises
    more bytes than it sends; `/dribble/NAME` sends the status line, then
    one header byte every `drip_s` and never ends the headers; `/moved/NAME`
    302 to `moved[NAME]` (any absolute URL); anything else 404.
    """

    def __init__(
        self,
        files: dict[str, bytes],
        slow_s: float = 5.0,
        drip_s: float = 0.1,
        moved: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.files = files
        self.slow_s = slow_s
        self.drip_s = drip_s
        self.moved = moved or {}

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        mode, _, name = req.path.lstrip("/").rpartition("/")
        if mode == "moved" and name in self.moved:
            req.send_response(302)
            req.send_header("Location", self.moved[name])
            req.end_headers()
            return
        body = self.files.get(name)
        if body is None:
            req.send_error(404)
            return
        if mode in ("redirect", "escape", "loop"):
            req.send_response(302)
            req.send_header("Location", {"redirect": f"/{name}", "escape": "file:///etc/passwd"}.get(mode, req.path))
            req.end_headers()
            return
        if mode == "dribble":
            req.wfile.write(b"HTTP/1.0 200 OK\r\nX-Dribble: ")
            while not self.closing.wait(self.drip_s):
                req.wfile.write(b"x")
                req.wfile.flush()
            return
        if mode == "slow":
            self.closing.wait(self.slow_s)
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        if mode == "lying":
            req.send_header("Content-Length", str(10**12))
        elif mode == "short":
            req.send_header("Content-Length", str(len(body) + 1000))
        elif mode != "nolength":
            req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if mode == "trickle":
            for start in range(0, len(body), 100):
                if self.closing.wait(0.1):
                    return
                req.wfile.write(body[start : start + 100])
                req.wfile.flush()
            return
        req.wfile.write(body)


class StreamServer(_Server):
    """An Icecast-like endless MP3 stream at `/live`, paced in real time.

    `clip` is an MP3 without Xing/ID3 headers, looped frame-exact. Each
    connection drops after `drop_after_s` seconds of audio (None: never);
    with `stall` it then holds the connection open silently instead.
    Like Icecast, it sends `burst_s` of audio at once on connect. With
    `connections`, only that many are served; later ones get a 404. Setting
    `down` drops every connection and answers 404 until it is cleared.
    """

    def __init__(
        self,
        clip: bytes,
        clip_s: float,
        drop_after_s: float | None = None,
        stall: bool = False,
        burst_s: float = 2.0,
        connections: int | None = None,
    ) -> None:
        super().__init__()
        self.connections = connections
        self.down = False
        self.clip = clip
        self.bytes_per_s = len(clip) / clip_s
        self.drop_after_s = drop_after_s
        self.stall = stall
        self.burst_s = burst_s

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        if req.path != "/live" or self.down or (self.connections is not None and self.requests > self.connections):
            req.send_error(404)
            return
        req.send_response(200)
        req.send_header("Content-Type", "audio/mpeg")
        req.send_header("icy-name", "loaxa test stream")
        req.end_headers()
        burst_s, step_s = self.burst_s, 0.05
        sent = 0
        start = time.monotonic()
        limit = None if self.drop_after_s is None else int(self.drop_after_s * self.bytes_per_s)
        while not self.closing.is_set() and not self.down:
            due = int((time.monotonic() - start + burst_s) * self.bytes_per_s)
            if limit is not None:
                due = min(due, limit)
                if sent >= limit:
                    if self.stall:
                        self.closing.wait()
                    return
            while sent < due:
                offset = sent % len(self.clip)
                piece = self.clip[offset : offset + (due - sent)]
                req.wfile.write(piece)
                sent += len(piece)
            req.wfile.flush()
            self.closing.wait(step_s)


class DiskPeak:
    """The most bytes a folder held while the block ran, sampled every `every_s` by a thread.

    Sampling can only miss a peak, never invent one: an upper bound checked
    against it may pass wrongly by a hair, not fail wrongly.
    """

    def __init__(self, folder: Path, every_s: float = 0.002) -> None:
        self.folder = folder
        self.every_s = every_s
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def size(self) -> int:
        total = 0
        for entry in self.folder.iterdir() if self.folder.is_dir() else ():
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
        return total

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.size())
            if self._done.wait(self.every_s):
                self.peak = max(self.peak, self.size())
                return

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


class RawServer:
    """A TCP service that is not HTTP, on a free loopback port: it sends `banner` and closes, or, with
    `silent`, accepts and never says a thing, as an SSH daemon, a database or a firewall might."""

    def __init__(self, banner: bytes = b"", silent: bool = False) -> None:
        self.banner = banner
        self.silent = silent
        self.connections = 0
        self.closing = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def _serve(self) -> None:
        held = []
        self.sock.settimeout(0.05)
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the accept timed out: look at `closing` again
                continue
            self.connections += 1
            if self.silent:
                held.append(conn)
                continue
            with conn:
                try:
                    conn.sendall(self.banner)
                except OSError:
                    pass
        for conn in held:
            conn.close()

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._thread.join(5)
        self.sock.close()


def closed_port_url(path: str = "x") -> str:
    """A loopback URL on a port nothing listens on (bound, then closed)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"
