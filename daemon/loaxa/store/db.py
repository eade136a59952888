"""The station's SQLite file: one shared connection, the watch on the file, the events outbox.

SQLite in WAL mode with `synchronous=FULL`: a power cut loses nothing that
was committed. One connection is shared by the daemon's threads behind one
lock; every change is one immediate transaction, and threads waiting on the
store (player, reporter) are woken after each commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loaxa.errors import StorageFull, StoreError
from loaxa.store.identity import (
    SEQ_BLOCK,
    Incident,
    Marker,
    SeenRow,
    append_seen,
    check_issued,
    damage_of,
    marker_path,
    rewrite_seen,
    write_marker,
)
from loaxa.store.opening import Opened, current_seq, error_code, is_damage, open_store, read_meta, reopen
from loaxa.store.schema import SCHEMA, migrate

log = logging.getLogger(__name__)

SQLITE_FULL = 13
SQLITE_IOERR = 10
CHECK_EVERY_S = 5.0  # how often `check()` looks at the file when nothing went wrong


class Store:
    """Thread-safe access to the station database file, and the watch on that file.

    The file is checked when opened (`opening.open_store`), before every
    transaction (is it still the file that was opened?) and by `check()`,
    which the reporter calls every few seconds and the store itself after an
    I/O or corruption error. A file deleted or replaced under the daemon is
    written again (`opening.reopen`) before anything else is committed, so
    nothing is ever committed into a file that is gone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._listeners: list[threading.Event] = []
        self._incident_listeners: list[Callable[[], None]] = []
        self._fault_lock = threading.Lock()
        self._fault: str | None = None
        self._fault_since: str | None = None
        self._failed_writes = 0
        self._refused_commands = 0
        self._recovering = False
        self._suspect = False  # an I/O or corruption error: the next check runs quick_check
        self._check_due = 0.0
        self._full_sync = True
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            opened = open_store(path, self._connect)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the station store {path}: {_why(path.parent, exc)}") from None
        self._take(opened)

    def _connect(self, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
            migrate(db)
        except BaseException:
            db.close()
            raise
        self._full_sync = True
        return db

    def _take(self, opened: Opened) -> None:
        self._db = opened.db
        self.store_id = opened.store_id
        self._incident = opened.incident
        self._incident_reported = opened.reported
        self._reserved = opened.reserved
        self._file_id = opened.file_id

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
            self._guard()
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
        """The error in words, remembered as the store's fault until a write succeeds again.

        An I/O or corruption error has the file checked at once (`check`): a
        damaged store is set aside and a new one started, and the caller's
        retry then writes into that.
        """
        code = error_code(exc)
        error: StoreError
        if code == SQLITE_FULL or "disk is full" in str(exc):
            error = StorageFull(f"storage full: {self.free_bytes()} bytes free in {self.path.parent}")
        elif code == SQLITE_IOERR:
            error = StoreError(f"storage I/O error on {self.path}: {exc}")
        else:
            error = StoreError(f"the station store {self.path} cannot be written: {exc}")
        self._set_fault(str(error))
        if code == SQLITE_IOERR or is_damage(exc):
            self._suspect = True
            if not self._recovering:
                try:
                    self.check()
                except StoreError as failed:
                    log.error("%s", failed)
        return error

    def _set_fault(self, words: str, *, failed_write: bool = True) -> None:
        with self._fault_lock:
            if self._fault is None:
                self._fault_since = datetime.now(UTC).isoformat(timespec="seconds")
            self._fault = words
            self._failed_writes += failed_write

    # -- the watch on the file ----------------------------------------------------
    def _moved(self) -> str | None:
        """How the file at the path stopped being the one open here ("deleted", "replaced"); None if it is."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "deleted"
        except OSError:  # an I/O error here shows in the next statement's error
            return None
        return None if (st.st_dev, st.st_ino) == self._file_id else "replaced"

    def _guard(self) -> None:
        """Before a transaction: the file must still be the one open here, or be made so first."""
        why = self._moved()
        if why is not None:
            self._recover(why, aside="replaced")

    def check(self) -> None:
        """Is the file still this store, readable and (after an error) intact? Recover if not.

        Called by the reporter every round (it looks at most every
        `CHECK_EVERY_S`) and after an I/O or corruption error. A StoreError
        when the store cannot be made usable again (it is retried).
        """
        now = time.monotonic()
        if now < self._check_due and not self._suspect:
            return
        self._check_due = now + CHECK_EVERY_S
        with self._lock:
            why, aside = self._moved(), "replaced"
            if why is None:
                try:
                    if read_meta(self._db).get("store_id") != self.store_id:
                        why = "overwritten with another store"
                except sqlite3.DatabaseError as exc:
                    why, aside = f"found damaged ({exc})", "damaged"
            if why is None and self._suspect:
                damage = damage_of(self._db)
                if damage is not None:
                    why, aside = f"found damaged ({damage})", "damaged"
            self._suspect = False
            if why is not None:
                self._recover(why, aside=aside)
            elif not marker_path(self.path).exists():  # deleted alone: the next loss would go unnoticed
                log.warning("the store marker %s was deleted; it is written again", marker_path(self.path))
                write_marker(self.path, Marker(self.store_id, self._reserved, current_seq(self._db)))
        if not self._incident_reported:
            self._tell_incident()

    def _recover(self, why: str, *, aside: str) -> None:
        """Make the file usable again after it was lost while open; StoreError if it cannot be (yet)."""
        if self._recovering:
            raise StoreError(f"the station store file was {why}; it is being made again")
        self._recovering = True
        words = f"the station store file {self.path} was {why} while running"
        try:
            if not (self._fault or "").startswith(words):  # once per loss, not at every retry
                log.error("%s; no command is taken until it is made again", words)
            self._set_fault(words, failed_write=False)
            try:
                opened = reopen(self.path, self._db, self.store_id, why, self._reserved, self._connect, aside=aside)
            except (OSError, sqlite3.Error, StoreError) as exc:
                words = f"{words}, and cannot be made again: {exc}"
                self._set_fault(words, failed_write=False)
                raise StoreError(words) from None
            self._take(opened)
            with self._fault_lock:
                self._fault = None
            log.warning("station store back: %s", opened.incident.what if opened.incident else self.path)
        finally:
            self._recovering = False
        self._tell_incident()
        self.notify()

    # -- incidents: what the province is told ------------------------------------
    def on_incident(self, tell: Callable[[], None]) -> None:
        """`tell()` is called after the store was lost and made again, until the receipt is stored."""
        self._incident_listeners.append(tell)

    def unreported_incident(self) -> Incident | None:
        return None if self._incident_reported else self._incident

    def incident_reported(self) -> None:
        self._incident_reported = True

    def incident(self) -> Incident | None:
        """The last loss of the store (this one, or the one before it), if any."""
        return self._incident

    def check_issued(self, command: object) -> None:
        """CommandError for a command issued before the store lost what it had seen (see `identity.check_issued`)."""
        check_issued(self._incident, command)

    def _tell_incident(self) -> None:
        for tell in self._incident_listeners:
            try:
                tell()
            except Exception as exc:  # the receipt is retried at the next check
                log.warning("cannot store the receipt for the store incident yet: %s", exc)

    def journal_seen(self, rows: list[SeenRow]) -> None:
        """After their commit: the ids seen go to the journal beside the store (best effort, said in the log)."""
        try:
            append_seen(self.path, rows)
        except OSError as exc:
            log.warning("seen journal not written (%s): a loss of the store would forget these ids", exc)

    def compact_seen(self) -> None:
        """The journal rewritten from the seen table, after pruning, so it stays as small as the table."""
        rows = [(r["issuer"], r["id"], r["rev"], r["at"]) for r in self.query("SELECT * FROM seen ORDER BY at")]
        try:
            rewrite_seen(self.path, rows)
        except OSError as exc:
            log.warning("seen journal not rewritten: %s", exc)

    def reserve(self, seq: int) -> None:
        """Called with each new event's seq inside its transaction: the marker's reservation must cover it."""
        if seq <= self._reserved:
            return
        reserved = seq + SEQ_BLOCK
        write_marker(self.path, Marker(self.store_id, reserved, seq - 1))
        self._reserved = reserved

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
        """The store's health for the station state (no disk needed): the fault, since when, what it cost.

        `store` is this store's id and `incident` the last loss of the store,
        so the province sees a store that was made again.
        """
        incident = self._incident
        with self._fault_lock:
            return {
                "fault": self._fault,
                "since": None if self._fault is None else self._fault_since,
                "failed_writes": self._failed_writes,
                "refused_commands": self._refused_commands,
                "store": self.store_id,
                "incident": incident.public() if incident is not None else None,
            }

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
                raise
            except sqlite3.DatabaseError as exc:
                raise self._failed(exc) from exc

    def listen(self) -> threading.Event:
        """An event set after every commit, for threads that wait on the store."""
        wake = threading.Event()
        self._listeners.append(wake)
        return wake

    def notify(self) -> None:
        for wake in self._listeners:
            wake.set()

    def close(self) -> None:
        """Close, with the marker brought up to date: an older copy put back later is then recognised."""
        with self._lock:
            try:
                if self._moved() is None:
                    write_marker(self.path, Marker(self.store_id, self._reserved, current_seq(self._db)))
            except (StoreError, sqlite3.Error) as exc:
                log.warning("store marker not updated at close: %s", exc)
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
            self._guard()
            cur = self._db.execute(
                "DELETE FROM events WHERE sent = 1 AND seq <= (SELECT MAX(seq) FROM events) - ?", (keep,)
            )
            return cur.rowcount


def _why(folder: Path, exc: Exception) -> str:
    """SQLite's "unable to open database file", said as what a technician can act on."""
    try:
        if not folder.is_dir():
            return f"storage.dir {folder} does not exist and cannot be made ({exc})"
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"storage.dir {folder} is on a read-only file system ({exc})"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"storage.dir {folder} is not writable by this user ({exc})"
    except OSError:
        pass
    return str(exc)


def open_readonly(path: Path) -> sqlite3.Connection:
    """The store opened for reading only, as a technician's command does."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the station store {path}: {exc}") from None
    db.row_factory = sqlite3.Row
    return db
