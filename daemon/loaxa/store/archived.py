"""The on-air archive's files, as the store records them: name, bulletin, start, length, size, SHA-256.

Written by `loaxa.archive` (its encoder thread) through these functions;
read read-only by `loaxa archive list` and `export`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from loaxa.store.db import Store


@dataclass(frozen=True)
class ArchivedFile:
    aid: int
    name: str  # the file in the archive folder
    id: str | None  # the bulletin (or live session) on air
    started_at: float
    seconds: float
    bytes: int
    sha256: str


def _of(row: sqlite3.Row) -> ArchivedFile:
    return ArchivedFile(
        aid=row["aid"],
        name=row["name"],
        id=row["id"],
        started_at=row["started_at"],
        seconds=row["seconds"],
        bytes=row["bytes"],
        sha256=row["sha256"],
    )


def add(store: Store, *, name: str, id: str | None, started_at: float, seconds: float, size: int, sha256: str) -> int:
    """Record a finished file; its id."""
    with store.tx() as db:
        cur = db.execute(
            "INSERT INTO archive (name, id, started_at, seconds, bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)",
            (name, id, started_at, seconds, size, sha256),
        )
        return int(cur.lastrowid or 0)


def oldest_first(store: Store) -> list[ArchivedFile]:
    return [_of(r) for r in store.query("SELECT * FROM archive ORDER BY started_at, aid")]


def forget(store: Store, aid: int) -> None:
    with store.tx() as db:
        db.execute("DELETE FROM archive WHERE aid = ?", (aid,))


def listing(db: sqlite3.Connection, since: float) -> list[ArchivedFile]:
    """Files of sessions that started at or after `since`, oldest first (a read-only connection)."""
    rows = db.execute("SELECT * FROM archive WHERE started_at >= ? ORDER BY started_at, aid", (since,))
    return [_of(r) for r in rows.fetchall()]


def by_aid(db: sqlite3.Connection, aid: int) -> ArchivedFile | None:
    row = db.execute("SELECT * FROM archive WHERE aid = ?", (aid,)).fetchone()
    return _of(row) if row is not None else None
