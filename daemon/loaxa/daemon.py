"""The station daemon: wires the stages, watches them, tears them down.

    MQTT ─▶ inbox ─▶ store ◀─ scheduler        (threads hand over through
                       │                        the store and bounded queues)
                       ▼
                     queue ─▶ player ─▶ speech ─▶ output + amplifier
                       │
                    reports ─▶ MQTT (events in order, retained state)
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
import uuid
from pathlib import Path
from datetime import datetime, timezone
from typing import Any

from loaxa import __version__
from loaxa.clock import ClockGuard
from loaxa.config import Settings
from loaxa.content import Sources
from loaxa.control import ControlServer
from loaxa.errors import ControlError
from loaxa.inbox import Inbox
from loaxa.link import Link, dumps
from loaxa.player.amplifier import build_control
from loaxa.player.output import build_sink
from loaxa.player.player import Player
from loaxa.protocol import Topics, now_iso, validate_command
from loaxa.queue import BroadcastQueue
from loaxa.reports import Receipts, Reporter
from loaxa.schedule import Scheduler
from loaxa.security import RateLimiter, Verifier
from loaxa.speech.pipeline import build_speaker
from loaxa.store import Store
from loaxa.systemd import Notifier

log = logging.getLogger(__name__)

LOCAL_ISSUER = "local"  # technicians' `say` and `play` through the control socket
PREPARE_QUEUE = 100
TERMINAL = ("done", "failed", "expired", "cancelled", "superseded", "missed")


class Station:
    """Every stage of one station, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        s = settings
        self.settings = s
        self.started = time.monotonic()
        self.stopping = threading.Event()
        tz = s.station.tz
        self.topics = Topics(s.mqtt.prefix, s.station.province, s.station.commune, s.station.id, s.mqtt.groups)
        self.store = Store(s.storage.dir / "station.db")
        self.receipts = Receipts(self.store, s.station.path)
        self.clock = ClockGuard(s.clock.require_sync)
        self.speaker = build_speaker(s.tts, s.text, s.audio.sample_rate_hz, cache_dir=s.storage.dir / "cache")
        self.amplifier = build_control(s.amplifier)
        self.queue = BroadcastQueue(self.store, tz, s.broadcast.quiet_hours, self.clock.ok)
        self.sources = Sources(
            s.storage.dir / "audio", int(s.security.max_download_mb * 1_000_000), s.storage.audio_cache_mb * 1_000_000
        )
        self.player = Player(
            s, self.store, self.queue, self.receipts, self.speaker, build_sink(s.audio.output, s.audio.latency_s),
            self.amplifier, self.sources,
        )  # fmt: skip
        self.scheduler = Scheduler(
            self.store, self.receipts, tz, s.broadcast.grace_s, self.clock.ok, self.player.attention, self._prepare,
            prewarm=self.amplifier.prewarm, warmup_s=self.amplifier.warmup_s,
        )  # fmt: skip
        self.inbox = Inbox(
            self.store, self.receipts, self.scheduler, Verifier(s.security), RateLimiter(s.security.max_commands_per_min),
            s.broadcast.max_queue, lambda b: self.player.attention(), self.player.stop_play, self._respond,
        )  # fmt: skip
        client_id = f"loaxa-{s.station.province}-{s.station.commune}-{s.station.id}"
        self.link = Link(s.mqtt, client_id, self.topics.commands, (self.topics.state, dumps(self.state(online=False))), self.inbox.submit)
        self.reporter = Reporter(self.store, self.link, self.topics.event, self.topics.state, self.state)
        self.control = ControlServer(s.control_socket, self._control)
        self.notifier = Notifier()
        self._to_prepare: queue.Queue[tuple[str, float | None]] = queue.Queue(maxsize=PREPARE_QUEUE)

    # -- life cycle -------------------------------------------------------------
    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop. The exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        try:
            self.notifier.ready()
            interval = min(5.0, (self.notifier.watchdog_s or 10.0) / 3)
            while not self.stopping.wait(interval):
                problems = self.health()
                if problems:
                    log.error("unhealthy, withholding the watchdog ping: %s", "; ".join(problems))
                else:
                    self.notifier.watchdog()
        finally:
            self.notifier.stopping()
            self.stop()
        return 0

    def start(self) -> None:
        recovered = self.store.recover()
        if recovered:
            log.info("%d play(s) were on air at the last stop; they resume", recovered)
        self.control.start()
        threading.Thread(target=self._preparer, name="prepare", daemon=True).start()
        self.player.start()
        self.scheduler.start()
        self.inbox.start()
        self.reporter.start()
        self.link.start()
        log.info(
            "station %s up: voice %s, output %s", self.settings.station.path, self.speaker.status()["name"],
            self.settings.audio.output,
        )  # fmt: skip

    def stop(self) -> None:
        """Reverse order of start; the amplifier is always switched off."""
        try:
            self.control.stop()
            self.inbox.stop()
            self.scheduler.stop()
            self.player.stop()
            self.player.join(timeout=10)
            self.reporter.stop()
            self.reporter.join(timeout=5)
            self.link.stop(final=(self.topics.state, dumps(self.state(online=False))))
        finally:
            self.amplifier.shutdown()
            self.speaker.close()
            self.store.close()

    def health(self) -> list[str]:
        """What is wrong with the loops; empty when all are alive."""
        problems = []
        stall_s = max(60.0, 3 * self.settings.tts.deadline_s)
        now = time.monotonic()
        if not self.link.alive():
            problems.append("MQTT loop stopped")
        if not self.scheduler.alive():
            problems.append("scheduler stopped")
        for name, thread in (("player", self.player), ("inbox", self.inbox), ("reporter", self.reporter)):
            if not thread.is_alive():
                problems.append(f"{name} thread died")
            elif now - thread.heartbeat > stall_s:
                problems.append(f"{name} stalled for {now - thread.heartbeat:.0f} s")
        return problems

    # -- reports ----------------------------------------------------------------
    def state(self, online: bool = True) -> dict[str, Any]:
        player = getattr(self, "player", None)
        inbox = getattr(self, "inbox", None)
        return {
            "online": online,
            "version": __version__,
            "station": self.settings.station.path,
            "groups": list(self.settings.mqtt.groups),
            "voice": self.speaker.status(),
            "on_air": player.on_air_id if player else None,
            "queue": self.queue.waiting() if online else 0,
            "clock_synced": self.clock.synced,
            "last_command_at": inbox.last_command_at if inbox else None,
            "uptime_s": int(time.monotonic() - self.started),
            "at": now_iso(),
            "audio": {"output": self.settings.audio.output, "error": player.audio_error if player else None},
            "amplifier": {"backend": self.settings.amplifier.backend, "fault": self.amplifier.amp.fault},
        }

    def _respond(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        if correlation:
            props.CorrelationData = correlation
        if self.link.connected.is_set():
            self.link.client.publish(topic, payload, qos=1, properties=props)

    def _prepare(self, body: dict[str, Any]) -> None:
        """Queue a scheduled text to be voiced ahead into the cache."""
        if "text" not in body:
            return
        try:
            self._to_prepare.put_nowait((body["text"], body.get("rate")))
        except queue.Full:
            log.warning("too many bulletins to voice ahead; this one will be voiced on air")

    def _preparer(self) -> None:
        """One thread voices ahead, one text at a time, behind the player's runs."""
        while not self.stopping.is_set():
            try:
                text, rate = self._to_prepare.get(timeout=5.0)
            except queue.Empty:
                continue
            try:
                self.speaker.prepare(text, rate)
            except Exception as exc:  # the occurrence will synthesise on air instead
                log.warning("could not voice a scheduled bulletin ahead: %s", exc)

    # -- control socket -----------------------------------------------------------
    def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, "state": self.state(), "health": self.health()}
        if cmd == "queue":
            plays = [
                {"id": p.id, "priority": p.priority, "state": p.state, "occurrence": p.occurrence, "sentence": p.sentence}
                for p in self.store.pending_plays()
            ]
            return {"ok": True, "on_air": self.player.on_air_id, "plays": plays, "next": self.scheduler.next_slots()}
        if cmd in ("say", "play"):
            return self._local(request)
        if cmd == "cancel":
            return self._cancel(str(request.get("id", "")))
        raise ControlError(f"unknown control request {cmd!r}")

    def _cancel(self, id: str) -> dict[str, Any]:
        """A technician's cancel: as if its issuer had sent it, receipts included."""
        cancel = validate_command({"type": "cancel", "id": id})
        rows = self.store.query(
            "SELECT issuer FROM bulletins WHERE id = ? AND state = 'active' "
            "UNION SELECT issuer FROM plays WHERE id = ? AND state = 'on_air'",
            (id, id),
        )
        if not rows:
            raise ControlError(f"no bulletin {id!r} is queued, scheduled or on air")
        for row in rows:
            self.inbox._cancel(row["issuer"], cancel)  # type: ignore[arg-type]
        return {"ok": True, "id": id, "issuers": [row["issuer"] for row in rows]}

    def _local(self, request: dict[str, Any]) -> dict[str, Any]:
        bid = f"{request['cmd']}-{uuid.uuid4().hex[:12]}"
        command: dict[str, Any] = {"type": "bulletin", "id": bid, "priority": "high"}
        if request["cmd"] == "say":
            command["text"] = request.get("text", "")
        else:
            # The file enters the audio cache under its hash, where the player finds it.
            sha = self.sources.admit(Path(request.get("file", "")))
            command["audio"] = {"url": f"http://localhost/{sha}", "sha256": sha}
        for key in ("rate", "volume", "chime"):
            if request.get(key) is not None:
                command[key] = request[key]
        bulletin = validate_command(command)
        self.inbox._bulletin(LOCAL_ISSUER, bulletin, datetime.now(timezone.utc))
        deadline = time.monotonic() + float(request.get("timeout_s", 600))
        while time.monotonic() < deadline:
            rows = self.store.query("SELECT state, detail FROM plays WHERE issuer = ? AND id = ?", (LOCAL_ISSUER, bid))
            if rows and rows[0]["state"] in TERMINAL:
                state, detail = rows[0]["state"], rows[0]["detail"]
                return {"ok": state == "done", "id": bid, "state": state, "detail": detail, "error": f"{state}: {detail}"}
            time.sleep(0.1)
        return {"ok": False, "id": bid, "error": "still queued or on air; see `loaxa queue`"}
