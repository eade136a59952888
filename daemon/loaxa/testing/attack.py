"""The attack soak: hostile commands, legit bulletins and cancels, with kill -9 and broker restarts.

`run_attack` drives one signing station (a real `loaxa run` on a paced
ALSA speaker) on a real Mosquitto. Each round sends a signed bulletin (half
of them cancelled a moment later, often during the amplifier's warm-up) and
two hostile commands from `HOSTILE`, in turn (every case within five
rounds): a signature replayed to the province, no `to`, a duplicate key, an
altered or missing signature, pings naming a forbidden response topic, a
key that would forge a log line, broken JSON, and a recording whose
"server" answers with an SSH banner. Then, at random, the daemon is killed
(SIGKILL) or the broker restarted. At the end it counts, from the receipts:

    sent                  commands published
    rejected_with_reason  hostile commands answered `rejected`/`failed` with a detail
    aired                 legit bulletins that finished
    cancelled             legit bulletins cancelled
    lost                  commands never answered (must be 0)
    doubled               bulletins received or finished twice (must be 0)
    aired_after_cancel    cancelled bulletins heard after their `cancelled` (must be 0): speech
                          reaching the speaker later than the pipe's lag after the receipt,
                          or a `started`/`resumed`/`finished` receipt after it
    leaked                receipts quoting a remote server, a local path or a traceback (must be 0)

`scripts/soak.py attack --rounds N` prints them; tests/test_trust_hostile.py
runs a few rounds in CI. Needs mosquitto and espeak-ng.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loaxa.jsonwire import compact
from loaxa.security import public_key_b64, sign
from loaxa.testing.audio import RATE, FifoSpeaker, voiced_seconds
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import (
    PREFIX,
    STATION,
    Province,
    StationProcess,
    distinct_by_seq,
    logged_amplifier,
    station_config,
)

KID = "soak-attack"
SUNNY = "Xin chào bà con. Hôm nay trời nắng đẹp."
BANNER = "SSH-2.0-OpenSSH_9.2p1 loaxa-soak-banner"
FORGED = "CRITICAL loaxa.player: amplifier forced on"
TARGET = "/".join(STATION)
AIRING = ("started", "resumed", "finished")
MUST_BE_ZERO = ("lost", "doubled", "aired_after_cancel", "leaked")
WARMUP_S = 3.0  # the relay of the issue: a cancel during a 3 s warm-up aired in full
# The speaker's pipe holds 64 KiB, 1.5 s of audio: what the station wrote just before a cancel
# may still be heard that long after it. Speech later than this after `cancelled` was aired after it.
PIPE_LAG_S = 2.0
LISTEN_S = WARMUP_S + 4.0  # longer than the warm-up and the bulletin's speech


def _quiet(message: str) -> None:
    pass


class AirClock:
    """When the speaker heard what: (wall-clock time, bytes received so far), every 20 ms."""

    def __init__(self, speaker: FifoSpeaker) -> None:
        self.speaker = speaker
        self.marks: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.marks.append((time.time(), len(self.speaker.received)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def voiced_between(self, start: float, end: float) -> float:
        """Seconds of speech the speaker heard between two wall-clock times."""

        def offset(at: float) -> int:
            return next((n for t, n in self.marks if t >= at), self.marks[-1][1] if self.marks else 0) // 2

        samples = self.speaker.samples()
        return voiced_seconds(samples[offset(start) : offset(end)], RATE)


class BannerServer:
    """A TCP port that answers like an SSH server: what a receipt must never quote."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall((BANNER + "\r\n").encode())
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@dataclass
class Sent:
    """One command as published, and what its receipts must show."""

    id: str | None
    kind: str  # "legit", "cancelled", or the hostile case's name
    topic: str
    payload: bytes
    response_topic: str | None = None
    at: float = 0.0  # wall-clock time it was published


@dataclass
class Attacker:
    key: Ed25519PrivateKey
    banner_port: int
    sent: list[Sent] = field(default_factory=list)

    def signed(self, command: dict[str, Any], to: str | None = TARGET) -> dict[str, Any]:
        body = {**command, "to": to} if to is not None else command
        return sign(body, self.key, KID, issued=datetime.now(UTC))

    def own(self, kind: str, id: str | None, command: dict[str, Any] | bytes, **extra: Any) -> Sent:
        payload = command if isinstance(command, bytes) else compact(command).encode()
        return Sent(id, kind, f"{PREFIX}/{TARGET}/cmd", payload, **extra)


def _hostile_cases() -> dict[str, Callable[[Attacker, str], Sent]]:
    state_topic = f"{PREFIX}/{TARGET}/state"

    def replay(a: Attacker, id: str) -> Sent:
        other = a.signed({"type": "bulletin", "id": id, "text": SUNNY}, to=f"{STATION[0]}/{STATION[1]}/loa-9")
        return Sent(id, "replay", f"{PREFIX}/{STATION[0]}/cmd", compact(other).encode())

    def no_to(a: Attacker, id: str) -> Sent:
        return a.own("no_to", id, a.signed({"type": "bulletin", "id": id, "text": SUNNY}, to=None))

    def duplicate_key(a: Attacker, id: str) -> Sent:
        body = compact(a.signed({"type": "bulletin", "id": id, "text": SUNNY}))
        return a.own("duplicate_key", id, ('{"text":"Họp thôn.",' + body[1:]).encode())

    def altered(a: Attacker, id: str) -> Sent:
        return a.own(
            "altered", id, {**a.signed({"type": "bulletin", "id": id, "text": SUNNY}), "priority": "emergency"}
        )

    def unsigned(a: Attacker, id: str) -> Sent:
        return a.own("unsigned", id, {"type": "bulletin", "id": id, "text": SUNNY, "to": TARGET})

    def ping_state(a: Attacker, id: str) -> Sent:
        return a.own("ping_state", id, a.signed({"type": "ping", "id": id}), response_topic=state_topic)

    def ping_filter(a: Attacker, id: str) -> Sent:
        topic = f"{PREFIX}/{TARGET}/response/#"
        return a.own("ping_filter", id, a.signed({"type": "ping", "id": id}), response_topic=topic)

    def forged_log_line(a: Attacker, id: str) -> Sent:
        return a.own("forged_log_line", id, a.signed({"type": "bulletin", "id": id, "text": SUNNY, f"x\n{FORGED}": 1}))

    def broken_json(a: Attacker, id: str) -> Sent:
        return a.own("broken_json", None, b'{"type":"bulletin","id":"' + id.encode() + b'","text":')

    def banner(a: Attacker, id: str) -> Sent:
        audio = {"url": f"http://127.0.0.1:{a.banner_port}/bulletin.wav", "sha256": hashlib.sha256(b"x").hexdigest()}
        return a.own("banner", id, a.signed({"type": "bulletin", "id": id, "audio": audio}))

    cases = (replay, no_to, duplicate_key, altered, unsigned, ping_state, ping_filter, forged_log_line, broken_json)
    return {case.__name__: case for case in (*cases, banner)}


HOSTILE = _hostile_cases()


def run_attack(tmp: Path, *, rounds: int, seed: int, say: Callable[[str], None] = _quiet) -> dict[str, int]:
    """Run the rounds; returns the figures (see the module docstring). Never raises on a bad figure."""
    rng = random.Random(seed)
    key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    banner = BannerServer()
    broker = start_mosquitto(tmp)
    province = Province(broker.host, broker.port, client_id=f"province-attack-{seed}")
    speaker = FifoSpeaker(tmp)
    speaker.plug_in()
    root = tmp / "station"
    config = station_config(
        root,
        broker.port,
        speaker.name,
        audio__chime=False,
        mqtt__keepalive_s=5,
        security__require_signature=True,
        security__issuers=[{"kid": KID, "public_key": public_key_b64(key)}],
        security__max_commands_per_min=10_000,  # the attack is about content, not rate
        # A cancel often lands in the warm-up: the moment a play must be dropped at the last check.
        **logged_amplifier(tmp / "amplifier.log", warmup_s=WARMUP_S, hold_s=0.5),
    )
    station = StationProcess(root, config, env=speaker.env).start()
    clock = AirClock(speaker)
    attacker = Attacker(key, banner.port)
    faults: Counter[str] = Counter()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 60, "online state")
        for n in range(rounds):
            _round(n, rng, attacker, province)
            fault = rng.choice(("kill9", "broker", "none"))
            if fault == "kill9":
                station.kill()
                station.start()
            elif fault == "broker":
                broker.stop()
                time.sleep(rng.uniform(0.2, 2.0))
                broker.start()
            faults[fault] += 1
            say(f"round {n + 1}/{rounds}: {fault}")
        ping = attacker.own("sync", "last", attacker.signed({"type": "ping", "id": "last"}))
        try:
            province.wait(lambda: _all_answered(attacker.sent, province.events), 60 + 10 * rounds, "every answer")
            _publish(province, None, ping)
            province.wait_for("last", "pong", 60)
        except AssertionError as exc:
            say(f"not every command was answered in time: {exc}")
        clock.stop()
        leaks = (BANNER, "SSH-2.0", str(root), "Traceback")
        figures = count(attacker.sent, province.events, leaks=leaks, heard=clock.voiced_between)
        log = "\n".join(p.read_text(errors="replace") for p in sorted(root.glob("daemon-*.log")))
        figures["forged_log_lines"] = sum(1 for line in log.splitlines() if line.startswith(FORGED))
        figures.update({f"faults_{k}": v for k, v in faults.items()})
        return figures
    finally:
        clock.stop()
        station.stop()
        speaker.unplug()
        province.close()
        broker.stop()
        banner.close()


def _round(n: int, rng: random.Random, attacker: Attacker, province: Province) -> None:
    # One play at a time: the bulletin of this round goes on air at once, so its cancel can land in
    # the warm-up, and what the speaker hears after it is this play's or nobody's.
    earlier = [s for s in attacker.sent if s.kind in ("legit", "cancelled")]
    try:
        province.wait(lambda: not _unanswered(earlier, distinct_by_seq(province.events)), 60, "the last play")
    except AssertionError:
        pass  # counted as lost at the end if it never comes
    legit = f"a{n}"
    cancel = rng.random() < 0.5
    batch = [attacker.own("cancelled" if cancel else "legit", legit, attacker.signed(_bulletin(legit)))]
    names = sorted(HOSTILE)
    for i in range(2):  # every case within the first len(HOSTILE) / 2 rounds, then again
        batch.append(HOSTILE[names[(2 * n + i) % len(names)]](attacker, f"h{n}-{i}"))
    rng.shuffle(batch)
    for sent in batch:
        _publish(province, attacker, sent)
    if cancel:
        time.sleep(rng.uniform(0.0, WARMUP_S))
        _publish(province, attacker, attacker.own("cancel", legit, attacker.signed({"type": "cancel", "id": legit})))
        # Listen before the next fault: a cancelled play that airs anyway is heard in this time.
        time.sleep(LISTEN_S)
    time.sleep(rng.uniform(0.0, 1.0))


def _when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"]).timestamp()


def _bulletin(id: str) -> dict[str, Any]:
    return {"type": "bulletin", "id": id, "text": SUNNY}


def _publish(province: Province, attacker: Attacker | None, sent: Sent) -> None:
    """QoS 1, once the province is connected; `attacker` keeps the record of what was sent."""
    province.wait_connected()
    props = None
    if sent.response_topic is not None:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = sent.response_topic
        props.CorrelationData = b"soak"
    sent.at = time.time()
    province.client.publish(sent.topic, sent.payload, qos=1, properties=props).wait_for_publish(10)
    if attacker is not None:
        attacker.sent.append(sent)


def _all_answered(sent: list[Sent], arrivals: list[dict[str, Any]]) -> bool:
    return not _unanswered(sent, distinct_by_seq(arrivals))


def _unanswered(sent: list[Sent], events: list[dict[str, Any]]) -> list[Sent]:
    """What has no final answer yet: a bulletin neither finished nor cancelled, a hostile command not refused."""
    by_id: dict[str | None, set[str]] = {}
    for e in events:
        by_id.setdefault(e.get("id"), set()).add(e["event"])
    anonymous = sum(1 for e in events if e.get("id") is None and e["event"] == "rejected")
    missing = []
    for s in sent:
        if s.kind == "broken_json":  # no id to read: counted against the anonymous rejections
            anonymous -= 1
            done = anonymous >= 0
        elif s.kind == "cancel":
            done = True  # its bulletin's answer is what counts
        elif s.kind in ("legit", "cancelled"):
            done = bool({"finished", "cancelled"} & by_id.get(s.id, set()))
        else:
            done = bool({"rejected", "failed"} & by_id.get(s.id, set()))
        if not done:
            missing.append(s)
    return missing


def count(
    sent: list[Sent],
    arrivals: list[dict[str, Any]],
    leaks: tuple[str, ...],
    heard: Callable[[float, float], float] | None = None,
) -> dict[str, int]:
    """The soak's figures from what was sent and the receipts that came back.

    `heard(start, end)`: seconds of speech the speaker heard between two wall-clock times.
    """
    events = distinct_by_seq(arrivals)
    seqs = [e["seq"] for e in events]
    hostile = [s for s in sent if s.kind not in ("legit", "cancelled", "cancel")]
    reasoned = [e for e in events if e["event"] in ("rejected", "failed") and str(e.get("detail") or "").strip()]
    answered = {e.get("id") for e in reasoned}
    anonymous = sum(1 for e in reasoned if e.get("id") is None)
    broken = sum(1 for s in hostile if s.kind == "broken_json")
    bulletins = [s for s in sent if s.kind in ("legit", "cancelled")]
    kinds = Counter((e.get("id"), e["event"]) for e in events)
    after_cancel = 0
    for s in bulletins:
        mine = [e for e in events if e.get("id") == s.id]
        cancel = next((e for e in mine if e["event"] == "cancelled"), None)
        if cancel is None:
            continue
        receipted = any(e["seq"] > cancel["seq"] and e["event"] in AIRING for e in mine)
        # From when the operator sent the cancel (the receipt may be written later) until another
        # play goes on air (its own sound comes after its warm-up).
        at = min(c.at for c in sent if c.kind == "cancel" and c.id == s.id)
        others = [_when(e) for e in events if e.get("id") != s.id and e["event"] in AIRING[:2] and _when(e) > at]
        until = min(others, default=time.time())
        spoke = heard is not None and until > at + PIPE_LAG_S and heard(at + PIPE_LAG_S, until) > 0.2
        after_cancel += receipted or spoke
    leaked = [e for e in events if any(word in json.dumps(e, ensure_ascii=False) for word in leaks)]
    return {
        "sent": len(sent),
        "hostile": len(hostile),
        "rejected_with_reason": sum(1 for s in hostile if s.id is not None and s.id in answered)
        + min(anonymous, broken),
        "aired": sum(1 for s in bulletins if kinds[(s.id, "finished")] >= 1),
        "cancelled": sum(1 for s in bulletins if kinds[(s.id, "cancelled")] >= 1),
        "lost": len(_unanswered(sent, events)),
        "doubled": sum(1 for s in bulletins if kinds[(s.id, "received")] > 1 or kinds[(s.id, "finished")] > 1),
        "aired_after_cancel": after_cancel,
        "leaked": len(leaked),
        "events": len(events),
        "seq_gaps": len(set(range(1, max(seqs) + 1)) - set(seqs)) if seqs else 0,
    }
