"""`loaxa cap`: CAP 1.2 documents become bulletins that stations play, once or as a bridge."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loaxa.cli import build_parser, main
from loaxa.cli.cap import NOTHING, Bridge
from loaxa.province.capfeed import documents
from loaxa.province.targets import parse_target
from loaxa.testing.broker import start_mosquitto
from test_fleet_helpers import Province, start_province

DATA = Path(__file__).parent / "data" / "cap"
SAMPLE_NOW = "2025-09-14T08:05:00+07:00"  # the samples' own "now": sent, not yet expired
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


_shifts: list[timedelta] = []


def fresh(name: str, folder: Path) -> Path:
    """A sample with every time moved so that it was sent five minutes ago.

    Each call moves the times by at least a second more than the last: the rev
    is the whole seconds of <sent>, and two calls within one second would make
    the same alert twice, which the stations rightly answer `duplicate` (the
    bridge test failed so when it ran within a second of the live-alert test).
    """
    shift = datetime.now(UTC) - datetime.fromisoformat(SAMPLE_NOW)
    if _shifts and shift < _shifts[-1] + timedelta(seconds=1):
        shift = _shifts[-1] + timedelta(seconds=1)
    _shifts.append(shift)
    text = (DATA / name).read_text(encoding="utf-8")
    moved = STAMP.sub(lambda m: (datetime.fromisoformat(m.group()) + shift).isoformat(timespec="seconds"), text)
    path = folder / name
    path.write_text(moved, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Province:
    root = tmp_path_factory.mktemp("cap-province")
    broker = start_mosquitto(root)
    prov = start_province(root / "stations", broker)
    yield prov
    prov.fleet.stop()
    broker.stop()


def test_shows_the_bulletin_an_alert_becomes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cap", str(DATA / "storm_alert.xml"), "--now", SAMPLE_NOW]) == 0
    out = capsys.readouterr()
    command = json.loads(out.out)
    assert command["type"] == "bulletin" and command["priority"] == "emergency"
    assert command["expires"] == "2025-09-16T18:00:00+07:00"
    assert command["text"].startswith("Tin bão khẩn cấp: Bão số 3")
    assert "Alert BCH-PCTT-2025-0914-001 → bulletin cap-85ec19c06ffce2b1 (emergency)" in out.err


def test_test_alert_is_never_aired(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cap", str(DATA / "test_alert.xml"), "--now", SAMPLE_NOW, "--province", "tinh"]) == NOTHING
    out = capsys.readouterr()
    assert "status is Test: never aired live" in out.err and out.out == ""


def test_malformed_document_is_named_and_the_rest_still_read(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["cap", str(DATA / "malformed.xml"), str(DATA / "storm_cancel.xml"), "--now", SAMPLE_NOW]) == 1
    assert "malformed.xml: CAP document is not well-formed XML" in caplog.text
    assert json.loads(capsys.readouterr().out) == {
        "type": "cancel",
        "id": "cap-85ec19c06ffce2b1",
        "issued": "2025-09-16T09:00:00+07:00",
    }


def test_atom_feed_entries_are_fetched(tmp_path: Path) -> None:
    fresh("storm_alert.xml", tmp_path)
    fresh("flood_alert.xml", tmp_path)
    (tmp_path / "feed.atom").write_text(
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>Cảnh báo</title>'
        '<entry><link type="application/cap+xml" href="storm_alert.xml"/></entry>'
        '<entry><link href="flood_alert.xml"/></entry></feed>',
        encoding="utf-8",
    )
    docs = documents(str(tmp_path / "feed.atom"))
    assert [Path(d.source).name for d in docs] == ["storm_alert.xml", "flood_alert.xml"]


def test_live_alert_is_played_by_every_station(
    province: Province, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alert = fresh("storm_alert.xml", tmp_path)
    capsys.readouterr()
    assert province.run("cap", str(alert), "--province", "tinh", "--json", "--timeout", "20") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["id"] == "cap-85ec19c06ffce2b1" and out["counts"]["finished"] == 5


def test_bridge_publishes_each_new_alert_once(
    province: Province, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fresh("flood_alert.xml", inbox)
    fresh("test_alert.xml", inbox)
    argv = [
        "cap",
        "--bridge",
        str(inbox),
        "--commune",
        "tinh/xa-a",
        "--wait",
        "received",
        "--plain",
        "--timeout",
        "20",
        "--host",
        province.broker.host,
        "--port",
        str(province.broker.port),
    ]
    args = build_parser().parse_args(argv)
    bridge = Bridge(args, [parse_target("commune", "tinh/xa-a")])
    capsys.readouterr()
    assert bridge.poll() == 0
    first = capsys.readouterr()
    assert first.out.count("summary: 3/3 received") == 1  # the flood alert; the test alert is not aired
    assert "status is Test: never aired live" in first.err
    assert bridge.poll() == 0
    assert "summary" not in capsys.readouterr().out  # nothing new: nothing sent again
    fresh("storm_alert.xml", inbox)
    fresh("storm_update.xml", inbox)  # same bulletin id, a higher rev
    assert bridge.poll() == 0
    assert capsys.readouterr().out.count("summary: 3/3 received") == 2
