"""The loudspeaker amplifier's relay: on before a bulletin, off after an idle hold.

Backends sit behind `Amplifier`: `none`, a GPIO pin, or two commands. A relay
that fails is logged and reported in `fault`; it never stops a broadcast (the
amplifier may be wired on anyway) and never raises into the player.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from loaxa.config import AmplifierSettings
from loaxa.errors import AudioError

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 10.0


class Amplifier(Protocol):
    """A switch for the amplifier. `on`/`off` return False on failure, never raise."""

    name: str

    @property
    def is_on(self) -> bool: ...

    @property
    def fault(self) -> str | None:
        """Why the last switch failed, for the state topic and `doctor`; None when fine."""
        ...

    def on(self) -> bool: ...

    def off(self) -> bool: ...

    def close(self) -> None: ...


class NoAmplifier:
    """No relay: the amplifier is always on, or switched by hand."""

    name = "none"

    def __init__(self) -> None:
        self.is_on = False
        self.fault: str | None = None

    def on(self) -> bool:
        self.is_on = True
        return True

    def off(self) -> bool:
        self.is_on = False
        return True

    def close(self) -> None:
        self.is_on = False


class RecordingAmplifier:
    """A fake relay for tests: records `(event, clock())` pairs; can be told to fail."""

    name = "recording"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.events: list[tuple[str, float]] = []
        self.is_on = False
        self.fault: str | None = None
        self.failing = False
        self._clock = clock
        self._changed = threading.Condition()

    def on(self) -> bool:
        return self._record("on")

    def off(self) -> bool:
        return self._record("off")

    def close(self) -> None:
        self._record("close")

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        """Block until `count` events were recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.events) >= count, timeout_s)

    def _record(self, event: str) -> bool:
        with self._changed:
            self.events.append((event, self._clock()))
            self._changed.notify_all()
        if self.failing and event != "close":
            self.fault = f"{event} failed (test)"
            return False
        self.fault = None
        if event != "close":
            self.is_on = event == "on"
        return True


class CommandAmplifier:
    """Runs argv lists (no shell) to switch; each with a timeout."""

    def __init__(self, on_command: Sequence[str], off_command: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        if not on_command or not off_command:
            raise AudioError("amplifier backend 'command' needs both amplifier.on_command and amplifier.off_command")
        self.name = f"command:{os.path.basename(on_command[0])}"
        self.on_command = list(on_command)
        self.off_command = list(off_command)
        self.timeout_s = timeout_s
        self.is_on = False
        self.fault: str | None = None

    def on(self) -> bool:
        return self._switch(True)

    def off(self) -> bool:
        return self._switch(False)

    def close(self) -> None:
        pass

    def _switch(self, on: bool) -> bool:
        argv = self.on_command if on else self.off_command
        self.fault = _run(argv, self.timeout_s)
        if self.fault:
            log.error("amplifier %s: %s", "on" if on else "off", self.fault)
            return False
        self.is_on = on
        return True


def _run(argv: list[str], timeout_s: float) -> str | None:
    """Run a command; the reason it failed, or None."""
    try:
        # Own session: on timeout the whole group dies, children holding the pipe too.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        return f"cannot run {argv[0]!r}: {exc.strerror or exc}"
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
        return f"{argv[0]!r} did not finish within {timeout_s:g} s and was killed"
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        return f"{argv[0]!r} exited with status {proc.returncode}" + (f": {tail[0][:200]}" if tail else "")
    return None


class GpioAmplifier:
    """A relay on a GPIO line, held from start to close so nothing else drives it.

    libgpiod v2 (`gpiod`) is preferred; gpiozero (BCM numbering) otherwise. A
    line that vanishes is reported and re-requested at the next switch.
    """

    def __init__(self, chip: str, pin: int, active_low: bool = False) -> None:
        self.chip = chip if chip.startswith("/") else f"/dev/{chip}"
        self.pin = pin
        self.active_low = active_low
        self.name = f"gpio:{chip}:{pin}"
        self.is_on = False
        self.fault: str | None = None
        self._line: Any = None
        self._driver = _gpio_driver()
        try:
            self._line = self._open()
        except Exception as exc:
            raise AudioError(f"amplifier {self.name}: cannot claim the GPIO line: {exc}") from None

    def on(self) -> bool:
        return self._switch(True)

    def off(self) -> bool:
        return self._switch(False)

    def close(self) -> None:
        if self._line is not None:
            try:
                self._set(self._line, False)
            except Exception as exc:
                log.warning("amplifier %s: off at close failed: %s", self.name, exc)
        self._drop()
        self.is_on = False

    def _switch(self, on: bool) -> bool:
        try:
            if self._line is None:
                self._line = self._open()
            self._set(self._line, on)
        except Exception as exc:  # a vanished chip raises OSError; drivers vary
            self.fault = f"{'on' if on else 'off'} failed: {exc}"
            log.error("amplifier %s: %s", self.name, self.fault)
            self._drop()  # re-requested at the next switch
            return False
        self.fault = None
        self.is_on = on
        return True

    def _drop(self) -> None:
        line, self._line = self._line, None
        if line is None:
            return
        try:
            if self._driver == "gpiod":
                line.release()
            else:
                line.close()
        except Exception as exc:
            log.debug("amplifier %s: release failed: %s", self.name, exc)

    def _open(self) -> Any:
        if self._driver == "gpiod":
            import gpiod
            from gpiod.line import Direction, Value

            settings = gpiod.LineSettings(direction=Direction.OUTPUT, output_value=Value.INACTIVE, active_low=self.active_low)
            return gpiod.request_lines(self.chip, consumer="loaxa-amplifier", config={self.pin: settings})
        from gpiozero import DigitalOutputDevice

        return DigitalOutputDevice(self.pin, active_high=not self.active_low, initial_value=False)

    def _set(self, line: Any, on: bool) -> None:
        if self._driver == "gpiod":
            from gpiod.line import Value

            line.set_value(self.pin, Value.ACTIVE if on else Value.INACTIVE)
        elif on:
            line.on()
        else:
            line.off()


def _gpio_driver() -> str:
    try:
        import gpiod

        if hasattr(gpiod, "request_lines"):  # v1 bindings share the name, not the API
            return "gpiod"
    except ImportError:
        pass
    try:
        import gpiozero  # noqa: F401

        return "gpiozero"
    except ImportError:
        pass
    raise AudioError(
        "amplifier backend 'gpio' needs libgpiod v2 Python bindings "
        "(pip install 'gpiod>=2', or Debian python3-libgpiod >= 2) or gpiozero (pip install gpiozero)"
    )


def build_amplifier(settings: AmplifierSettings) -> Amplifier:
    """The backend the settings name; AudioError when it cannot be set up."""
    if settings.backend == "gpio":
        if settings.gpio_pin is None:
            raise AudioError("amplifier backend 'gpio' needs amplifier.gpio_pin")
        return GpioAmplifier(settings.gpio_chip, settings.gpio_pin, settings.gpio_active_low)
    if settings.backend == "command":
        timeout_s = settings.command_timeout_s
        return CommandAmplifier(settings.on_command, settings.off_command, timeout_s)
    return NoAmplifier()


class AmplifierControl:
    """On with a warm-up before sound, off after an idle hold, off at exit.

    The player calls `ensure_on()` before a bulletin and `release()` after
    it; a bulletin that starts within the hold keeps the relay on. The hold
    runs on a short-lived thread; the lock orders it against `ensure_on`.
    """

    def __init__(
        self,
        amp: Amplifier,
        warmup_s: float,
        hold_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.amp = amp
        self.warmup_s = warmup_s
        self.hold_s = hold_s
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._hold_id = 0  # bumped to cancel a pending hold
        self._closed = False
        self._warm_at = 0.0  # when the warm-up of the current switch-on ends
        self.prewarm_hold_s = max(hold_s, 10.0)  # a pre-warmed amplifier waits this long for its slot

    def ensure_on(self) -> float:
        """Switch on if off and wait the warm-up; the seconds waited (0 if already warm)."""
        with self._cond:
            self._cancel_hold()
            if self._closed:
                log.warning("amplifier switched on after shutdown; ignored")
                return 0.0
            if not self.amp.is_on:
                self._switch_on()
                wait = self.warmup_s  # waited even when the relay failed: it may be wired on regardless
            else:
                wait = max(0.0, self._warm_at - self._clock())  # the rest of a pre-warm
            self._warm_at = 0.0  # warm once this call returns
        if wait > 0:
            self._sleep(wait)
        return wait

    def prewarm(self) -> None:
        """Switch on ahead of a scheduled slot, so its sound starts on time.

        A hold armed from the end of the warm-up switches it off again if
        nothing comes to play.
        """
        with self._cond:
            if self._closed:
                return
            if not self.amp.is_on:
                self._switch_on()
            self._cancel_hold()
            hold_id = self._hold_id
            deadline = max(self._warm_at, self._clock()) + self.prewarm_hold_s
        threading.Thread(target=self._hold, args=(hold_id, deadline), name="amplifier-hold", daemon=True).start()

    def _switch_on(self) -> None:
        if self._safely(self.amp.on):
            log.info("amplifier %s on", self.amp.name)
        self._warm_at = self._clock() + self.warmup_s

    def release(self) -> None:
        """Nothing more to play for now: switch off after `hold_s` unless needed again."""
        with self._cond:
            self._cancel_hold()
            if self._closed:
                return
            if self.hold_s <= 0:
                self._switch_off()
                return
            hold_id, deadline = self._hold_id, self._clock() + self.hold_s
        threading.Thread(target=self._hold, args=(hold_id, deadline), name="amplifier-hold", daemon=True).start()

    def shutdown(self) -> None:
        """Off at once, whatever it believes its state is, and release the relay."""
        with self._cond:
            self._cancel_hold()
            self._closed = True
            self._switch_off()
            try:
                self.amp.close()
            except Exception:
                log.exception("amplifier %s: close failed", self.amp.name)

    def _hold(self, hold_id: int, deadline: float) -> None:
        with self._cond:
            while hold_id == self._hold_id:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self._switch_off()
                    return
                self._cond.wait(remaining)

    def _cancel_hold(self) -> None:
        self._hold_id += 1
        self._cond.notify_all()

    def _switch_off(self) -> None:
        if self._safely(self.amp.off):
            log.info("amplifier %s off", self.amp.name)

    def _safely(self, switch: Callable[[], bool]) -> bool:
        # Backends report rather than raise; a bug that raises must still not
        # kill the hold thread (the relay would stay on) or the player.
        try:
            return switch()
        except Exception:
            log.exception("amplifier %s: switch raised", self.amp.name)
            return False


def build_control(settings: AmplifierSettings, amp: Amplifier | None = None) -> AmplifierControl:
    """The control for these settings, with the relay switched off to start with.

    A crash or power cut may have left the relay on. There is no warm-up wait
    when there is no relay to wait for.
    """
    amp = amp if amp is not None else build_amplifier(settings)
    if not amp.off():
        log.warning("amplifier %s: could not switch off at start: %s", amp.name, amp.fault)
    warmup_s = 0.0 if settings.backend == "none" else settings.warmup_s
    return AmplifierControl(amp, warmup_s, settings.hold_s)
