"""When things may sound: bulletin schedules, quiet hours and late starts.

Pure functions over aware datetimes; the scheduler and the queue call them.
Daily slots are wall-clock times in the station's zone: a slot that does not
exist on a day (in the hour skipped when DST starts) moves forward by the
length of the gap (02:30 becomes 03:30), and a slot that happens twice (when
DST ends) plays once, the first time.

Instants come back at the station's UTC offset of that moment, as a fixed
offset: ZoneInfo datetimes compare by wall time within one zone and never
compare equal across zones when ambiguous (PEP 495), which would make the
hour a clock goes back a trap for every caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

from loaxa.errors import CommandError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAILY_SLOTS = 24
# Every date and instant a command names lies in these years: far enough for
# any real schedule, and far from the ends of the calendar, where a day's
# arithmetic in the station's zone (a day either side, the grace, a week
# ahead) would overflow.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
_FIRST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
_AFTER_LAST_INSTANT = datetime(2101, 1, 1, tzinfo=UTC)
_ALL_DAYS = frozenset(range(7))
_ONCE_KEYS = {"at"}
_DAILY_KEYS = {"daily", "days", "from", "until"}
_HHMM = re.compile(r"([0-9]{1,2}):([0-9]{2})")  # ASCII digits only, matched whole
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Lateness = Literal["play", "missed", "expired"]


@dataclass(frozen=True)
class Schedule:
    """Either once (`at`) or daily slots on some weekdays between two dates."""

    at: datetime | None = None
    daily: tuple[time, ...] = ()  # sorted, unique wall-clock times
    days: frozenset[int] = _ALL_DAYS  # 0 = Monday, as date.weekday()
    start: date | None = None  # "from", inclusive
    until: date | None = None  # inclusive

    @property
    def once(self) -> bool:
        return self.at is not None

    def allows(self, day: date) -> bool:
        """Whether slots fire on this local date."""
        return (
            day.weekday() in self.days
            and (self.start is None or day >= self.start)
            and (self.until is None or day <= self.until)
        )


def parse_schedule(obj: Any) -> Schedule | None:
    """The protocol's `schedule` object; None (absent) means as soon as possible."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise CommandError("schedule: expected an object with 'at' or 'daily'")
    keys = set(obj)
    unknown = sorted(k for k in keys if k not in _ONCE_KEYS | _DAILY_KEYS)
    if unknown:
        raise CommandError(f"schedule: unknown key {unknown[0]!r} (allowed: at, daily, days, from, until)")
    if "at" in keys:
        if keys - _ONCE_KEYS:
            extra = sorted(keys - _ONCE_KEYS)
            raise CommandError(f"schedule: 'at' cannot be combined with {', '.join(extra)}")
        return Schedule(at=parse_instant(obj["at"], "schedule.at"))
    if "daily" not in keys:
        raise CommandError("schedule: needs 'at' (once) or 'daily' (recurring)")
    schedule = Schedule(
        daily=_parse_slots(obj["daily"]),
        days=_parse_days(obj["days"]) if "days" in obj else _ALL_DAYS,
        start=_parse_date(obj["from"], "schedule.from") if "from" in obj else None,
        until=_parse_date(obj["until"], "schedule.until") if "until" in obj else None,
    )
    if schedule.start and schedule.until and schedule.until < schedule.start:
        raise CommandError(f"schedule: until {schedule.until} is before from {schedule.start}")
    return schedule


def check_schedule(obj: Any) -> Schedule:
    """A stored bulletin's schedule, held to today's rules; `CommandError` says why it cannot be scheduled.

    A store written by an older version may hold a schedule these rules now
    refuse (a bound past the last day, a time that is not one).
    """
    schedule = parse_schedule(obj)
    if schedule is None:
        raise CommandError("schedule: missing")
    return schedule


def parse_instant(value: Any, what: str) -> datetime:
    """An ISO 8601 time with an offset (protocol type T), as an aware datetime."""
    if not isinstance(value, str) or len(value) > 64:
        raise CommandError(f"{what}: expected an ISO 8601 time with offset, e.g. 2025-03-01T05:30:00+07:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{what}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise CommandError(f"{what}: {value!r} has no UTC offset; add one, e.g. +07:00")
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted by its offset leaves the calendar
        utc = _AFTER_LAST_INSTANT if parsed.year > FIRST_DAY.year else _FIRST_INSTANT - timedelta(days=1)
    if utc < _FIRST_INSTANT:
        raise CommandError(f"{what}: {value} is before the first date this station can schedule ({FIRST_DAY})")
    if utc >= _AFTER_LAST_INSTANT:
        raise CommandError(f"{what}: {value} is past the last date this station can schedule ({LAST_DAY})")
    return parsed


def _parse_slots(value: Any) -> tuple[time, ...]:
    if not isinstance(value, list) or not value:
        raise CommandError('schedule.daily: expected a list of times "HH:MM", e.g. ["05:30", "17:00"]')
    if len(value) > MAX_DAILY_SLOTS:
        raise CommandError(f"schedule.daily: {len(value)} times; at most {MAX_DAILY_SLOTS} a day")
    slots = set()
    for item in value:
        match = _HHMM.fullmatch(item) if isinstance(item, str) else None
        if not match:
            raise CommandError(f'schedule.daily: {item!r} is not a time "HH:MM"')
        hour, minute = int(match[1]), int(match[2])
        if hour > 23 or minute > 59:
            raise CommandError(f"schedule.daily: {item!r} is not a time of day (00:00 to 23:59)")
        slots.add(time(hour, minute))
    return tuple(sorted(slots))


def _parse_days(value: Any) -> frozenset[int]:
    if not isinstance(value, list) or not value:
        raise CommandError(f"schedule.days: expected a non-empty list of {', '.join(DAY_NAMES)}")
    days = set()
    for item in value:
        name = item.strip().lower() if isinstance(item, str) else None
        if name not in DAY_NAMES:
            raise CommandError(f"schedule.days: {item!r} is not a day; use {', '.join(DAY_NAMES)}")
        days.add(DAY_NAMES.index(name))
    return frozenset(days)


def _parse_date(value: Any, what: str) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise CommandError(f"{what}: expected a date YYYY-MM-DD, got {value!r}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{what}: {value!r} is not a calendar date") from None
    if day < FIRST_DAY:
        raise CommandError(f"{what}: {value} is before the first date this station can schedule ({FIRST_DAY})")
    if day > LAST_DAY:
        raise CommandError(f"{what}: {value} is past the last date this station can schedule ({LAST_DAY})")
    return day


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant a wall-clock time happens on a day in a zone.

    Ambiguous times take the first (fold=0); times skipped by a DST gap move
    forward by the length of the gap, as the round trip through UTC does.
    """
    naive = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    return in_zone(naive.replace(tzinfo=tz).astimezone(UTC), tz)


def in_zone(instant: datetime, tz: ZoneInfo) -> datetime:
    """The same instant at the zone's offset of that moment, as a fixed offset."""
    local = instant.astimezone(tz)
    return local.replace(tzinfo=timezone(local.utcoffset() or timedelta(0)))


def _require_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}; pass an aware one")


def _daily_between(schedule: Schedule, tz: ZoneInfo, first: date, last: date) -> list[datetime]:
    if schedule.start is not None:
        first = max(first, schedule.start)
    if schedule.until is not None:
        last = min(last, schedule.until)
    found: set[datetime] = set()
    day = first
    while day <= last:
        if schedule.allows(day):
            found.update(local_instant(day, slot, tz) for slot in schedule.daily)
        day += timedelta(days=1)
    return sorted(found)


def occurrences(schedule: Schedule, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every occurrence in [start, end), sorted, each at the station's offset."""
    _require_aware(start, end)
    if end <= start:
        return []
    if schedule.at is not None:
        return [in_zone(schedule.at, tz)] if start <= schedule.at < end else []
    # A day either side: a DST shift can move a slot across local midnight.
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    return [t for t in _daily_between(schedule, tz, first, last) if start <= t < end]


def next_occurrence(schedule: Schedule, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after`, or None when there is none left."""
    _require_aware(after)
    if schedule.at is not None:
        return in_zone(schedule.at, tz) if schedule.at > after else None
    first = after.astimezone(tz).date() - timedelta(days=1)
    if schedule.start is not None:
        first = max(first, schedule.start - timedelta(days=1))
    # Any non-empty weekday set recurs within a week; two days spare for DST.
    candidates = _daily_between(schedule, tz, first, first + timedelta(days=9))
    return next((t for t in candidates if t > after), None)


def in_quiet_hours(now: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    """Whether the station's wall clock is inside [start, end); may wrap midnight."""
    _require_aware(now)
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start == end:
        return False
    wall = now.astimezone(tz).time()
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_hours_end(now: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """When held items may start: `now` outside quiet hours, else the first instant after.

    Quiet hours end when the wall clock reaches `end`, or when a DST change
    makes it jump out of the window (an `end` inside the skipped hour, or a
    clock going back to before `start`).
    """
    if not in_quiet_hours(now, tz, start, end):
        return now
    today = now.astimezone(tz).date()
    candidates = [t for d in range(-1, 3) for t in _wall_reaches(today + timedelta(days=d), end, tz)]
    candidates += _offset_changes(tz, now, now + timedelta(days=3))
    resume = min(t for t in candidates if t > now and not in_quiet_hours(t, tz, start, end))
    return in_zone(resume, tz)


def _wall_reaches(day: date, at: time, tz: ZoneInfo) -> list[datetime]:
    """The instants (none, one, or two when the clock goes back) showing `at` on `day`."""
    naive = datetime.combine(day, at.replace(tzinfo=None))
    found = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == naive:
            found.append(instant)
    return found


def _offset_changes(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in [start, end] at which the zone's UTC offset changes."""

    def offset(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, tz).utcoffset()

    changes = []
    ts, last = int(start.timestamp()), int(end.timestamp())
    while ts < last:
        # Offsets change at whole seconds and never twice within an hour.
        lo, hi = ts, min(ts + 3600, last)
        if offset(lo) != offset(hi):
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            changes.append(datetime.fromtimestamp(hi, UTC))
        ts += 3600
    return changes


def classify_late(slot: datetime, now: datetime, grace_s: float, expires: datetime | None) -> Lateness:
    """What to do with an occurrence due at `slot` when the station gets to it at `now`.

    `expired` wins over `missed`: past `expires` the bulletin never starts.
    An occurrence not yet due is `play`.
    """
    _require_aware(slot, now)
    if expires is not None and now > expires:
        return "expired"
    if (now - slot).total_seconds() > grace_s:
        return "missed"
    return "play"
