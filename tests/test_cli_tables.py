"""Tables a person reads at 80 columns: `stations`, `log`, the publish receipts (issue 12)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from loaxa.cli._table import local_time, print_table
from loaxa.cli.log import LOG_COLUMNS
from loaxa.cli.stations import COLUMNS as STATION_COLUMNS
from loaxa.province.watch import LiveView, Tracker
from loaxa.testing.audio import wait_for_files
from loaxa.testing.broker import start_mosquitto
from loaxa.testing.station import Operator, StationProcess, station_config

LONG_ID = "hn/huyen-ba-vi-xa-tan-linh/loa-thon-dong-tam-03"


def rendered(columns, rows, width: int = 80) -> str:
    out = io.StringIO()
    print_table(columns, rows, console=Console(file=out, width=width, color_system=None))
    return out.getvalue()


def station_row(station: str) -> list[str]:
    voice = "espeak:vi (fallback: voice vi_VN-vais1000-medium is not installed in /opt/loaxa/tts_models)"
    return [station, "online", voice, "NOT synced", "b-20261201T122237-658", "0", "12:22:14"]


def test_stations_at_80_columns_keep_every_id_whole_and_the_header() -> None:
    text = rendered(STATION_COLUMNS, [station_row(LONG_ID), station_row("hn/ba-vi/loa-1")])
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert lines[0].split()[:2] == ["station", "link"]  # the header is there
    assert LONG_ID in text and "hn/ba-vi/loa-1" in text  # never cut, never folded
    assert "not shown at this width:" in text  # what was left out is said


def test_stations_at_110_columns_show_more_columns() -> None:
    narrow = rendered(STATION_COLUMNS, [station_row(LONG_ID)], 80)
    wide = rendered(STATION_COLUMNS, [station_row(LONG_ID)], 200)
    assert "last seen" in wide and "queue" in wide and "not shown" not in wide
    assert len(narrow.splitlines()[0].split()) < len(wide.splitlines()[0].split())


def test_log_rows_at_80_columns_keep_the_bulletin_id_whole() -> None:
    bid = "b-20261201T122237-658-a-rather-long-bulletin-id"
    row = ["14:02:11", bid, "1", "done", "asap", "12.5", "finished: 12.5 s on air, voice espeak:vi (fallback)"]
    text = rendered(LOG_COLUMNS, [row])
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert bid in text and "started" in text.splitlines()[0]


def test_times_are_shown_in_the_zone_asked_for() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    assert local_time("2026-12-01T10:30:00+00:00", hcm, now) == "17:30:00"  # today there: the time only
    assert local_time("2026-11-20T10:30:00+00:00", hcm, now) == "2026-11-20 17:30"
    assert local_time(None) == "-"


def test_the_receipts_table_has_its_header_and_bar_on_lines_of_their_own() -> None:
    tracker = Tracker("b-20261201T122237-658", 1, "finished", 0.0)
    tracker.expect(LONG_ID, True)
    tracker.event(LONG_ID, {"id": "b-20261201T122237-658", "event": "finished", "detail": "12 s on air"}, 3.0)
    view = LiveView(tracker, "bulletin b-20261201T122237-658 → province hn")
    out = io.StringIO()
    view.console = Console(file=out, width=80, height=30, force_terminal=True, color_system="standard")
    view.console.print(view._render())
    lines = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()
    assert set(lines[2]) <= {"━", "╸", "╺", " "} and "━" in lines[2]  # the bar, alone on its line
    assert lines[0].startswith("bulletin b-20261201T122237-658 → province hn")
    assert lines[1].startswith("1/1 finished")
    assert lines[3].split()[:2] == ["station", "status"]
    assert any(LONG_ID in line for line in lines[4:])
    assert all(len(line) <= 80 for line in lines)


@pytest.fixture
def station(tmp_path):
    broker = start_mosquitto(tmp_path)
    op = Operator(broker.host, broker.port)
    out = tmp_path / "aired"
    st = StationProcess(tmp_path / "st", station_config(tmp_path / "st", broker.port, f"wav:{out}")).start()
    op.wait_state(lambda s: s["online"], 30)
    yield st, op, out
    assert st.stop() == 0, st.log()
    op.close()
    broker.stop()


def test_log_at_80_columns_shows_the_station_s_own_clock(station) -> None:
    st, op, out = station
    op.send({"type": "bulletin", "id": "log-table-1", "text": "Xin chào bà con."})
    finished = op.wait_for("log-table-1", "finished", 60)
    wait_for_files(out, 1)
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", "log", "--config", str(st.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), done.stdout
    assert "Asia/Ho_Chi_Minh" in lines[0]
    row = next(line for line in lines if "log-table-1" in line)
    at = datetime.fromisoformat(finished["at"]).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    assert row.split()[0][:5] in {at.strftime("%H:%M"), (at.replace(minute=(at.minute - 1) % 60)).strftime("%H:%M")}


def test_the_queue_at_80_columns_keeps_ids_and_slots_whole() -> None:
    from loaxa.cli.status import QUEUE_COLUMNS

    bid = "b-20261201T122237-658-lich-tiem-phong-dai-cho-ca-xa"
    text = rendered(QUEUE_COLUMNS, [[bid, "normal", "queued", "2026-12-02 05:30", "3"]])
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert bid in text and "2026-12-02 05:30" in text
