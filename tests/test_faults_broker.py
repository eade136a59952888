"""Broker faults: the broker goes away mid-bulletin, and commands wait for a station that is off.

`run_broker_soak` (many outages at random moments) is shared with
`scripts/soak.py broker`; CI runs a few rounds of it.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from loaxa.testing.audio import RATE, FifoSpeaker, voiced_seconds
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Province, StationProcess, distinct_by_seq, station_config

THREE = "Thông báo của ủy ban nhân dân xã về lịch tiêm phòng. Sáng thứ hai, cán bộ thú y đến từng thôn. Mọi thắc mắc xin liên hệ trưởng thôn."


def assert_in_order_without_gaps(province: Province) -> None:
    """Arrivals in `seq` order (redeliveries aside), and no seq missing."""
    seqs = [e["seq"] for e in province.events]
    firsts = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
    assert firsts == sorted(firsts), firsts
    assert firsts == list(range(firsts[0], firsts[0] + len(firsts))), firsts


def test_broker_restart_mid_bulletin_playback_goes_on_and_events_arrive_in_order(tmp_path):
    broker = start_mosquitto(tmp_path)
    province = Province(broker.host, broker.port)
    speaker = FifoSpeaker(tmp_path)
    speaker.plug_in()
    root = tmp_path / "station"
    config = station_config(root, broker.port, speaker.name, audio__chime=False)
    station = StationProcess(root, config, env=speaker.env).start()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        province.send({"type": "bulletin", "id": "br-1", "text": THREE})
        province.wait_for("br-1", "started", 30)
        time.sleep(0.5)
        broker.stop()
        heard_at_stop = len(speaker.samples())
        time.sleep(2.0)
        heard_while_down = len(speaker.samples()) - heard_at_stop
        broker.start()
        province.wait_for("br-1", "finished", 60)
        assert province.of("br-1") == ["received", "started", "finished"]
        assert heard_while_down > RATE, "the bulletin kept playing while the broker was down"
        assert voiced_seconds(speaker.samples(), RATE) > 3.0
        province.send({"type": "ping", "id": "br-ping"})
        province.wait_for("br-ping", "pong", 20)
        assert_in_order_without_gaps(province)
        assert station.alive()
    finally:
        code = station.stop()
        speaker.unplug()
        province.close()
        broker.stop()
    assert code == 0, station.log()


def test_commands_sent_while_the_station_is_off_arrive_when_it_returns(tmp_path):
    broker = start_mosquitto(tmp_path)
    province = Province(broker.host, broker.port)
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}")).start()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        assert station.stop() == 0, station.log()
        province.wait(lambda: not province.states[-1]["online"], 10, "offline state")
        for n in (1, 2, 3):
            province.send({"type": "bulletin", "id": f"off-{n}", "text": "Xin chào bà con.", "chime": False})
        broker.restart()  # the queued commands survive a broker restart too (persistence)
        station.start()
        for n in (1, 2, 3):
            province.wait_for(f"off-{n}", "finished", 60)
            assert province.of(f"off-{n}") == ["received", "started", "finished"]
        received = [e["id"] for e in distinct_by_seq(province.events) if e["event"] == "received"]
        assert received == ["off-1", "off-2", "off-3"]
        assert_in_order_without_gaps(province)
    finally:
        code = station.stop()
        province.close()
        broker.stop()
    assert code == 0, station.log()


def run_broker_soak(tmp: Path, rounds: int, seed: int, say: Any = lambda *a: None) -> dict[str, int]:
    """Stop and restart the broker at random moments while bulletins play; returns figures."""
    rng = random.Random(seed)
    broker = start_mosquitto(tmp)
    province = Province(broker.host, broker.port, client_id=f"province-soak-{seed}")
    speaker = FifoSpeaker(tmp)
    speaker.plug_in()
    root = tmp / "station"
    station = StationProcess(root, station_config(root, broker.port, speaker.name, audio__chime=False), env=speaker.env).start()
    ids: list[str] = []
    figures: Counter[str] = Counter()
    try:
        province.wait(lambda: any(s["online"] for s in province.states), 30, "online state")
        for n in range(rounds):
            ids.append(f"b{n}")
            province.send({"type": "bulletin", "id": f"b{n}", "text": "Xin chào bà con. Hôm nay trời nắng đẹp."})
            time.sleep(rng.uniform(0.0, 2.0))
            broker.stop()
            down = rng.uniform(0.2, 3.0)
            time.sleep(down)
            broker.start()
            figures["outages"] += 1
            say(f"round {n + 1}/{rounds}: broker down {down:.1f} s")
        province.wait(lambda: all(any(e["id"] == id and e["event"] == "finished" for e in province.events) for id in ids),
                      60 + 5 * rounds, "every bulletin finished")  # fmt: skip
        province.send({"type": "ping", "id": "last"})
        province.wait_for("last", "pong", 30)
        assert_in_order_without_gaps(province)
        for id in ids:
            assert province.of(id) == ["received", "started", "finished"], (id, province.of(id))
        figures["events_checked"] = len(distinct_by_seq(province.events))
        figures["redelivered"] = len(province.events) - figures["events_checked"]
        figures["bulletins_finished"] = len(ids)
        assert station.alive()
        return dict(figures)
    finally:
        code = station.stop()
        speaker.unplug()
        province.close()
        broker.stop()
        figures["exit_code"] = code or 0


def test_broker_outages_at_random_moments(tmp_path):
    figures = run_broker_soak(tmp_path, rounds=3, seed=11)
    print(f"broker soak: {figures}")
    assert figures["outages"] == 3 and figures["bulletins_finished"] == 3
