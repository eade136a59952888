"""The console's reports: a scope and a period on screen, with the chart, and as CSV and XLSX (issue 15: Reports).

Three light stations play a bulletin sent through the API (receipts over a
real Mosquitto into the server's database); the report is read in real
Chromium and its XLSX downloaded by the browser and opened with openpyxl.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from loaxa.testing.console import Client, ConsoleBench, chromium, eventually, login, shoot, wait_until

STATIONS = [("sim", "c000", "s00"), ("sim", "c000", "s01"), ("sim", "c001", "s00")]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the bench's province.timezone (the default)


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory):
    """The bench, and the local day on which the three stations played bulletin b-report."""
    with ConsoleBench(tmp_path_factory.mktemp("reports"), light=STATIONS, light_options={"play_s": 1.0}) as bench:
        token = bench.cli("token", "add", "sttt", "--scope", "send").strip()
        eventually(lambda: bench.api(token, "/stations"), lambda v: len(v) == 3, 30, "3 stations")
        bench.api(token, "/bulletins", {"targets": ["sim"], "bulletin": {"id": "b-report", "text": "Xin chào."}})
        eventually(
            lambda: bench.api(token, "/bulletins/b-report"), lambda v: v["summary"]["finished"] == 3, 30, "3 plays"
        )
        started = {r["started_at"] for r in bench.api(token, "/bulletins/b-report/receipts")}
        days = {datetime.fromisoformat(at).astimezone(TZ).date().isoformat() for at in started}
        assert len(days) == 1, started  # (all three within a second: only at midnight could they straddle two days)
        yield bench, days.pop()


def test_the_day_report_shows_the_plays_the_chart_and_planned_versus_aired(played) -> None:
    bench, day = played
    with chromium() as driver:
        login(driver, bench.url, "viewer", next="/reports")
        driver.find_element(By.ID, "date").clear()
        driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, "date"), day)
        Select(driver.find_element(By.ID, "period")).select_by_value("day")
        driver.find_element(By.CSS_SELECTOR, "#report-form button[type=submit]").click()
        wait_until(driver, lambda d: d.find_elements(By.ID, "asrun"))
        plays = driver.find_elements(By.CSS_SELECTOR, "#asrun tr.play")
        assert sorted(r.find_element(By.CSS_SELECTOR, "td").text for r in plays) == sorted(
            "/".join(p) for p in STATIONS
        )
        assert all("đã phát xong" in r.text for r in plays)  # how it ended, in words
        planned = driver.find_element(By.ID, "planned").text
        assert "b-report" in planned and "3 3" in planned.replace("\n", " ")
        figures = driver.find_element(By.ID, "figures").text
        assert "Số lượt phát: 3" in figures
        bars = driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
        assert len(bars) == 2  # one day, two communes
        assert {b.get_attribute("fill") for b in bars} == {"#2f6ea5"}
        rows = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "svg.chart .row text")]
        assert "sim/c000" in rows and "sim/c001" in rows
        shoot(driver, "reports")


def test_a_commune_report_counts_only_its_stations(played) -> None:
    bench, day = played
    client = Client(bench.url)
    assert client.login("viewer") == 303
    status, _, page = client.get(f"/reports?scope=sim/c001&period=week&date={day}")
    assert status == 200
    assert page.count('class="play"') == 1 and "sim/c001/s00" in page and "sim/c000/s00" not in page
    status, headers, text = client.get(f"/reports/download?scope=sim/c001&period=week&date={day}&format=csv")
    assert status == 200 and "attachment" in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [(r["station"], r["id"], r["state"]) for r in rows] == [("sim/c001/s00", "b-report", "finished")]
    assert client.get(f"/reports?scope=sim&period=fortnight&date={day}")[0] == 400


def test_a_report_downloaded_as_xlsx_opens_with_openpyxl_and_shows_the_three_plays(played, tmp_path: Path) -> None:
    bench, day = played
    with chromium() as driver:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
        login(driver, bench.url, "viewer", next=f"/reports?scope=sim&period=day&date={day}")
        driver.find_element(By.ID, "download-xlsx").click()
        name = f"asrun-sim-day-{day}.xlsx"
        eventually(lambda: (tmp_path / name).exists(), bool, 30, f"{name} downloaded")
    book = load_workbook(tmp_path / name)
    sheet = book["as-run"]
    header = [c.value for c in sheet[1]]
    plays = [dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert sorted(p["station"] for p in plays) == sorted("/".join(s) for s in STATIONS)
    assert {(p["id"], p["state"]) for p in plays} == {("b-report", "finished")}
    assert all(p["seconds"] is not None and p["seconds"] >= 0.9 for p in plays)
    assert [c.value for c in book["planned vs aired"][2]][:4] == ["b-report", 1, 3, 3]
