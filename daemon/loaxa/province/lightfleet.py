"""Light stations: thousands of protocol-level stations in one asyncio process.

Each `LightStation` holds one MQTT connection as a station does (MQTT 5,
client id `loaxa-P-C-S`, clean start off, a session expiry, QoS 1, its
retained `state` and the offline Last Will) and answers commands with
receipts numbered by `seq`: a bulletin gets `received`, then `started` and
`finished`; a ping gets a `pong`. No audio, no synthesis, no store: the
broker and the province server are what a run measures. The outbox is
paho's in-memory queue (resent after a reconnect), not the real station's
SQLite outbox; for kill -9 of a station, use the real station.

It sends what the real station sends, no less: its reporter republishes the
retained state whenever the state changed (the queue and
`last_command_at` at `received`, `on_air` at `started` and at `finished`),
each time just before the receipts of that round, and every 60 s in any case
(`loaxa.reports`; any command changes `last_command_at`, to the second, so
a ping is answered with a state too), and the state carries the same fields. With `REAL`
timing, `started` comes after the amplifier's warm-up (1.5 s, the default
`amplifier.warmup_s`, waited for the first play even with no relay) and
`finished` after the lead silence, both chimes and the text spoken at the
Vietnamese medium voice's pace (50 s for 771 characters, FIELD-NOTES), and
the state every 60 s; the synthesis of the first sentence, which comes
before `started` on a board, is left out, so receipts come no later than a
real station's. `QUICK` (the default, for tests) answers at once, plays
0.5 s (or `play_s`) and republishes its state only when it changes, so a
test decides when a station falls silent.

All clients run on one event loop through paho's socket callbacks: no
thread per station. `sent` keeps when each receipt was published, for
measuring the time until the server stored it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa import __version__
from loaxa.jsonwire import compact_bytes
from loaxa.protocol import now_iso
from loaxa.topics import Topics

log = logging.getLogger(__name__)

MISC_EVERY_S = 1.0  # paho's keep-alive and retry bookkeeping for every client
STATE_EVERY_S = 60.0  # as loaxa.reports: a live station's state at least this often


@dataclass(frozen=True)
class Timing:
    """How long a light station takes from `received` to `started` and from `started` to `finished`."""

    warmup_s: float = 0.0  # the amplifier's warm-up before `started`
    lead_s: float = 0.0  # audio.lead_silence_s
    chimes_s: float = 0.0  # the opening and the closing chime together
    s_per_char: float = 0.0  # speech: seconds per character of the text
    sentence_silence_s: float = 0.0  # after each sentence
    fixed_s: float = 0.5  # added to the rest (QUICK's whole play)
    state_every_s: float | None = None  # the state republished this often; None: only when it changes

    def play_s(self, text: str) -> float:
        sentences = max(1, sum(text.count(c) for c in ".!?"))
        speech = len(text) * self.s_per_char + sentences * self.sentence_silence_s
        return self.fixed_s + self.lead_s + self.chimes_s + speech


QUICK = Timing()
# The station's defaults: warmup_s 1.5, lead_silence_s 0.3, two chimes of 2 x 0.45 s + 0.25 s, sentence
# silence 0.25 s; speech at 50 s per 771 characters (the medium Vietnamese voice, measured).
REAL = Timing(
    warmup_s=1.5,
    lead_s=0.3,
    chimes_s=2 * 1.15,
    s_per_char=50 / 771,
    sentence_silence_s=0.25,
    fixed_s=0.0,
    state_every_s=STATE_EVERY_S,
)


class LightStation:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        path: tuple[str, str, str],
        *,
        prefix: str = "loaxa/v1",
        groups: tuple[str, ...] = (),
        timing: Timing = QUICK,
        play_s: float | None = None,
        on_sent: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.loop = loop
        self.path = "/".join(path)
        self.topics = Topics(prefix, *path, groups=groups)
        self.groups = groups
        # `play_s`: the whole play, whatever the text (tests that need a station to stay on air).
        self.timing = timing if play_s is None else Timing(warmup_s=timing.warmup_s, fixed_s=play_s)
        self.on_sent = on_sent
        self.seq = 0
        self.last_command: str | None = None  # the id of the last command answered
        self.last_command_at: str | None = None
        self.on_air: str | None = None
        self.queue = 0  # bulletins received and not yet ended
        self.state_at = 0.0  # when the state was last published (monotonic)
        self.states = 0  # states published
        self.connected = asyncio.Event()
        self.started = time.monotonic()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"loaxa-{'-'.join(path)}", protocol=mqtt.MQTTv5
        )
        client.max_inflight_messages_set(100)
        client.will_set(self.topics.state, compact_bytes(self.state(online=False)), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self.connected.clear()
        client.on_message = self._on_message
        client.on_socket_open = lambda c, u, sock: loop.add_reader(sock, c.loop_read)
        client.on_socket_close = lambda c, u, sock: None if loop.remove_reader(sock) else None
        client.on_socket_register_write = lambda c, u, sock: loop.add_writer(sock, c.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: None if loop.remove_writer(sock) else None
        self.client = client

    def state(self, online: bool = True) -> dict[str, Any]:
        return {
            "online": online,
            "version": __version__,
            "station": self.path,
            "groups": list(self.groups),
            "voice": {"engine": "sim", "name": "light", "fallback": False, "reason": None},
            "on_air": self.on_air,
            "queue": self.queue if online else 0,
            "clock_synced": True,
            "last_command_at": self.last_command_at,
            "uptime_s": int(time.monotonic() - self.started),
            "at": now_iso(),
            "audio": {"output": "null", "error": None},
            "amplifier": {"backend": "none", "fault": None},
            "link": {
                "state": "connected",
                "since": None,
                "error": None,
                "broker": None,
                "failed_attempts": 0,
                "stalls": 0,
                "last_stall_at": None,
                "last_stall": None,
            },
            "archive": {"enabled": False},
            "storage": {
                "fault": None,
                "since": None,
                "failed_writes": 0,
                "refused_commands": 0,
                "store": "light",
                "incident": None,
            },
        }

    def connect(self, host: str, port: int) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 24 * 3600
        self.client.connect(host, port, keepalive=60, clean_start=False, properties=props)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def misc(self) -> None:
        """Keep-alive and the state every 60 s; reconnect a dropped connection (the broker restarted)."""
        if self.client.is_connected():
            self.client.loop_misc()
            every = self.timing.state_every_s
            if every is not None and time.monotonic() - self.state_at >= every:
                self.publish_state()
            return
        try:
            self.client.reconnect()
        except OSError:
            pass  # the broker is still down: next round

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        opts = mqtt.SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(t, opts) for t in self.topics.commands])
        self.publish_state()
        self.connected.set()

    def publish_state(self) -> None:
        self.state_at = time.monotonic()
        self.states += 1
        self.client.publish(self.topics.state, compact_bytes(self.state()), qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return  # a station ignores a retained command
        try:
            command = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            self.emit(None, 1, "rejected", "not a JSON object")
            return
        if not isinstance(command, dict):
            return
        kind, bid, rev = command.get("type"), str(command.get("id")), command.get("rev", 1)
        self.last_command = bid
        changed = self.last_command_at != (at := datetime.now(UTC).isoformat(timespec="seconds"))
        self.last_command_at = at  # as the inbox keeps it: to the second
        if kind == "ping":
            if changed:
                self.publish_state()
            self.emit(bid, None, "pong")
        elif kind == "bulletin":
            self.queue += 1
            self.publish_state()  # the reporter's round: the changed state, then the receipt
            self.emit(bid, rev, "received", f"{command.get('priority', 'normal')}, text")
            play_s = self.timing.play_s(str(command.get("text", "")))
            self.loop.call_later(self.timing.warmup_s, self._start, bid, rev, play_s)
        elif kind == "cancel":
            self.emit(bid, None, "cancelled")

    def _start(self, bid: str, rev: int, play_s: float) -> None:
        self.on_air = bid
        self.publish_state()
        self.emit(bid, rev, "started")
        self.loop.call_later(play_s, self._finish, bid, rev, play_s)

    def _finish(self, bid: str, rev: int, play_s: float) -> None:
        self.on_air = None
        self.queue = max(0, self.queue - 1)
        self.publish_state()
        self.emit(bid, rev, "finished", f"{play_s:.1f} s on air, voice sim:light")

    def emit(self, bid: str | None, rev: int | None, event: str, detail: str | None = None) -> None:
        self.seq += 1
        body: dict[str, Any] = {"id": bid, "rev": rev, "event": event, "at": now_iso(), "station": self.path}
        if detail is not None:
            body["detail"] = detail
        body["seq"] = self.seq
        self.client.publish(self.topics.event, compact_bytes(body), qos=1)
        if self.on_sent is not None:
            self.on_sent(self.path, self.seq, time.time())

    def close(self) -> None:
        if self.client.is_connected():
            self.client.publish(self.topics.state, compact_bytes(self.state(online=False)), qos=1, retain=True)
        self.client.disconnect()


class LightFleet:
    """Many light stations on the running event loop."""

    def __init__(self, paths: list[tuple[str, str, str]], **options: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.sent: dict[tuple[str, int], float] = {}
        self.stations = [
            LightStation(self.loop, p, on_sent=lambda s, q, at: self.sent.__setitem__((s, q), at), **options)
            for p in paths
        ]
        self._misc: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int, per_round: int = 200) -> None:
        """Connect every station (a few hundred per loop turn), then wait for their CONNACKs."""
        for i, station in enumerate(self.stations):
            station.connect(host, port)
            if i % per_round == per_round - 1:
                await asyncio.sleep(0)
        self._misc = asyncio.create_task(self._keep_alive())
        await asyncio.gather(*(s.connected.wait() for s in self.stations))

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(MISC_EVERY_S)
            for station in self.stations:
                station.misc()

    async def close(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
        for station in self.stations:
            station.close()
        await asyncio.sleep(0.2)  # let the offline states and DISCONNECTs go out


class BackgroundFleet:
    """A `LightFleet` on an event loop in a thread of its own, for synchronous callers (tests)."""

    def __init__(self, paths: list[tuple[str, str, str]], host: str, port: int, **options: Any) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="light-fleet", daemon=True)
        self._thread.start()
        self.fleet: LightFleet = self._call(self._make(paths, host, port, options), timeout_s=120)

    async def _make(
        self, paths: list[tuple[str, str, str]], host: str, port: int, options: dict[str, Any]
    ) -> LightFleet:
        fleet = LightFleet(paths, **options)
        await fleet.connect(host, port)
        return fleet

    def _call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def seqs(self) -> dict[str, int]:
        """Each station's last `seq`: the receipts it has sent so far."""

        async def read() -> dict[str, int]:
            return {s.path: s.seq for s in self.fleet.stations}

        return dict(self._call(read()))

    def last_commands(self) -> dict[str, str | None]:
        """The id of the last command each station answered."""

        async def read() -> dict[str, str | None]:
            return {s.path: s.last_command for s in self.fleet.stations}

        return dict(self._call(read()))

    def close(self) -> None:
        try:
            self._call(self.fleet.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
