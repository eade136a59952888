"""A store made before `next_at` existed is migrated in place when the station opens it.

`tests/data/store-before-next-at.db` was written by the previous schema (no
`next_at` column): three scheduled bulletins, one of them `until`
9999-12-31, which that version accepted and then could not arm.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loaxa.schedule import Scheduler
from loaxa.store import Ledger, Store

OLD_STORE = Path(__file__).parent / "data" / "store-before-next-at.db"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "station.db"
    shutil.copyfile(OLD_STORE, path)
    return path


def columns(store: Store) -> list[str]:
    return [r["name"] for r in store.query("PRAGMA table_info(bulletins)")]


def test_the_old_store_really_has_the_old_schema(old_store):
    import sqlite3

    db = sqlite3.connect(old_store)
    assert "next_at" not in [r[1] for r in db.execute("PRAGMA table_info(bulletins)")]
    db.close()


def test_opening_an_old_store_adds_next_at_fills_it_and_indexes_it(old_store):
    store = Store(old_store)
    try:
        assert "next_at" in columns(store)
        rows = {r["id"]: r for r in store.query("SELECT id, received_at, next_at FROM bulletins")}
        # Filled with when each was last accounted for: due at once, so the first catch-up looks at each.
        assert all(r["next_at"] == r["received_at"] for r in rows.values())
        plan = " ".join(
            r["detail"]
            for r in store.query(
                "EXPLAIN QUERY PLAN SELECT * FROM bulletins WHERE state = ? AND next_at <= ? ORDER BY next_at",
                ("active", 0.0),
            )
        )
        assert "bulletins_next" in plan
    finally:
        store.close()
    again = Store(old_store)  # opening it again changes nothing
    try:
        assert columns(again).count("next_at") == 1
    finally:
        again.close()


def test_after_the_migration_the_first_catch_up_stores_each_next_slot_and_fails_the_unarmable_one(old_store):
    store = Store(old_store)
    ledger = Ledger(store, "hue/phu-vang/loa-1")
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    scheduler = Scheduler(ledger, TZ, 600.0, lambda: True, lambda: None, now=lambda: now)
    try:
        scheduler.catch_up()
        rows = {r["id"]: r for r in store.query("SELECT id, state, next_at FROM bulletins")}
        assert rows["old-daily"]["next_at"] == datetime(2099, 1, 1, 5, 30, tzinfo=TZ).timestamp()
        assert rows["old-at"]["next_at"] == datetime(2099, 6, 1, 7, 0, tzinfo=TZ).timestamp()
        assert (rows["old-forever"]["state"], rows["old-forever"]["next_at"]) == ("failed", None)
        events = [json.loads(r["payload"]) for r in store.query("SELECT payload FROM events ORDER BY seq")]
        [failed] = [e for e in events if e["event"] == "failed"]
        assert failed["id"] == "old-forever"
        assert "schedule.until: 9999-12-31 is past the last date this station can schedule" in failed["detail"]
        assert [id for id, _ in scheduler.next_slots()] == ["old-daily", "old-at"]
    finally:
        store.close()
