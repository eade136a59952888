"""A real daemon restarting on a store that holds schedules it cannot arm.

The fault: a bulletin `{"daily": ["05:30"], "until": "9999-12-31"}`, once
stored, made every start die with `OverflowError` while arming it, and
systemd restarted the daemon into the same crash for ever. Here the store
is one made by the previous version (tests/data, before `next_at`), holding
that very bulletin; after a first run, another unarmable one is written in
with the ledger, past validation, as an older version could have. Each
start says why once (`failed`), and the station plays what it is sent.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loaxa.protocol import Bulletin
from loaxa.store import Ledger, Store
from loaxa.testing.station import StationProcess, distinct_by_seq, station_config

OLD_STORE = Path(__file__).parent / "data" / "store-before-next-at.db"
SHORT = "Xin chào bà con."


def failed(operator, id: str) -> list[dict]:
    return [e for e in distinct_by_seq(operator.events) if e["id"] == id and e["event"] == "failed"]


def test_until_9999_in_the_store_does_not_stop_the_daemon_starting(tmp_path, broker, operator):
    root = tmp_path / "station"
    station = StationProcess(root, station_config(root, broker.port, f"wav:{tmp_path / 'aired'}"))
    station.store_path.parent.mkdir(parents=True)
    shutil.copyfile(OLD_STORE, station.store_path)
    station.start()
    try:
        report = operator.wait_for("old-forever", "failed", 30)
        assert "schedule.until: 9999-12-31 is past the last date this station can schedule" in report["detail"]
        operator.send({"type": "bulletin", "id": "after-upgrade", "text": SHORT})
        operator.wait_for("after-upgrade", "finished", 30)
        queued = station.control({"cmd": "queue"})
        assert [id for id, _ in queued["next"]] == ["old-daily", "old-at"]  # the good old ones are kept
    finally:
        assert station.stop() == 0, station.log()

    store = Store(station.store_path)  # as an older version would have stored it: not validated
    bad = Bulletin.model_construct(type="bulletin", id="bad-time", text=SHORT, schedule={"daily": ["25:61"]})
    Ledger(store, "hue/phu-vang/loa-1").accept(
        "", bad, datetime.now(UTC), max_queue=100, first_slot=datetime.now(UTC) + timedelta(hours=1)
    )
    store.close()

    station.start()
    try:
        report = operator.wait_for("bad-time", "failed", 30)
        assert "'25:61' is not a time of day" in report["detail"]
        slot = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        operator.send({"type": "bulletin", "id": "on-slot", "text": SHORT, "schedule": {"at": slot.isoformat()}})
        started = operator.wait_for("on-slot", "started", 30)
        assert datetime.fromisoformat(started["occurrence"]) == slot
        operator.wait_for("on-slot", "finished", 30)
        assert len(failed(operator, "old-forever")) == 1  # said once, not again at this start
        assert len(failed(operator, "bad-time")) == 1
        assert station.alive()
    finally:
        assert station.stop() == 0, station.log()
    assert "Traceback" not in station.log()
