"""Amplifier relays: `none`, a GPIO pin, or two commands, behind `Relay`.

A relay that fails is logged and reported in `fault`; it never stops a
broadcast (the amplifier may be wired on anyway) and never raises.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any, Protocol

from loaxa.config import AmplifierSettings
from loaxa.errors import AudioError

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 10.0


class Relay(Protocol):
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


class NoRelay:
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


class CommandRelay:
    """Runs argv lists (no shell) to switch; each with a timeout."""

    def __init__(
        self, on_command: Sequence[str], off_command: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
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


class GpioRelay:
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

            settings = gpiod.LineSettings(
                direction=Direction.OUTPUT, output_value=Value.INACTIVE, active_low=self.active_low
            )
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


def build_relay(settings: AmplifierSettings) -> Relay:
    """The backend the settings name; AudioError when it cannot be set up."""
    if settings.backend == "gpio":
        if settings.gpio_pin is None:
            raise AudioError("amplifier backend 'gpio' needs amplifier.gpio_pin")
        return GpioRelay(settings.gpio_chip, settings.gpio_pin, settings.gpio_active_low)
    if settings.backend == "command":
        timeout_s = settings.command_timeout_s
        return CommandRelay(settings.on_command, settings.off_command, timeout_s)
    return NoRelay()
