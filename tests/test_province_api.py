"""The province server's HTTP API and the bulletins sent through it: issue 14, items 2, 3 and 5.

Real Mosquitto, the server in a child process, real stations (the station
daemon with an instant voice) that require signed commands from the
server's issuer key, and the API over real HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loaxa.config import Issuer, SecuritySettings
from loaxa.province.simfleet import SimFleet, sim_settings
from loaxa.security import public_key_b64, save_private_key
from loaxa.testing.broker import Broker, start_mosquitto
from loaxa.testing.province import ServerProcess, province_config

KID = "sim-province-2026"
STATIONS = [("sim", "c000", "s00"), ("sim", "c000", "s01"), ("sim", "c001", "s00")]


def call(url: str, token: str | None, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli(server: ServerProcess, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", "province", *args, "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(fetch: Any, predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last: {value}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def province(tmp_path: Path, broker: Broker) -> Iterator[tuple[ServerProcess, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    key_file = save_private_key(tmp_path / "issuer.key", key, KID)
    server = ServerProcess(tmp_path, province_config(tmp_path, broker.port, signing={"key_file": str(key_file)}))
    server.start().wait_ready()
    yield server, key
    server.stop()


@pytest.fixture
def stations(tmp_path: Path, broker: Broker, province: tuple[ServerProcess, Ed25519PrivateKey]) -> Iterator[SimFleet]:
    """Real stations that play only what the server's key signed."""
    security = SecuritySettings(
        require_signature=True, issuers=(Issuer(kid=KID, public_key=public_key_b64(province[1])),)
    )
    settings = [
        sim_settings(
            tmp_path / "-".join(p),
            broker.host,
            broker.port,
            p,
            groups=("coastal",) if p[1] == "c001" else (),
            security=security,
        )
        for p in STATIONS
    ]
    fleet = SimFleet(settings)
    fleet.start()
    yield fleet
    fleet.stop()


def test_registry_lists_real_stations_with_voice_groups_and_online_since(province, stations):
    """Item 2: the registry comes from the stations' retained state; a stopped station is offline since then."""
    server, _ = province
    token = cli(server, "token", "add", "ioc", "--scope", "read").strip()
    url = f"{server.http_url}/api/v1/stations"
    listed = wait_for(
        lambda: call(url, token)[1], lambda v: len(v) == 3 and all(s["online"] for s in v), 30, "3 online"
    )
    by_name = {s["station"]: s for s in listed}
    assert by_name["sim/c001/s00"]["groups"] == ["coastal"]
    assert by_name["sim/c000/s00"]["voice"] == "sim:instant" and by_name["sim/c000/s00"]["voice_fallback"] is False
    assert {s["status"] for s in listed} == {"online"}
    assert all(s["clock_synced"] is not None and s["version"] for s in listed)
    stations.stations[0].stop()
    gone = wait_for(lambda: call(url, token)[1], lambda v: any(s["status"] == "offline" for s in v), 30, "one offline")
    offline = [s for s in gone if s["status"] == "offline"]
    assert [s["station"] for s in offline] == ["sim/c000/s00"] and offline[0]["since"] is not None
    text = cli(server, "stations")
    assert "sim/c000/s00\toffline" in text and "3 stations: 2 online, 1 offline, 0 silent" in text


def test_bulletin_sent_through_the_api_is_signed_recorded_and_tracked_per_station(province, stations):
    """Item 3: the stations require the server's signature and play it; the summary counts each station's receipts."""
    server, _ = province
    sender = cli(server, "token", "add", "sttt", "--scope", "send").strip()
    base = f"{server.http_url}/api/v1"
    wait_for(lambda: call(f"{base}/stations", sender)[1], lambda v: len(v) == 3, 30, "the registry")
    status, first = call(
        f"{base}/bulletins",
        sender,
        "POST",
        {"targets": ["sim"], "bulletin": {"id": "b-storm-1", "text": "Bão số 3 đổ bộ chiều nay.", "priority": "high"}},
    )
    assert status == 200, first
    assert first["sender"] == "api:sttt" and first["issuer"] == KID and first["stations"] == 3
    done = wait_for(
        lambda: call(f"{base}/bulletins/b-storm-1", sender)[1],
        lambda v: v["summary"]["finished"] == 3,
        60,
        "3 finished",
    )
    assert done["summary"]["no_answer"] == 0 and done["summary"]["failed"] == 0
    status, receipts = call(f"{base}/bulletins/b-storm-1/receipts", sender)
    assert status == 200
    assert [(r["station"], r["status"], r["expected"]) for r in receipts] == [
        ("sim/c000/s00", "finished", True),
        ("sim/c000/s01", "finished", True),
        ("sim/c001/s00", "finished", True),
    ]
    assert all(r["received_at"] <= r["started_at"] <= r["finished_at"] for r in receipts)
    # The same id and rev again is refused; a group target reaches only its members.
    assert (
        call(f"{base}/bulletins", sender, "POST", {"targets": ["sim"], "bulletin": {"id": "b-storm-1", "text": "x"}})[0]
        == 409
    )
    status, group = call(
        f"{base}/bulletins",
        sender,
        "POST",
        {"targets": ["sim/group/coastal"], "bulletin": {"id": "b-coast", "text": "Triều cường."}},
    )
    assert status == 200 and group["stations"] == 1
    # Item 4 through the API: today's as-run rows of the province show the three plays.
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    status, day = call(f"{base}/reports/asrun?scope=sim&period=day&date={today}", sender)
    assert status == 200
    plays = [(r["station"], r["state"], r["issuer"]) for r in day["rows"] if r["id"] == "b-storm-1"]
    assert plays == [(s, "finished", KID) for s in ("sim/c000/s00", "sim/c000/s01", "sim/c001/s00")]
    assert day["planned_vs_aired"][0] == {
        "id": "b-storm-1",
        "rev": 1,
        "planned": 3,
        "aired": 3,
        "late": [],
        "not_aired": [],
    }


def test_cancel_through_the_api_reaches_the_stations(province, stations):
    """Item 5: a scheduled bulletin, cancelled: every station answers `cancelled` and the summary says so."""
    server, _ = province
    sender = cli(server, "token", "add", "ioc", "--scope", "send").strip()
    base = f"{server.http_url}/api/v1"
    wait_for(lambda: call(f"{base}/stations", sender)[1], lambda v: len(v) == 3, 30, "the registry")
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")
    bulletin = {"id": "b-later", "text": "Họp dân lúc 19 giờ.", "schedule": {"at": later}}
    assert call(f"{base}/bulletins", sender, "POST", {"targets": ["sim/c000"], "bulletin": bulletin})[0] == 200
    wait_for(lambda: call(f"{base}/bulletins/b-later", sender)[1], lambda v: v["summary"]["received"] == 2, 30, "2")
    status, answer = call(f"{base}/bulletins/b-later/cancel", sender, "POST", {})
    assert status == 200 and answer["cancelled_at"] is not None
    done = wait_for(
        lambda: call(f"{base}/bulletins/b-later", sender)[1], lambda v: v["summary"]["cancelled"] == 2, 30, "cancelled"
    )
    assert done["stations"] == 2
    assert call(f"{base}/bulletins/no-such/cancel", sender, "POST", {})[0] == 404


def test_a_read_token_cannot_send_and_a_revoked_token_is_refused_each_request_audited(province):
    """Item 5: scopes and revocation, and the audit log of every request, answered or refused."""
    server, _ = province
    reader = cli(server, "token", "add", "dashboard", "--scope", "read").strip()
    base = f"{server.http_url}/api/v1"
    bulletin = {"targets": ["sim"], "bulletin": {"id": "b-1", "text": "Thử."}}
    assert call(f"{base}/stations", None)[0] == 401
    assert call(f"{base}/stations", "lxp_not-a-token")[0] == 401
    assert call(f"{base}/stations", reader)[0] == 200
    status, answer = call(f"{base}/bulletins", reader, "POST", bulletin)
    assert status == 403 and "send" in answer["error"]
    cli(server, "token", "revoke", "dashboard")
    assert call(f"{base}/stations", reader)[0] == 401
    assert "dashboard\tread\trevoked" in cli(server, "token", "list")
    import sqlite3

    db = sqlite3.connect(Path(server.config["data_dir"]) / "province.db")
    audit = db.execute("SELECT token, method, path, status FROM audit ORDER BY id").fetchall()
    assert audit == [
        (None, "CLI", "province token add dashboard", 200),  # tokens made and revoked at the terminal too
        (None, "GET", "/api/v1/stations", 401),
        (None, "GET", "/api/v1/stations", 401),
        ("dashboard", "GET", "/api/v1/stations", 200),
        ("dashboard", "POST", "/api/v1/bulletins", 403),
        (None, "CLI", "province token revoke dashboard", 200),
        (None, "GET", "/api/v1/stations", 401),
    ]
    digests = db.execute("SELECT digest FROM tokens").fetchall()
    assert digests and reader not in str(digests)  # only the hash is kept


def test_openapi_document_lists_the_api(province):
    server, _ = province
    with urllib.request.urlopen(f"{server.http_url}/openapi.json", timeout=10) as answer:
        doc = json.loads(answer.read())
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/stations", "/api/v1/bulletins", "/api/v1/bulletins/{id}/receipts"} <= set(doc["paths"])
    assert "post" in doc["paths"]["/api/v1/bulletins"] and "get" in doc["paths"]["/api/v1/bulletins"]


def test_health_shows_a_broker_outage_in_words_and_the_recovery(tmp_path, broker, province):
    """Item 1: the server keeps answering while the broker is down, and says why it stores nothing."""
    server, _ = province
    reader = cli(server, "token", "add", "monitor", "--scope", "read").strip()
    url = f"{server.http_url}/api/v1/health"
    assert wait_for(lambda: call(url, reader)[1], lambda v: v["connected"], 30, "connected")["error"] is None
    broker.stop()
    down = wait_for(lambda: call(url, reader)[1], lambda v: not v["connected"], 30, "the outage")
    assert down["error"].startswith(("disconnected from 127.0.0.1", "cannot connect to the broker at 127.0.0.1"))
    broker.start()
    back = wait_for(lambda: call(url, reader)[1], lambda v: v["connected"], 30, "the reconnection")
    assert back["error"] is None and back["database_error"] is None
