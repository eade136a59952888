"""Regression: the store did not know when it was lost (issue 17, "The store knows when it was lost").

Deleted while running, nothing noticed (health ok); after a restart a fresh
store was made silently: event `seq` started again at 1 and an aired
bulletin id was accepted and aired again. Damaged in the middle, every
bulletin was `rejected: internal error`; with its header damaged the daemon
exited "file is not a database" and crash-looped; with `storage.dir`
read-only it printed a raw traceback. Each test names the item it guards:

1. a store deleted or replaced while running is noticed and made again
   before anything else is committed, and the province is told;
2. a store missing at start is a reported incident, and `seq` continues
   above every number the lost store could have used, also after kill -9;
3. a signed command issued before the loss is refused: it may have aired;
4. a damaged store is set aside and a new one started, the station keeps
   airing; a read-only or missing `storage.dir` is one log line, exit 1,
   and a `doctor` failure.

Real daemons, a real Mosquitto, real SQLite files and real damage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from loaxa.errors import StoreError
from loaxa.protocol import Bulletin, validate_command
from loaxa.security import public_key_b64, sign
from loaxa.states import Event
from loaxa.store import Ledger, Store
from loaxa.testing.disk import tmpfs
from loaxa.testing.station import Operator, StationProcess, distinct_by_seq, integrity, station_config

TEXT = "Xin chào bà con."
STATION = "hue/phu-vang/loa-1"


def bulletin(id: str) -> dict[str, Any]:
    return {"type": "bulletin", "id": id, "text": TEXT, "chime": False}


def start(tmp_path: Path, broker: Any, operator: Operator, **overrides: Any) -> StationProcess:
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}", **overrides))
    return restart(station, operator)


def restart(station: StationProcess, operator: Operator) -> StationProcess:
    """Start the daemon (again) and wait for the online state of this run."""
    started = datetime.now(UTC)
    station.start()
    operator.wait_state(lambda st: st["online"] and datetime.fromisoformat(st["at"]) > started, 30)
    return station


def lose_store(station: StationProcess) -> None:
    """`rm station.db*` as a person (or a failing card) would: the file and its -wal and -shm, not the marker."""
    for side in ("", "-wal", "-shm"):
        station.store_path.with_name(station.store_path.name + side).unlink(missing_ok=True)


def incidents(operator: Operator) -> list[dict[str, Any]]:
    """The receipts that say the store was lost: `failed` without an id, detail `storage: …`."""
    return [e for e in distinct_by_seq(operator.events) if e["id"] is None and e["event"] == "failed"]


def max_seq(operator: Operator) -> int:
    return max(e["seq"] for e in operator.events)


def doctor(station: StationProcess) -> tuple[int, dict[str, dict[str, str]]]:
    """`loaxa doctor --json` on the station's config, the slow probes left out; exit code and findings by check."""
    skips = [arg for check in ("audio", "voice", "fallback", "broker", "clock") for arg in ("--skip", check)]
    done = subprocess.run(
        [sys.executable, "-m", "loaxa", "doctor", "--config", str(station.config_path), "--json", *skips],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, {f["check"]: f for f in json.loads(done.stdout)}


# -- 1. deleted or replaced while running ----------------------------------------------


def test_item1_a_store_deleted_while_running_is_written_again_before_the_next_command(tmp_path, broker, operator):
    station = start(tmp_path, broker, operator)
    try:
        operator.send(bulletin("kept-1"))
        operator.wait_for("kept-1", "finished", 60)
        lose_store(station)
        operator.send(bulletin("after-1"))
        operator.wait_for("after-1", "finished", 60)
        [incident] = incidents(operator)
        assert incident["detail"] == (
            "storage: the store file was deleted while running; it was written again from the open copy, "
            "nothing was lost"
        )
        # nothing was committed into the deleted file: the incident comes before the next command's receipt
        assert incident["seq"] < operator.wait_for("after-1", "received")["seq"]
        assert integrity(station) == "ok"
        state = operator.wait_state(lambda st: st["storage"]["incident"] is not None)
        assert state["storage"]["fault"] is None
        assert state["storage"]["incident"]["history_lost"] is False
        operator.send(bulletin("kept-1"))  # the ids seen survived with the rest
        operator.wait_for("kept-1", "duplicate", 30)
        seqs = [e["seq"] for e in distinct_by_seq(operator.events)]
        assert seqs == list(range(1, len(seqs) + 1)), "an event was lost"
        assert station.alive()
        assert station.log().count(f"station {STATION} up") == 1, "the daemon restarted"
    finally:
        assert station.stop() == 0, station.log()
    restart(station, operator)  # and the restored file is the one the next start takes, without an incident
    try:
        operator.send(bulletin("kept-1"))
        operator.wait_for("kept-1", "duplicate", 30)
        assert len(incidents(operator)) == 1
    finally:
        assert station.stop() == 0, station.log()


def test_item1_a_store_replaced_while_running_is_put_back_and_the_stranger_kept_aside(tmp_path):
    path = tmp_path / "var" / "station.db"
    store = Store(path)
    ledger = Ledger(store, STATION)
    try:
        aired = validate_command(bulletin("aired-1"))
        assert isinstance(aired, Bulletin)
        assert ledger.accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None).stored
        stranger = Store(tmp_path / "elsewhere" / "station.db")  # another store, e.g. copied from another board
        stranger.close()
        os.replace(stranger.path, path)
        again = ledger.accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None)
        assert not again.stored, "the replaced store forgot what was seen"
        [kept] = path.parent.glob("station.db.replaced-*Z")  # its -wal and -shm, if any, beside it
        assert Store(kept).store_id == stranger.store_id  # the stranger is kept, whole, for a person to look at
        incident = store.status()["incident"]
        assert incident["what"].startswith("the store file was replaced while running; it was written again")
        assert incident["kept_as"] == kept.name
        assert store.status()["store"] != stranger.store_id
    finally:
        store.close()


def test_item1_a_storage_dir_removed_while_running_is_made_again_with_the_store_and_its_marker(tmp_path):
    path = tmp_path / "var" / "station.db"
    store = Store(path)
    ledger = Ledger(store, STATION)
    try:
        ledger.receipt(Event.PONG, "p-1")
        shutil.rmtree(path.parent)
        ledger.receipt(Event.PONG, "p-2")
        assert [json.loads(p)["id"] for _, p in store.unsent_events()] == ["p-1", None, "p-2"]
        assert path.with_name("station.db.marker").exists()
        assert store.status()["incident"]["history_lost"] is False
    finally:
        store.close()


def test_item1_a_store_replaced_while_stopped_is_kept_aside_and_its_bulletins_never_air_here(tmp_path):
    path = tmp_path / "var" / "station.db"
    ours = Store(path)
    aired = validate_command(bulletin("aired-1"))
    assert isinstance(aired, Bulletin)
    Ledger(ours, STATION).accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None)
    ours.close()
    other = Store(tmp_path / "other-board" / "station.db")
    theirs = validate_command(bulletin("theirs-1"))
    assert isinstance(theirs, Bulletin)
    Ledger(other, "hue/phu-vang/loa-2").accept("province", theirs, datetime.now(UTC), max_queue=10, first_slot=None)
    other.close()
    shutil.copyfile(other.path, path)  # a technician copies another board's store in
    store = Store(path)
    ledger = Ledger(store, STATION)
    try:
        incident = store.status()["incident"]
        assert incident["what"].startswith(f"the store was replaced by another one (store {other.store_id}, not ")
        assert (path.parent / incident["kept_as"]).exists()
        assert store.store_id not in (ours.store_id, other.store_id)
        assert ledger.open_plays() == [], "another station's bulletin would air here"
        again = ledger.accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None)
        assert not again.stored, "the ids this station had seen were forgotten"
    finally:
        store.close()


# -- 2. missing at start; seq never repeats -------------------------------------------


def test_item2_a_store_missing_at_start_is_reported_and_seq_continues_past_every_number_used(
    tmp_path, broker, operator
):
    station = start(tmp_path, broker, operator)
    operator.send(bulletin("before-1"))
    operator.wait_for("before-1", "finished", 60)
    lost_store = operator.wait_state(lambda st: st["storage"]["store"] is not None)["storage"]["store"]
    station.kill()  # kill -9: no chance to update the marker on the way out
    used = max_seq(operator)
    lose_store(station)
    restart(station, operator)
    try:
        incident = operator.wait_for(None, "failed", 30)
        assert incident["detail"] == "storage: the store station.db was missing at start; a new one was started"
        operator.send(bulletin("after-1"))
        operator.wait_for("after-1", "finished", 60)
        assert min(e["seq"] for e in operator.events if e["id"] == "after-1") > incident["seq"] > used
        assert [e["id"] for e in operator.events if e["seq"] <= used] == ["before-1"] * 3, "a seq came again"
        state = operator.wait_state(lambda st: st["storage"]["store"] not in (None, lost_store))
        assert state["storage"]["incident"]["history_lost"] is True
        code, found = doctor(station)
        assert found["store"]["status"] == "WARN", found["store"]
        assert found["store"]["detail"].endswith("the store station.db was missing at start; a new one was started")
        assert code == 0
    finally:
        assert station.stop() == 0, station.log()


WRITER = """
import sys
from pathlib import Path
from loaxa.states import Event
from loaxa.store import Ledger, Store
ledger = Ledger(Store(Path(sys.argv[1])), "hue/phu-vang/loa-1")
n = 0
while True:
    n += 1
    ledger.receipt(Event.PONG, f"p-{n}")
    if n % 100 == 0:
        print(n, flush=True)
"""


def test_item2_the_reserved_seq_is_durable_under_kill_9_so_a_new_store_never_repeats_one(tmp_path):
    path = tmp_path / "var" / "station.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    try:
        for line in writer.stdout:  # past the first reservation (1000), killed in the middle of the second
            if int(line) >= 1500:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    db = sqlite3.connect(path)
    used = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    db.close()
    assert used >= 1500
    path.unlink()
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    store = Store(path)
    try:
        Ledger(store, STATION)  # tells the province: the first event of the new store
        [(seq, payload)] = store.unsent_events()
        assert seq > used
        assert json.loads(payload)["detail"].startswith("storage: the store station.db was missing at start")
    finally:
        store.close()


def test_item2_a_marker_deleted_while_running_is_written_again_so_a_later_loss_is_still_noticed(tmp_path):
    path = tmp_path / "var" / "station.db"
    marker = path.with_name("station.db.marker")
    store = Store(path)
    ledger = Ledger(store, STATION)
    try:
        ledger.receipt(Event.PONG, "p-1")
        marker.unlink()
        store.check()  # what the reporter does every few seconds
        written = json.loads(marker.read_text())
        assert written["store_id"] == store.store_id
        assert written["seq_reserved"] >= max(seq for seq, _ in store.unsent_events())
    finally:
        store.close()


# -- 3. replay protection survives the loss ---------------------------------------------


def test_item3_a_signed_bulletin_replayed_after_the_store_was_lost_does_not_air_again(tmp_path, broker, operator):
    key = Ed25519PrivateKey.generate()
    issuers = [{"kid": "province", "public_key": public_key_b64(key)}]
    station = start(tmp_path, broker, operator, security__require_signature=True, security__issuers=issuers)
    captured = sign({**bulletin("aired-1"), "to": STATION}, key, "province", issued=datetime.now(UTC))
    try:
        operator.send(captured)
        operator.wait_for("aired-1", "finished", 60)
    finally:
        assert station.stop() == 0, station.log()
    lose_store(station)
    restart(station, operator)
    try:
        incident = operator.wait_for(None, "failed", 30)
        operator.send(captured)  # the same bytes, well within the replay window
        rejected = operator.wait_for("aired-1", "rejected", 30)
        assert rejected["detail"].startswith(f"'issued' {captured['issued']} is before ")
        assert rejected["detail"].endswith(
            "when this station's store was lost with the ids it had seen: it may have aired already; "
            "send it again with a new issued time"
        )
        assert operator.of("aired-1") == ["received", "started", "finished", "rejected"]
        issued = datetime.fromisoformat(incident["at"]) + timedelta(seconds=1)  # issued after the loss
        operator.send(sign({**bulletin("fresh-1"), "to": STATION}, key, "province", issued=issued))
        operator.wait_for("fresh-1", "finished", 60)
    finally:
        assert station.stop() == 0, station.log()


def test_item3_an_unsigned_bulletin_that_aired_is_answered_duplicate_after_the_store_was_lost(
    tmp_path, broker, operator
):
    """No `issued` to date it by: the journal of seen ids beside the store keeps it from airing twice."""
    station = start(tmp_path, broker, operator)
    try:
        operator.send(bulletin("aired-1"))
        operator.wait_for("aired-1", "finished", 60)
    finally:
        assert station.stop() == 0, station.log()
    lose_store(station)
    restart(station, operator)
    try:
        operator.wait_for(None, "failed", 30)
        operator.send(bulletin("aired-1"))
        operator.wait_for("aired-1", "duplicate", 30)
        assert operator.of("aired-1") == ["received", "started", "finished", "duplicate"]
    finally:
        assert station.stop() == 0, station.log()


# -- 4. damaged; read-only or missing storage.dir -------------------------------------------


def damage_middle(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 3)
        f.write(b"\xa5" * (size // 3))


def damage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"\0" * 100)


@pytest.mark.parametrize("damage", [damage_middle, damage_header], ids=["middle", "header"])
def test_item4_a_damaged_store_is_set_aside_a_new_one_started_and_the_station_keeps_airing(
    tmp_path, broker, operator, damage
):
    station = start(tmp_path, broker, operator)
    try:
        operator.send(bulletin("before-1"))
        operator.wait_for("before-1", "finished", 60)
    finally:
        assert station.stop() == 0, station.log()
    used = max_seq(operator)
    damage(station.store_path)
    with pytest.raises(sqlite3.DatabaseError):  # the damage is real: SQLite itself says so
        assert integrity(station) == "ok"
    restart(station, operator)
    try:
        incident = operator.wait_for(None, "failed", 30)
        [kept] = station.store_path.parent.glob("station.db.damaged-*Z")  # its -wal and -shm, if any, beside it
        assert incident["detail"].startswith("storage: the store was damaged (")
        assert incident["detail"].endswith(f"); it is kept aside as {kept.name} and a new one was started")
        assert incident["seq"] > used
        operator.send(bulletin("after-1"))
        operator.wait_for("after-1", "finished", 60)
        state = operator.wait_state(lambda st: (st["storage"]["incident"] or {}).get("kept_as") == kept.name)
        assert state["online"] and state["storage"]["fault"] is None
        assert integrity(station) == "ok"
        assert station.alive()
        assert station.log().count(f"station {STATION} up") == 2, "one start before the damage, one after"
    finally:
        assert station.stop() == 0, station.log()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system, as a failing SD card remounts itself (root only)."""
    with tmpfs(tmp_path / "ro", "size=1m,ro") as where:
        yield where


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("read-only", "storage.dir {dir} is on a read-only file system"),
        ("missing", "storage.dir {dir} does not exist and cannot be made"),
    ],
)
def test_item4_a_read_only_or_missing_storage_dir_is_one_log_line_exit_1_and_a_doctor_failure(
    tmp_path, read_only_dir, case, said
):
    folder = read_only_dir if case == "read-only" else read_only_dir / "loaxa"
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, 1, "null", storage__dir=str(folder))).start()
    assert station.proc is not None
    assert station.proc.wait(60) == 1
    [line] = station.log().strip().splitlines()
    assert "Traceback" not in line
    assert f" ERROR loaxa: cannot open the station store {folder}/station.db: {said.format(dir=folder)} (" in line
    code, found = doctor(station)
    assert code == 1
    assert found["store"]["status"] == "FAIL", found["store"]
    reason = "is on a read-only file system" if case == "read-only" else "does not exist"
    assert found["store"]["detail"] == f"{folder} {reason}: the daemon stops at start"


def test_item4_a_store_damaged_while_running_is_found_at_the_first_error_and_a_new_one_started(tmp_path):
    path = tmp_path / "var" / "station.db"
    store = Store(path)
    ledger = Ledger(store, STATION)
    for n in range(300):
        ledger.receipt(Event.PONG, f"p-{n}", detail="x" * 100)
    aired = validate_command(bulletin("aired-1"))
    assert isinstance(aired, Bulletin)
    ledger.accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None)
    store.close()  # the events are in the file itself now, not in its -wal
    store = Store(path)
    ledger = Ledger(store, STATION)
    try:
        used = max(seq for seq, _ in store.unsent_events(limit=1000))
        with open(path, "r+b") as f:  # every page but the first
            f.seek(4096)
            f.write(b"\xa5" * (path.stat().st_size - 4096))
        other = sqlite3.connect(path)  # another writer: the daemon's cached pages are read from the file again
        other.execute("PRAGMA user_version = 1")
        other.close()
        with pytest.raises(StoreError, match="malformed"):
            store.unsent_events(limit=1000)
        incident = store.status()["incident"]
        assert incident["what"].startswith("the store file was found damaged (")
        assert incident["what"].endswith(f"a new one was started (it is kept as {incident['kept_as']})")
        assert (path.parent / incident["kept_as"]).exists()
        assert store.status()["fault"] is None
        ledger.receipt(Event.PONG, "after")  # the station goes on, on the new store
        [(told, receipt), (after, _)] = store.unsent_events()
        assert after > told > used
        assert json.loads(receipt)["detail"] == f"storage: {incident['what']}"
        assert incident["history_lost"] is True  # nothing of it could be read: commands issued before are refused
    finally:
        store.close()


def test_item4_what_a_damaged_store_still_gives_is_kept_its_seen_ids_and_its_event_numbers(tmp_path):
    path = tmp_path / "var" / "station.db"
    store = Store(path)
    ledger = Ledger(store, STATION)
    aired = validate_command(bulletin("aired-1"))
    assert isinstance(aired, Bulletin)
    ledger.accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None)
    for n in range(300):
        ledger.receipt(Event.PONG, f"p-{n}", detail="x" * 100)
    used = max(seq for seq, _ in store.unsent_events(limit=1000))
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:  # the second half: the receipts' pages, the last to be written
        f.seek(size // 2)
        f.write(b"\xa5" * (size - size // 2))
    with pytest.raises(sqlite3.DatabaseError):  # the damage is real: SQLite itself says so
        sqlite3.connect(path).execute("SELECT COUNT(*), MAX(length(payload)) FROM events").fetchall()
    path.with_name("station.db.marker").unlink()  # the numbers must come from the damaged file itself
    store = Store(path)
    ledger = Ledger(store, STATION)
    try:
        [(seq, payload)] = store.unsent_events()
        assert seq > used
        assert json.loads(payload)["detail"].startswith("storage: the store was damaged (")
        again = ledger.accept("province", aired, datetime.now(UTC), max_queue=10, first_slot=None)
        assert not again.stored, "the ids still readable in the damaged store were not kept"
    finally:
        store.close()
