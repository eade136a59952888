"""Occurrences: scheduled bulletins become plays at their slots.

The store is the truth: each bulletin remembers up to when its occurrences
were accounted for (`fired_until`) and when it must be looked at next
(`next_at`: its next slot, or its expiry), and `catch_up` turns every slot
since then into a play, a late play within the grace, or a `missed` receipt.
It is idempotent (a play per slot at most), so it can run at start, when the
clock becomes trustworthy, periodically, and at each slot.

Work grows with what is due, not with what is stored: `catch_up` reads only
the bulletins whose `next_at` has come (an indexed query), a new bulletin is
accounted for alone, and one timer thread sleeps until the soonest `next_at`
(or the amplifier's pre-warm before the next slot), at most
`CATCH_UP_EVERY_S`, so a wall clock set forward is noticed. A bulletin whose
stored schedule cannot be armed is reported `failed` once and leaves the
schedule; it never stops the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from loaxa.clock import HOLD_DETAIL as CLOCK_HOLD
from loaxa.errors import CommandError
from loaxa.protocol import Bulletin
from loaxa.states import Approval, Event
from loaxa.store import Ledger, StoredBulletin, Txn
from loaxa.timing import check_schedule, classify_late, next_occurrence, occurrences, parse_instant, parse_schedule

log = logging.getLogger(__name__)

CATCH_UP_EVERY_S = 30
# Expiry is strict (`now > expires`): the bulletin is looked at just after it.
_AFTER_EXPIRY = timedelta(milliseconds=1)


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
        self._lock = threading.Lock()  # one catch-up at a time: the timer's or the inbox's
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._armed_at = float("inf")  # when the timer will wake next (a timestamp)
        self._failed = False  # the last catch-up could not use the store: retry later, not at once
        self._prewarmed: datetime | None = None  # the slot the amplifier was last warmed for
        self._clock_held: set[tuple[str, str, int]] = set()  # bulletins told `held` for the clock
        self._thread: threading.Thread | None = None

    # -- for the inbox ------------------------------------------------------------
    def first_slot(self, bulletin: Bulletin, now: datetime) -> datetime | None:
        """The first slot still to play of a scheduled bulletin; one just before arrival, within the grace, counts."""
        schedule = parse_schedule(bulletin.schedule)
        if schedule is None:
            return None
        return next_occurrence(schedule, self.tz, now - timedelta(seconds=self.grace_s))

    def added(self, issuer: str, bulletin: Bulletin) -> None:
        """After the commit: account for the new bulletin's slots, voice it ahead, and wake the timer if sooner.

        A bulletin without a schedule has a `next_at` only while it awaits approval: its deadline.
        """
        if bulletin.schedule is not None:
            try:
                self.prepare(bulletin.model_dump(exclude_none=True))
            except Exception:  # voicing ahead is an optimisation; the slot is voiced on air
                log.exception("cannot voice %s ahead", bulletin.id)
            self._catch_up(lambda t, now: _only(t.bulletin(issuer, bulletin.id), now))
        next_at = self.ledger.next_at(issuer, bulletin.id)  # one awaiting approval: its deadline
        if next_at is not None and next_at - self.warmup_s < self._armed_at:
            self._wake.set()  # the timer sleeps past this bulletin's slot (or its pre-warm): it re-plans

    def removed(self, issuer: str, id: str) -> None:
        """A cancel or a new rev: the ledger took the bulletin out of the schedule; the timer re-plans."""
        self._wake.set()

    # -- the clock side ----------------------------------------------------------
    def start(self) -> None:
        """Voice stored schedules ahead, catch up, and start the timer; never raises."""
        try:
            for b in self.ledger.scheduled_bulletins():
                self.prepare(b.body)
        except Exception:
            log.exception("cannot voice the stored schedules ahead; they are voiced on air")
        self.catch_up()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def next_slots(self, limit: int = 20) -> list[tuple[str, str]]:
        """`(id, occurrence)` of upcoming slots, soonest first."""
        return [(id, when.isoformat()) for when, id in self._upcoming(self.now(), limit)]

    def catch_up(self) -> None:
        """Turn every slot up to now into a play, a missed receipt, or expiry; never raises."""
        try:
            soonest = self.ledger.soonest_next_at()
        except Exception:
            soonest = float("-inf")  # let the catch-up itself meet and report the trouble
        if soonest is None or soonest > self.now().timestamp():
            return  # nothing due: no write transaction, nobody woken
        self._catch_up(lambda t, now: t.due_bulletins(now))

    # -- inside -----------------------------------------------------------------
    def _catch_up(self, pick: Callable[[Txn, datetime], list[StoredBulletin]]) -> None:
        if not self.clock_ok():
            self._held_for_clock()  # a stale clock would fire the wrong slots: say so instead
            return
        self._clock_held.clear()
        due = False
        try:
            with self._lock:
                now = self.now()
                with self.ledger.tx() as t:
                    for b in pick(t, now):
                        due |= self._catch_up_safely(t, b, now)
        except Exception:  # the store itself failed: the timer tries again later
            log.exception("catch-up failed")
            self._failed = True
            return
        self._failed = False
        if due:
            self.on_due()

    def _held_for_clock(self) -> None:
        """A `held` receipt, once, for each bulletin whose slot seems due by a clock not yet trusted."""
        try:
            now = self.now().timestamp()
            due = [b for b in self.ledger.scheduled_bulletins() if b.next_at is not None and b.next_at <= now]
            news = [b for b in due if (b.issuer, b.id, b.rev) not in self._clock_held]
            if news:
                with self.ledger.tx() as t:
                    for b in news:
                        t.event(Event.HELD, b.id, b.rev, detail=CLOCK_HOLD)
                self._clock_held.update((b.issuer, b.id, b.rev) for b in news)
        except Exception:  # only a receipt: the slots themselves wait either way
            log.exception("cannot report the clock hold")

    def _catch_up_safely(self, t: Txn, b: StoredBulletin, now: datetime) -> bool:
        try:
            with t.step():
                return self._catch_up_one(t, b, now)
        except CommandError as exc:  # refused by today's rules: the reason is the operator's to read
            reason = str(exc)
            log.error("bulletin %s/%s cannot be scheduled, dropped from the schedule: %s", b.issuer, b.id, reason)
        except Exception as exc:  # anything else about this one bulletin is a bug; it must not stop the others
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("bulletin %s/%s cannot be scheduled, dropped from the schedule", b.issuer, b.id)
        t.unschedulable(b, f"cannot be scheduled: {reason}")
        return False

    def _catch_up_one(self, t: Txn, b: StoredBulletin, now: datetime) -> bool:
        if b.approval is Approval.AWAITING and _unanswered(t, b, now):
            return False
        schedule = check_schedule(b.body.get("schedule"))
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
        following = next_occurrence(schedule, self.tz, now)
        wake = following
        if expires is not None and following is not None:
            wake = min(following, expires + _AFTER_EXPIRY)
        if b.approval is Approval.AWAITING and b.approval_until is not None and wake is not None:
            wake = min(wake, datetime.fromtimestamp(b.approval_until, UTC))  # unanswered by then: expired
        t.fired_until(b, now, next_at=wake)
        if expires is not None and now > expires:
            t.expire(b)
        elif following is None:
            t.schedule_over(b.issuer, b.id)
        return due

    def _upcoming(self, now: datetime, limit: int) -> list[tuple[datetime, str]]:
        """The soonest `limit` slots after `now`, reading bulletins in `next_at` order.

        `next_at` is never later than a bulletin's next slot, so once `limit`
        slots are found that are no later than the next bulletin's `next_at`,
        no bulletin further on can come sooner.
        """
        found: list[tuple[datetime, str]] = []
        for b in self.ledger.by_next_at():
            if len(found) >= limit and b.next_at is not None and found[limit - 1][0].timestamp() <= b.next_at:
                break
            try:
                slot = next_occurrence(check_schedule(b.body.get("schedule")), self.tz, now)
            except (CommandError, KeyError, ValueError):
                continue  # the next catch-up reports it
            if slot is not None:
                found = sorted([*found, (slot, b.id)])[:limit]
        return found

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait_s = self._plan()
            except Exception:
                log.exception("cannot plan the next slot")
                wait_s = CATCH_UP_EVERY_S
            self._wake.wait(wait_s)
            self._wake.clear()
            if not self._stopping.is_set():
                self.catch_up()

    def _plan(self) -> float:
        """Seconds until the timer must wake: the soonest `next_at` or pre-warm, at most CATCH_UP_EVERY_S."""
        now = self.now().timestamp()
        wake = now + CATCH_UP_EVERY_S
        if self.clock_ok() and not self._failed:
            soonest = self.ledger.soonest_next_at()
            if soonest is not None:
                wake = min(wake, soonest)
            wake = min(wake, self._prewarm_at(now))
        self._armed_at = wake
        return max(0.0, wake - now)

    def _prewarm_at(self, now: float) -> float:
        """The amplifier warms up before the next slot, so its sound starts on time; when to wake for it."""
        if self.warmup_s <= 0:
            return float("inf")
        upcoming = self._upcoming(datetime.fromtimestamp(now, UTC), 1)
        if not upcoming:
            return float("inf")
        slot = upcoming[0][0]
        at = slot.timestamp() - self.warmup_s
        if at > now:
            return at
        if self._prewarmed != slot:
            self._prewarmed = slot
            self.prewarm()
        return float("inf")


def _unanswered(t: Txn, b: StoredBulletin, now: datetime) -> bool:
    """A bulletin awaiting approval past its deadline expires; True when this one did (or is not scheduled).

    One without a schedule is here only for its deadline (its `next_at`):
    if woken early, it is looked at again then.
    """
    if b.approval_until is not None and now.timestamp() >= b.approval_until:
        t.unanswered(b)
        return True
    if b.body.get("schedule") is None:
        until = datetime.fromtimestamp(b.approval_until, UTC) if b.approval_until is not None else None
        t.fired_until(b, now, next_at=until)
        return True
    return False


def _only(b: StoredBulletin | None, now: datetime) -> list[StoredBulletin]:
    """The bulletin just added, if it still has slots to account for."""
    return [b] if b is not None and b.next_at is not None and b.next_at <= now.timestamp() else []
