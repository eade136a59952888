"""The systemd watchdog follows the station's real health.

The daemon runs as a child process with NOTIFY_SOCKET pointing at a unix
datagram socket of the test and WATCHDOG_USEC set, as systemd would run it.
Its audio device is a named pipe nobody reads: opening it blocks, as a
wedged sound driver would, so the player stops making progress. Once the
daemon's own health check counts the player as stalled, the WATCHDOG=1
pings stop (systemd would restart the unit); when the device drains again,
they come back.

This test waits out the stall threshold (at least 60 s), so it is the
slowest of the fault tests.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

from loaxa.testing.audio import FifoSpeaker
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

WATCHDOG_S = 3.0  # the daemon checks its health every WATCHDOG_S / 3


class NotifySocket:
    """systemd's side of sd_notify: collects (time, message) datagrams."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="notify-")  # a short path: AF_UNIX allows ~100 bytes
        self.path = str(Path(self.dir.name) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def pings(self, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for at, msg in self.messages if at >= since and "WATCHDOG=1" in msg.split("\n"))

    def seen(self, field: str) -> bool:
        with self._lock:
            return any(field in msg.split("\n") for _, msg in self.messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.dir.cleanup()


def wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(every_s)


def test_a_stalled_player_stops_the_watchdog_pings_and_they_resume_when_it_recovers(tmp_path):
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    notify = NotifySocket()
    speaker = FifoSpeaker(tmp_path)
    speaker.define()  # the device exists, but nothing drains it
    root = tmp_path / "station"
    env = {**speaker.env, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    station = StationProcess(root, station_config(root, broker.port, speaker.name, audio__chime=False), env=env).start()
    try:
        op.wait_state(lambda st: st["online"], 30)
        wait_until(lambda: notify.seen("READY=1") and notify.pings() >= 2, 20, "READY=1 and pings while healthy")
        assert station.control({"cmd": "status"})["health"] == []

        op.send({"type": "bulletin", "id": "wd-1", "text": "Xin chào bà con."})
        op.wait_for("wd-1", "received", 30)  # `started` waits until the device opens

        def health() -> list[str]:
            return station.control({"cmd": "status"})["health"]

        wait_until(lambda: any("player stalled" in p for p in health()), 120, "health reports the stalled player", 2.0)
        quiet_from = time.monotonic()
        time.sleep(4 * WATCHDOG_S / 3)  # four health checks
        assert notify.pings(since=quiet_from) == 0, "pinged while the player was stalled"
        assert "withholding the watchdog ping: player stalled" in station.log()
        assert station.alive()

        speaker.plug_in()  # the driver comes back: the write goes through
        op.wait_for("wd-1", "finished", 60)
        assert op.of("wd-1") == ["received", "started", "finished"]
        wait_until(lambda: health() == [], 30, "health clears")
        back_from = time.monotonic()
        wait_until(lambda: notify.pings(since=back_from) >= 1, 10, "pings resume")
    finally:
        speaker.plug_in()
        code = station.stop()
        speaker.unplug()
        notify.close()
        op.close()
        broker.stop()
    assert code == 0, station.log()
    assert notify.seen("STOPPING=1")
