"""The station's memory: bulletins, what was seen, plays to make, events to send.

SQLite in WAL mode with `synchronous=FULL`: a power cut loses nothing that
was committed. Each command is applied in one transaction together with the
events it causes, so a bulletin and its receipts are stored or not at all.
One connection is shared by the daemon's threads behind one lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaxa.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS bulletins (
    issuer      TEXT NOT NULL,
    id          TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    priority    TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'active',  -- active, done, cancelled, superseded, expired
    received_at REAL NOT NULL,
    fired_until REAL,                            -- occurrences up to here are already accounted for
    PRIMARY KEY (issuer, id)
);
CREATE TABLE IF NOT EXISTS seen (
    issuer TEXT NOT NULL,
    id     TEXT NOT NULL,
    rev    INTEGER NOT NULL,
    at     REAL NOT NULL,
    PRIMARY KEY (issuer, id, rev)
);
CREATE TABLE IF NOT EXISTS plays (
    pid        INTEGER PRIMARY KEY AUTOINCREMENT,
    issuer     TEXT NOT NULL,
    id         TEXT NOT NULL,
    rev        INTEGER NOT NULL,
    occurrence TEXT,                             -- the scheduled slot, NULL for as soon as possible
    due_at     REAL NOT NULL,
    rank       INTEGER NOT NULL,                 -- 0 emergency .. 3 low
    state      TEXT NOT NULL DEFAULT 'pending',  -- pending, on_air, done, failed, missed, expired, cancelled, superseded
    sentence   INTEGER NOT NULL DEFAULT 0,       -- where to resume
    played     INTEGER NOT NULL DEFAULT 0,       -- repeats already aired
    started_at REAL,
    ended_at   REAL,
    detail     TEXT,
    UNIQUE (issuer, id, rev, occurrence)
);
CREATE INDEX IF NOT EXISTS plays_pending ON plays (state, rank, due_at);
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    sent    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unsent ON events (sent, seq);
"""

RANKS = {"emergency": 0, "high": 1, "normal": 2, "low": 3}
OPEN_PLAY_STATES = ("pending", "on_air")


@dataclass(frozen=True)
class Play:
    pid: int
    issuer: str
    id: str
    rev: int
    occurrence: str | None
    due_at: float
    rank: int
    state: str
    sentence: int
    played: int
    started_at: float | None
    body: dict[str, Any]

    @property
    def priority(self) -> str:
        return self.body.get("priority", "normal")


class Store:
    """Thread-safe access to the station database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._listeners: list[threading.Event] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the station store {path}: {exc}") from None

    # -- transactions ---------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction; listeners wake after it commits."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        self.notify()

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def listen(self) -> threading.Event:
        """An event set after every commit, for threads that wait on the store."""
        wake = threading.Event()
        self._listeners.append(wake)
        return wake

    def notify(self) -> None:
        for wake in self._listeners:
            wake.set()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def integrity_ok(self) -> bool:
        return self.query("PRAGMA integrity_check")[0][0] == "ok"

    # -- events -----------------------------------------------------------------
    @staticmethod
    def add_event(db: sqlite3.Connection, payload: dict[str, Any]) -> None:
        cur = db.execute("INSERT INTO events (payload) VALUES ('')")
        payload["seq"] = cur.lastrowid
        db.execute(
            "UPDATE events SET payload = ? WHERE seq = ?",
            (json.dumps(payload, ensure_ascii=False, separators=(",", ":")), cur.lastrowid),
        )

    def unsent_events(self, limit: int = 50) -> list[tuple[int, str]]:
        rows = self.query("SELECT seq, payload FROM events WHERE sent = 0 ORDER BY seq LIMIT ?", (limit,))
        return [(r["seq"], r["payload"]) for r in rows]

    def mark_sent(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.executemany("UPDATE events SET sent = 1 WHERE seq = ?", [(s,) for s in seqs])

    def prune_events(self, keep: int = 10_000) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE sent = 1 AND seq <= (SELECT MAX(seq) FROM events) - ?", (keep,))

    # -- bulletins and plays ------------------------------------------------------
    @staticmethod
    def bulletin(db: sqlite3.Connection, issuer: str, id: str) -> sqlite3.Row | None:
        return db.execute("SELECT * FROM bulletins WHERE issuer = ? AND id = ?", (issuer, id)).fetchone()

    @staticmethod
    def seen(db: sqlite3.Connection, issuer: str, id: str, rev: int) -> bool:
        row = db.execute("SELECT 1 FROM seen WHERE issuer = ? AND id = ? AND rev = ?", (issuer, id, rev)).fetchone()
        return row is not None

    @staticmethod
    def add_play(db: sqlite3.Connection, issuer: str, id: str, rev: int, occurrence: str | None, due_at: float, priority: str) -> bool:
        cur = db.execute(
            "INSERT OR IGNORE INTO plays (issuer, id, rev, occurrence, due_at, rank) VALUES (?, ?, ?, ?, ?, ?)",
            (issuer, id, rev, occurrence, due_at, RANKS[priority]),
        )
        return cur.rowcount == 1

    def pending_plays(self) -> list[Play]:
        rows = self.query(
            "SELECT p.*, b.body FROM plays p JOIN bulletins b ON b.issuer = p.issuer AND b.id = p.id AND b.rev = p.rev "
            "WHERE p.state IN ('pending', 'on_air') ORDER BY p.rank, p.due_at, p.pid"
        )
        return [_play(r) for r in rows]

    def count_open_plays(self) -> int:
        """Plays waiting or on air, for the state topic."""
        return self.query("SELECT COUNT(*) FROM plays WHERE state IN ('pending', 'on_air')")[0][0]

    def play(self, pid: int) -> Play | None:
        rows = self.query(
            "SELECT p.*, b.body FROM plays p JOIN bulletins b ON b.issuer = p.issuer AND b.id = p.id AND b.rev = p.rev WHERE p.pid = ?",
            (pid,),
        )
        return _play(rows[0]) if rows else None

    def recover(self) -> int:
        """After a restart, plays that were on air go back to the queue."""
        with self.tx() as db:
            return db.execute("UPDATE plays SET state = 'pending' WHERE state = 'on_air'").rowcount


def _play(row: sqlite3.Row) -> Play:
    return Play(
        pid=row["pid"],
        issuer=row["issuer"],
        id=row["id"],
        rev=row["rev"],
        occurrence=row["occurrence"],
        due_at=row["due_at"],
        rank=row["rank"],
        state=row["state"],
        sentence=row["sentence"],
        played=row["played"],
        started_at=row["started_at"],
        body=json.loads(row["body"]),
    )


def now() -> float:
    return time.time()
