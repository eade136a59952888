"""What the store holds, as records: plays, stored bulletins, and the rows they come from.

The SQL that reads them is here too, shared by the transaction steps
(`txn`) and the ledger's reads.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from loaxa.states import Approval, BulletinState, PlayState, Priority

if TYPE_CHECKING:
    from loaxa.content import Content


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
    approval: Approval | None = None  # its bulletin's: a play awaiting approval is held

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
    approval: Approval | None = None  # the commune's answer, when one is needed
    approval_by: str | None = None
    approval_at: float | None = None
    approval_until: float | None = None  # unanswered by then, it expires


@dataclass(frozen=True)
class Accepted:
    """What the store did with a new bulletin."""

    stored: bool
    superseded_rev: int | None = None


@dataclass(frozen=True)
class Answer:
    """What the store made of the commune's `approve` or `decline`: done, or why not."""

    ok: bool
    detail: str
    issuers: tuple[str, ...] = ()  # of the bulletins it answered


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


def as_run(db: sqlite3.Connection, start: datetime, end: datetime) -> list[sqlite3.Row]:
    """Plays that aired or were given up in [start, end), oldest first, with their bulletin (for the log book).

    The bulletin's columns follow the play's (`b_body`, `b_priority` and any
    the bulletin row has, such as an approval), so a name both have is the play's.
    """
    shown = [s.value for s in PlayState if s is not PlayState.PENDING]
    return db.execute(
        "SELECT p.*, b.body AS b_body, b.priority AS b_priority, b.* FROM plays p "
        "LEFT JOIN bulletins b ON b.issuer = p.issuer AND b.id = p.id "
        f"WHERE p.state IN ({','.join('?' * len(shown))}) "
        "AND COALESCE(p.started_at, p.due_at) >= ? AND COALESCE(p.started_at, p.due_at) < ? "
        "ORDER BY COALESCE(p.started_at, p.due_at), p.pid",
        (*shown, start.timestamp(), end.timestamp()),
    ).fetchall()


SCHEDULED = "SELECT * FROM bulletins WHERE state = ? AND json_extract(body, '$.schedule') IS NOT NULL"
PLAYS = (
    "SELECT p.*, b.body, b.approval FROM plays p "
    "JOIN bulletins b ON b.issuer = p.issuer AND b.id = p.id AND b.rev = p.rev"
)


def play_of(row: sqlite3.Row) -> Play:
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
        approval=_approval(row),
    )


def bulletin_of(row: sqlite3.Row) -> StoredBulletin:
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
        approval=_approval(row),
        approval_by=row["approval_by"],
        approval_at=row["approval_at"],
        approval_until=row["approval_until"],
    )


def _approval(row: sqlite3.Row) -> Approval | None:
    return Approval(row["approval"]) if row["approval"] is not None else None
