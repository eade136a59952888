"""`loaxa stations`: the fleet from retained state, as an operator reads it."""

from __future__ import annotations

import json

import pytest

from loaxa.testing.broker import start_mosquitto
from test_fleet_helpers import OFFLINE, Province, start_province


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Province:
    root = tmp_path_factory.mktemp("fleet")
    broker = start_mosquitto(root)
    prov = start_province(root / "stations", broker)
    yield prov
    prov.fleet.stop()
    broker.stop()


def test_json_lists_every_station_with_voice_clock_and_link(
    province: Province, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert province.run("stations", "--province", "tinh", "--json", "--wait", "2") == 0
    captured = capsys.readouterr()
    rows = {r["station"]: r for r in json.loads(captured.out)}
    assert set(rows) == {*province.stations, OFFLINE}
    live = rows["tinh/xa-a/loa-1"]
    assert live["online"] is True and live["voice"]["name"] == "sim:instant" and live["voice"]["fallback"] is False
    assert live["groups"] == ["flood"] and live["on_air"] is None and live["clock_synced"] in (True, False)
    assert rows[OFFLINE]["online"] is False and rows[OFFLINE]["last_seen"] == "earlier (offline)"
    assert "6 station(s): 5 online, 1 offline" in captured.err


def test_offline_filter_and_commune_filter(province: Province, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert province.run("stations", "--province", "tinh", "--commune", "tinh/xa-b", "--wait", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines[:-1]] == ["tinh/xa-b/loa-1", "tinh/xa-b/loa-2", OFFLINE]
    assert "tinh/xa-b/loa-9\tOFFLINE" in lines[2]


def test_unknown_province_is_an_error(province: Province, caplog: pytest.LogCaptureFixture) -> None:
    assert province.run("stations", "--province", "khong-co", "--wait", "1") == 1
    assert "no station state under loaxa/v1/khong-co" in caplog.text
