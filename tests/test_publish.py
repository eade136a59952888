"""`loaxa publish`: targets, options, receipts per station, summary and exit code.

Against real `Station` objects (instant voice, null audio) on a real
Mosquitto, plus one real `loaxa run` child process for the whole path.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loaxa.cli import build_parser
from loaxa.cli.publish import build_command
from loaxa.errors import LoaxaError
from loaxa.province.targets import parse_target
from loaxa.province.watch import Tracker
from loaxa.testing.broker import start_mosquitto
from test_fleet_helpers import OFFLINE, Province, signing_security, start_province

ICT = timezone(timedelta(hours=7))
NOW = datetime(2025, 9, 14, 16, 0, tzinfo=ICT)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["publish", "--province", "tinh", *argv])


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Province:
    root = tmp_path_factory.mktemp("province")
    broker = start_mosquitto(root)
    prov = start_province(root / "stations", broker)
    yield prov
    prov.fleet.stop()
    broker.stop()


def run_json(province: Province, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = province.run("publish", *argv, "--json", "--timeout", "20")
    return code, json.loads(capsys.readouterr().out)


# -- building the command -------------------------------------------------------


def test_daily_schedule_with_days_and_expiry_from_options() -> None:
    args = parse(
        "--text", "Họp dân.", "--daily", "05:30,17:00", "--days", "mon,Wed", "--expires", "+2d", "--repeat", "2"
    )
    cmd = build_command(args, now=NOW)
    assert cmd["schedule"] == {"daily": ["05:30", "17:00"], "days": ["mon", "wed"]}
    assert cmd["repeat"] == 2
    assert datetime.fromisoformat(cmd["expires"]) == NOW + timedelta(days=2)


def test_at_clock_time_is_the_next_one_in_the_station_zone() -> None:
    later = build_command(parse("--text", "x", "--at", "17:30"), now=NOW)["schedule"]["at"]
    earlier = build_command(parse("--text", "x", "--at", "06:00"), now=NOW)["schedule"]["at"]
    assert datetime.fromisoformat(later) == datetime(2025, 9, 14, 17, 30, tzinfo=ICT)
    assert datetime.fromisoformat(earlier) == datetime(2025, 9, 15, 6, 0, tzinfo=ICT)


def test_file_fields_are_kept_and_options_override_them(tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"type": "bulletin", "id": "tin-1", "text": "Tin.", "priority": "low", "sig": "old"}))
    cmd = build_command(parse("--file", str(f), "--priority", "high"), now=NOW)
    assert cmd == {"type": "bulletin", "id": "tin-1", "text": "Tin.", "priority": "high"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--audio-url", "http://x/a.mp3"), "--sha256"),
        (("--text", "x", "--days", "mon"), "go with --daily"),
        (("--text", "x", "--at", "17:00", "--daily", "05:30"), "do not go together"),
        (("--text", "x", "--expires", "tomorrow"), "--expires"),
        (("--cancel", "bad id!"), "must be 1-64"),
    ],
)
def test_bad_options_say_what_is_wrong(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(LoaxaError, match=message):
        build_command(parse(*argv), now=NOW)


def test_targets_name_their_topics_and_stations() -> None:
    assert parse_target("group", "tinh/flood").topic("loaxa/v1") == "loaxa/v1/tinh/group/flood/cmd"
    assert parse_target("commune", "tinh/xa-a").covers("tinh/xa-a/loa-3") is True
    assert parse_target("group", "tinh/flood").covers("tinh/xa-a/loa-2", {"groups": []}) is False
    assert parse_target("group", "tinh/flood").covers("tinh/xa-a/loa-2", {}) is None  # does not say
    with pytest.raises(LoaxaError, match="PROVINCE/COMMUNE/STATION"):
        parse_target("station", "tinh/xa-a")


def test_exit_code_follows_the_worst_station() -> None:
    t = Tracker("b1", 1, "finished", 0.0)
    for s in ("p/c/a", "p/c/b"):
        t.expect(s, True)
    t.event("p/c/a", {"id": "b1", "rev": 1, "event": "finished"}, 1.0)
    t.event("p/c/b", {"id": "b1", "rev": 1, "event": "received"}, 1.0)
    assert not t.complete() and t.exit_code() == 2
    t.event("p/c/b", {"id": "b1", "rev": 0, "event": "failed"}, 1.0)  # another rev: not ours
    assert t.exit_code() == 2
    t.event("p/c/b", {"id": "b1", "rev": 1, "event": "failed", "detail": "no voice"}, 2.0)
    assert t.complete() and t.exit_code() == 1


# -- against stations ---------------------------------------------------------------


def test_province_bulletin_finishes_on_every_online_station(
    province: Province, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_json(province, capsys, "--province", "tinh", "--text", "Thông báo toàn tỉnh.", "--priority", "high")
    assert code == 0
    assert out["counts"]["expected"] == 5 and out["counts"]["finished"] == 5
    assert out["counts"]["offline"] == 1 and out["stations"][OFFLINE]["status"] == "offline"
    for station in province.stations:
        times = out["stations"][station]["times"]
        assert times["received"] <= times["started"] <= times["finished"]


def test_group_reaches_its_members_only(province: Province, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(province, capsys, "--group", "tinh/flood", "--text", "Cảnh báo lũ.")
    assert code == 0
    reached = {s for s, row in out["stations"].items() if row["status"] == "finished"}
    assert reached == {"tinh/xa-a/loa-1", "tinh/xa-b/loa-1"}


def test_scheduled_bulletin_waits_for_received_then_cancel(
    province: Province, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_json(
        province, capsys, "--commune", "tinh/xa-b", "--text", "Lịch họp.", "--at", "+2h", "--id", "hop-1"
    )
    assert code == 0 and out["goal"] == "scheduled"
    assert {s for s, r in out["stations"].items() if r["status"] == "scheduled"} == {
        "tinh/xa-b/loa-1",
        "tinh/xa-b/loa-2",
    }
    code, out = run_json(province, capsys, "--commune", "tinh/xa-b", "--cancel", "hop-1")
    assert code == 0 and out["counts"]["ok"] == 2


def test_plain_output_lists_receipts_and_summary(province: Province, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = province.run("publish", "--station", "tinh/xa-a/loa-2", "--text", "Một trạm.", "--timeout", "20")
    text = capsys.readouterr().out
    assert code == 0
    assert "tinh/xa-a/loa-2  received" in text and "tinh/xa-a/loa-2  finished" in text
    assert "summary: 1/1 finished" in text


def test_a_never_seen_station_is_named_at_once_not_waited_for(
    province: Province, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: publish to a station with no retained state says so now, not after --timeout."""
    started = time.monotonic()
    code = province.run("publish", "--station", "tinh/xa-z/loa-1", "--text", "Ai đó?", "--timeout", "60", "--plain")
    assert time.monotonic() - started < 15
    assert code == 2
    out = capsys.readouterr().out
    assert "tinh/xa-z/loa-1: no retained state on this broker: the station has never connected here" in out
    assert "1 never seen on this broker" in out


def test_a_never_seen_station_is_waited_for_when_asked(province: Province, capsys: pytest.CaptureFixture[str]) -> None:
    code = province.run(
        "publish", "--station", "tinh/xa-z/loa-1", "--text", "Ai đó?", "--timeout", "1", "--plain", "--wait-unseen"
    )
    assert code == 2
    assert "no `finished` within 1 s from: tinh/xa-z/loa-1" in capsys.readouterr().out


def test_a_scheduled_receipt_says_when_in_the_operator_s_zone(
    province: Province, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = province.run("publish", "--station", "tinh/xa-a/loa-2", "--text", "Lịch.", "--at", "+3h", "--plain")
    assert code == 0
    # the time alone when the slot is today in the operator's zone, with its date when +3h crosses midnight there
    slot = r"(\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d)"
    assert re.search(rf"tinh/xa-a/loa-2  scheduled \(first slot {slot}", capsys.readouterr().out)


def test_a_scheduled_receipt_warns_when_the_station_will_hold_it() -> None:
    """Issue 12: the operator sees why a scheduled slot will wait (the station's clock)."""
    from loaxa.province.fleet import StationView
    from loaxa.province.send import scheduled_detail

    body = {"event": "scheduled", "occurrence": "2030-01-02T05:30:00+07:00"}
    unsynced = StationView("tinh/xa-a/loa-1", {"online": True, "clock_synced": False})
    assert "clock is not synchronised: the slot is held until it is" in scheduled_detail(body, unsynced)
    synced = StationView("tinh/xa-a/loa-1", {"online": True, "clock_synced": True})
    assert scheduled_detail(body, synced).startswith("first slot 2030-01-0")
    assert "clock" not in scheduled_detail(body, synced)


def test_signed_stations_reject_unsigned_and_play_signed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broker = start_mosquitto(tmp_path)
    key = tmp_path / "issuer.key"
    prov = start_province(tmp_path / "stations", broker, security=signing_security(key))
    try:
        code, out = run_json(prov, capsys, "--commune", "tinh/xa-a", "--text", "Không ký.")
        assert code == 1
        assert {r["status"] for r in out["stations"].values() if r["expected"]} == {"rejected"}
        code, out = run_json(prov, capsys, "--commune", "tinh/xa-a", "--text", "Đã ký.", "--key", str(key))
        assert code == 0 and out["counts"]["finished"] == 3
    finally:
        prov.fleet.stop()
        broker.stop()
