"""The loudspeaker amplifier: on before a bulletin, off after an idle hold.

The relay itself (`none`, GPIO, commands) is in `relays.py`; this module
decides when it switches: a warm-up before sound, no switching between
back-to-back bulletins, a pre-warm before scheduled slots, off at exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from loaxa.config import AmplifierSettings
from loaxa.player.relays import Relay, build_relay

log = logging.getLogger(__name__)


class Amplifier:
    """On with a warm-up before sound, off after an idle hold, off at exit.

    The player calls `ensure_on()` before a bulletin and `release()` after
    it; a bulletin that starts within the hold keeps the relay on. The hold
    runs on a short-lived thread; the lock orders it against `ensure_on`.
    """

    def __init__(
        self,
        relay: Relay,
        warmup_s: float,
        hold_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.relay = relay
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
            if not self.relay.is_on:
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
            if not self.relay.is_on:
                self._switch_on()
            self._cancel_hold()
            hold_id = self._hold_id
            deadline = max(self._warm_at, self._clock()) + self.prewarm_hold_s
        threading.Thread(target=self._hold, args=(hold_id, deadline), name="amplifier-hold", daemon=True).start()

    def _switch_on(self) -> None:
        if self._safely(self.relay.on):
            log.info("amplifier %s on", self.relay.name)
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
                self.relay.close()
            except Exception:
                log.exception("amplifier %s: close failed", self.relay.name)

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
        if self._safely(self.relay.off):
            log.info("amplifier %s off", self.relay.name)

    def _safely(self, switch: Callable[[], bool]) -> bool:
        # Backends report rather than raise; a bug that raises must still not
        # kill the hold thread (the relay would stay on) or the player.
        try:
            return switch()
        except Exception:
            log.exception("amplifier %s: switch raised", self.relay.name)
            return False


def build_amplifier(settings: AmplifierSettings, relay: Relay | None = None) -> Amplifier:
    """The amplifier for these settings, with its relay switched off to start with.

    A crash or power cut may have left the relay on. There is no warm-up wait
    when there is no relay to wait for.
    """
    relay = relay if relay is not None else build_relay(settings)
    if not relay.off():
        log.warning("amplifier %s: could not switch off at start: %s", relay.name, relay.fault)
    warmup_s = 0.0 if settings.backend == "none" else settings.warmup_s
    return Amplifier(relay, warmup_s, settings.hold_s)
