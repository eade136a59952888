"""Reports to the province: receipts from the outbox, and the retained state.

Events are written to the store by the ledger, in the same transaction as
the change they report, then sent here in order. One is marked sent only after the broker
acknowledged it (QoS 1), so a broker outage or a restart delays receipts and
never loses them; a receipt may arrive twice, and its `seq` tells.

A broker that stops acknowledging while the link stays up is a stalled link:
the reporter asks `Link.check_stall()` on every round, which reconnects, and
resends after a stall what was not acknowledged. `problem()` tells the health
check when nothing was delivered for long while connected and events wait.
The state carries the store's fault and its last incident too: its
publish needs no disk. Each round also has the store look at its file
(`Store.check`), so a store deleted or replaced under the daemon is noticed
within seconds even when nothing is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from loaxa import __version__
from loaxa.config import Settings
from loaxa.errors import StoreError
from loaxa.jsonwire import compact_bytes
from loaxa.link import Link
from loaxa.protocol import now_iso
from loaxa.store import Store

log = logging.getLogger(__name__)

BATCH = 20
STATE_EVERY_S = 60.0
VOLATILE = ("uptime_s", "at")  # change every time; alone they do not make a state new
IDLE_WAIT_S = 5.0  # commits wake the reporter; this bounds how stale `state` can be
PRUNE_EVERY_S = 3600.0
KEEP_EVENTS = 10_000  # sent events kept for `loaxa log` and inspection; unsent ones are never pruned
UNDELIVERED_S = 120.0  # connected, events waiting, none acknowledged for this long: the health check says so


class Reporter(threading.Thread):
    """Sends the outbox in order and keeps the retained state fresh."""

    def __init__(
        self,
        *,
        store: Store,
        link: Link,
        event_topic: str,
        state_topic: str,
        state: Callable[[], dict[str, Any]],
        prune: Callable[[], dict[str, int]] | None = None,
        undelivered_s: float = UNDELIVERED_S,
    ) -> None:
        super().__init__(name="reporter", daemon=True)
        self.store = store
        self.link = link
        self.event_topic = event_topic
        self.state_topic = state_topic
        self.state = state
        self.prune = prune or (lambda: {"events": store.prune_events(keep=KEEP_EVENTS)})
        self.undelivered_s = undelivered_s
        self._pending: dict[int, Any] = {}  # seq -> paho's MQTTMessageInfo, published and not yet acknowledged
        self._acked: set[int] = set()  # acknowledged, not yet marked sent in the store (its write failed)
        self._marking_failed = False
        self._store_error: str | None = None  # the last failure of the store's check, logged once
        self._waiting = False  # events waited in the outbox at the last round
        self._delivered_at = time.monotonic()  # last time the outbox made progress or had nothing to send
        self.wake = store.listen()
        self.stopping = threading.Event()
        self.state_changed = threading.Event()
        self.heartbeat = time.monotonic()
        link.on_connected.append(self._on_connect)

    def _on_connect(self) -> None:
        self.state_changed.set()
        self.wake.set()

    def run(self) -> None:
        last_sent: dict | None = None
        last_at = 0.0
        pruned_at = -PRUNE_EVERY_S
        while not self.stopping.is_set():
            self.heartbeat = time.monotonic()
            if self.heartbeat - pruned_at >= PRUNE_EVERY_S:
                pruned_at = self.heartbeat
                self._prune()
            self.wake.wait(IDLE_WAIT_S)
            self.wake.clear()
            self._check_store()
            if not self.link.connected.is_set():
                self._delivered_at = time.monotonic()  # offline is the link's to report, not a delivery fault
                continue
            try:
                if self.link.check_stall():
                    self._pending.clear()  # resent from the outbox once reconnected
                    continue
                state = self.compose()
                steady = {k: v for k, v in state.items() if k not in VOLATILE}
                changed = steady != last_sent
                if changed or self.state_changed.is_set() or time.monotonic() - last_at >= STATE_EVERY_S:
                    self.state_changed.clear()
                    if self.link.publish(self.state_topic, compact_bytes(state), retain=True) is not None:
                        last_sent = steady
                        last_at = time.monotonic()
                while self._send_batch():
                    self.heartbeat = time.monotonic()
            except Exception:  # the reporter must outlive any one bad moment
                log.exception("reporter error; will retry")

    def _prune(self) -> None:
        """The store must not grow for ever on the board's SD card."""
        try:
            gone = self.prune()
        except Exception:  # a failed prune is retried at the next hour
            log.exception("pruning the store failed")
            return
        if any(gone.values()):
            log.info("pruned from the store: %s", ", ".join(f"{n} {what}" for what, n in gone.items() if n))

    def _check_store(self) -> None:
        """The store's file is still the store (it looks every few seconds): a lost one is made again."""
        try:
            self.store.check()
        except StoreError as exc:  # said in the state's storage.fault; retried next round, logged once
            if str(exc) != self._store_error:
                log.warning("%s", exc)
            self._store_error = str(exc)
            return
        except Exception:
            log.exception("checking the store failed; will retry")
        self._store_error = None

    def compose(self) -> dict[str, Any]:
        """The state to publish (its `storage` is known without touching the disk)."""
        return self.state()

    def _send_batch(self) -> bool:
        """Publish the next events in order, mark what the broker acknowledged; True when more may follow."""
        batch = self.store.unsent_events(BATCH + len(self._acked))
        batch = [(seq, payload) for seq, payload in batch if seq not in self._acked][:BATCH]
        self._waiting = bool(batch)
        if not batch:
            self._delivered_at = time.monotonic()
            self._flush_acked()
            return False
        for seq, payload in batch:
            if seq in self._pending:
                continue  # still in paho's hands (in flight or resent after a reconnect)
            info = self.link.publish(self.event_topic, payload.encode())
            if info is None:
                break
            self._pending[seq] = info
        deadline = time.monotonic() + self.link.ack_timeout_s
        done = 0
        for seq, _ in batch:
            info = self._pending.get(seq)
            if info is None:
                break
            try:
                info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                self._pending.pop(seq, None)
                break
            if not info.is_published():
                if self.link.check_stall():  # no PUBACK in time: the window had stalled; reconnecting
                    self._pending.clear()  # resent once reconnected; the receiver dedupes by seq
                break
            del self._pending[seq]
            self._acked.add(seq)
            done += 1
        if done:
            self._delivered_at = time.monotonic()
        self._flush_acked()
        return done == len(batch)

    def _flush_acked(self) -> None:
        """Mark acknowledged events sent; on a full disk they stay in memory and are not sent again."""
        if not self._acked:
            return
        seqs = sorted(self._acked)
        try:
            self.store.mark_sent(seqs)
        except StoreError as exc:
            if not self._marking_failed:  # once per outage: it is retried every round
                log.warning("cannot mark sent events in the store: %s; keeping them in memory", exc)
            self._marking_failed = True
            return
        if self._marking_failed:
            log.info("sent events marked in the store again")
        self._marking_failed = False
        self._acked.difference_update(seqs)

    def problem(self) -> str | None:
        """Why the reporter cannot deliver, for the health check; None when it can."""
        stuck = time.monotonic() - self._delivered_at
        if not self._waiting or stuck < self.undelivered_s:
            return None
        stalls = self.link.status().get("stalls", 0)
        return f"reporter cannot deliver: no event acknowledged for {stuck:.0f} s while connected ({stalls} stall(s))"

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


class StationState:
    """The retained `state` object of the protocol, asked of the parts that know each field."""

    def __init__(
        self,
        *,
        settings: Settings,
        voice: Callable[[], dict[str, object]],
        on_air: Callable[[], str | None],
        waiting: Callable[[], int],
        clock_synced: Callable[[], bool | None],
        last_command_at: Callable[[], str | None],
        audio_error: Callable[[], str | None],
        amplifier_fault: Callable[[], str | None],
        storage: Callable[[], dict[str, Any]] = lambda: {"fault": None},
    ) -> None:
        self.settings = settings
        self.voice = voice
        self.on_air = on_air
        self.waiting = waiting
        self.clock_synced = clock_synced
        self.last_command_at = last_command_at
        self.audio_error = audio_error
        self.amplifier_fault = amplifier_fault
        self.storage = storage
        self.link: Callable[[], dict[str, Any]] | None = None  # set once the link exists
        self.archive: Callable[[], dict[str, Any]] | None = None  # the on-air archive's status, when enabled
        self.started = time.monotonic()

    def __call__(self, online: bool = True) -> dict[str, Any]:
        s = self.settings
        return {
            "online": online,
            "version": __version__,
            "station": s.station.path,
            "groups": list(s.mqtt.groups),
            "voice": self.voice(),
            "on_air": self.on_air(),
            "queue": self.waiting() if online else 0,
            "clock_synced": self.clock_synced(),
            "last_command_at": self.last_command_at(),
            "uptime_s": int(time.monotonic() - self.started),
            "at": now_iso(),
            "audio": {"output": s.audio.output, "error": self.audio_error()},
            "amplifier": {"backend": s.amplifier.backend, "fault": self.amplifier_fault()},
            "link": self.link() if self.link is not None else None,
            "archive": self.archive() if self.archive is not None else {"enabled": False},
            "storage": self.storage(),
        }
