"""Is the wall clock trustworthy? Scheduled bulletins wait until it is.

A board without a real-time clock boots at a stale time; firing a 05:30
bulletin by that clock would wake the commune at the wrong hour. The kernel
knows whether NTP has disciplined the clock; `timedatectl` asks the same.
"""

from __future__ import annotations

import ctypes
import logging
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

HOLD_DETAIL = "the clock is not synchronised yet (no NTP); scheduled slots wait for it"
STA_UNSYNC = 0x0040
TIME_ERROR = 5
CACHE_S = 5.0


class _Timex(ctypes.Structure):
    # struct timex up to `status`; the kernel writes more, hence the padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def _kernel_synced() -> bool | None:
    """adjtimex(2) with modes 0 only reads, so it needs no privilege."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    call = getattr(libc, "adjtimex", None) or getattr(libc, "ntp_adjtime", None)
    if call is None:
        return None
    buf = _Timex()
    call.argtypes = [ctypes.POINTER(_Timex)]
    call.restype = ctypes.c_int
    state = call(ctypes.byref(buf))
    if state < 0:
        log.debug("adjtimex failed: errno %s", ctypes.get_errno())
        return None
    return state != TIME_ERROR and not buf.status & STA_UNSYNC


def _timedatectl_synced() -> bool | None:
    try:
        done = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    answer = done.stdout.strip()
    if done.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"


def clock_synced() -> bool | None:
    """True or False as the kernel (else systemd) says; None when neither can tell."""
    synced = _kernel_synced()
    return synced if synced is not None else _timedatectl_synced()


class ClockGuard:
    """Answers "may scheduled items fire now?"; probes at most every `cache_s`.

    An unknown state counts as not synchronised when sync is required: a
    station that cannot tell should not guess. Stations without NTP set
    `clock.require_sync: false`.
    """

    def __init__(
        self,
        require_sync: bool,
        probe: Callable[[], bool | None] = clock_synced,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.require_sync = require_sync
        self._probe = probe
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()  # the scheduler and the state publisher both ask
        self._value: bool | None = None
        self._checked_at: float | None = None

    @property
    def synced(self) -> bool | None:
        """The clock's state for the state topic, cached for a few seconds."""
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._cache_s:
                value = self._ask()
                if self._checked_at is None or value != self._value:
                    level = logging.INFO if value else logging.WARNING
                    log.log(level, "clock synchronised: %s", {True: "yes", False: "no", None: "unknown"}[value])
                self._value, self._checked_at = value, now
            return self._value

    def ok(self) -> bool:
        """Whether scheduled items may fire by this clock."""
        return not self.require_sync or self.synced is True

    def _ask(self) -> bool | None:
        try:
            return self._probe()
        except Exception:  # a probe must never stop the scheduler
            log.exception("clock probe failed")
            return None
