"""Scheduling against a controllable clock: slots become plays, late ones `missed`.

A real SQLite store and the real `Scheduler`; only the wall clock is ours,
so a week of daily slots or a station that was off for an hour takes no
time. The timer thread is not started: `catch_up` is what it would call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from loaxa import schedule as schedule_module
from loaxa.protocol import Bulletin, validate_command
from loaxa.schedule import Scheduler
from loaxa.store import Ledger, Store

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ISSUER = "province"
START = datetime(2026, 3, 2, 6, 0, tzinfo=TZ)  # a Monday, 06:00 local


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start.astimezone(UTC)
        self.synced = True

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        self.at = when.astimezone(UTC)


class Rig:
    def __init__(self, root: Path, grace_s: float = 60.0) -> None:
        self.store = Store(root / "station.db")
        self.ledger = Ledger(self.store, "hue/phu-vang/loa-1")
        self.clock = Clock(START)
        self.due = 0
        self.prepared: list[dict[str, Any]] = []
        self.scheduler = self.make_scheduler(grace_s)

    def make_scheduler(self, grace_s: float) -> Scheduler:
        def on_due() -> None:
            self.due += 1

        return Scheduler(
            self.ledger, TZ, grace_s, lambda: self.clock.synced, on_due, self.prepared.append, now=self.clock
        )

    def receive(self, **command: Any) -> None:
        """What the inbox does with a new bulletin, at the fake clock's time."""
        bulletin = validate_command({"type": "bulletin", "text": "Thông báo.", **command})
        now = self.clock()
        first = self.scheduler.first_slot(bulletin, now)
        self.ledger.accept(ISSUER, bulletin, now, max_queue=1000, first_slot=first)
        self.scheduler.added(ISSUER, bulletin)

    def plays(self, id: str) -> list[tuple[str, str]]:
        rows = self.store.query("SELECT occurrence, state FROM plays WHERE id = ? ORDER BY due_at", (id,))
        return [(r["occurrence"], r["state"]) for r in rows]

    def events(self, id: str) -> list[dict[str, Any]]:
        """What scheduling reported for `id`: every receipt after the `received` of its arrival."""
        rows = self.store.query("SELECT payload FROM events ORDER BY seq")
        mine = [e for e in (json.loads(r["payload"]) for r in rows) if e["id"] == id]
        return [e for e in mine if e["event"] != "received"]

    def state(self, id: str) -> str:
        return self.store.query("SELECT state FROM bulletins WHERE id = ?", (id,))[0]["state"]

    def run_until(self, when: datetime, step_s: float = 60.0) -> None:
        """Advance the clock in steps, catching up at each, as the periodic job would."""
        while self.clock() < when:
            self.clock.advance(min(step_s, (when - self.clock()).total_seconds()))
            self.scheduler.catch_up()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.store.close()


def iso(when: datetime) -> str:
    return when.isoformat()


def test_a_one_off_slot_becomes_one_play_at_its_time_and_only_once(rig):
    slot = START + timedelta(minutes=5)
    rig.receive(id="once", schedule={"at": iso(slot)})
    assert [e["event"] for e in rig.events("once")] == ["scheduled"]
    assert rig.events("once")[0]["occurrence"] == slot.isoformat()
    rig.run_until(slot - timedelta(seconds=1), step_s=30)
    assert rig.plays("once") == []
    rig.clock.set(slot)
    rig.scheduler.catch_up()
    rig.scheduler.catch_up()  # the slot timer and the periodic pass may both fire
    assert rig.plays("once") == [(slot.isoformat(), "pending")]
    assert rig.due >= 1
    assert rig.state("once") == "done"  # no occurrence left to account for
    assert rig.prepared and rig.prepared[0]["id"] == "once"  # voiced ahead into the cache


def test_a_slot_late_within_the_grace_still_plays(rig):
    slot = START + timedelta(minutes=5)
    rig.receive(id="late-ok", schedule={"at": iso(slot)})
    rig.clock.set(slot + timedelta(seconds=59))  # grace is 60 s
    rig.scheduler.catch_up()
    assert rig.plays("late-ok") == [(slot.isoformat(), "pending")]
    assert "missed" not in [e["event"] for e in rig.events("late-ok")]


def test_a_slot_beyond_the_grace_is_reported_missed_and_never_queued(rig):
    slot = START + timedelta(minutes=5)
    rig.receive(id="off", schedule={"at": iso(slot)})
    rig.clock.set(slot + timedelta(minutes=30))  # the station was off
    rig.scheduler.catch_up()
    assert rig.plays("off") == [(slot.isoformat(), "missed")]
    [missed] = [e for e in rig.events("off") if e["event"] == "missed"]
    assert missed["occurrence"] == slot.isoformat()
    assert "beyond the 60 s grace" in missed["detail"]


def test_a_slot_just_before_arrival_plays_but_one_past_the_grace_does_not(rig):
    rig.receive(id="just", schedule={"at": iso(START - timedelta(seconds=20))})
    assert rig.plays("just") == [((START - timedelta(seconds=20)).isoformat(), "pending")]
    rig.receive(id="gone", schedule={"at": iso(START - timedelta(minutes=10))})
    assert rig.plays("gone") == []
    assert [e["event"] for e in rig.events("gone")] == ["missed"]
    assert rig.state("gone") == "done"


def test_daily_slots_fire_on_the_chosen_weekdays_inside_the_validity_window(rig):
    # Mon 2026-03-02 .. Sun 2026-03-15; valid Tue 3rd to Thu 12th, Tue and Thu only.
    rig.receive(
        id="daily",
        schedule={"daily": ["07:00", "17:30"], "days": ["tue", "thu"], "from": "2026-03-03", "until": "2026-03-12"},
    )
    rig.run_until(datetime(2026, 3, 16, 0, 0, tzinfo=TZ), step_s=3600)
    slots = [datetime.fromisoformat(o) for o, state in rig.plays("daily")]
    expected = [datetime(2026, 3, day, hh, mm, tzinfo=TZ) for day in (3, 5, 10, 12) for hh, mm in ((7, 0), (17, 30))]
    assert slots == expected
    assert all(s.utcoffset() == timedelta(hours=7) for s in slots)
    assert rig.state("daily") == "done"  # after `until`, nothing left


def test_expires_ends_a_daily_schedule_with_an_expired_receipt(rig):
    rig.receive(id="exp", schedule={"daily": ["07:00"]}, expires=iso(START + timedelta(days=1, hours=3)))
    rig.run_until(START + timedelta(days=3), step_s=3600)
    assert [o for o, _ in rig.plays("exp")] == [
        datetime(2026, 3, 2, 7, 0, tzinfo=TZ).isoformat(),
        datetime(2026, 3, 3, 7, 0, tzinfo=TZ).isoformat(),
    ]
    assert rig.state("exp") == "expired"
    assert [e["event"] for e in rig.events("exp")].count("expired") == 1


def test_an_unsynchronised_clock_holds_slots_until_it_is_trusted(rig):
    slot = START + timedelta(minutes=1)
    rig.receive(id="held", schedule={"at": iso(slot)})
    rig.clock.synced = False
    rig.run_until(slot + timedelta(seconds=30), step_s=10)
    assert rig.plays("held") == []
    rig.clock.synced = True
    rig.scheduler.catch_up()
    assert rig.plays("held") == [(slot.isoformat(), "pending")]


def test_a_clock_trusted_too_late_reports_the_slot_missed(rig):
    slot = START + timedelta(minutes=1)
    rig.receive(id="stale", schedule={"at": iso(slot)})
    rig.clock.synced = False
    rig.run_until(slot + timedelta(minutes=5), step_s=60)
    rig.clock.synced = True
    rig.scheduler.catch_up()
    assert rig.plays("stale") == [(slot.isoformat(), "missed")]


def test_a_restarted_scheduler_on_the_same_store_adds_no_second_play(rig):
    rig.receive(id="daily2", schedule={"daily": ["06:30"]})
    rig.run_until(START + timedelta(hours=1), step_s=600)
    assert len(rig.plays("daily2")) == 1
    again = rig.make_scheduler(60.0)  # the daemon came back up
    again.catch_up()
    assert len(rig.plays("daily2")) == 1
    rig.clock.set(START + timedelta(days=1, minutes=31))
    again.catch_up()
    assert len(rig.plays("daily2")) == 2


def test_next_slots_lists_upcoming_occurrences_soonest_first(rig):
    rig.receive(id="b", schedule={"daily": ["18:00"]})
    rig.receive(id="a", schedule={"at": iso(START + timedelta(hours=1))})
    assert rig.scheduler.next_slots() == [
        ("a", (START + timedelta(hours=1)).isoformat()),
        ("b", datetime(2026, 3, 2, 18, 0, tzinfo=TZ).isoformat()),
    ]


# -- a stored schedule that cannot be armed (it once stopped the daemon at every start) ---------------


def store_unvalidated(rig: Rig, id: str, schedule: dict[str, Any]) -> None:
    """A bulletin stored as an older version would have stored it, past today's validation."""
    bulletin = Bulletin.model_construct(type="bulletin", id=id, text="Thông báo cũ.", schedule=schedule)
    rig.ledger.accept(ISSUER, bulletin, rig.clock(), max_queue=1000, first_slot=START + timedelta(days=1))


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ({"daily": ["05:30"], "until": "9999-12-31"}, "schedule.until: 9999-12-31 is past the last date"),
        ({"daily": ["25:61"]}, "'25:61' is not a time of day"),
        ({"at": "0001-01-01T00:00:00+14:00"}, "is before the first date"),
        ({"daily": ["05:30"], "days": ["funday"]}, "'funday' is not a day"),
    ],
)
def test_until_9999_in_the_store_fails_that_bulletin_once_and_the_others_still_play(rig, schedule, reason):
    store_unvalidated(rig, "forever", schedule)
    rig.receive(id="good", schedule={"at": iso(START + timedelta(minutes=5))})
    restarted = rig.make_scheduler(60.0)
    try:
        restarted.start()  # must not raise: it used to, and systemd restarted it into the same crash
        failed = [e for e in rig.events("forever") if e["event"] == "failed"]
        assert len(failed) == 1 and reason in failed[0]["detail"]
        assert failed[0]["detail"].startswith("cannot be scheduled: ")
        assert rig.state("forever") == "failed"  # out of the schedule: not retried at every start
        rig.clock.set(START + timedelta(minutes=5))
        restarted.catch_up()
        assert rig.plays("good") == [(iso(START + timedelta(minutes=5)), "pending")]
    finally:
        restarted.stop()
    again = rig.make_scheduler(60.0)
    again.start()
    again.stop()
    assert [e["event"] for e in rig.events("forever")].count("failed") == 1  # said once


# -- work grows with what is due, not with what is stored --------------------------------------------


class Reads:
    """Counts the schedules the scheduler parses (each is JSON read from a row and checked)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = schedule_module.check_schedule

        def counting(obj: Any) -> Any:
            self.count += 1
            return real(obj)

        monkeypatch.setattr(schedule_module, "check_schedule", counting)

    def during(self, action: Any) -> int:
        before = self.count
        action()
        return self.count - before


def test_thousands_of_scheduled_bulletins_cost_one_schedule_read_per_accept_and_none_while_idle(rig, monkeypatch):
    # The fault: every accept, and the periodic catch-up, read and expanded every stored schedule.
    for n in range(600):
        rig.receive(id=f"many-{n}", schedule={"daily": [f"{7 + n % 12:02d}:{n % 60:02d}"]})
    reads = Reads(monkeypatch)
    assert reads.during(lambda: rig.receive(id="one-more", schedule={"daily": ["06:30"]})) <= 2
    assert reads.during(rig.scheduler.catch_up) == 0  # nothing due: an index says so
    assert reads.during(lambda: rig.scheduler.next_slots(limit=3)) <= 10
    assert [id for id, _ in rig.scheduler.next_slots(limit=3)] == ["one-more", "many-0", "many-120"]  # ties by id
    rig.clock.set(datetime(2026, 3, 2, 7, 0, tzinfo=TZ))  # the 07:00 slot of many-0, -60, ... -540
    assert reads.during(rig.scheduler.catch_up) == 10 + 1  # the due ones, and one-more's 06:30 missed
    assert len([1 for n in range(0, 600, 60) if rig.plays(f"many-{n}")]) == 10
