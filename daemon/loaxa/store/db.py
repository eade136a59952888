"""The station's SQLite file: schema, one shared connection, the events outbox.

SQLite in WAL mode with `synchronous=FULL`: a power cut loses nothing that
was committed. One connection is shared by the daemon's threads behind one
lock; every change is one immediate transaction, and threads waiting on the
store (player, reporter) are woken after each commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loaxa.errors import StorageFull, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS bulletins (
    issuer      TEXT NOT NULL,
    id          TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    priority    TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'active',  -- states.BulletinState
    received_at REAL NOT NULL,
    fired_until REAL,                            -- occurrences up to here are already accounted for
    next_at     REAL,                            -- a scheduled one's next slot (or expiry): see _NEXT_AT
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
    rank       INTEGER NOT NULL,                 -- states.Priority.rank: 0 emergency .. 3 low
    state      TEXT NOT NULL DEFAULT 'pending',  -- states.PlayState
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
# `next_at` came after the first stores were made: `CREATE TABLE IF NOT EXISTS`
# leaves their table as it was, so the column is added here, and filled with
# the instant its bulletin was last accounted for. That is never later than
# its next slot, so the first catch-up after the upgrade looks at every
# scheduled bulletin once and stores its real next slot.
_NEXT_AT = """
ALTER TABLE bulletins ADD COLUMN next_at REAL;
UPDATE bulletins SET next_at = COALESCE(fired_until, received_at)
    WHERE state = 'active' AND json_extract(body, '$.schedule') IS NOT NULL;
"""
# What is due and the soonest slot are read through this index, not by reading every schedule.
_NEXT_INDEX = "CREATE INDEX IF NOT EXISTS bulletins_next ON bulletins (state, next_at)"
# How often a play was cut by an emergency, for the log book's "interrupted and resumed"
# (plays from before the column count none), and the on-air archive's files.
_INTERRUPTED = "ALTER TABLE plays ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0"
_ARCHIVE = """
CREATE TABLE IF NOT EXISTS archive (
    aid        INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,             -- the file in archive.dir
    id         TEXT,                             -- the bulletin (or live session) it recorded
    started_at REAL NOT NULL,
    seconds    REAL NOT NULL,
    bytes      INTEGER NOT NULL,
    sha256     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archive_started ON archive (started_at)
"""

SQLITE_FULL = 13
SQLITE_IOERR = 10


class Store:
    """Thread-safe access to the station database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._listeners: list[threading.Event] = []
        self._fault_lock = threading.Lock()
        self._fault: str | None = None
        self._fault_since: str | None = None
        self._failed_writes = 0
        self._refused_commands = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._full_sync = True
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the station store {path}: {exc}") from None

    def _migrate(self) -> None:
        """Bring a store made by an earlier version up to this schema, in one transaction."""
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(bulletins)")}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if "next_at" not in columns:
                for statement in filter(str.strip, _NEXT_AT.split(";")):
                    self._db.execute(statement)
            self._db.execute(_NEXT_INDEX)
            self._migrate_archive()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate_archive(self) -> None:
        """The log book's interruption count and the on-air archive's table (inside `_migrate`'s transaction)."""
        if "interrupted" not in {row["name"] for row in self._db.execute("PRAGMA table_info(plays)")}:
            self._db.execute(_INTERRUPTED)
        for statement in filter(str.strip, _ARCHIVE.split(";")):
            self._db.execute(statement)

    @contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One immediate transaction; listeners wake after it commits.

        `durable=False` commits without an fsync (synchronous=NORMAL): the change
        reaches the card with the next durable commit or checkpoint, and a power
        cut may lose it, never corrupt the file. Only for what the station can
        afford to redo: where to resume, which receipts were acknowledged. Any
        transaction that writes an event stays durable, so no `seq` is ever
        reused after a power cut.

        A full disk raises `StorageFull`, other failures of the file `StoreError`,
        both with words and with the transaction rolled back, so the next one can
        start (a failed COMMIT otherwise leaves it open). Programming errors
        (constraint violations, misuse) are raised as they are.
        """
        with self._lock:
            try:
                self._sync(full=durable)
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._rollback()
                    raise
                self._db.execute("COMMIT")
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
                raise
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise self._failed(exc) from exc
            self._written()
        self.notify()

    def _sync(self, *, full: bool) -> None:
        if full != self._full_sync:  # a pragma is set outside a transaction, and only when it changes
            self._db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._full_sync = full

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite may have rolled back on its own already
                pass

    def _failed(self, exc: sqlite3.DatabaseError) -> StoreError:
        """The error in words, remembered as the store's fault until a write succeeds again."""
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        error: StoreError
        if code == SQLITE_FULL or "disk is full" in str(exc):
            error = StorageFull(f"storage full: {self.free_bytes()} bytes free in {self.path.parent}")
        elif code == SQLITE_IOERR:
            error = StoreError(f"storage I/O error on {self.path}: {exc}")
        else:
            error = StoreError(f"the station store {self.path} cannot be written: {exc}")
        with self._fault_lock:
            if self._fault is None:
                self._fault_since = datetime.now(UTC).isoformat(timespec="seconds")
            self._fault = str(error)
            self._failed_writes += 1
        return error

    def _written(self) -> None:
        if self._fault is not None:
            with self._fault_lock:
                self._fault = None

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use in the store's directory (-1 if unknown)."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return -1
        return st.f_bavail * st.f_frsize

    def fault(self) -> str | None:
        """Why the last write failed, until one succeeds again; None when writes work."""
        return self._fault

    def refused_command(self) -> None:
        """Count a command the inbox could not store: the cost of the fault, kept in memory since the disk is full."""
        with self._fault_lock:
            self._refused_commands += 1

    def status(self) -> dict[str, Any]:
        """The store's health for the station state (no disk needed): the fault, since when, what it cost."""
        with self._fault_lock:
            return {
                "fault": self._fault,
                "since": None if self._fault is None else self._fault_since,
                "failed_writes": self._failed_writes,
                "refused_commands": self._refused_commands,
            }

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

    def row_counts(self) -> dict[str, int]:
        """Rows in each table, to see that retention keeps the store bounded."""
        return {t: int(self.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("bulletins", "seen", "plays", "events")}

    def integrity_ok(self) -> bool:
        return bool(self.query("PRAGMA integrity_check")[0][0] == "ok")

    # -- the events outbox, read and acknowledged by the reporter -------------
    def unsent_events(self, limit: int = 50) -> list[tuple[int, str]]:
        rows = self.query("SELECT seq, payload FROM events WHERE sent = 0 ORDER BY seq LIMIT ?", (limit,))
        return [(r["seq"], r["payload"]) for r in rows]

    def mark_sent(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self.tx(durable=False) as db:  # lost in a power cut, they are sent again: `seq` tells
            db.executemany("UPDATE events SET sent = 1 WHERE seq = ?", [(s,) for s in seqs])

    def prune_events(self, keep: int = 10_000) -> int:
        """Forget sent events beyond the newest `keep`; an unsent one is never deleted."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM events WHERE sent = 1 AND seq <= (SELECT MAX(seq) FROM events) - ?", (keep,)
            )
            return cur.rowcount


def open_readonly(path: Path) -> sqlite3.Connection:
    """The store opened for reading only, as a technician's command does."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the station store {path}: {exc}") from None
    db.row_factory = sqlite3.Row
    return db
