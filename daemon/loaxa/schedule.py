"""Occurrences: scheduled bulletins become plays at their slots.

The store is the truth: each bulletin remembers up to when its occurrences
were accounted for (`fired_until`), and `catch_up` turns every slot since
then into a play, a late play within the grace, or a `missed` receipt. It is
idempotent (a play per slot at most), so it can run at start, when the
clock becomes trustworthy, periodically, and from APScheduler, which wakes
it at each slot. APScheduler's jobs are rebuilt from the store at start,
with fixed ids and `replace_existing`; its misfire grace is the station's
grace and nothing is silently coalesced away, because catch_up decides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from loaxa.protocol import Bulletin
from loaxa.store import Ledger, StoredBulletin, Txn
from loaxa.timing import DAY_NAMES, Schedule, classify_late, next_occurrence, occurrences, parse_instant, parse_schedule

log = logging.getLogger(__name__)

CATCH_UP_EVERY_S = 30


class Scheduler:
    def __init__(
        self,
        ledger: Ledger,
        tz: ZoneInfo,
        grace_s: float,
        clock_ok: Callable[[], bool],
        on_due: Callable[[], None],
        prepare: Callable[[dict[str, Any]], None] = lambda body: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        prewarm: Callable[[], None] = lambda: None,
        warmup_s: float = 0.0,
    ) -> None:
        self.ledger = ledger
        self.tz = tz
        self.grace_s = grace_s
        self.clock_ok = clock_ok
        self.on_due = on_due
        self.prepare = prepare  # voices a scheduled bulletin's text ahead, given its body
        self.now = now  # the wall clock; tests pass a controllable one
        self.prewarm = prewarm  # switches the amplifier on `warmup_s` before the next slot
        self.warmup_s = warmup_s
        self._lock = threading.Lock()
        self._aps = BackgroundScheduler(
            timezone=tz,
            job_defaults={"misfire_grace_time": max(1, int(grace_s)), "coalesce": False, "max_instances": 1},
        )

    # -- for the inbox ------------------------------------------------------------
    def first_slot(self, bulletin: Bulletin, now: datetime) -> datetime | None:
        """The first slot still to play of a scheduled bulletin; one just before arrival, within the grace, counts."""
        schedule = parse_schedule(bulletin.schedule)
        if schedule is None:
            return None
        return next_occurrence(schedule, self.tz, now - timedelta(seconds=self.grace_s))

    def added(self, issuer: str, bulletin: Bulletin) -> None:
        """After the commit: arm the jobs and voice the text ahead."""
        if bulletin.schedule is None:
            return
        self._arm(issuer, bulletin.id, parse_schedule(bulletin.schedule))
        self.prepare(bulletin.model_dump(exclude_none=True))
        self.catch_up()

    def removed(self, issuer: str, id: str) -> None:
        prefix = f"{issuer}/{id}/"
        for job in self._aps.get_jobs():
            if job.id.startswith(prefix):
                job.remove()

    # -- the clock side ----------------------------------------------------------
    def start(self) -> None:
        for b in self.ledger.scheduled_bulletins():
            self._arm(b.issuer, b.id, parse_schedule(b.body["schedule"]))
            self.prepare(b.body)
        self._aps.add_job(self.catch_up, "interval", seconds=CATCH_UP_EVERY_S, id="catch-up", replace_existing=True)
        self._aps.start()
        self.catch_up()

    def stop(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def alive(self) -> bool:
        return bool(self._aps.running)

    def next_slots(self, limit: int = 20) -> list[tuple[str, str]]:
        """`(id, occurrence)` of upcoming slots, soonest first."""
        return [(id, when.isoformat()) for when, id in self._upcoming()[:limit]]

    def _upcoming(self) -> list[tuple[datetime, str]]:
        now = self.now()
        upcoming = []
        for b in self.ledger.scheduled_bulletins():
            nxt = next_occurrence(_schedule(b), self.tz, now)
            if nxt is not None:
                upcoming.append((nxt, b.id))
        return sorted(upcoming)

    def catch_up(self) -> None:
        """Turn every slot up to now into a play, a missed receipt, or expiry."""
        if not self.clock_ok():
            return  # a stale clock would fire the wrong slots
        with self._lock:
            now = self.now()
            due = False
            with self.ledger.tx() as t:
                for b in t.scheduled_bulletins():
                    due |= self._catch_up_one(t, b, now)
        if due:
            self.on_due()
        self._arm_prewarm()

    def _arm_prewarm(self) -> None:
        """The amplifier warms up before the next slot, so its sound starts on time."""
        if self.warmup_s <= 0 or not self._aps.running:
            return
        upcoming = self._upcoming()
        if not upcoming:
            return
        at = upcoming[0][0] - timedelta(seconds=self.warmup_s)
        if at <= self.now():
            self.prewarm()
        else:
            self._aps.add_job(self.prewarm, DateTrigger(run_date=at), id="prewarm", replace_existing=True)

    def _catch_up_one(self, t: Txn, b: StoredBulletin, now: datetime) -> bool:
        schedule = _schedule(b)
        expires = parse_instant(b.body["expires"], "expires") if b.body.get("expires") else None
        since = datetime.fromtimestamp(b.fired_until or b.received_at, UTC)
        if b.fired_until is None:
            since -= timedelta(seconds=self.grace_s)  # a slot just before arrival still plays
        due = False
        for slot in occurrences(schedule, self.tz, since, now + timedelta(milliseconds=1)):
            verdict = classify_late(slot, now, self.grace_s, expires)
            occurrence = slot.isoformat()
            if verdict == "play":
                due |= t.add_play(
                    b.issuer, b.id, b.rev, occurrence=occurrence, due_at=slot.timestamp(), priority=b.priority
                )
            elif verdict == "missed":
                late = int((now - slot).total_seconds())
                detail = f"{late} s late, beyond the {self.grace_s:g} s grace"
                t.missed(b, occurrence=occurrence, due_at=slot.timestamp(), detail=detail)
        t.fired_until(b, now)
        if expires is not None and now > expires:
            t.expire(b)
            self.removed(b.issuer, b.id)
        elif next_occurrence(schedule, self.tz, now) is None:
            t.schedule_over(b.issuer, b.id)
        return due

    def _arm(self, issuer: str, id: str, schedule: Schedule | None) -> None:
        if schedule is None:
            return
        self.removed(issuer, id)
        base = f"{issuer}/{id}/"
        if schedule.at is not None:
            self._aps.add_job(self.catch_up, DateTrigger(run_date=schedule.at), id=base + "at", replace_existing=True)
            return
        days = ",".join(DAY_NAMES[d] for d in sorted(schedule.days))
        for slot in schedule.daily:
            trigger = CronTrigger(
                day_of_week=days,
                hour=slot.hour,
                minute=slot.minute,
                start_date=schedule.start,
                end_date=(schedule.until + timedelta(days=1)) if schedule.until else None,
                timezone=self.tz,
            )
            self._aps.add_job(self.catch_up, trigger, id=base + slot.strftime("%H:%M"), replace_existing=True)


def _schedule(b: StoredBulletin) -> Schedule:
    schedule = parse_schedule(b.body["schedule"])
    assert schedule is not None  # only scheduled bulletins are asked
    return schedule
