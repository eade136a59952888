"""One open transaction of the store, with typed steps, each writing the receipt it causes.

For the callers that decide several things at once (the inbox's accept, the
scheduler's catch-up); `Ledger` wraps the common transitions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from loaxa.content import resume_point
from loaxa.jsonwire import compact
from loaxa.protocol import event
from loaxa.states import Approval, BulletinState, Event, PlayState, Priority
from loaxa.store.records import Play, StoredBulletin, bulletin_of
from loaxa.timing import parse_instant

if TYPE_CHECKING:
    from loaxa.protocol import Bulletin

# A bulletin without a schedule ends with its one play.
_BULLETIN_AFTER: dict[PlayState, BulletinState] = {
    PlayState.DONE: BulletinState.DONE,
    PlayState.FAILED: BulletinState.FAILED,
    PlayState.EXPIRED: BulletinState.EXPIRED,
}


class Txn:
    """One open transaction: typed steps, each with the receipt it causes."""

    def __init__(
        self,
        db: sqlite3.Connection,
        station: str,
        clock: Callable[[], float] = time.time,
        *,
        durable: bool = True,
        reserve: Callable[[int], None] = lambda seq: None,
    ) -> None:
        self._db = db
        self.station = station
        self._clock = clock
        self.durable = durable
        self._reserve = reserve  # the store's marker must cover each seq before it commits
        self.touched: set[tuple[str, str]] = set()  # bulletins whose plays may have closed
        self.seen_added: list[tuple[str, str, int, float]] = []  # for the journal beside the store, after commit

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
        assert cur.lastrowid is not None
        self._reserve(cur.lastrowid)
        payload["seq"] = cur.lastrowid
        self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (compact(payload), cur.lastrowid))

    def claim_incident_receipt(self) -> bool:
        """True once per store incident: the caller writes its receipt in this transaction."""
        cur = self._db.execute("UPDATE meta SET value = '1' WHERE key = 'incident_reported' AND value = '0'")
        return cur.rowcount == 1

    # -- bulletins ------------------------------------------------------------
    def bulletin(self, issuer: str, id: str) -> StoredBulletin | None:
        row = self._db.execute("SELECT * FROM bulletins WHERE issuer = ? AND id = ?", (issuer, id)).fetchone()
        return bulletin_of(row) if row is not None else None

    def due_bulletins(self, now: datetime) -> list[StoredBulletin]:
        """Active scheduled bulletins with something to account for by `now` (an indexed read)."""
        rows = self._db.execute(
            "SELECT * FROM bulletins WHERE state = ? AND next_at <= ? ORDER BY next_at",
            (BulletinState.ACTIVE, now.timestamp()),
        )
        return [bulletin_of(r) for r in rows.fetchall()]

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
        self.seen_added.append((issuer, bulletin.id, bulletin.rev, received_at))
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

    def store_live(self, issuer: str, id: str, body: dict[str, object], received_at: float) -> None:
        """A live announcement's bulletin row (it never came over the network: no signature, rev 1)."""
        self._db.execute("INSERT INTO seen (issuer, id, rev, at) VALUES (?, ?, 1, ?)", (issuer, id, received_at))
        self.seen_added.append((issuer, id, 1, received_at))
        self._db.execute(
            "INSERT INTO bulletins (issuer, id, rev, priority, body, state, received_at) VALUES (?, ?, 1, ?, ?, ?, ?)",
            (issuer, id, Priority.HIGH, compact(body), BulletinState.ACTIVE, received_at),
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

    # -- commune approval (protocol 1.1) ---------------------------------------
    def await_approval(self, b: StoredBulletin, until: datetime, detail: str) -> None:
        """The bulletin waits for the commune until `until`; one without a schedule waits with no play."""
        wake = until.timestamp() if b.body.get("schedule") is None else b.next_at
        self._db.execute(
            "UPDATE bulletins SET approval = ?, approval_until = ?, next_at = ? WHERE issuer = ? AND id = ?",
            (Approval.AWAITING, until.timestamp(), wake, b.issuer, b.id),
        )
        self.event(Event.AWAITING_APPROVAL, b.id, b.rev, detail=detail)

    def answerable(self, id: str) -> list[StoredBulletin]:
        """Every bulletin `id` (of any issuer) that needed approval and is still active, or on air."""
        rows = self._db.execute(
            "SELECT * FROM bulletins b WHERE id = ? AND approval IS NOT NULL AND (state = ? OR EXISTS "
            "(SELECT 1 FROM plays p WHERE p.issuer = b.issuer AND p.id = b.id AND p.state = ?)) ORDER BY issuer",
            (id, BulletinState.ACTIVE, PlayState.ON_AIR),
        )
        return [bulletin_of(r) for r in rows.fetchall()]

    def approve(self, b: StoredBulletin, by: str, *, now: float, due_at: float | None, detail: str) -> None:
        """Approved: a bulletin without a schedule gets its play (due at `due_at`), a scheduled one's slots air."""
        self._db.execute(
            "UPDATE bulletins SET approval = ?, approval_by = ?, approval_at = ?, "
            "next_at = CASE WHEN json_extract(body, '$.schedule') IS NULL THEN NULL ELSE next_at END "
            "WHERE issuer = ? AND id = ?",
            (Approval.APPROVED, by, now, b.issuer, b.id),
        )
        if due_at is not None:
            self.add_play(b.issuer, b.id, b.rev, occurrence=None, due_at=due_at, priority=b.priority)
        self.event(Event.APPROVED, b.id, b.rev, detail=detail)

    def decline(self, b: StoredBulletin, by: str, *, now: float, detail: str) -> None:
        """Declined: terminal like a cancel, every waiting play closed; one on air is stopped by the caller."""
        self._db.execute(
            "UPDATE bulletins SET state = ?, next_at = NULL, approval = ?, approval_by = ?, approval_at = ? "
            "WHERE issuer = ? AND id = ?",
            (BulletinState.DECLINED, Approval.DECLINED, by, now, b.issuer, b.id),
        )
        self._db.execute(
            "UPDATE plays SET state = ?, ended_at = ?, detail = ? WHERE issuer = ? AND id = ? AND state = ?",
            (PlayState.DECLINED, now, detail, b.issuer, b.id, PlayState.PENDING),
        )
        self.touched.add((b.issuer, b.id))
        self.event(Event.DECLINED, b.id, b.rev, detail=detail)

    def unanswered(self, b: StoredBulletin) -> None:
        """Nobody answered before its deadline: `expired`, and its waiting slots with it."""
        expires = b.body.get("expires")
        if expires and b.approval_until is not None and b.approval_until >= _instant(expires):
            detail = "not approved before its expiry time"
        else:
            waited_h = ((b.approval_until or b.received_at) - b.received_at) / 3600
            detail = f"not approved within {waited_h:g} h (approval.max_wait_h)"
        self._set_bulletin(b.issuer, b.id, BulletinState.EXPIRED)
        self._db.execute(
            "UPDATE plays SET state = ?, ended_at = ?, detail = ? WHERE issuer = ? AND id = ? AND state = ?",
            (PlayState.EXPIRED, self._clock(), detail, b.issuer, b.id, PlayState.PENDING),
        )
        self.touched.add((b.issuer, b.id))
        self.event(Event.EXPIRED, b.id, b.rev, detail=detail)

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

    def start_play(self, play: Play) -> bool:
        """On air, with `started` (or `resumed`); False when the play was closed meanwhile (a cancel)."""
        resumed = play.started_at is not None
        cur = self._db.execute(
            "UPDATE plays SET state = ?, started_at = COALESCE(started_at, ?) WHERE pid = ? AND state IN (?, ?)",
            (PlayState.ON_AIR, self._clock(), play.pid, PlayState.PENDING, PlayState.ON_AIR),
        )
        if cur.rowcount != 1:
            return False
        detail = f"from {resume_point(play.body, play.sentence)}" if resumed else None
        if "live" in play.body:  # the province's log tells a live announcement by this
            detail = "live"
        kind = Event.RESUMED if resumed else Event.STARTED
        self.event(kind, play.id, play.rev, occurrence=play.occurrence, detail=detail)
        return True

    def progress(self, pid: int, *, sentence: int, played: int) -> None:
        self._db.execute("UPDATE plays SET sentence = ?, played = ? WHERE pid = ?", (sentence, played, pid))

    def requeue(self, play: Play, receipt: Event | None, detail: str | None) -> None:
        cut = 1 if receipt is Event.INTERRUPTED else 0  # counted for the log book
        self._db.execute(
            "UPDATE plays SET state = ?, interrupted = interrupted + ? WHERE pid = ? AND state = ?",
            (PlayState.PENDING, cut, play.pid, PlayState.ON_AIR),
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


def _instant(value: str) -> float:
    return parse_instant(value, "expires").timestamp()
