"""Fuzzing the schedule fields against the real path: the Inbox, the ledger, the Scheduler, a real store.

The fault this guards: `{"daily": ["05:30"], "until": "9999-12-31"}` was
answered `received`, `scheduled`, then `rejected (internal error)`, and the
daemon could never start again. Now every schedule the inbox accepts can be
armed and caught up at any time the station can reach, in any zone it may be
configured with, and every other one is refused with one `rejected` and its
reason, before anything is stored.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loaxa.errors import CommandError
from loaxa.protocol import Bulletin, parse_command, validate_command
from loaxa.schedule import Scheduler
from loaxa.store import Ledger, Store
from loaxa.testing.inbox import open_inbox
from loaxa.timing import DAY_NAMES, parse_schedule

ZONES = [
    "Asia/Ho_Chi_Minh",
    "Europe/Berlin",  # DST at 02:00
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute DST
    "America/Santiago",  # DST at midnight
    "Pacific/Kiritimati",  # UTC+14
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "UTC",
]
EDGE_DATES = [
    date(1, 1, 1),
    date(9999, 12, 31),
    date(1999, 12, 31),
    date(2000, 1, 1),
    date(2000, 2, 29),
    date(2024, 2, 29),
    date(2100, 12, 31),
    date(2011, 12, 30),
]
BAD_DATES = ["2100-02-29", "2026-13-01", "2026-02-30", "0000-01-01", "10000-01-01", "2026-3-1", "", "2026-03-01\n"]
BAD_TIMES = ["24:00", "25:61", "23:60", "5:3", "05:30+07:00", "05:30Z", "", "\u0665:\u0663\u0660", "05:30:00", "-1:00"]
# Clock instants near the ends of the range and near DST changes (UTC).
EDGE_INSTANTS = [
    datetime(2000, 1, 1, 0, 0, 30, tzinfo=UTC),
    datetime(2100, 12, 31, 23, 0, tzinfo=UTC),
    datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # Berlin springs forward
    datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # Berlin falls back
    datetime(2024, 3, 10, 7, 0, tzinfo=UTC),  # New York springs forward
    datetime(2024, 4, 7, 3, 0, tzinfo=UTC),  # Santiago falls back at midnight
    datetime(2011, 12, 29, 10, 0, tzinfo=UTC),  # Apia skips a day
    datetime(2024, 4, 6, 15, 0, tzinfo=UTC),  # Lord Howe half an hour back
]

dates = st.one_of(
    st.dates().map(date.isoformat),
    st.sampled_from(EDGE_DATES).map(date.isoformat),
    st.dates(date(2000, 1, 1), date(2100, 12, 31)).map(date.isoformat),
    st.sampled_from(BAD_DATES),
)
slot_times = st.one_of(
    st.times().map(lambda t: t.strftime("%H:%M")),
    st.sampled_from(["00:00", "23:59", "02:30", "00:15", "5:30"]),
    st.sampled_from(BAD_TIMES),
)
day_names = st.sampled_from([*DAY_NAMES, "Mon", " fri ", "funday", "monday", "", "MON"]) | st.integers(0, 6)
offsets = st.one_of(
    st.none(), st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))), st.just(UTC)
)
instants = st.one_of(
    st.builds(
        lambda when, tz: when.replace(tzinfo=tz).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        offsets,
    ),
    st.builds(
        lambda when, tz: when.replace(tzinfo=tz).isoformat(),
        st.datetimes(min_value=datetime(1999, 12, 30), max_value=datetime(2101, 1, 2)),
        offsets,
    ),
    st.sampled_from(["9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00", "0001-01-01T00:00:00+14:00"]),
)


# The same fields drawn only from what the protocol allows, edges included, so that many get past the inbox.
good_dates = st.one_of(
    st.dates(date(2000, 1, 1), date(2100, 12, 31)),
    st.sampled_from([d for d in EDGE_DATES if date(2000, 1, 1) <= d <= date(2100, 12, 31)]),
).map(date.isoformat)
good_times = st.one_of(st.times().map(lambda t: t.strftime("%H:%M")), st.sampled_from(["00:00", "23:59", "02:30"]))
good_instants = st.builds(
    lambda when, tz: when.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2100, 12, 30)),
    offsets.filter(lambda tz: tz is not None),
)


@st.composite
def schedules(draw: st.DrawFn, good: bool) -> dict[str, Any]:
    if draw(st.integers(0, 3)) == 0:
        return {"at": draw(good_instants if good else instants)}
    times = st.lists(good_times, min_size=1, max_size=4) if good else st.lists(slot_times, max_size=4)
    obj: dict[str, Any] = {"daily": draw(times)}
    if draw(st.booleans()):
        names = st.sampled_from(DAY_NAMES) if good else day_names
        obj["days"] = draw(st.lists(names, min_size=1 if good else 0, max_size=4))
    for key in ("from", "until"):
        if draw(st.booleans()):
            obj[key] = draw(good_dates if good else dates)
    return obj


@st.composite
def bulletins(draw: st.DrawFn) -> dict[str, Any]:
    good = draw(st.booleans())
    body: dict[str, Any] = {"type": "bulletin", "text": "Xin chào bà con.", "schedule": draw(schedules(good))}
    if draw(st.integers(0, 3)) == 0:
        body["expires"] = draw(good_instants if good else instants)
    return body


def events_of(store: Store, id: str) -> list[dict[str, Any]]:
    rows = store.query("SELECT payload FROM events ORDER BY seq")
    return [e for e in (json.loads(r["payload"]) for r in rows) if e["id"] == id]


FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
ids = count()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """An Inbox on a real store and the real clock, its scheduler built but not started."""
    store = Store(tmp_path_factory.mktemp("fuzz-sched") / "station.db")
    ledger = Ledger(store, "hue/phu-vang/loa-1")
    scheduler = Scheduler(ledger, ZoneInfo("Asia/Ho_Chi_Minh"), 600, lambda: True, lambda: None)
    yield store, open_inbox(ledger, scheduler)
    assert store.integrity_ok()
    store.close()


@settings(FUZZ, max_examples=500)
@given(body=bulletins())
def test_a_schedule_is_either_refused_with_one_reason_or_received_and_scheduled(live, body):
    store, inbox = live
    id = f"fz-{next(ids)}"
    payload = json.dumps({**body, "id": id}, ensure_ascii=False).encode()
    try:
        parse_command(payload)
        refused = False
    except CommandError:  # anything else fails the test
        refused = True
    inbox.handle(payload, False, {"topic": "test"})
    event("refused" if refused else "accepted")
    kinds = [e["event"] for e in events_of(store, id)]
    if refused:
        assert kinds == ["rejected"]
        assert events_of(store, id)[0]["detail"].split(":")[0] in (
            "schedule",
            "schedule.at",
            "schedule.daily",
            "schedule.days",
            "schedule.from",
            "schedule.until",
            "expires",
        )
        assert store.query("SELECT 1 FROM bulletins WHERE id = ?", (id,)) == []
    else:
        assert kinds[0] == "received" and kinds[1] in ("scheduled", "missed"), kinds
        assert "rejected" not in kinds and "failed" not in kinds, kinds


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@settings(FUZZ, max_examples=300)
@given(
    body=bulletins(),
    zone=st.sampled_from(ZONES),
    start=st.one_of(
        st.builds(
            lambda edge, shift: edge + timedelta(minutes=shift),
            st.sampled_from(EDGE_INSTANTS),
            st.integers(-180, 180),
        ),
        st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2100, 12, 30), timezones=st.just(UTC)),
    ),
    steps=st.lists(st.integers(0, 10 * 86400), min_size=1, max_size=4),
)
def test_whatever_the_inbox_accepts_can_be_armed_caught_up_and_restarted(body, zone, start, steps):
    try:
        bulletin = validate_command({**body, "id": "fz"})
    except CommandError:
        event("refused")
        return  # refusals are the test above
    event("accepted")
    assert isinstance(bulletin, Bulletin)
    tz = ZoneInfo(zone)
    clock = Clock(min(max(start, datetime(2000, 1, 1, 0, 1, tzinfo=UTC)), datetime(2100, 12, 31, 23, 0, tzinfo=UTC)))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "station.db")
        ledger = Ledger(store, "hue/phu-vang/loa-1")
        scheduler = Scheduler(ledger, tz, 600, lambda: True, lambda: None, now=clock, warmup_s=1.5)
        open_inbox(ledger, scheduler).apply("", bulletin, now=clock())  # what handle does once it is valid
        for step in steps:
            clock.at = min(clock.at + timedelta(seconds=step), datetime(2101, 1, 1, tzinfo=UTC))
            scheduler.catch_up()
            scheduler.next_slots()
        restarted = Scheduler(ledger, tz, 600, lambda: True, lambda: None, now=clock, warmup_s=1.5)
        restarted.start()
        restarted.stop()
        kinds = [e["event"] for e in events_of(store, "fz")]
        assert kinds[:2] in (["received", "scheduled"], ["received", "missed"]), kinds
        assert "failed" not in kinds and "rejected" not in kinds, kinds
        schedule = parse_schedule(bulletin.schedule)
        assert schedule is not None
        occurrences = [r["occurrence"] for r in store.query("SELECT occurrence FROM plays WHERE id = 'fz'")]
        assert len(occurrences) == len(set(occurrences))
        for occurrence in occurrences:
            slot = datetime.fromisoformat(occurrence)
            assert slot <= clock() + timedelta(milliseconds=1)
            if not schedule.once:
                assert schedule.allows(slot.astimezone(tz).date())
        [row] = store.query("SELECT state, next_at FROM bulletins WHERE id = 'fz'")
        assert row["state"] in ("active", "done", "expired")
        if row["state"] == "active":
            assert row["next_at"] is not None and row["next_at"] > clock().timestamp()
        store.close()
