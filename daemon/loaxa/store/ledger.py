"""The one owner of bulletin and play state, and of the receipts they cause.

Every transition is a method here that writes the new state and its
receipt in one transaction: a bulletin and its receipts are stored or not
at all, and no other module writes SQL. `Txn` is one open transaction with
typed steps, for the callers (inbox, scheduler) that decide several things
at once; `Ledger` wraps the common transitions and the player's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from loaxa.jsonwire import compact
from loaxa.protocol import event
from loaxa.states import BulletinState, Event, Outcome, PlayState, Priority
from loaxa.store.db import Store

if TYPE_CHECKING:
    from loaxa.content import Content
    from loaxa.protocol import Bulletin

# How a session's outcome closes its play: the play's new state and the receipt.
_CLOSES: dict[Outcome, tuple[PlayState, Event | None]] = {
    Outcome.FINISHED: (PlayState.DONE, Event.FINISHED),
    Outcome.FAILED: (PlayState.FAILED, Event.FAILED),
    Outcome.CANCELLED: (PlayState.CANCELLED, None),  # the cancel itself was the receipt
    Outcome.SUPERSEDED: (PlayState.SUPERSEDED, None),
}
# Outcomes that put the play back in the queue, with the receipt they send.
_REQUEUES: dict[Outcome, Event | None] = {
    Outcome.PREEMPTED: Event.INTERRUPTED,
    Outcome.AUDIO_ERROR: None,  # retried quietly: no receipt until sound can flow
    Outcome.SHUTDOWN: None,  # resumes after the restart
}
# A bulletin without a schedule ends with its one play.
_BULLETIN_AFTER: dict[PlayState, BulletinState] = {
    PlayState.DONE: BulletinState.DONE,
    PlayState.FAILED: BulletinState.FAILED,
    PlayState.EXPIRED: BulletinState.EXPIRED,
}


@dataclass(frozen=True)
class Play:
    """One airing of a bulletin, as the queue and the player see it."""

    pid: int
    issuer: str
    id: str
    rev: int
    occurrence: str | None
    due_at: float
    rank: int
    state: PlayState
    sentence: int
    played: int
    started_at: float | None
    body: dict[str, Any] = field(repr=False)

    @property
    def priority(self) -> Priority:
        return Priority.of_rank(self.rank)

    @cached_property
    def content(self) -> Content:
        from loaxa.content import content_of

        return content_of(self.body)


@dataclass(frozen=True)
class StoredBulletin:
    issuer: str
    id: str
    rev: int
    priority: Priority
    state: BulletinState
    received_at: float
    fired_until: float | None
    next_at: float | None  # when the scheduler must look at it next: its next slot, or its expiry
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Accepted:
    """What the store did with a new bulletin."""

    stored: bool
    superseded_rev: int | None = None


class Txn:
    """One open transaction: typed steps, each with the receipt it causes."""

    def __init__(
        self, db: sqlite3.Connection, station: str, clock: Callable[[], float] = time.time, *, durable: bool = True
    ) -> None:
        self._db = db
        self.station = station
        self._clock = clock
        self.durable = durable
        self.touched: set[tuple[str, str]] = set()  # bulletins whose plays may have closed

    def event(
        self,
        kind: Event,
        id: str | None,
        rev: int | None = None,
        *,
        occurrence: str | None = None,
        detail: str | None = None,
    ) -> None:
        if not self.durable:  # a receipt lost in a power cut would leave its `seq` to be reused
            raise RuntimeError("a receipt needs a durable transaction")
        payload = event(kind, self.station, id, rev, detail=detail, occurrence=occurrence)
        cur = self._db.execute("INSERT INTO events (payload) VALUES ('')")
        payload["seq"] = cur.lastrowid
        self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (compact(payload), cur.lastrowid))

    # -- bulletins ------------------------------------------------------------
    def bulletin(self, issuer: str, id: str) -> StoredBulletin | None:
        row = self._db.execute("SELECT * FROM bulletins WHERE issuer = ? AND id = ?", (issuer, id)).fetchone()
        return _bulletin(row) if row is not None else None

    def due_bulletins(self, now: datetime) -> list[StoredBulletin]:
        """Active scheduled bulletins with something to account for by `now` (an indexed read)."""
        rows = self._db.execute(
            "SELECT * FROM bulletins WHERE state = ? AND next_at <= ? ORDER BY next_at",
            (BulletinState.ACTIVE, now.timestamp()),
        )
        return [_bulletin(r) for r in rows.fetchall()]

    @contextmanager
    def step(self) -> Iterator[None]:
        """A part of the transaction undone alone if it raises, so one bad bulletin spoils no other's."""
        self._db.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO step")
            self._db.execute("RELEASE step")
            raise
        self._db.execute("RELEASE step")

    def seen(self, issuer: str, id: str, rev: int) -> bool:
        row = self._db.execute("SELECT 1 FROM seen WHERE issuer = ? AND id = ? AND rev = ?", (issuer, id, rev))
        return row.fetchone() is not None

    def waiting(self) -> int:
        """Plays waiting to start."""
        row = self._db.execute("SELECT COUNT(*) FROM plays WHERE state = ?", (PlayState.PENDING,)).fetchone()
        return int(row[0])

    def on_air(self, issuer: str, id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM plays WHERE issuer = ? AND id = ? AND state = ?", (issuer, id, PlayState.ON_AIR)
        )
        return row.fetchone() is not None

    def store_bulletin(self, issuer: str, bulletin: Bulletin, received_at: float) -> None:
        """Remember the id and rev, and keep this rev as the bulletin's body."""
        self._db.execute(
            "INSERT INTO seen (issuer, id, rev, at) VALUES (?, ?, ?, ?)",
            (issuer, bulletin.id, bulletin.rev, received_at),
        )
        self._db.execute(
            "INSERT OR REPLACE INTO bulletins "
            "(issuer, id, rev, priority, body, state, received_at, fired_until, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                issuer,
                bulletin.id,
                bulletin.rev,
                bulletin.priority,
                bulletin.model_dump_json(exclude_none=True),
                BulletinState.ACTIVE,
                received_at,
                # Due at once: the scheduler accounts for its slots from arrival, then stores the next one.
                received_at if bulletin.schedule is not None else None,
            ),
        )

    def supersede(self, issuer: str, known: StoredBulletin, new_rev: int) -> None:
        self._db.execute(
            "UPDATE plays SET state = ? WHERE issuer = ? AND id = ? AND state = ?",
            (PlayState.SUPERSEDED, issuer, known.id, PlayState.PENDING),
        )
        self.touched.add((issuer, known.id))
        self.event(Event.SUPERSEDED, known.id, known.rev, detail=f"replaced by rev {new_rev}")

    def cancel(self, issuer: str, known: StoredBulletin) -> None:
        self._set_bulletin(issuer, known.id, BulletinState.CANCELLED)
        self._db.execute(
            "UPDATE plays SET state = ? WHERE issuer = ? AND id = ? AND state = ?",
            (PlayState.CANCELLED, issuer, known.id, PlayState.PENDING),
        )
        self.touched.add((issuer, known.id))
        self.event(Event.CANCELLED, known.id, known.rev)

    def fired_until(self, b: StoredBulletin, at: datetime, *, next_at: datetime | None) -> None:
        """Occurrences of `b` up to `at` are accounted for; the scheduler looks at it again at `next_at`."""
        self._db.execute(
            "UPDATE bulletins SET fired_until = ?, next_at = ? WHERE issuer = ? AND id = ?",
            (at.timestamp(), next_at.timestamp() if next_at is not None else None, b.issuer, b.id),
        )

    def unschedulable(self, b: StoredBulletin, detail: str) -> None:
        """A stored bulletin whose schedule cannot be armed: `failed` once, and no longer active."""
        self._set_bulletin(b.issuer, b.id, BulletinState.FAILED)
        self.event(Event.FAILED, b.id, b.rev, detail=detail)

    def expire(self, b: StoredBulletin) -> None:
        self._set_bulletin(b.issuer, b.id, BulletinState.EXPIRED)
        self.event(Event.EXPIRED, b.id, b.rev, detail="past its expiry time")

    def schedule_over(self, issuer: str, id: str) -> None:
        """The schedule has no slot left: the bulletin is done once its plays are."""
        self._set_bulletin(issuer, id, BulletinState.DONE)

    def _set_bulletin(self, issuer: str, id: str, state: BulletinState) -> None:
        # Only active bulletins have a next slot; the others leave the scheduler's index.
        self._db.execute(
            "UPDATE bulletins SET state = ?, next_at = NULL WHERE issuer = ? AND id = ?", (state, issuer, id)
        )

    # -- plays ------------------------------------------------------------------
    def add_play(
        self, issuer: str, id: str, rev: int, *, occurrence: str | None, due_at: float, priority: Priority
    ) -> bool:
        """A play for this slot (or as soon as possible); False when it already exists."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO plays (issuer, id, rev, occurrence, due_at, rank) VALUES (?, ?, ?, ?, ?, ?)",
            (issuer, id, rev, occurrence, due_at, Priority(priority).rank),
        )
        return cur.rowcount == 1

    def missed(self, b: StoredBulletin, *, occurrence: str, due_at: float, detail: str) -> None:
        """A slot that passed beyond the grace: recorded once, with its receipt."""
        if self.add_play(b.issuer, b.id, b.rev, occurrence=occurrence, due_at=due_at, priority=b.priority):
            self._db.execute(
                "UPDATE plays SET state = ?, detail = ? WHERE issuer = ? AND id = ? AND rev = ? AND occurrence = ?",
                (PlayState.MISSED, "station was off", b.issuer, b.id, b.rev, occurrence),
            )
            self.event(Event.MISSED, b.id, b.rev, occurrence=occurrence, detail=detail)

    def start_play(self, play: Play) -> None:
        resumed = play.started_at is not None
        self._db.execute(
            "UPDATE plays SET state = ?, started_at = COALESCE(started_at, ?) WHERE pid = ?",
            (PlayState.ON_AIR, self._clock(), play.pid),
        )
        detail = f"from sentence {play.sentence + 1}" if resumed else None
        kind = Event.RESUMED if resumed else Event.STARTED
        self.event(kind, play.id, play.rev, occurrence=play.occurrence, detail=detail)

    def progress(self, pid: int, *, sentence: int, played: int) -> None:
        self._db.execute("UPDATE plays SET sentence = ?, played = ? WHERE pid = ?", (sentence, played, pid))

    def requeue(self, play: Play, receipt: Event | None, detail: str | None) -> None:
        self._db.execute(
            "UPDATE plays SET state = ? WHERE pid = ? AND state = ?", (PlayState.PENDING, play.pid, PlayState.ON_AIR)
        )
        if receipt is not None:
            self.event(receipt, play.id, play.rev, occurrence=play.occurrence, detail=detail)

    def close_play(self, play: Play, state: PlayState, receipt: Event | None, detail: str | None) -> None:
        self._db.execute(
            "UPDATE plays SET state = ?, ended_at = ?, detail = ? WHERE pid = ?",
            (state, self._clock(), detail, play.pid),
        )
        after = _BULLETIN_AFTER.get(state)
        if play.occurrence is None and after is not None:
            self._db.execute(
                "UPDATE bulletins SET state = ? WHERE issuer = ? AND id = ? AND rev = ? AND state = ?",
                (after, play.issuer, play.id, play.rev, BulletinState.ACTIVE),
            )
        self.touched.add((play.issuer, play.id))
        if receipt is not None:
            self.event(receipt, play.id, play.rev, occurrence=play.occurrence, detail=detail)


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

    @contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[Txn]:
        """One transaction; watchers of bulletins it closed are told after the commit.

        `durable=False` (see `Store.tx`) is for steps that write no receipt.
        """
        with self.store.tx(durable=durable) as db:
            txn = Txn(db, self.station, self.clock, durable=durable)
            yield txn
        for key in txn.touched:
            self._settle(key)

    def receipt(self, kind: Event, id: str | None, rev: int | None = None, *, detail: str | None = None) -> None:
        """A receipt that changes no state (`rejected`, `duplicate`, `pong`)."""
        with self.tx() as t:
            t.event(kind, id, rev, detail=detail)

    # -- commands ---------------------------------------------------------------
    def accept(
        self, issuer: str, b: Bulletin, now: datetime, *, max_queue: int, first_slot: datetime | None
    ) -> Accepted:
        """Store a new bulletin (or rev) with its receipts and its first play or slot.

        `first_slot` is the scheduled bulletin's first occurrence still to play
        (None when its schedule has none left); unscheduled ones play now.
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
            if b.schedule is None:
                t.add_play(issuer, b.id, b.rev, occurrence=None, due_at=now.timestamp(), priority=b.priority)
            elif first_slot is None:
                t.event(Event.MISSED, b.id, b.rev, detail="the schedule has no occurrence left")
                t.schedule_over(issuer, b.id)
            else:
                t.event(Event.SCHEDULED, b.id, b.rev, occurrence=first_slot.isoformat())
        return Accepted(stored=True, superseded_rev=known.rev if known is not None else None)

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

    # -- the player's transitions ---------------------------------------------
    def start(self, play: Play) -> None:
        with self.tx() as t:
            t.start_play(play)

    def progress(self, play: Play, *, sentence: int, played: int) -> None:
        """Where to resume: lost in a power cut, the play resumes a sentence or two earlier."""
        with self.tx(durable=False) as t:
            t.progress(play.pid, sentence=sentence, played=played)

    def end(self, play: Play, outcome: Outcome, detail: str | None = None) -> None:
        """Close or requeue a play after its session, with the receipt the outcome calls for."""
        with self.tx() as t:
            if outcome in _CLOSES:
                state, receipt = _CLOSES[outcome]
                t.close_play(play, state, receipt, detail if receipt is not None else None)
            else:
                detail = "an emergency bulletin cut in" if outcome is Outcome.PREEMPTED else None
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
            f"{_PLAYS} WHERE p.state IN (?, ?) ORDER BY p.rank, p.due_at, p.pid", (PlayState.PENDING, PlayState.ON_AIR)
        )
        return [_play(r) for r in rows]

    def count_open(self) -> int:
        """Plays waiting or on air, for the state topic."""
        rows = self.store.query(
            "SELECT COUNT(*) FROM plays WHERE state IN (?, ?)", (PlayState.PENDING, PlayState.ON_AIR)
        )
        return int(rows[0][0])

    def play(self, pid: int) -> Play | None:
        rows = self.store.query(f"{_PLAYS} WHERE p.pid = ?", (pid,))
        return _play(rows[0]) if rows else None

    def plays_of(self, issuer: str, id: str) -> list[Play]:
        rows = self.store.query(f"{_PLAYS} WHERE p.issuer = ? AND p.id = ? ORDER BY p.pid", (issuer, id))
        return [_play(r) for r in rows]

    def scheduled_bulletins(self) -> list[StoredBulletin]:
        """Active bulletins with a schedule (their slots are still to come or to account for)."""
        return [_bulletin(r) for r in self.store.query(_SCHEDULED, (BulletinState.ACTIVE,))]

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
                yield _bulletin(row)
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


def aired(db: sqlite3.Connection, since: datetime) -> list[sqlite3.Row]:
    """Plays that went on air or were given up since `since`, oldest first (for `loaxa log`)."""
    shown = [s.value for s in PlayState if s is not PlayState.PENDING]
    return db.execute(
        "SELECT p.*, b.priority AS bpriority FROM plays p "
        "LEFT JOIN bulletins b ON b.issuer = p.issuer AND b.id = p.id "
        f"WHERE p.state IN ({','.join('?' * len(shown))}) AND COALESCE(p.started_at, p.due_at) >= ? "
        "ORDER BY COALESCE(p.started_at, p.due_at), p.pid",
        (*shown, since.timestamp()),
    ).fetchall()


_SCHEDULED = "SELECT * FROM bulletins WHERE state = ? AND json_extract(body, '$.schedule') IS NOT NULL"
_PLAYS = "SELECT p.*, b.body FROM plays p JOIN bulletins b ON b.issuer = p.issuer AND b.id = p.id AND b.rev = p.rev"


def _play(row: sqlite3.Row) -> Play:
    return Play(
        pid=row["pid"],
        issuer=row["issuer"],
        id=row["id"],
        rev=row["rev"],
        occurrence=row["occurrence"],
        due_at=row["due_at"],
        rank=row["rank"],
        state=PlayState(row["state"]),
        sentence=row["sentence"],
        played=row["played"],
        started_at=row["started_at"],
        body=json.loads(row["body"]),
    )


def _bulletin(row: sqlite3.Row) -> StoredBulletin:
    return StoredBulletin(
        issuer=row["issuer"],
        id=row["id"],
        rev=row["rev"],
        priority=Priority(row["priority"]),
        state=BulletinState(row["state"]),
        received_at=row["received_at"],
        fired_until=row["fired_until"],
        next_at=row["next_at"],
        body=json.loads(row["body"]),
    )


__all__ = ["Accepted", "Completion", "Ledger", "Play", "StoredBulletin", "Txn", "aired"]
