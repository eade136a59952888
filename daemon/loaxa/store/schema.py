"""The store's tables, and the migration of a store made by an earlier version."""

from __future__ import annotations

import sqlite3

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
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,                      -- store_id, created_at, incident, ... (see store.opening)
    value TEXT NOT NULL
);
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
# Commune approval (protocol 1.1) came later still: NULL where none is needed.
# `approval_until` is when an unanswered bulletin expires (its `expires`, or
# the station's longest wait); an as-soon-as-possible one waits with no play,
# its `next_at` set to that instant so that the scheduler's timer expires it.
_APPROVAL_COLUMNS = {
    "approval": "TEXT",  # states.Approval
    "approval_by": "TEXT",  # who answered: an approver's key id, or `technician`
    "approval_at": "REAL",  # when
    "approval_until": "REAL",
}
# What is due and the soonest slot are read through this index, not by reading every schedule.
_NEXT_INDEX = "CREATE INDEX IF NOT EXISTS bulletins_next ON bulletins (state, next_at)"
# How often a play was cut by an emergency or live, for the log book's "interrupted and resumed"
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


def migrate(db: sqlite3.Connection) -> None:
    """Bring a store made by an earlier version up to this schema, in one transaction."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(bulletins)")}
    db.execute("BEGIN IMMEDIATE")
    try:
        if "next_at" not in columns:
            for statement in filter(str.strip, _NEXT_AT.split(";")):
                db.execute(statement)
        for name, kind in _APPROVAL_COLUMNS.items():
            if name not in columns:
                db.execute(f"ALTER TABLE bulletins ADD COLUMN {name} {kind}")
        db.execute(_NEXT_INDEX)
        if "interrupted" not in {row["name"] for row in db.execute("PRAGMA table_info(plays)")}:
            db.execute(_INTERRUPTED)
        for statement in filter(str.strip, _ARCHIVE.split(";")):
            db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
