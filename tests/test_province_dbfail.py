"""The province server while its database fails: issue 14, "nothing that arrives can stop" it.

A real Mosquitto, the server in a child process, light stations answering
province-wide pings, and a database that fails under it: a real PostgreSQL
stopped mid-burst, or frozen (its processes stopped, as when its disk
hangs), and SQLite on a small tmpfs filled to the last byte, also before the
server starts. While the database fails, the server keeps its MQTT session
(no reconnect), says why in its log, and acknowledges nothing it has not
stored: the broker holds the rest. SIGTERM ends it within systemd's stop
timeout even then. Once the database is back, every receipt is there
exactly once and no gap is recorded.

`GET /api/v1/health` answers while the database fails, with its error.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from loaxa.province.lightfleet import BackgroundFleet
from loaxa.province.simfleet import station_path
from loaxa.testing.broker import Broker, start_mosquitto
from loaxa.testing.disk import tmpfs
from loaxa.testing.province import PostgresMissing, ServerProcess, province_config, start_postgres
from test_faults_disk import fill
from test_province_ingest import (
    BROKER_CONF,
    STATIONS,
    Pinger,
    add_read_token,
    all_answered,
    assert_exactly_once,
    stored_count,
    wait_until,
)

# The broker holds what the server has not acknowledged; keeping the server's window small makes it hold most.
BROKER = {"receive_maximum": 100}
DATABASE = {"batch_max": 40}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path, BROKER_CONF)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PostgreSQL of this module's own: its tests stop and start it."""
    try:
        pg = start_postgres(tmp_path_factory.mktemp("pg-dbfail"))
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    yield pg
    pg.stop()


@pytest.fixture
def postgres_url(own_postgres: Any) -> Iterator[str]:
    """A fresh database on that PostgreSQL, which is running again after the test whatever happened."""
    name = f"t{time.monotonic_ns()}"
    admin = create_engine(own_postgres.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    yield own_postgres.url.rsplit("/", 1)[0] + f"/{name}"
    if not (own_postgres.directory / "data" / "postmaster.pid").exists():
        own_postgres.start()


def postgres_pids(pg: Any) -> list[int]:
    """The postmaster and its children (backends, checkpointer, …) of this module's own PostgreSQL."""
    master = int((pg.directory / "data" / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue  # not a process, or one that has just ended
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            children.append(int(entry.name))
    return [master, *children]


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a backend that was ending as it was listed
            os.kill(pid, signum)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The server's data dir on a 16 MB tmpfs, unmounted afterwards."""
    with tmpfs(tmp_path / "province-data", "size=16m") as where:
        yield where


def read_token(server: ServerProcess) -> str:
    """A `read` token made as the operator makes one, at the server's terminal."""
    done = add_read_token(server)
    assert done.returncode == 0, done.stderr
    return next(line for line in done.stdout.splitlines() if line.startswith("lxp_"))


def health(server: ServerProcess, token: str, path: str = "/api/v1/health") -> tuple[int, Any]:
    """`GET /api/v1/health` (or `path`): the status and the JSON answer (or the text of one that is not JSON)."""
    request = urllib.request.Request(f"{server.http_url}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw


def settled(server: ServerProcess, token: str) -> dict[str, Any]:
    """Health once nothing waits to be stored: a session whose last attempt failed retries within RETRY_DB_S,
    even when the receipts are all in (what it still holds may be states, or redeliveries)."""
    seen: list[Any] = []

    def quiet() -> bool:
        seen[:] = health(server, token)
        return seen[0] == 200 and seen[1]["waiting"] == 0

    wait_until(quiet, 30, "nothing left waiting to be stored")
    return dict(seen[1])


def start(tmp_path: Path, broker: Broker, database: dict[str, Any], sessions: int = 1, **link: Any) -> ServerProcess:
    config = province_config(
        tmp_path, broker.port, broker={**BROKER, "sessions": sessions, **link}, database={**DATABASE, **database}
    )
    server = ServerProcess(tmp_path, config).start()
    server.wait_ready()
    return server


def full_log(server: ServerProcess) -> str:
    """Everything the server logged, every run."""
    return "".join(p.read_text(errors="replace") for p in sorted(server.root.glob("province-*.log")))


def db_failures(server: ServerProcess) -> int:
    return full_log(server).count("cannot write to the database")


def recovered(server: ServerProcess, token: str, url: str, fleet: BackgroundFleet, pinger: Pinger) -> Any:
    """Once the database is back: every receipt stored once with no gap, and health without an error; its answer."""
    sent = all_answered(fleet, pinger)
    total = sum(sent.values())
    wait_until(lambda: stored_count(url) >= total, 60, f"{total} receipts stored")
    assert_exactly_once(url, sent)
    answer = settled(server, token)
    assert answer["database_error"] is None and answer["connected"] is True and answer["error"] is None
    return answer


def assert_session_kept(server: ServerProcess, sessions: int = 1) -> None:
    """The MQTT sessions of this run were never dropped: each connected once, no reconnect."""
    assert server.log_path is not None
    log = server.log_path.read_text(errors="replace")
    assert log.count("connected to 127.0.0.1") == sessions and "reconnecting" not in log, log


@pytest.mark.parametrize("sessions", [1, 2])
def test_postgres_stopped_mid_burst_keeps_the_session_and_stores_every_receipt_once(
    tmp_path, broker, own_postgres, postgres_url, sessions
):
    """PostgreSQL goes away while receipts pour in and stays away for several retries: the server keeps its MQTT
    session (or both, on a shared subscription), logs why it cannot store, and once PostgreSQL is back every receipt
    is stored once, no gap recorded."""
    server = start(tmp_path, broker, {"url": postgres_url}, sessions)
    token = read_token(server)
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=150, every_s=0.05)
    try:
        wait_until(lambda: stored_count(postgres_url) >= 100, 30, "the first receipts in the database")
        own_postgres.stop()
        sent_at_stop = sum(fleet.seqs().values())
        wait_until(
            lambda: db_failures(server) >= 3 and sum(fleet.seqs().values()) >= sent_at_stop + 200,
            30,
            "three failed attempts to store, and the stations sending on meanwhile",
        )
        assert server.alive()
        assert "connection failed" in full_log(server)
        own_postgres.start()
        answer = recovered(server, token, postgres_url, fleet, pinger)
        assert answer["db_errors"] >= 3
        # One session stores each station's events in order. Two do not: while one waits to retry, the other stores
        # later events of the same station and a gap is counted, then filled when the first one's batch goes in;
        # the gaps table (assert_exactly_once) is what must end empty.
        assert answer["gaps"] == 0 or sessions > 1
        assert len(answer["sessions"]) == sessions and all(s["received"] > 0 for s in answer["sessions"].values())
        assert_session_kept(server, sessions)
    finally:
        pinger.close()
        fleet.close()
        server.stop()


def test_sqlite_on_a_full_disk_keeps_the_session_and_stores_every_receipt_once_space_is_freed(
    tmp_path, broker, small_disk
):
    """The data dir's file system fills up while receipts pour in: the server stays up and connected and says the
    disk is full; once the filler is deleted, every receipt is stored once, no gap recorded, without a restart."""
    url = f"sqlite:///{small_disk / 'province.db'}"
    server = start(tmp_path, broker, {})
    token = read_token(server)
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=150, every_s=0.05)
    try:
        wait_until(lambda: stored_count(url) >= 100, 30, "the first receipts in the database")
        filler = fill(small_disk)
        wait_until(lambda: db_failures(server) >= 3, 30, "three failed attempts to store")
        assert server.alive()
        assert "database or disk is full" in full_log(server)
        filler.unlink()
        answer = recovered(server, token, url, fleet, pinger)
        assert answer["db_errors"] >= 3 and answer["gaps"] == 0
        assert_session_kept(server)
    finally:
        pinger.close()
        fleet.close()
        server.stop()


def test_sigterm_while_postgres_is_down_stops_in_time_and_everything_arrives_after_the_restart(
    tmp_path, broker, own_postgres, postgres_url
):
    """SIGTERM while the database is down: the server exits cleanly within systemd's stop timeout (30 s) and has
    acknowledged nothing it did not store; started again with PostgreSQL back, it stores every receipt once."""
    server = start(tmp_path, broker, {"url": postgres_url})
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=120, every_s=0.05)
    try:
        wait_until(lambda: stored_count(postgres_url) >= 100, 30, "the first receipts in the database")
        own_postgres.stop()
        wait_until(lambda: db_failures(server) >= 2, 30, "two failed attempts to store")
        began = time.monotonic()
        assert server.stop() == 0, full_log(server)
        took = time.monotonic() - began
        print(f"stopped in {took:.2f} s with the database down")
        assert took < 30, f"stopped in {took:.1f} s"
        assert "stopped" in full_log(server)
        sent_at_stop = sum(fleet.seqs().values())
        wait_until(lambda: sum(fleet.seqs().values()) >= sent_at_stop + 100, 30, "receipts sent while it is stopped")
        own_postgres.start()
        server.start().wait_ready()
        sent = all_answered(fleet, pinger)
        total = sum(sent.values())
        wait_until(lambda: stored_count(postgres_url) >= total, 60, f"{total} receipts stored")
        assert_exactly_once(postgres_url, sent)
        assert "session resumed" in full_log(server)
    finally:
        pinger.close()
        fleet.close()
        server.stop()


@pytest.mark.parametrize("failure", ["postgres stopped", "disk full"])
def test_health_says_why_while_the_database_fails(tmp_path, broker, failure, request):
    """What the operator checks first: while the database fails, `GET /api/v1/health` answers a monitor that polls it,
    with the database's error in words and the MQTT session still connected; a request the database must answer is
    a 503 in words, never a bare 500. (Before, health was a 500 with no body: the token check and the audit line went
    through the failing database.)"""
    if failure == "postgres stopped":
        pg, url = request.getfixturevalue("own_postgres"), request.getfixturevalue("postgres_url")
        # the driver's words depend on the moment: "connection failed", "server closed the connection unexpectedly"
        server, words = start(tmp_path, broker, {"url": url}), f"cannot write to the database {url}: "
    else:
        disk = request.getfixturevalue("small_disk")
        server, words = start(tmp_path, broker, {}), "database or disk is full"
    token = read_token(server)
    assert health(server, token)[0] == 200  # the monitor's last poll before the failure
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=60, every_s=0.05)
    try:
        if failure == "postgres stopped":
            pg.stop()
        else:
            fill(disk)
        wait_until(lambda: db_failures(server) >= 1, 30, "a failed attempt to store")
        status, answer = health(server, token)
        assert status == 200, answer
        assert words in answer["database_error"] and answer["connected"] is True and answer["db_errors"] >= 1
        status, answer = health(server, token, "/api/v1/stations")
        if failure == "postgres stopped":
            assert status == 503 and "the database cannot be reached to check the token" in answer["error"], answer
        else:  # a full disk still reads: the list is answered, only its audit line is lost (and logged)
            assert status == 200 and isinstance(answer, list), answer
            assert "audit line not written (GET /api/v1/stations" in full_log(server)
    finally:  # the fixtures start PostgreSQL again and unmount the full disk
        pinger.close()
        fleet.close()
        server.stop()


@pytest.mark.parametrize("data_dir", ["fresh", "migrated before"])
def test_started_on_a_full_disk_the_server_says_so_and_stores_everything_once_space_is_freed(
    tmp_path, broker, small_disk, data_dir
):
    """The server (re)started while its data dir's file system is full (an empty data dir, or one a previous run
    migrated): it starts, its log says the disk is full, and once space is freed it migrates and stores every receipt
    once, without a restart. (Before, it exited: "database or disk is full", or for a migrated database SQLite's
    misleading "disk I/O error".)"""
    url = f"sqlite:///{small_disk / 'province.db'}"
    config = province_config(tmp_path, broker.port, broker=BROKER, database=DATABASE)
    server = ServerProcess(tmp_path, config)
    if data_dir == "migrated before":
        server.start().wait_ready()
        assert server.stop() == 0
    filler = fill(small_disk)
    server.start().wait_ready()
    # a command at the terminal does not wait: it fails at once, in one line that says why
    done = add_read_token(server)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"no space left on the file system of {small_disk}" in done.stderr
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=60, every_s=0.05)
    try:
        wait_until(lambda: full_log(server).count("(no space left on the file system of") >= 3, 30, "three attempts")
        assert f"cannot open or migrate the database {url}" in full_log(server)
        assert f"database {url} not ready: waiting for space to migrate it" in full_log(server)
        assert server.alive() and stored_count(url) == 0
        filler.unlink()
        sent = all_answered(fleet, pinger)
        total = sum(sent.values())
        wait_until(lambda: stored_count(url) >= total, 60, f"{total} receipts stored")
        assert_exactly_once(url, sent)
        assert "migrated: storing again" in full_log(server)
        answer = settled(server, read_token(server))
        assert answer["database_error"] is None and answer["connected"] is True, answer
        assert_session_kept(server)
    finally:
        pinger.close()
        fleet.close()
        server.stop()


def test_sigterm_while_postgres_hangs_stops_in_time_and_everything_arrives_after_the_restart(
    tmp_path, broker, own_postgres, postgres_url
):
    """PostgreSQL stops answering (its processes frozen, as when its disk hangs) while receipts pour in: the
    session's thread waits inside the database, and SIGTERM must still end the server within systemd's stop
    timeout (30 s), cleanly; what it had not stored was not acknowledged, and after PostgreSQL is back and the server
    restarted every receipt is stored once."""
    server = start(tmp_path, broker, {"url": postgres_url})
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=120, every_s=0.05)
    frozen: list[int] = []
    try:
        wait_until(lambda: stored_count(postgres_url) >= 100, 30, "the first receipts in the database")
        frozen = postgres_pids(own_postgres)
        signal_all(frozen, signal.SIGSTOP)
        sent_at_freeze = sum(fleet.seqs().values())
        wait_until(lambda: sum(fleet.seqs().values()) >= sent_at_freeze + 100, 30, "receipts sent while it hangs")
        began = time.monotonic()
        code = server.stop()
        took = time.monotonic() - began
        print(f"stopped in {took:.2f} s with the database hanging")
        assert code == 0 and took < 30, f"exit code {code} after {took:.1f} s:\n{full_log(server)[-3000:]}"
        assert "stopping without it" in full_log(server)
        signal_all(frozen, signal.SIGCONT)
        frozen = []
        server.start().wait_ready()
        sent = all_answered(fleet, pinger)
        total = sum(sent.values())
        wait_until(lambda: stored_count(postgres_url) >= total, 60, f"{total} receipts stored")
        assert_exactly_once(postgres_url, sent)
    finally:
        signal_all(frozen, signal.SIGCONT)
        pinger.close()
        fleet.close()
        server.stop()


def test_a_lock_held_on_the_events_table_does_not_stall_the_session(tmp_path, broker, own_postgres, postgres_url):
    """Someone holds a lock the ingest needs (a `VACUUM FULL events` or a `LOCK TABLE` in an open psql session) for
    longer than the MQTT keep-alive lets the session's thread be away: the ingest gives up waiting, says so, keeps
    the session and retries; once the lock is released, every receipt is stored once."""
    server = start(tmp_path, broker, {"url": postgres_url}, keepalive_s=5)
    fleet = BackgroundFleet([station_path(i) for i in range(STATIONS)], broker.host, broker.port)
    pinger = Pinger(broker, count=200, every_s=0.05)
    engine = create_engine(postgres_url)
    try:
        wait_until(lambda: stored_count(postgres_url) >= 100, 30, "the first receipts in the database")
        with engine.begin() as conn:
            conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
            time.sleep(12)  # past the broker's patience: 1.5 keep-alives without a ping
        sent = all_answered(fleet, pinger)
        total = sum(sent.values())
        wait_until(lambda: stored_count(postgres_url) >= total, 60, f"{total} receipts stored")
        assert_exactly_once(postgres_url, sent)
        assert "lock timeout" in full_log(server)
        assert_session_kept(server)
    finally:
        engine.dispose()
        pinger.close()
        fleet.close()
        server.stop()
