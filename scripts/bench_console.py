#!/usr/bin/env python3
"""Console benchmark: the fleet page and a bulletin's watch grid with N stations, and their live updates.

Starts a Mosquitto and `loaxa province serve` (console on), fills the
registry with N stations through the server's own ingest (their retained
`state`, published by one client in the stations' words), gives each a
name and a position (the `station_meta` rows Admin → Stations keeps), sends one
province-wide bulletin through the API (N rows of `bulletin_stations`), and
measures, logged in as a viewer:

- render: each page's time per request over loopback HTTP (the server's
  time, median of --runs), and in headless Chromium the time from the
  navigation to the load event (median of --runs);
- weight: bytes on the wire with gzip and uncompressed, for the page and
  for what it loads (the static files, cached for a year after the first
  visit, and the fleet's SVG map);
- live: with the watch grid's event stream open, 3 receipts per station
  (received, started, finished) published as fast as the broker takes them
  and stored at the server's ingest rate; for each cell update the stream
  carried, the lag from the receipt's `stored_at` to its arrival at the
  client (p50/p99), and the number of cell updates against receipts.

Prints one JSON object with --json.

    .venv/bin/python scripts/bench_console.py --stations 5000 --json
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from loaxa.jsonwire import compact_bytes
from loaxa.protocol import now_iso
from loaxa.province.lightbench import count, cpu_s, percentile, rss_mb, start_broker
from loaxa.province.simfleet import station_path
from loaxa.testing.province import ServerProcess, province_config
from loaxa.topics import Topics

PREFIX = "loaxa/v1"
PASSWORD = "mật khẩu bench"
TEXT = "Ủy ban nhân dân tỉnh thông báo: mưa lớn kéo dài đến hết ngày 15/9, bà con không đi qua ngầm tràn."
RECEIPTS = ("received", "started", "finished")
# A station's row in the grid's `cells` events: <tr id="st-sim.c000.s00" class="st b-finished" data-bucket="finished">
CELL = re.compile(r'<tr id="st-([^"]+)"[^>]*data-bucket="(\w+)"')
# What a page makes the browser load from the server: scripts, stylesheets, icons, the map's SVG.
ASSET = re.compile(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="(/[^"/][^"]*)"')


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait(predicate: Any, timeout_s: float, what: str) -> None:
    say(f"waiting for {what}")
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


def cli(config: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", "province", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"loaxa province {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


# -- the stations, as one MQTT client speaking for all of them -------------------------------


class Stations:
    def __init__(self, host: str, port: int, n: int) -> None:
        self.paths = [station_path(i) for i in range(n)]
        self.topics = [Topics(PREFIX, *p) for p in self.paths]
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-stations-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.seq = 0  # every station's last outbox number: each answers every bulletin, so they move together
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()

    def publish_states(self) -> None:
        for path, topics in zip(self.paths, self.topics, strict=True):
            state = {
                "online": True,
                "version": "bench",
                "station": "/".join(path),
                "groups": [],
                "voice": {"engine": "piper", "name": "vi_VN-vais1000-medium", "fallback": False, "reason": None},
                "on_air": None,
                "queue": 0,
                "clock_synced": True,
                "at": now_iso(),
                "audio": {"output": "default", "error": None},
                "amplifier": {"backend": "gpio", "fault": None},
            }
            self.client.publish(topics.state, compact_bytes(state), qos=1, retain=True)

    def publish_receipts(self, bid: str) -> None:
        """Each station's received, started, finished, in that order, station after station per step."""
        for event in RECEIPTS:
            self.seq += 1
            seq = self.seq
            for path, topics in zip(self.paths, self.topics, strict=True):
                body = {"id": bid, "rev": 1, "event": event, "at": now_iso(), "station": "/".join(path), "seq": seq}
                self.client.publish(topics.event, compact_bytes(body), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- a viewer's browser session over HTTP ----------------------------------------------------


class Session:
    def __init__(self, base: str, name: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(f"{base}/login", timeout=30).read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        if csrf is None:
            raise SystemExit("the login page has no CSRF field")
        form = urllib.parse.urlencode({"name": name, "password": PASSWORD, "csrf": csrf.group(1), "next": "/fleet"})
        answer = self.opener.open(f"{base}/login", data=form.encode(), timeout=30)
        if "/login" in answer.geturl():
            raise SystemExit("the bench user could not log in")

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def get(self, path: str, gzip_ok: bool) -> tuple[float, int, bytes]:
        """(seconds, bytes on the wire, the body decoded)."""
        headers = {"Cookie": self.cookie_header(), "Accept-Encoding": "gzip" if gzip_ok else "identity"}
        host = urllib.parse.urlsplit(self.base)
        conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port, timeout=60)
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        raw = answer.read()
        took = time.perf_counter() - t0
        conn.close()
        if answer.status != 200:
            raise SystemExit(f"GET {path}: HTTP {answer.status}")
        body = gzip.decompress(raw) if answer.getheader("Content-Encoding") == "gzip" else raw
        return took, len(raw), body


def weigh(session: Session, path: str, runs: int) -> dict[str, Any]:
    times = [session.get(path, gzip_ok=True)[0] for _ in range(runs)]
    _, wire, body = session.get(path, gzip_ok=True)
    _, plain, _ = session.get(path, gzip_ok=False)
    assets = sorted(set(ASSET.findall(body.decode("utf-8", "replace"))))
    asset_wire = asset_plain = 0
    for asset in assets:
        asset_wire += session.get(asset, gzip_ok=True)[1]
        asset_plain += session.get(asset, gzip_ok=False)[1]
    return {
        "server_s_median": round(statistics.median(times), 3),
        "server_s_max": round(max(times), 3),
        "page_gzip_bytes": wire,
        "page_bytes": plain,
        "assets": len(assets),  # static files (cached for a year after the first visit) and the fleet's map
        "assets_gzip_bytes": asset_wire,
        "assets_bytes": asset_plain,
        "seconds_at_1_mbit_s": round((wire + asset_wire) * 8 / 1e6, 2),  # a weak 4G link, first visit
    }


def chromium_load_s(base: str, paths: list[str], runs: int) -> dict[str, dict[str, float]]:
    """Per page, medians in seconds from the navigation's start: the last byte of the HTML arrived
    (`response_end_s`), the document parsed (`dom_interactive_s`), and the load event (`load_s`)."""
    from selenium.webdriver.common.by import By

    from loaxa.testing.console import chromium

    with chromium() as driver:
        driver.set_page_load_timeout(120)
        driver.get(f"{base}/login")
        driver.find_element(By.NAME, "name").send_keys("bench")
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "section.login button[type=submit]").click()
        wait(lambda: "/login" not in driver.current_url, 30, "the browser's login")
        marks = ("responseEnd", "domInteractive", "loadEventEnd")
        loads: dict[str, dict[str, float]] = {}
        for path in paths:
            times: list[list[float]] = []
            for _ in range(runs):
                driver.get(base + path)  # returns after the load event
                timing = driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0];"
                    f"return [{', '.join(f'n.{m} - n.startTime' for m in marks)}];"
                )
                times.append([float(t) / 1000 for t in timing])
            loads[path] = {
                name: round(statistics.median(run[i] for run in times), 3)
                for i, name in enumerate(("response_end_s", "dom_interactive_s", "load_s"))
            }
        return loads


class Listener(threading.Thread):
    """The watch grid's event stream, each chunk kept with the time it arrived."""

    def __init__(self, base: str, path: str, cookie: str) -> None:
        super().__init__(name="sse", daemon=True)
        host = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port, timeout=300)
        self.conn.request("GET", path, headers={"Cookie": cookie, "Accept": "text/event-stream"})
        self.answer = self.conn.getresponse()
        if self.answer.status != 200:
            raise SystemExit(f"GET {path}: HTTP {self.answer.status}")
        self.chunks: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        buffer = ""
        while not self.stop.is_set():
            try:
                line = self.answer.readline()
            except (OSError, http.client.HTTPException):
                return
            if not line:
                return
            text = line.decode("utf-8", "replace")
            if text.strip() == "" and buffer:
                self.chunks.append((time.time(), buffer))
                buffer = ""
            elif text.startswith("data:"):
                buffer += text[5:]

    def updates(self) -> list[tuple[float, str, str]]:
        """(arrived, station, its bucket) for each station row the stream carried."""
        return [
            (arrived, cell.group(1).replace(".", "/"), cell.group(2))
            for arrived, data in self.chunks
            for cell in CELL.finditer(data)
        ]


def place(db: Path, paths: list[tuple[str, str, str]]) -> None:
    """Names and positions for every station (what Admin → Stations keeps), so the pages and the map are full."""
    now = time.time()
    rows = []
    for i, (p, c, s) in enumerate(paths):
        lat, lon = 20.6 + (i // 80) * 0.012, 105.2 + (i % 80) * 0.012  # a 0.75° x 0.95° province
        rows.append((f"{p}/{c}/{s}", f"Loa {s[1:]} thôn {i % 7 + 1}", f"Xã {c.upper()}", lat, lon, now))
    conn = sqlite3.connect(db, timeout=30)
    with conn:
        conn.executemany(
            "INSERT INTO station_meta (station, name, commune_name, lat, lon, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    conn.close()


def send(base: str, token: str, bid: str) -> int:
    """One province-wide bulletin through the API; the number of stations the server expects to answer."""
    request = urllib.request.Request(
        f"{base}/api/v1/bulletins",
        data=json.dumps({"targets": ["sim"], "bulletin": {"id": bid, "priority": "high", "text": TEXT}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return int(json.loads(answer.read())["stations"])


def stored_in(db: Path, bid: str, receipts: int) -> float:
    """Seconds until `receipts` receipts of the bulletin are stored."""
    t0 = time.time()
    wait(lambda: count(db, "SELECT count(*) FROM events WHERE bulletin_id = ?", bid) >= receipts, 300, "stored")
    return time.time() - t0


def run(n: int, runs: int, browser: bool) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="loaxa-bench-console-"))
    broker = start_broker(root)
    config = province_config(root, broker.port, console={"secure_cookies": False}, stations={"silent_after_s": 3600})
    server = ServerProcess(root, config)
    stations: Stations | None = None
    try:
        base = server.start().wait_ready(60)
        db = root / "province-data" / "province.db"
        cli(server.config_path, "user", "add", "bench", "--role", "viewer", stdin=PASSWORD + "\n")
        token = cli(server.config_path, "token", "add", "bench", "--scope", "send")
        stations = Stations(broker.host, broker.port, n)
        stations.publish_states()
        wait(lambda: count(db, "SELECT count(*) FROM stations WHERE online") >= n, 120 + n / 20, f"{n} stations")
        place(db, stations.paths)

        bid = f"bench-{uuid.uuid4().hex[:8]}"
        expected = send(base, token, bid)

        session = Session(base, "bench")
        grid = f"/bulletins/{bid}"
        say("timing the pages")
        pages = {"fleet": weigh(session, "/fleet", runs), "watch_grid": weigh(session, grid, runs)}
        if browser:
            say("timing the pages in Chromium")
            loads = chromium_load_s(base, ["/fleet", grid], runs)
            pages["fleet"]["chromium"] = loads["/fleet"]
            pages["watch_grid"]["chromium"] = loads[grid]

        say("live: receipts for every station while the grid's stream is open")
        listener = Listener(base, f"{grid}/live", session.cookie_header())
        listener.start()
        time.sleep(1.0)  # the stream's first answer is out: what follows is the receipts
        server_pid = server.proc.pid if server.proc else 0
        cpu0 = cpu_s(server_pid)
        stations.publish_receipts(bid)
        stored_all_s = stored_in(db, bid, 3 * n)
        last = -1
        while len(listener.chunks) != last:  # until the stream has been quiet for 3 s
            last = len(listener.chunks)
            time.sleep(3.0)
        listener.stop.set()
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        stored = {
            (s, e): at
            for s, e, at in conn.execute(
                "SELECT station, event, stored_at FROM events WHERE bulletin_id = ?", (bid,)
            ).fetchall()
        }
        conn.close()
        live_cpu_s = cpu_s(server_pid) - cpu0

        say("the same receipts for a second bulletin, no stream open: the ingest alone")
        alone = f"{bid}-alone"
        send(base, token, alone)
        cpu1 = cpu_s(server_pid)
        stations.publish_receipts(alone)
        alone_s = stored_in(db, alone, 3 * n)
        alone_cpu_s = cpu_s(server_pid) - cpu1

        updates = listener.updates()
        lags = [arrived - stored[(s, e)] for arrived, s, e in updates if (s, e) in stored]
        finished_seen = {s for _, s, e in updates if e == "finished"}
        live = {
            "receipts": len(stored),
            "stored_all_s": round(stored_all_s, 2),
            "ingest_events_per_s": round(len(stored) / max(stored_all_s, 1e-3)),
            "stream_messages": len(listener.chunks),
            "cells_updated": len(updates),
            "lags_measured": len(lags),
            "stations_shown_finished": len(finished_seen),
            "p50_lag_s": _r(percentile(lags, 50)),
            "p99_lag_s": _r(percentile(lags, 99)),
            "max_lag_s": _r(max(lags) if lags else None),
            "server_cpu_s": round(live_cpu_s, 2),
            "ingest_events_per_s_no_stream": round(3 * n / max(alone_s, 1e-3)),
            "server_cpu_s_no_stream": round(alone_cpu_s, 2),  # the same receipts stored, no grid open
        }
        return {
            "stations": n,
            "expected_by_server": expected,
            "runs": runs,
            "pages": pages,
            "live": live,
            "server_peak_rss_mb": round(rss_mb(server_pid), 1),
            "keeps_up": len(finished_seen) == n,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # the machine is shared
        }
    finally:
        if stations is not None:
            stations.close()
        server.stop()
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=5000, help="stations in the database (default 5000)")
    p.add_argument("--runs", type=int, default=5, help="requests (and browser loads) per page (default 5)")
    p.add_argument("--no-browser", action="store_true", help="leave out the Chromium load times")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    figures = run(args.stations, args.runs, browser=not args.no_browser)
    print(json.dumps(figures, indent=None if args.json else 1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
