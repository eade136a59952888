"""Broker faults: the broker goes away mid-bulletin, and commands wait for a station that is off.

`run_broker_soak` (loaxa.testing.soak: many outages at random moments) is
shared with `scripts/soak.py broker`; CI runs a few rounds of it.
"""

from __future__ import annotations

import time

from loaxa.testing.audio import RATE, FifoSpeaker
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.soak import assert_in_order_without_gaps, run_broker_soak
from loaxa.testing.station import Province, StationProcess, distinct_by_seq, station_config

THREE = (
    "Thông báo của ủy ban nhân dân xã về lịch tiêm phòng. Sáng thứ hai, cán bộ thú y đến từng thôn. "
    "Mọi thắc mắc xin liên hệ trưởng thôn."
)


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
        assert speaker.heard(3.0) > 3.0
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


def test_broker_outages_at_random_moments(tmp_path):
    figures = run_broker_soak(tmp_path, rounds=3, seed=11)
    print(f"broker soak: {figures}")
    assert figures["outages"] == 3 and figures["bulletins_finished"] == 3
