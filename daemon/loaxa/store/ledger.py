"""The one owner of bulletin and play state, and of the receipts they cause.

Every transition is a method here (or a step of `txn.Txn`, for callers that
decide several things in one transaction) that writes the new state and its
receipt in one transaction: a bulletin and its receipts are stored or not
at all, and no other module writes SQL. Records and the SQL that reads them
are in `records`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from loaxa.errors import StoreError
from loaxa.states import Approval, BulletinState, Event, Outcome, PlayState, Priority
from loaxa.store.db import Store
from loaxa.store.records import PLAYS, SCHEDULED, Accepted, Answer, Play, StoredBulletin, bulletin_of, play_of
from loaxa.store.txn import Txn

if TYPE_CHECKING:
    from loaxa.protocol import Bulletin

log = logging.getLogger(__name__)

# How a session's outcome closes its play: the play's new state and the receipt.
_CLOSES: dict[Outcome, tuple[PlayState, Event | None]] = {
    Outcome.FINISHED: (PlayState.DONE, Event.FINISHED),
    Outcome.FAILED: (PlayState.FAILED, Event.FAILED),
    Outcome.CANCELLED: (PlayState.CANCELLED, None),  # the cancel itself was the receipt
    Outcome.SUPERSEDED: (PlayState.SUPERSEDED, None),
    Outcome.DECLINED: (PlayState.DECLINED, None),  # the decline itself was the receipt
}
# Outcomes that put the play back in the queue, with the receipt they send.
_REQUEUES: dict[Outcome, Event | None] = {
    Outcome.PREEMPTED: Event.INTERRUPTED,
    Outcome.AUDIO_ERROR: None,  # retried quietly: no receipt until sound can flow
    Outcome.SHUTDOWN: None,  # resumes after the restart
}


def _approve_refusal(
    id: str, known: list[StoredBulletin], waiting: list[StoredBulletin], at: datetime | None
) -> str | None:
    """Why `approve` cannot be applied, in the words of its `rejected` receipt; None when it can."""
    if not waiting:
        if known:
            return f"bulletin {id!r} is already approved"
        return f"no bulletin {id!r} is awaiting approval"
    if at is None:
        return None
    for b in waiting:
        if b.body.get("schedule") is not None:
            return f"bulletin {id!r} is scheduled: it airs at its slots, a time cannot be given"
        if b.approval_until is not None and at.timestamp() > b.approval_until:
            return (
                f"bulletin {id!r} may wait only until {datetime.fromtimestamp(b.approval_until, at.tzinfo).isoformat()}"
            )
    return None


class Completion:
    """Set when a watched bulletin's play has closed: its state and detail."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.state: PlayState | None = None
        self.detail: str | None = None

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def _settle(self, state: PlayState, detail: str | None) -> None:
        self.state, self.detail = state, detail
        self._done.set()


class Ledger:
    """Bulletin and play state of one station, written only through here."""

    def __init__(self, store: Store, station: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.station = station
        self.clock = clock  # wall-clock seconds; a simulated year passes its own
        self._watch_lock = threading.Lock()
        self._watchers: dict[tuple[str, str], list[Completion]] = {}
        store.on_incident(self.report_incident)
        try:
            self.report_incident()
        except StoreError as exc:  # told again by the store's next check
            log.warning("the receipt for the store incident waits: %s", exc)

    def report_incident(self) -> None:
        """The province is told, once, that the store was lost: a `failed` receipt without an id.

        Written with the incident's mark in one transaction, so a kill between
        the two neither loses nor doubles it.
        """
        incident = self.store.unreported_incident()
        if incident is None:
            return
        with self.tx() as t:
            if t.claim_incident_receipt():
                t.event(Event.FAILED, None, detail=f"storage: {incident.what}")
        self.store.incident_reported()

    @contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[Txn]:
        """One transaction; watchers of bulletins it closed are told after the commit.

        `durable=False` (see `Store.tx`) is for steps that write no receipt.
        """
        with self.store.tx(durable=durable) as db:
            txn = Txn(db, self.station, self.clock, durable=durable, reserve=self.store.reserve)
            yield txn
        if txn.seen_added:
            self.store.journal_seen(txn.seen_added)
        for key in txn.touched:
            self._settle(key)

    def receipt(self, kind: Event, id: str | None, rev: int | None = None, *, detail: str | None = None) -> None:
        """A receipt that changes no state (`rejected`, `duplicate`, `pong`)."""
        with self.tx() as t:
            t.event(kind, id, rev, detail=detail)

    # -- commands ---------------------------------------------------------------
    def accept(
        self,
        issuer: str,
        b: Bulletin,
        now: datetime,
        *,
        max_queue: int,
        first_slot: datetime | None,
        approval_until: datetime | None = None,
    ) -> Accepted:
        """Store a new bulletin (or rev) with its receipts and its first play or slot.

        `first_slot` is the scheduled bulletin's first occurrence still to play
        (None when its schedule has none left); unscheduled ones play now.
        With `approval_until`, it waits for the commune's answer until then
        (`awaiting_approval`): an unscheduled one gets its play when approved.
        """
        with self.tx() as t:
            known = t.bulletin(issuer, b.id)
            if t.seen(issuer, b.id, b.rev):
                t.event(Event.DUPLICATE, b.id, b.rev, detail="this id and rev were already received")
                return Accepted(stored=False)
            if known is not None and b.rev < known.rev:
                t.event(
                    Event.REJECTED, b.id, b.rev, detail=f"rev {b.rev} is older than rev {known.rev} already received"
                )
                return Accepted(stored=False)
            waiting = t.waiting()
            if b.schedule is None and waiting >= max_queue:
                t.event(Event.REJECTED, b.id, b.rev, detail=f"the queue is full ({waiting} waiting)")
                return Accepted(stored=False)
            if known is not None:
                t.supersede(issuer, known, b.rev)
            t.store_bulletin(issuer, b, now.timestamp())
            t.event(Event.RECEIVED, b.id, b.rev, detail=f"{b.priority}, {b.content.kind}")
            if approval_until is not None and (b.schedule is None or first_slot is not None):
                self._await_approval(t, issuer, b, approval_until, first_slot)
            elif b.schedule is None:
                t.add_play(issuer, b.id, b.rev, occurrence=None, due_at=now.timestamp(), priority=b.priority)
            elif first_slot is None:
                t.event(Event.MISSED, b.id, b.rev, detail="the schedule has no occurrence left")
                t.schedule_over(issuer, b.id)
            else:
                t.event(Event.SCHEDULED, b.id, b.rev, occurrence=first_slot.isoformat())
        return Accepted(stored=True, superseded_rev=known.rev if known is not None else None)

    def live(self, issuer: str, id: str, input: str, now: datetime, *, volume: float | None = None) -> None:
        """A live announcement from the station's input (the technician's `loaxa live`): stored and queued now.

        It goes before `normal` and `low` and cuts in on them (`BroadcastQueue`), and yields to `emergency`.
        """
        body: dict[str, object] = {"id": id, "priority": Priority.HIGH.value, "live": {"input": input}}
        if volume is not None:
            body["volume"] = volume
        with self.tx() as t:
            t.store_live(issuer, id, body, now.timestamp())
            t.event(Event.RECEIVED, id, 1, detail="live")
            t.add_play(issuer, id, 1, occurrence=None, due_at=now.timestamp(), priority=Priority.HIGH)

    def cancel(self, issuer: str, id: str) -> bool:
        """Cancel a bulletin that is active or on air; a `rejected` receipt otherwise."""
        with self.tx() as t:
            known = t.bulletin(issuer, id)
            if known is None or (known.state is not BulletinState.ACTIVE and not t.on_air(issuer, id)):
                reason = "no such bulletin" if known is None else f"the bulletin is already {known.state}"
                t.event(Event.REJECTED, id, detail=f"cannot cancel: {reason}")
                return False
            t.cancel(issuer, known)
        return True

    @staticmethod
    def _await_approval(t: Txn, issuer: str, b: Bulletin, until: datetime, first_slot: datetime | None) -> None:
        if first_slot is not None:
            t.event(Event.SCHEDULED, b.id, b.rev, occurrence=first_slot.isoformat())
        stored = t.bulletin(issuer, b.id)
        assert stored is not None
        t.await_approval(
            stored,
            until,
            f"{b.priority} bulletins wait for the commune's approval; expires unanswered at {until.isoformat()}",
        )

    # -- commune approval (protocol 1.1) -----------------------------------------
    def approve(self, by: str, id: str, now: datetime, at: datetime | None = None) -> Answer:
        """The commune's yes to every bulletin `id` awaiting approval; a `rejected` receipt when there is none.

        `at` (the technician's `--at`) is when one without a schedule airs; a
        scheduled one airs at its slots.
        """
        with self.tx() as t:
            known = t.answerable(id)
            waiting = [b for b in known if b.approval is Approval.AWAITING]
            refusal = _approve_refusal(id, known, waiting, at)
            if refusal is not None:
                t.event(Event.REJECTED, id, detail=f"cannot approve: {refusal}")
                return Answer(ok=False, detail=refusal)
            when = f", to air at {at.isoformat()}" if at is not None and at > now else ""
            for b in waiting:
                due = None if b.body.get("schedule") is not None else max(now, at or now).timestamp()
                t.approve(b, by, now=now.timestamp(), due_at=due, detail=f"by {by}{when}")
        return Answer(ok=True, detail=f"approved by {by}{when}", issuers=tuple(b.issuer for b in waiting))

    def decline(self, by: str, id: str, reason: str, now: datetime) -> Answer:
        """The commune's no to bulletin `id` (awaiting, or approved and not yet over); the caller stops one on air."""
        with self.tx() as t:
            known = t.answerable(id)
            if not known:
                refusal = f"no bulletin {id!r} is awaiting approval or approved and still to air"
                t.event(Event.REJECTED, id, detail=f"cannot decline: {refusal}")
                return Answer(ok=False, detail=refusal)
            detail = f"{reason} (declined by {by})"
            for b in known:
                t.decline(b, by, now=now.timestamp(), detail=detail)
        return Answer(ok=True, detail=detail, issuers=tuple(b.issuer for b in known))

    def awaiting(self) -> list[StoredBulletin]:
        """Bulletins awaiting the commune's answer, oldest first (for `loaxa pending`)."""
        rows = self.store.query(
            "SELECT * FROM bulletins WHERE state = ? AND approval = ? ORDER BY received_at, issuer, id",
            (BulletinState.ACTIVE, Approval.AWAITING),
        )
        return [bulletin_of(r) for r in rows]

    # -- the player's transitions ---------------------------------------------
    def start(self, play: Play) -> bool:
        """Put a play on air; False (and no receipt) when it was cancelled or superseded meanwhile."""
        with self.tx() as t:
            return t.start_play(play)

    def progress(self, play: Play, *, sentence: int, played: int) -> None:
        """Where to resume: lost in a power cut, the play resumes a sentence or two earlier."""
        with self.tx(durable=False) as t:
            t.progress(play.pid, sentence=sentence, played=played)

    def end(self, play: Play, outcome: Outcome, detail: str | None = None) -> None:
        """Close or requeue a play after its session, with the receipt the outcome calls for."""
        with self.tx() as t:
            if outcome is Outcome.FINISHED:
                outcome = _withdrawn_meanwhile(t, play) or outcome
            if outcome in _CLOSES:
                state, receipt = _CLOSES[outcome]
                t.close_play(play, state, receipt, detail if receipt is not None else None)
            else:
                if outcome is Outcome.PREEMPTED:
                    detail = detail or "an emergency bulletin cut in"
                else:
                    detail = None
                t.requeue(play, _REQUEUES[outcome], detail)

    def expire(self, play: Play, detail: str) -> None:
        with self.tx() as t:
            t.close_play(play, PlayState.EXPIRED, Event.EXPIRED, detail)

    def hold(self, play: Play, detail: str) -> None:
        """A due play waits (quiet hours, clock, audio output): its `held` receipt, state unchanged."""
        with self.tx() as t:
            t.event(Event.HELD, play.id, play.rev, occurrence=play.occurrence, detail=detail)

    def miss(self, play: Play, detail: str) -> None:
        """A scheduled play held beyond the grace: it will not air."""
        with self.tx() as t:
            t.close_play(play, PlayState.MISSED, Event.MISSED, detail)

    def prune(self, *, keep_s: float, keep_events: int) -> dict[str, int]:
        """Forget what is over and older than `keep_s`; never an open play, an active bulletin or an unsent event.

        What was seen is kept as long as its bulletin, so a redelivered command
        is still answered `duplicate` while the broker could redeliver it.
        """
        cutoff = self.clock() - keep_s
        open_states = (PlayState.PENDING, PlayState.ON_AIR)
        with self.store.tx() as db:
            plays = db.execute(
                "DELETE FROM plays WHERE state NOT IN (?, ?) AND COALESCE(ended_at, due_at) < ?", (*open_states, cutoff)
            ).rowcount
            bulletins = db.execute(
                "DELETE FROM bulletins WHERE state != ? AND received_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM plays p WHERE p.issuer = bulletins.issuer AND p.id = bulletins.id)",
                (BulletinState.ACTIVE, cutoff),
            ).rowcount
            seen = db.execute(
                "DELETE FROM seen WHERE at < ? AND NOT EXISTS "
                "(SELECT 1 FROM bulletins b WHERE b.issuer = seen.issuer AND b.id = seen.id)",
                (cutoff,),
            ).rowcount
        events = self.store.prune_events(keep=keep_events)
        self.store.compact_seen()
        return {"plays": plays, "bulletins": bulletins, "seen": seen, "events": events}

    def recover(self) -> int:
        """After a restart, plays that were on air go back to the queue."""
        with self.store.tx() as db:
            cur = db.execute("UPDATE plays SET state = ? WHERE state = ?", (PlayState.PENDING, PlayState.ON_AIR))
            return cur.rowcount

    # -- reading ------------------------------------------------------------------
    def open_plays(self) -> list[Play]:
        """Plays waiting or on air, best first: priority, due time, arrival."""
        rows = self.store.query(
            f"{PLAYS} WHERE p.state IN (?, ?) ORDER BY p.rank, p.due_at, p.pid", (PlayState.PENDING, PlayState.ON_AIR)
        )
        return [play_of(r) for r in rows]

    def count_open(self) -> int:
        """Plays waiting or on air, for the state topic."""
        rows = self.store.query(
            "SELECT COUNT(*) FROM plays WHERE state IN (?, ?)", (PlayState.PENDING, PlayState.ON_AIR)
        )
        return int(rows[0][0])

    def play(self, pid: int) -> Play | None:
        rows = self.store.query(f"{PLAYS} WHERE p.pid = ?", (pid,))
        return play_of(rows[0]) if rows else None

    def plays_of(self, issuer: str, id: str) -> list[Play]:
        rows = self.store.query(f"{PLAYS} WHERE p.issuer = ? AND p.id = ? ORDER BY p.pid", (issuer, id))
        return [play_of(r) for r in rows]

    def scheduled_bulletins(self) -> list[StoredBulletin]:
        """Active bulletins with a schedule (their slots are still to come or to account for)."""
        return [bulletin_of(r) for r in self.store.query(SCHEDULED, (BulletinState.ACTIVE,))]

    def soonest_next_at(self) -> float | None:
        """The earliest `next_at` of an active bulletin: when the scheduler must wake (an indexed read)."""
        rows = self.store.query("SELECT MIN(next_at) FROM bulletins WHERE state = ?", (BulletinState.ACTIVE,))
        return rows[0][0]

    def next_at(self, issuer: str, id: str) -> float | None:
        rows = self.store.query("SELECT next_at FROM bulletins WHERE issuer = ? AND id = ?", (issuer, id))
        return rows[0][0] if rows else None

    def by_next_at(self, batch: int = 50) -> Iterator[StoredBulletin]:
        """Active scheduled bulletins, soonest `next_at` first, read a batch at a time."""
        after: tuple[float, str, str] = (float("-inf"), "", "")
        while True:
            rows = self.store.query(
                "SELECT * FROM bulletins WHERE state = ? AND next_at IS NOT NULL "
                "AND (next_at, issuer, id) > (?, ?, ?) ORDER BY next_at, issuer, id LIMIT ?",
                (BulletinState.ACTIVE, *after, batch),
            )
            for row in rows:
                yield bulletin_of(row)
            if len(rows) < batch:
                return
            after = (rows[-1]["next_at"], rows[-1]["issuer"], rows[-1]["id"])

    def issuers_of(self, id: str) -> list[str]:
        """Issuers with a bulletin `id` that is still active or on air (a technician names only the id)."""
        rows = self.store.query(
            "SELECT issuer FROM bulletins WHERE id = ? AND state = ? "
            "UNION SELECT issuer FROM plays WHERE id = ? AND state = ?",
            (id, BulletinState.ACTIVE, id, PlayState.ON_AIR),
        )
        return [r["issuer"] for r in rows]

    # -- completion ---------------------------------------------------------------
    def watch(self, issuer: str, id: str) -> Completion:
        """A signal set when the bulletin's play closes; ask before the bulletin is submitted."""
        done = Completion()
        with self._watch_lock:
            self._watchers.setdefault((issuer, id), []).append(done)
        self._settle((issuer, id))
        return done

    def unwatch(self, issuer: str, id: str, done: Completion) -> None:
        with self._watch_lock:
            waiting = self._watchers.get((issuer, id), [])
            if done in waiting:
                waiting.remove(done)
            if not waiting:
                self._watchers.pop((issuer, id), None)

    def _settle(self, key: tuple[str, str]) -> None:
        with self._watch_lock:
            waiting = self._watchers.get(key)
            if not waiting:
                return
        rows = self.store.query(
            "SELECT state, detail FROM plays WHERE issuer = ? AND id = ? ORDER BY pid DESC LIMIT 1", key
        )
        if not rows or not PlayState(rows[0]["state"]).terminal:
            return
        with self._watch_lock:
            settled = self._watchers.pop(key, [])
        for done in settled:
            done._settle(PlayState(rows[0]["state"]), rows[0]["detail"])


def _withdrawn_meanwhile(t: Txn, play: Play) -> Outcome | None:
    """A play that ended as its bulletin was withdrawn (the withdrawal committed after the player's last
    look): it closes as withdrawn, without a `finished` after the `cancelled` the province already has."""
    known = t.bulletin(play.issuer, play.id)
    if known is None or known.rev != play.rev:
        return Outcome.SUPERSEDED
    return _WITHDRAWN.get(known.state)


_WITHDRAWN = {
    BulletinState.CANCELLED: Outcome.CANCELLED,
    BulletinState.SUPERSEDED: Outcome.SUPERSEDED,
    BulletinState.DECLINED: Outcome.DECLINED,
}
