"""Schedules, quiet hours and late starts, as the protocol's broadcast rules say."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaxa.errors import CommandError
from loaxa.timing import (
    DAY_NAMES,
    Schedule,
    classify_late,
    in_quiet_hours,
    next_occurrence,
    occurrences,
    parse_schedule,
    quiet_hours_end,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")
# Zones with no DST, DST at 02:00, a 30-minute DST and DST at midnight.
ZONES = [
    VN,
    BERLIN,
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("America/Santiago"),
    ZoneInfo("UTC"),
]


# --- parsing -----------------------------------------------------------------


def test_absent_schedule_means_as_soon_as_possible() -> None:
    assert parse_schedule(None) is None


def test_once_keeps_the_instant() -> None:
    schedule = parse_schedule({"at": "2025-03-01T05:30:00+07:00"})
    assert schedule is not None and schedule.once
    assert schedule.at == datetime(2025, 2, 28, 22, 30, tzinfo=UTC)


def test_daily_is_sorted_deduplicated_with_days_and_dates() -> None:
    schedule = parse_schedule(
        {"daily": ["17:00", "05:30", "5:30"], "days": ["mon", "Fri"], "from": "2025-03-01", "until": "2025-03-31"}
    )
    assert schedule == Schedule(
        daily=(time(5, 30), time(17, 0)), days=frozenset({0, 4}), start=date(2025, 3, 1), until=date(2025, 3, 31)
    )
    assert not schedule.once


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ("daily", "expected an object"),
        ({}, "needs 'at'"),
        ({"daily": ["05:30"], "every": 2}, "unknown key 'every'"),
        ({"at": "2025-03-01T05:30:00+07:00", "days": ["mon"]}, "cannot be combined with days"),
        ({"at": "2025-03-01T05:30:00"}, "no UTC offset"),
        ({"at": "tomorrow"}, "not an ISO 8601 time"),
        ({"at": 1740781800}, "expected an ISO 8601 time"),
        ({"daily": []}, "expected a list"),
        ({"daily": "05:30"}, "expected a list"),
        ({"daily": ["25:00"]}, "'25:00' is not a time of day"),
        ({"daily": ["05:60"]}, "not a time of day"),
        ({"daily": ["0530"]}, 'not a time "HH:MM"'),
        ({"daily": ["05:30:00"]}, 'not a time "HH:MM"'),
        ({"daily": [530]}, "not a time"),
        ({"daily": [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]}, "48 times; at most 24"),
        ({"daily": ["05:30"], "days": ["monday"]}, "'monday' is not a day"),
        ({"daily": ["05:30"], "days": []}, "non-empty list"),
        ({"daily": ["05:30"], "from": "2025-02-30"}, "not a calendar date"),
        ({"daily": ["05:30"], "until": "01/03/2025"}, "expected a date YYYY-MM-DD"),
        (
            {"daily": ["05:30"], "from": "2025-03-02", "until": "2025-03-01"},
            "until 2025-03-01 is before from 2025-03-02",
        ),
    ],
)
def test_malformed_schedules_are_rejected_with_a_reason(obj: object, reason: str) -> None:
    with pytest.raises(CommandError, match="^schedule") as caught:
        parse_schedule(obj)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        # The fault: `until` 9999-12-31 was accepted, and arming it overflowed at every start.
        ({"daily": ["05:30"], "until": "9999-12-31"}, "schedule.until: 9999-12-31 is past the last date"),
        ({"daily": ["05:30"], "until": "2101-01-01"}, "past the last date this station can schedule (2100-12-31)"),
        ({"daily": ["05:30"], "from": "0001-01-01"}, "schedule.from: 0001-01-01 is before the first date"),
        ({"daily": ["05:30"], "from": "1999-12-31"}, "before the first date this station can schedule (2000-01-01)"),
        ({"daily": ["05:30"], "from": "2100-02-29"}, "not a calendar date"),  # 2100 is not a leap year
        ({"at": "9999-12-31T23:59:59+14:00"}, "schedule.at: 9999-12-31T23:59:59+14:00 is past the last date"),
        ({"at": "9999-12-31T23:59:59-14:00"}, "is past the last date"),  # beyond the calendar in UTC
        ({"at": "0001-01-01T00:00:00+14:00"}, "is before the first date"),  # before the calendar in UTC
        ({"at": "2101-01-01T00:00:00+00:00"}, "is past the last date"),
        ({"daily": ["24:00"]}, "'24:00' is not a time of day"),
        ({"daily": ["25:61"]}, "'25:61' is not a time of day"),
        ({"daily": ["05:30\n"]}, 'not a time "HH:MM"'),
        ({"daily": ["\u0665:\u0663\u0660"]}, 'not a time "HH:MM"'),  # Arabic-Indic digits
        ({"daily": ["05:30+07:00"]}, 'not a time "HH:MM"'),
        ({"daily": ["05:30"], "days": ["mon", "funday"]}, "'funday' is not a day"),
        ({"daily": ["05:30"], "from": "2026-03-01\n"}, "expected a date YYYY-MM-DD"),
    ],
)
def test_schedule_bounds_past_what_the_station_can_arm_are_rejected(obj: object, reason: str) -> None:
    with pytest.raises(CommandError, match="^schedule") as caught:
        parse_schedule(obj)
    assert reason in str(caught.value)


def test_the_last_and_first_days_the_station_can_schedule_are_accepted() -> None:
    schedule = parse_schedule({"daily": ["23:59"], "from": "2000-01-01", "until": "2100-12-31"})
    assert schedule is not None and schedule.start == date(2000, 1, 1) and schedule.until == date(2100, 12, 31)
    last = next_occurrence(schedule, ZoneInfo("Pacific/Kiritimati"), datetime(2100, 12, 31, tzinfo=UTC))
    assert last == datetime(2100, 12, 31, 23, 59, tzinfo=ZoneInfo("Pacific/Kiritimati"))
    assert next_occurrence(schedule, ZoneInfo("Pacific/Kiritimati"), last) is None
    assert parse_schedule({"at": "2100-12-31T23:59:59+00:00"}) is not None


# --- occurrences -------------------------------------------------------------


def test_a_week_of_two_daily_slots_in_vietnam() -> None:
    schedule = parse_schedule({"daily": ["05:30", "17:00"]})
    start = datetime(2025, 3, 3, tzinfo=VN)
    found = occurrences(schedule, VN, start, start + timedelta(days=7))
    assert len(found) == 14
    assert found[0] == datetime(2025, 3, 3, 5, 30, tzinfo=VN)
    assert found[-1] == datetime(2025, 3, 9, 17, 0, tzinfo=VN)


def test_window_is_half_open() -> None:
    schedule = parse_schedule({"daily": ["05:30"]})
    slot = datetime(2025, 3, 3, 5, 30, tzinfo=VN)
    assert occurrences(schedule, VN, slot, slot + timedelta(hours=1)) == [slot]
    assert occurrences(schedule, VN, slot - timedelta(hours=1), slot) == []


def test_weekdays_and_inclusive_dates_are_honoured() -> None:
    schedule = parse_schedule({"daily": ["07:00"], "days": ["sat", "sun"], "from": "2025-03-02", "until": "2025-03-15"})
    found = occurrences(schedule, VN, datetime(2025, 1, 1, tzinfo=VN), datetime(2026, 1, 1, tzinfo=VN))
    # 2025-03-01 is a Saturday before `from`; the 15th (Saturday) is the last day.
    assert [t.date() for t in found] == [date(2025, 3, 2), date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 15)]


def test_once_occurs_in_the_station_zone_only_inside_the_window() -> None:
    schedule = parse_schedule({"at": "2025-03-01T00:00:00Z"})
    found = occurrences(schedule, VN, datetime(2025, 3, 1, tzinfo=VN), datetime(2025, 3, 2, tzinfo=VN))
    assert found == [datetime(2025, 3, 1, 7, 0, tzinfo=VN)]
    assert found[0].isoformat() == "2025-03-01T07:00:00+07:00"
    assert occurrences(schedule, VN, datetime(2025, 3, 2, tzinfo=VN), datetime(2025, 3, 3, tzinfo=VN)) == []


def test_slot_skipped_by_dst_start_plays_after_the_gap() -> None:
    # Berlin jumps from 02:00 to 03:00 on 2024-03-31; 02:30 does not exist that day.
    schedule = parse_schedule({"daily": ["02:30", "03:30"]})
    day = datetime(2024, 3, 31, tzinfo=BERLIN)
    found = occurrences(schedule, BERLIN, day, day + timedelta(days=1))
    assert [t.astimezone(UTC).strftime("%H:%M") for t in found] == ["01:30"]  # both land at 03:30 CEST, once


def test_slot_repeated_by_dst_end_plays_once() -> None:
    # Berlin goes back from 03:00 to 02:00 on 2024-10-27; 02:30 happens twice.
    schedule = parse_schedule({"daily": ["02:30"]})
    day = datetime(2024, 10, 27, tzinfo=BERLIN)
    found = occurrences(schedule, BERLIN, day, day + timedelta(days=1))
    assert found == [datetime(2024, 10, 27, 0, 30, tzinfo=UTC)]
    assert found[0].isoformat() == "2024-10-27T02:30:00+02:00"


def test_results_compare_exactly_across_the_hour_a_clock_goes_back() -> None:
    # Slots at 02:30 (first pass, CEST) and 02:15 and 03:00 (CET) on the day Berlin goes back.
    schedule = parse_schedule({"daily": ["02:15", "02:30", "03:00"]})
    day = datetime(2024, 10, 27, tzinfo=BERLIN)
    found = occurrences(schedule, BERLIN, day, day + timedelta(days=1))
    assert [t.astimezone(UTC).strftime("%H:%M") for t in found] == ["00:15", "00:30", "02:00"]
    assert found[1] == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_next_occurrence_after_the_last_and_before_the_first() -> None:
    schedule = parse_schedule({"daily": ["05:30"], "from": "2030-01-07", "until": "2030-01-08"})
    now = datetime(2025, 1, 1, tzinfo=VN)
    assert next_occurrence(schedule, VN, now) == datetime(2030, 1, 7, 5, 30, tzinfo=VN)
    assert next_occurrence(schedule, VN, datetime(2030, 1, 7, 5, 30, tzinfo=VN)) == datetime(
        2030, 1, 8, 5, 30, tzinfo=VN
    )
    assert next_occurrence(schedule, VN, datetime(2030, 1, 8, 5, 30, tzinfo=VN)) is None
    once = parse_schedule({"at": "2025-03-01T05:30:00+07:00"})
    assert next_occurrence(once, VN, now) == once.at
    assert next_occurrence(once, VN, once.at) is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        occurrences(parse_schedule({"daily": ["05:30"]}), VN, datetime(2025, 1, 1), datetime(2025, 1, 2))


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


# A slot is "HH:MM" on the wire: no seconds, and no fold (st.times() makes fold=1 times, which
# mean "the later of two" only to Python and would move a gap's slot the other way in the check).
slots = st.lists(st.times().map(lambda t: t.replace(second=0, microsecond=0, fold=0)), min_size=1, max_size=6)
day_sets = st.sets(st.integers(0, 6), min_size=1)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(
    slots,
    day_sets,
    st.sampled_from(ZONES),
    instants,
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
    st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2035, 1, 1))),
    st.integers(0, 400),
)
def test_daily_occurrences_properties(daily, days, tz, start, span, first_day, length_days) -> None:
    obj = {"daily": [t.strftime("%H:%M") for t in daily], "days": [DAY_NAMES[d] for d in days]}
    if first_day is not None:
        obj["from"] = first_day.isoformat()
        obj["until"] = (first_day + timedelta(days=length_days)).isoformat()
    schedule = parse_schedule(obj)
    end = start + span
    found = occurrences(schedule, tz, start, end)

    assert found == sorted(set(found))
    for t in found:
        assert start <= t < end
        assert t.utcoffset() == t.astimezone(tz).utcoffset()
        wall = t.replace(tzinfo=None)
        assert schedule.allows(wall.date())
        # A listed wall time, or one a DST gap pushed forward.
        pushed = [datetime.combine(wall.date(), s) for s in daily if not _exists(datetime.combine(wall.date(), s), tz)]
        assert wall.time() in daily or any(local_slot_moves_to(p, tz) == t for p in pushed)

    # next_occurrence walks the same list and nothing is skipped in between.
    cursor = start - timedelta(microseconds=1)
    for t in found:
        assert next_occurrence(schedule, tz, cursor) == t
        cursor = t
    following = next_occurrence(schedule, tz, cursor)
    assert following is None or following >= end


def local_slot_moves_to(wall: datetime, tz: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=tz).astimezone(UTC)


# --- quiet hours -------------------------------------------------------------

NIGHT = (time(22, 0), time(5, 0))


@pytest.mark.parametrize(
    ("wall", "quiet"),
    [
        (time(21, 59), False),
        (time(22, 0), True),
        (time(0, 0), True),
        (time(4, 59), True),
        (time(5, 0), False),
        (time(12, 0), False),
    ],
)
def test_default_quiet_hours_wrap_midnight(wall: time, quiet: bool) -> None:
    now = datetime.combine(date(2025, 3, 3), wall, tzinfo=VN)
    assert in_quiet_hours(now, VN, *NIGHT) is quiet


def test_quiet_hours_use_the_station_clock_not_the_callers_offset() -> None:
    now = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)  # 23:00 in Vietnam
    assert in_quiet_hours(now, VN, *NIGHT)
    assert quiet_hours_end(now, VN, *NIGHT) == datetime(2025, 3, 4, 5, 0, tzinfo=VN)


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    now = datetime(2025, 3, 3, 3, 0, tzinfo=VN)
    assert not in_quiet_hours(now, VN, time(3, 0), time(3, 0))
    assert quiet_hours_end(now, VN, time(3, 0), time(3, 0)) == now


def test_held_items_start_at_once_outside_quiet_hours() -> None:
    now = datetime(2025, 3, 3, 12, 0, tzinfo=VN)
    assert quiet_hours_end(now, VN, *NIGHT) == now


def test_after_midnight_quiet_hours_end_the_same_morning() -> None:
    now = datetime(2025, 3, 3, 1, 0, tzinfo=VN)
    assert quiet_hours_end(now, VN, *NIGHT) == datetime(2025, 3, 3, 5, 0, tzinfo=VN)


UTC = UTC


def test_quiet_hours_ending_inside_the_skipped_hour_end_at_the_jump() -> None:
    # Berlin 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never shows.
    now = datetime(2024, 3, 31, 0, 59, tzinfo=UTC)  # 01:59 CET
    assert quiet_hours_end(now, BERLIN, time(22, 0), time(2, 30)) == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)


def test_quiet_hours_in_the_hour_a_clock_goes_back() -> None:
    # Berlin 2024-10-27: 03:00 CEST (01:00 UTC) goes back to 02:00 CET; 02:10 shows twice.
    night = (time(22, 0), time(2, 30))
    first, second = datetime(2024, 10, 27, 0, 10, tzinfo=UTC), datetime(2024, 10, 27, 1, 10, tzinfo=UTC)
    assert quiet_hours_end(first, BERLIN, *night) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert quiet_hours_end(second, BERLIN, *night) == datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    # Quiet from 02:30: going back to 02:00 leaves the window at the jump itself.
    now = datetime(2024, 10, 27, 0, 45, tzinfo=UTC)  # 02:45 CEST
    assert quiet_hours_end(now, BERLIN, time(2, 30), time(5, 0)) == datetime(2024, 10, 27, 1, 0, tzinfo=UTC)


wall_times = st.times().map(lambda t: t.replace(microsecond=0))
# Instants in the day or so around real DST changes, where the traps are.
DST_CHANGES = [
    datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # Berlin forward
    datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # Berlin back
    datetime(2024, 3, 10, 7, 0, tzinfo=UTC),  # New York forward
    datetime(2024, 11, 3, 6, 0, tzinfo=UTC),  # New York back
    datetime(2024, 4, 6, 15, 0, tzinfo=UTC),  # Lord Howe back by 30 minutes
    datetime(2024, 9, 8, 4, 0, tzinfo=UTC),  # Santiago forward at midnight
]
near_dst = st.builds(
    lambda t, d: t + d, st.sampled_from(DST_CHANGES), st.timedeltas(timedelta(hours=-26), timedelta(hours=3))
)


@settings(max_examples=400, deadline=None)
@given(wall_times, wall_times, st.one_of(instants, near_dst), st.sampled_from(ZONES))
def test_quiet_hours_properties(start, end, now, tz) -> None:
    quiet = in_quiet_hours(now, tz, start, end)
    if start != end:
        # A window and its complement cover the day exactly once.
        assert quiet != in_quiet_hours(now, tz, end, start)
    resume = quiet_hours_end(now, tz, start, end)
    if not quiet:
        assert resume == now
        return
    assert now < resume <= now + timedelta(hours=26)
    assert not in_quiet_hours(resume, tz, start, end)
    # Quiet all the way until then.
    step = (resume - now) / 50
    for k in range(50):
        assert in_quiet_hours(now + step * k, tz, start, end)
    assert in_quiet_hours(resume - timedelta(seconds=1), tz, start, end)


# --- misfire -----------------------------------------------------------------

SLOT = datetime(2025, 3, 3, 5, 30, tzinfo=VN)


@pytest.mark.parametrize(
    ("late_s", "expires", "verdict"),
    [
        (-60, None, "play"),  # not due yet
        (0, None, "play"),
        (600, None, "play"),  # exactly at the end of the grace
        (601, None, "missed"),
        (30, SLOT + timedelta(seconds=30), "play"),  # starting at `expires` is still allowed
        (31, SLOT + timedelta(seconds=30), "expired"),
        (3600, SLOT + timedelta(seconds=30), "expired"),  # expiry wins over missed
    ],
)
def test_late_occurrences(late_s: float, expires: datetime | None, verdict: str) -> None:
    assert classify_late(SLOT, SLOT + timedelta(seconds=late_s), 600, expires) == verdict
