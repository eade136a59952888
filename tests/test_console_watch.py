"""Watching a bulletin go out: the grid turns live, its filters, its stream, and a prompt shutdown (issue 15: Watch).

A real server with the console, light stations answering a bulletin sent
through the API over a real Mosquitto, real Chromium. Each station finishes
when the test says so (its `finished` receipt goes out over MQTT like any
other), so the grid is seen changing cell by cell without a reload.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from loaxa.province.console.watch import OVERLAP_S
from loaxa.province.lightfleet import BackgroundFleet
from loaxa.testing.console import Client, ConsoleBench, chromium, eventually, login, shoot, wait_until

PLAYING = [("sim", "c000", "s00"), ("sim", "c000", "s01"), ("sim", "c001", "s00")]
MUTE = ("sim", "c001", "s01")  # known to the registry, gone before the bulletin: no answer
BULLETIN = "b-watch-1"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    """Four stations known; the bulletin sent to the province; three on air (until told), one never answers."""
    # play_s: the light stations stay on air until the test sends their `finished`.
    with ConsoleBench(tmp_path_factory.mktemp("watch"), light=PLAYING, light_options={"play_s": 3600}) as b:
        token = b.cli("token", "add", "sttt", "--scope", "send").strip()
        mute = BackgroundFleet([MUTE], b.broker.host, b.broker.port)
        eventually(lambda: b.api(token, "/stations"), lambda v: len(v) == 4, 30, "4 stations in the registry")
        mute.close()
        sent = b.api(token, "/bulletins", {"targets": ["sim"], "bulletin": {"id": BULLETIN, "text": "Xin chào."}})
        assert sent["stations"] == 4
        eventually(
            lambda: b.api(token, f"/bulletins/{BULLETIN}"),
            lambda v: v["summary"]["started"] == 3,
            30,
            "three stations on air",
        )
        yield b


def finish(bench: ConsoleBench, path: str) -> None:
    """The light station's `finished` receipt, sent over MQTT as a station does."""
    fleet = bench.light_fleet
    station = next(s for s in fleet.fleet.stations if s.path == path)
    fleet.loop.call_soon_threadsafe(station.emit, BULLETIN, 1, "finished", "12.0 s on air, voice sim:light")


def look(driver: Any, dom_id: str) -> tuple[str | None, str]:
    """An element's data-bucket and text, read at once (the live stream replaces elements under our feet)."""
    found = driver.execute_script(
        "var e = document.getElementById(arguments[0]);"
        "return e ? [e.getAttribute('data-bucket'), e.innerText] : [null, ''];",
        dom_id,
    )
    return found[0], found[1]


def visible_rows(driver: Any) -> list[str]:
    """The ids of the station rows a person sees (one script call: rows may be replaced meanwhile)."""
    return list(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('#grid tr.st'))"
            ".filter(function (r) { return r.offsetParent !== null; }).map(function (r) { return r.id; });"
        )
    )


def bucket(driver: Any, path: str) -> str | None:
    return look(driver, "st-" + path.replace("/", "."))[0]


def text(driver: Any, path: str) -> str:
    return look(driver, "st-" + path.replace("/", "."))[1]


def test_the_grid_turns_each_station_to_finished_live_without_a_reload(bench) -> None:
    with chromium() as driver:
        login(driver, bench.url, "viewer", next=f"/bulletins/{BULLETIN}")
        wait_until(driver, lambda d: d.find_element(By.ID, "live").get_attribute("class") == "live on")
        paths = ["/".join(p) for p in PLAYING]
        assert [bucket(driver, p) for p in paths] == ["started"] * 3
        assert bucket(driver, "/".join(MUTE)) == "no_answer"
        driver.execute_script("window.sameDocument = 'yes'")
        for i, path in enumerate(paths):
            finish(bench, path)
            wait_until(driver, lambda d, p=path: bucket(d, p) == "finished")
            rest = [bucket(driver, p) for p in paths[i + 1 :]]
            assert rest == ["started"] * len(rest)  # one receipt, one cell
            assert "Đã phát xong" in text(driver, path) and "12.0 s on air" in text(driver, path)
        wait_until(driver, lambda d: "Đã phát xong: 3" in look(d, "counts")[1])
        assert "Không trả lời: 1" in look(driver, "counts")[1]
        assert "Đã phát xong: 2" in look(driver, "c-sim.c000")[1]
        assert driver.execute_script("return window.sameDocument") == "yes"  # never reloaded
        shoot(driver, "watch")


def test_the_no_answer_filter_shows_only_the_station_that_did_not_answer(bench) -> None:
    with chromium() as driver:
        login(driver, bench.url, "viewer", next="/bulletins")
        listed = driver.find_element(By.CSS_SELECTOR, "table.list tbody tr").text
        assert BULLETIN in listed and "api:sttt" in listed  # the recent bulletins, with their counts
        driver.find_element(By.LINK_TEXT, BULLETIN).click()
        wait_until(driver, lambda d: d.find_elements(By.ID, "grid"))
        driver.find_element(By.CSS_SELECTOR, "nav.filters a[href='?show=no_answer']").click()
        wait_until(driver, lambda d: "show=no_answer" in d.current_url)
        shown = visible_rows(driver)
        assert shown == ["st-" + "/".join(MUTE).replace("/", ".")]
        assert "Không trả lời" in look(driver, shown[0])[1]
        driver.find_element(By.CSS_SELECTOR, "nav.filters a[href='?show=failed']").click()
        wait_until(driver, lambda d: "show=failed" in d.current_url)
        assert visible_rows(driver) == []


def test_the_live_stream_sends_a_changed_station_once_with_the_new_counts(bench) -> None:
    """What an EventSource reads: a `cells` event with the changed row, then `counts`; nothing unchanged is resent."""
    client = Client(bench.url)
    assert client.login("viewer") == 303
    time.sleep(OVERLAP_S)  # a stream resends what changed just before it began: let the other tests' receipts age
    since = time.time()
    request = urllib.request.Request(
        f"{bench.url}/bulletins/{BULLETIN}/live?since={since:.6f}", headers={"Accept": "text/event-stream"}
    )
    events: list[tuple[str, str]] = []
    with client.opener.open(request, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        fleet = bench.light_fleet
        station = next(s for s in fleet.fleet.stations if s.path == "sim/c001/s00")
        fleet.loop.call_soon_threadsafe(station.emit, BULLETIN, 1, "held", "quiet hours until 05:00")
        name, data = "", []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e[0] == "counts" for e in events):
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line and name:
                events.append((name, "\n".join(data)))
                name, data = "", []
    cells = [d for n, d in events if n == "cells"]
    assert len(cells) == 1, events
    assert 'id="st-sim.c001.s00"' in cells[0] and "quiet hours until 05:00" in cells[0] and "b-held" in cells[0]
    assert 'id="st-sim.c000.s00"' not in cells[0]  # unchanged stations are not resent
    assert 'id="c-sim.c001"' in cells[0]  # its commune's header, recounted
    assert "Tạm giữ: <b>1</b>" in next(d for n, d in events if n == "counts")


def test_serve_exits_promptly_on_sigterm_with_a_watch_page_open(bench) -> None:
    """uvicorn waits for open answers: the live stream must end as soon as the server stops."""
    with chromium() as driver:
        login(driver, bench.url, "viewer", next=f"/bulletins/{BULLETIN}")
        wait_until(driver, lambda d: d.find_element(By.ID, "live").get_attribute("class") == "live on")
        proc = bench.server.proc
        assert proc is not None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - started
        print(f"loaxa province serve stopped {took:.2f} s after SIGTERM with a live watch page open")
        assert code == 0 and took < 5.0, bench.server.log()
        assert "stopped" in bench.server.log()
        wait_until(driver, lambda d: d.find_element(By.ID, "live").get_attribute("class") == "live off")
