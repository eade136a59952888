"""Opening the store file: at start, checked; while running, again after it was lost.

At start the file is checked (SQLite's `quick_check`); a damaged one, even
one whose header is gone ("file is not a database"), is set aside with a
time stamp and a new store is started, so the station keeps airing instead
of crash-looping. Its store id is compared with the marker (see
`identity`): a missing, replaced or older store is an incident.

While running, `reopen` makes the file again after it was deleted or
replaced under the daemon: from the connection still open on the old file
when that one is intact (nothing is lost), or as a new store otherwise.
Either way the event numbers continue above the marker's reservation.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loaxa.errors import StoreError
from loaxa.store.identity import (
    SEQ_BLOCK,
    Incident,
    Marker,
    SeenRow,
    damage_of,
    new_store_id,
    read_marker,
    read_seen,
    salvage,
    seen_path,
    set_aside,
    sync_dir,
    write_marker,
)

log = logging.getLogger(__name__)

SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
DAMAGE_CODES = (SQLITE_CORRUPT, SQLITE_NOTADB)

Connect = Callable[[Path], sqlite3.Connection]  # opens the file with the schema, as `Store` wants it


@dataclass
class Opened:
    """An open, checked store and what the station knows of it."""

    db: sqlite3.Connection
    store_id: str
    incident: Incident | None
    reported: bool  # the incident's receipt is in the outbox
    reserved: int  # the marker's reservation: every seq of this store stays at or below it
    file_id: tuple[int, int]  # (device, inode) of the file at open


def error_code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    return error_code(exc) in DAMAGE_CODES or "malformed" in str(exc) or "not a database" in str(exc)


def open_store(path: Path, connect: Connect) -> Opened:
    """The store at `path`, checked against its marker; a damaged one set aside, a lost one reported."""
    marker = read_marker(path)
    floor = marker.seq_reserved if marker is not None else 0
    what, kept = None, None
    seen: list[SeenRow] = []
    db: sqlite3.Connection | None = None
    if path.exists():
        damage = None
        try:
            db = connect(path)
            damage = damage_of(db)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            damage = str(exc)
        if damage is not None:
            if db is not None:
                db.close()
            aside = set_aside(path, "damaged")
            seq, seen = salvage(aside)
            floor = max(floor, seq)
            kept = aside.name
            what = f"the store was damaged ({damage}); it is kept aside as {kept} and a new one was started"
            log.error("%s", what)
            db = None
    else:
        if any(path.with_name(path.name + side).exists() for side in ("-wal", "-shm")):
            set_aside(path, "orphan")
        if marker is not None or seen_path(path).exists():  # the marker or the journal: there was a store
            what = f"the store {path.name} was missing at start; a new one was started"
            log.error("%s (the marker names store %s)", what, marker.store_id if marker else "none")
    if db is None:
        db = connect(path)
    meta = read_meta(db)
    store_id = meta.get("store_id")
    seq = current_seq(db)
    if what is None and marker is not None and store_id is not None:
        if store_id != marker.store_id and meta.get("previous_store") != marker.store_id:
            # Another station's store, or one from before: its bulletins are not this station's to air.
            db.close()
            kept = set_aside(path, "replaced").name
            what = (
                f"the store was replaced by another one (store {store_id}, not {marker.store_id} that the "
                f"station wrote); it is kept aside as {kept} and a new one was started"
            )
            log.error("%s", what)
            db, store_id = connect(path), None
        elif store_id == marker.store_id and seq < marker.seq_written:
            what = f"the store is an older copy (events up to {seq}; the station had written {marker.seq_written})"
            log.error("%s; it is used, and its event numbers continue above %d", what, floor)
    incident = _incident(what, kept, history_lost=True) if what is not None else None
    if what is None:
        floor = 0  # the store is the one the station wrote: its own numbers are right
    else:
        seen += read_seen(path)  # the ids it had seen, from the journal beside it
    previous = marker.store_id if marker is not None else None
    return settle(path, db, store_id, incident, previous=previous, floor=floor, seen=seen)


def reopen(
    path: Path, ours: sqlite3.Connection, store_id: str, why: str, reserved: int, connect: Connect, *, aside: str
) -> Opened:
    """The file was deleted or replaced while open: write it again from `ours` if intact, else start anew.

    What is found at the path instead is set aside (named `aside` and a time stamp), never deleted.
    """
    intact = _still_ours(ours, store_id)
    kept = None
    path.parent.mkdir(parents=True, exist_ok=True)  # `rm -rf` of the whole storage.dir
    if intact:
        tmp = path.with_name(path.name + ".restoring")
        _copy(ours, tmp)
        ours.close()
        if any(path.with_name(path.name + side).exists() for side in ("-wal", "-shm")):
            set_aside(path, "stale", sides_only=True)  # the old file's log, already in the copy
        if path.exists():
            kept = set_aside(path, "replaced").name
        try:
            os.replace(tmp, path)
            sync_dir(path.parent)
        except OSError as exc:
            raise StoreError(f"cannot put the station store back at {path} (a copy is in {tmp}): {exc}") from None
        what = f"the store file was {why} while running; it was written again from the open copy, nothing was lost"
        if kept is not None:
            what += f" (the file found in its place is kept as {kept})"
        db = connect(path)
        return settle(path, db, store_id, _incident(what, kept, history_lost=False), previous=store_id, floor=0)
    ours.close()
    seen = read_seen(path)
    if path.exists() or path.with_name(path.name + "-wal").exists():
        aside_path = set_aside(path, aside)
        kept = aside_path.name
        if aside == "damaged":  # what can still be read of it: its numbers and the ids it saw
            seq, readable = salvage(aside_path)
            reserved, seen = max(reserved, seq), seen + readable
    what = f"the store file was {why} while running and its content could not be kept; a new one was started"
    if kept is not None:
        what += f" ({'it' if aside == 'damaged' else 'the file found in its place'} is kept as {kept})"
    db = connect(path)
    incident = _incident(what, kept, history_lost=True)
    return settle(path, db, None, incident, previous=store_id, floor=reserved, seen=seen)


def settle(
    path: Path,
    db: sqlite3.Connection,
    store_id: str | None,
    incident: Incident | None,
    *,
    previous: str | None,
    floor: int,
    seen: list[SeenRow] | None = None,
) -> Opened:
    """Write the store's id and incident, move its numbers past `floor`, then the marker: an `Opened`."""
    store_id = store_id or new_store_id()
    db.execute("BEGIN IMMEDIATE")
    try:
        put_meta(db, "store_id", store_id)
        if db.execute("SELECT 1 FROM meta WHERE key = 'created_at'").fetchone() is None:
            put_meta(db, "created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        if incident is not None:
            put_meta(db, "incident", json.dumps(incident.__dict__, ensure_ascii=False))
            put_meta(db, "incident_reported", "0")
            put_meta(db, "previous_store", previous or "")
        if seen:
            db.executemany("INSERT OR IGNORE INTO seen (issuer, id, rev, at) VALUES (?, ?, ?, ?)", seen)
        raise_seq(db, floor)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    seq = current_seq(db)
    reserved = seq + SEQ_BLOCK
    write_marker(path, Marker(store_id, reserved, seq))
    meta = read_meta(db)
    st = os.stat(path)
    return Opened(
        db=db,
        store_id=store_id,
        incident=incident_of(meta),
        reported=meta.get("incident_reported", "1") == "1",
        reserved=reserved,
        file_id=(st.st_dev, st.st_ino),
    )


def _incident(what: str, kept: str | None, *, history_lost: bool) -> Incident:
    now = time.time()
    at = datetime.fromtimestamp(now, UTC).astimezone().isoformat(timespec="seconds")
    return Incident(at=at, at_s=now, what=what, kept_as=kept, history_lost=history_lost)


def incident_of(meta: dict[str, str]) -> Incident | None:
    raw = meta.get("incident")
    if not raw:
        return None
    try:
        return Incident(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def _still_ours(db: sqlite3.Connection, store_id: str) -> bool:
    """The open connection still reads this store, intact."""
    try:
        return read_meta(db).get("store_id") == store_id and damage_of(db) is None
    except sqlite3.Error:
        return False


def _copy(db: sqlite3.Connection, to: Path) -> None:
    to.unlink(missing_ok=True)
    try:
        target = sqlite3.connect(to)
        try:
            db.backup(target)
        finally:
            target.close()
        fd = os.open(to, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (OSError, sqlite3.Error) as exc:
        to.unlink(missing_ok=True)
        raise StoreError(f"cannot write the station store again at {to}: {exc}") from None


def read_meta(db: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}


def put_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def current_seq(db: sqlite3.Connection) -> int:
    """The highest event number this store has given (0 before the first)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


def raise_seq(db: sqlite3.Connection, floor: int) -> None:
    """The next event gets a number above `floor` (AUTOINCREMENT continues from sqlite_sequence)."""
    if current_seq(db) >= floor:
        return
    if db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'events'").fetchone() is None:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (floor,))
    else:
        db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (floor,))
