"""The amplifier relay: on and warm before sound, off after the hold, off at exit."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from loaxa.config import AmplifierSettings
from loaxa.errors import AudioError
from loaxa.player.amplifier import Amplifier, build_amplifier
from loaxa.player.relays import (
    CommandRelay,
    GpioRelay,
    NoRelay,
    build_relay,
)
from loaxa.testing.amplifier import RecordingRelay


def names(amp: RecordingRelay) -> list[str]:
    return [event for event, _ in amp.events]


# --- the control: order and timing --------------------------------------------


def test_switches_on_then_waits_the_warm_up_before_returning() -> None:
    amp = RecordingRelay()
    waits: list[tuple[float, list[str]]] = []
    control = Amplifier(amp, warmup_s=1.5, hold_s=30, sleep=lambda s: waits.append((s, names(amp))))
    assert control.ensure_on() == 1.5
    assert waits == [(1.5, ["on"])]  # the relay was on when the warm-up began
    assert amp.is_on
    control.shutdown()


def test_already_on_costs_no_warm_up() -> None:
    amp = RecordingRelay()
    waits: list[float] = []
    control = Amplifier(amp, warmup_s=1.5, hold_s=30, sleep=waits.append)
    control.ensure_on()
    assert control.ensure_on() == 0
    assert waits == [1.5] and names(amp) == ["on"]
    control.shutdown()


def test_switches_off_only_after_the_idle_hold() -> None:
    amp = RecordingRelay()
    control = Amplifier(amp, warmup_s=0, hold_s=0.1)
    control.ensure_on()
    released_at = time.monotonic()
    control.release()
    assert amp.wait_for(2)
    assert names(amp) == ["on", "off"]
    assert amp.events[1][1] - released_at >= 0.1
    assert not amp.is_on
    control.shutdown()


def test_back_to_back_bulletins_keep_it_on() -> None:
    amp = RecordingRelay()
    control = Amplifier(amp, warmup_s=0, hold_s=0.1)
    control.ensure_on()
    control.release()
    assert control.ensure_on() == 0  # the next bulletin arrives within the hold
    time.sleep(0.25)  # longer than the hold: a stale timer would have fired by now
    assert names(amp) == ["on"]
    control.release()
    assert amp.wait_for(2)
    assert names(amp) == ["on", "off"]
    control.shutdown()


def test_zero_hold_switches_off_at_once() -> None:
    amp = RecordingRelay()
    control = Amplifier(amp, warmup_s=0, hold_s=0)
    control.ensure_on()
    control.release()
    assert names(amp) == ["on", "off"]


def test_shutdown_switches_off_at_once_and_cancels_the_hold() -> None:
    amp = RecordingRelay()
    control = Amplifier(amp, warmup_s=0, hold_s=60)
    control.ensure_on()
    control.release()
    control.shutdown()
    assert names(amp) == ["on", "off", "close"]
    assert not amp.wait_for(4, timeout_s=0.2)  # no second off from the cancelled hold
    assert control.ensure_on() == 0  # finished: a late call does not switch it back on
    assert names(amp) == ["on", "off", "close"]


def test_shutdown_switches_off_even_when_it_believes_it_is_off() -> None:
    # After a crash the relay's real state is unknown; exit always sends off.
    amp = RecordingRelay()
    Amplifier(amp, warmup_s=0, hold_s=30).shutdown()
    assert names(amp) == ["off", "close"]


def test_a_failing_relay_never_stops_the_broadcast() -> None:
    amp = RecordingRelay()
    amp.failing = True
    waits: list[float] = []
    control = Amplifier(amp, warmup_s=1.0, hold_s=0, sleep=waits.append)
    assert control.ensure_on() == 1.0  # still waits: the amplifier may be wired on
    assert amp.fault == "on failed (test)"
    amp.failing = False
    assert control.ensure_on() == 1.0  # retried next time
    assert names(amp) == ["on", "on"] and amp.is_on and amp.fault is None
    control.shutdown()


def test_a_backend_that_raises_still_gets_switched_off() -> None:
    class Buggy(RecordingRelay):
        def on(self) -> bool:
            super().on()
            raise RuntimeError("driver bug")

    amp = Buggy()
    control = Amplifier(amp, warmup_s=0, hold_s=0.05)
    control.ensure_on()  # does not raise into the player
    control.release()
    assert amp.wait_for(2)
    assert names(amp) == ["on", "off"]
    control.shutdown()


def test_build_control_starts_from_off_and_skips_warm_up_without_a_relay() -> None:
    amp = RecordingRelay()
    control = build_amplifier(AmplifierSettings(backend="none", warmup_s=2.0, hold_s=5.0), amp)
    assert names(amp) == ["off"]
    assert (control.warmup_s, control.hold_s) == (0.0, 5.0)
    control = build_amplifier(
        AmplifierSettings(backend="command", on_command=("true",), off_command=("true",), warmup_s=2.0)
    )
    assert control.warmup_s == 2.0


# --- the command backend, for real --------------------------------------------


def test_command_backend_switches_a_real_relay_file(tmp_path: Path) -> None:
    relay = tmp_path / "relay-on"
    amp = build_relay(
        AmplifierSettings(backend="command", on_command=("touch", str(relay)), off_command=("rm", str(relay)))
    )
    control = Amplifier(amp, warmup_s=0, hold_s=0.05)
    control.ensure_on()
    assert relay.exists() and amp.is_on
    control.release()
    deadline = time.monotonic() + 5
    while amp.is_on and time.monotonic() < deadline:  # set once `rm` has returned
        time.sleep(0.01)
    assert not relay.exists() and not amp.is_on
    control.shutdown()  # `rm` of a missing file fails: reported, not raised
    assert amp.fault is not None and "exited with status 1" in amp.fault


def test_commands_run_without_a_shell(tmp_path: Path) -> None:
    amp = CommandRelay(["touch", str(tmp_path / "a;touch b")], ["true"])
    assert amp.on()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a;touch b"]


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["false"], "'false' exited with status 1"),
        (["sh", "-c", "echo relay jammed >&2; exit 3"], "exited with status 3: relay jammed"),
        (["/nonexistent/relay-tool"], "cannot run '/nonexistent/relay-tool'"),
    ],
)
def test_failing_commands_are_reported_not_raised(argv: list[str], reason: str) -> None:
    amp = CommandRelay(argv, argv)
    assert amp.on() is False
    assert amp.fault is not None and reason in amp.fault
    assert not amp.is_on


def test_a_hanging_command_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The child keeps stderr open: waiting for it alone would hang the player.
    hang = ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"]
    amp = CommandRelay(hang, hang, timeout_s=0.3)
    assert amp.on() is False
    assert amp.fault is not None and "did not finish within 0.3 s" in amp.fault
    child = int(pidfile.read_text())
    assert _gone(child)


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # killed, waiting for its reaper
            return True
        time.sleep(0.02)
    return False


# --- backend selection ---------------------------------------------------------


def test_backend_none_does_nothing_harmful() -> None:
    amp = build_relay(AmplifierSettings())
    assert isinstance(amp, NoRelay)
    assert amp.on() and amp.is_on and amp.off() and not amp.is_on and amp.fault is None


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (
            AmplifierSettings(backend="command", on_command=("true",)),
            "needs both amplifier.on_command and amplifier.off_command",
        ),
        (AmplifierSettings(backend="gpio"), "needs amplifier.gpio_pin"),
    ],
)
def test_incomplete_settings_fail_at_start_up(settings: AmplifierSettings, reason: str) -> None:
    with pytest.raises(AudioError, match=reason):
        build_relay(settings)


def test_gpio_without_bindings_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    with pytest.raises(AudioError, match=r"gpiod>=2.*gpiozero"):
        build_relay(AmplifierSettings(backend="gpio", gpio_pin=17))


class FakeRequest:
    """A libgpiod v2 line request; `vanished` makes it fail like an unplugged chip."""

    def __init__(self, log: list[tuple], offset: int) -> None:
        self.log, self.offset, self.vanished = log, offset, False

    def set_value(self, offset: int, value: str) -> None:
        if self.vanished:
            raise OSError(19, "No such device")
        self.log.append(("set", offset, value))

    def release(self) -> None:
        self.log.append(("release", self.offset))


@pytest.fixture
def fake_gpiod(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    # No GPIO chip on a CI machine: the same calls, against a stand-in module.
    state = types.SimpleNamespace(log=[], requests=[])
    line = types.ModuleType("gpiod.line")
    line.Direction = types.SimpleNamespace(OUTPUT="output")
    line.Value = types.SimpleNamespace(ACTIVE="active", INACTIVE="inactive")
    gpiod = types.ModuleType("gpiod")
    gpiod.line = line
    gpiod.LineSettings = lambda **kw: kw

    def request_lines(path: str, consumer: str, config: dict) -> FakeRequest:
        ((offset, settings),) = config.items()
        state.log.append(("request", path, offset, settings))
        state.requests.append(FakeRequest(state.log, offset))
        return state.requests[-1]

    gpiod.request_lines = request_lines
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    return state


def test_gpio_holds_the_line_and_switches_it(fake_gpiod: types.SimpleNamespace) -> None:
    amp = build_relay(AmplifierSettings(backend="gpio", gpio_pin=17))
    assert isinstance(amp, GpioRelay)
    assert fake_gpiod.log == [
        ("request", "/dev/gpiochip0", 17, {"direction": "output", "output_value": "inactive", "active_low": False})
    ]
    assert amp.on() and amp.is_on
    assert amp.off() and not amp.is_on
    amp.close()
    assert fake_gpiod.log[1:] == [
        ("set", 17, "active"),
        ("set", 17, "inactive"),
        ("set", 17, "inactive"),
        ("release", 17),
    ]


def test_a_vanished_pin_is_reported_and_reclaimed(fake_gpiod: types.SimpleNamespace) -> None:
    amp = GpioRelay("gpiochip0", 17)
    fake_gpiod.requests[0].vanished = True
    assert amp.on() is False
    assert amp.fault is not None and "No such device" in amp.fault and not amp.is_on
    assert amp.on() is True  # the chip is back: a fresh request
    assert len(fake_gpiod.requests) == 2 and amp.fault is None
    amp.close()


def test_a_prewarm_switches_on_ahead_so_the_slot_waits_only_what_is_left() -> None:
    now = [100.0]
    amp = RecordingRelay(clock=lambda: now[0])
    slept: list[float] = []
    control = Amplifier(amp, warmup_s=1.5, hold_s=30, clock=lambda: now[0], sleep=slept.append)
    control.prewarm()
    assert amp.is_on
    now[0] += 1.0  # the slot comes 1 s after the pre-warm
    assert control.ensure_on() == pytest.approx(0.5)
    now[0] += 5.0
    assert control.ensure_on() == 0.0  # already warm
    control.shutdown()
    assert [e for e, _ in amp.events] == ["on", "off", "close"]


def test_a_prewarm_with_nothing_to_play_switches_off_after_the_hold() -> None:
    amp = RecordingRelay()
    control = Amplifier(amp, warmup_s=0.05, hold_s=0.1)
    control.prewarm_hold_s = 0.2
    control.prewarm()
    assert amp.wait_for(2, timeout_s=5)
    assert [e for e, _ in amp.events] == ["on", "off"]
