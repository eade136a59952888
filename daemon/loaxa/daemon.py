"""The station daemon: builds the stages from their parts, starts, watches, stops.

    MQTT ─▶ inbox ─▶ ledger/store ◀─ scheduler   (threads hand over through
                       │                          the store and bounded queues)
                       ▼
                     queue ─▶ player ─▶ sources (speech, recordings, relays) ─▶ output + amplifier
                       │
                    reports ─▶ MQTT (events in order, retained state)

`Station` is the composition root: every part that touches hardware or the
outside (store, voice, audio sink, amplifier relay, clock) can be passed in,
and is built from the settings otherwise.
"""

from __future__ import annotations

import logging
import signal
import threading

from loaxa.approval import ApprovalPolicy
from loaxa.archive import Archive, ArchivingSink
from loaxa.broadcast_queue import BroadcastQueue
from loaxa.clock import ClockGuard
from loaxa.config import Settings
from loaxa.control import ControlServer
from loaxa.health import Health, Loop, thread_loop
from loaxa.inbox import Inbox
from loaxa.jsonwire import compact_bytes
from loaxa.link import Link
from loaxa.live import LiveControl
from loaxa.player.amplifier import build_amplifier
from loaxa.player.output import Sink, build_sink
from loaxa.player.player import Player
from loaxa.player.relays import Relay
from loaxa.reports import Reporter, StationState
from loaxa.schedule import Scheduler
from loaxa.security import RateLimiter, Verifier
from loaxa.sources.live import LiveSource
from loaxa.sources.registry import address_policy, build_sources
from loaxa.speech.ahead import VoiceAhead
from loaxa.speech.engine import Voice
from loaxa.speech.pipeline import build_speaker
from loaxa.store import Ledger, Store
from loaxa.systemd import Notifier
from loaxa.technician import Technician
from loaxa.topics import Topics

log = logging.getLogger(__name__)


class Station:
    """Every stage of one station, started and stopped in order."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        voice: Voice | None = None,
        sink: Sink | None = None,
        relay: Relay | None = None,
        clock: ClockGuard | None = None,
    ) -> None:
        s = settings
        self.settings = s
        self.stopping = threading.Event()
        tz = s.station.tz
        self.topics = Topics(s.mqtt.prefix, s.station.province, s.station.commune, s.station.id, s.mqtt.groups)
        self.store = store or Store(s.storage.dir / "station.db")
        self.ledger = Ledger(self.store, s.station.path)
        self.clock = clock or ClockGuard(s.clock.require_sync)
        self.speaker = build_speaker(
            s.tts, s.text, s.audio.sample_rate_hz, cache_dir=s.storage.dir / "cache", voice=voice
        )
        self.ahead = VoiceAhead(self.speaker)
        self.amplifier = build_amplifier(s.amplifier, relay)
        self.queue = BroadcastQueue(self.ledger, tz, s.broadcast.quiet_hours, self.clock.ok)
        self.sources = build_sources(
            self.speaker,
            rate=s.audio.sample_rate_hz,
            default_rate=s.tts.rate,
            audio_dir=s.storage.dir / "audio",
            max_bytes=int(s.security.max_download_mb * 1_000_000),
            cache_max_bytes=s.storage.audio_cache_mb * 1_000_000,
            on_ready=lambda: self.player.attention(),
            addresses=address_policy(s.security.allow_private_urls, s.security.private_url_hosts),
            live=LiveSource(s.audio.live_input, s.audio.sample_rate_hz, s.audio.latency_s)
            if s.audio.live_input
            else None,
        )
        sink = sink or build_sink(s.audio.output, s.audio.latency_s)
        self.archive = self._archive(sink)
        self.player = Player(
            settings=s,
            ledger=self.ledger,
            queue=self.queue,
            sources=self.sources,
            sink=ArchivingSink(sink, self.archive) if self.archive is not None else sink,
            amplifier=self.amplifier,
            voice_name=lambda: str(self.speaker.status()["name"]),
        )
        self.scheduler = Scheduler(
            self.ledger,
            tz,
            s.broadcast.grace_s,
            self.clock.ok,
            self.player.attention,
            self.ahead.prepare,
            prewarm=self.amplifier.prewarm,
            warmup_s=self.amplifier.warmup_s,
        )
        self.inbox = Inbox(
            ledger=self.ledger,
            scheduler=self.scheduler,
            verifier=Verifier(s.security),
            limiter=RateLimiter(s.security.max_commands_per_min),
            max_queue=s.broadcast.max_queue,
            on_queued=lambda b: self.player.attention(),
            stop_play=self.player.stop_play,
            respond=lambda topic, payload, correlation: self.link.respond(topic, payload, correlation),
            fetch_ahead=self.sources.fetch_ahead,
            approval=ApprovalPolicy(s.approval),
            response_root=self.topics.response,
        )
        self.state = StationState(
            settings=s,
            voice=self.speaker.status,
            on_air=lambda: self.player.on_air_id,
            waiting=self.queue.waiting,
            clock_synced=lambda: self.clock.synced,
            last_command_at=lambda: self.inbox.last_command_at,
            audio_error=lambda: self.player.audio_error,
            amplifier_fault=lambda: self.amplifier.relay.fault,
            storage=self.store.status,
        )
        client_id = f"loaxa-{s.station.province}-{s.station.commune}-{s.station.id}"
        will = (self.topics.state, compact_bytes(self.state(online=False)))
        self.link = Link(s.mqtt, client_id, self.topics.commands, will, self.inbox.submit)
        self.state.link = self.link.status
        self.state.archive = self.archive.status if self.archive is not None else None
        self.reporter = Reporter(
            store=self.store,
            link=self.link,
            event_topic=self.topics.event,
            state_topic=self.topics.state,
            state=self.state,
            prune=lambda: self.ledger.prune(keep_s=s.storage.keep_days * 86400, keep_events=s.storage.keep_events),
        )
        self.health = Health(
            [
                Loop("MQTT loop", self.link.alive),
                Loop("scheduler", self.scheduler.alive),
                thread_loop("player", self.player),
                thread_loop("inbox", self.inbox),
                thread_loop("reporter", self.reporter),
                Loop("voice-ahead", self.ahead.alive),
                # Never a reason to restart (that would cut what is on air): a fault only.
                *([Loop("archive", lambda: True, fault=self.archive.fault)] if self.archive is not None else []),
            ],
            stall_s=s.service.watchdog_stall_s,
        )
        self.technician = Technician(
            inbox=self.inbox,
            ledger=self.ledger,
            scheduler=self.scheduler,
            queue=self.queue,
            audio=self.sources.audio,
            status=lambda: {"state": self.state(), "health": self.health.problems(), "faults": self.health.faults()},
            on_air=lambda: self.player.on_air_id,
            live=LiveControl(
                ledger=self.ledger,
                source=self.sources.live,
                inbox=self.inbox,
                attention=self.player.attention,
                on_air=lambda: self.player.on_air_id,
            ).handle,
        )
        self.control = ControlServer(s.control_socket, self.technician.handle)
        self.notifier = Notifier()

    def _archive(self, sink: Sink) -> Archive | None:
        """The on-air archive, when `archive.enabled`: a copy of what goes to `sink`."""
        s = self.settings
        if not s.archive.enabled:
            return None
        return Archive(s.archive, s.archive_dir, self.store, s.station.tz, rate=s.audio.sample_rate_hz)

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
                problems = self.health.problems()
                if problems:
                    log.error("unhealthy, withholding the watchdog ping: %s", "; ".join(problems))
                else:
                    self.notifier.watchdog()
        finally:
            self.notifier.stopping()
            self.stop()
        return 0

    def start(self) -> None:
        recovered = self.ledger.recover()
        if recovered:
            log.info("%d play(s) were on air at the last stop; they resume", recovered)
        self.control.start()
        self.ahead.start()
        if self.archive is not None:
            self.archive.start()
        self.player.start()
        self.scheduler.start()
        self.inbox.start()
        self.reporter.start()
        self.link.start()
        log.info(
            "station %s up: voice %s, output %s",
            self.settings.station.path,
            self.speaker.status()["name"],
            self.settings.audio.output,
        )

    def stop(self) -> None:
        """Reverse order of start; the amplifier is always switched off."""
        try:
            self.control.stop()
            self.inbox.stop()
            self.scheduler.stop()
            self.player.stop()
            self.player.join(timeout=10)
            if self.archive is not None:
                self.archive.stop()
            if self.sources.audio is not None:
                self.sources.audio.close(timeout_s=1.0)
            self.reporter.stop()
            self.reporter.join(timeout=5)
            self.ahead.stop()
            self.link.stop(final=(self.topics.state, compact_bytes(self.state(online=False))))
        finally:
            self.amplifier.shutdown()
            self.speaker.close()
            self.store.close()
