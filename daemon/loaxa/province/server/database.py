"""The province database: engine, migrations at start, and the ingest transaction.

SQLite by default (WAL, one file under the data dir) or PostgreSQL by URL,
both through SQLAlchemy. `ingest()` writes one batch of states and events in
one transaction (`batch.Batch`): an event already stored (the same station
and `seq`, a QoS 1 redelivery) is skipped, a jump in a station's `seq` is
recorded as a gap, and a late event that fills a gap shrinks it. Only after
`ingest()` returns may the batch be acknowledged to the broker.

A full disk under SQLite is not fatal when the server starts
(`wait_for_space`): it stores nothing (so acknowledges nothing) and
migrates at the first batch that finds space again, without a restart.
The commands at the terminal still fail at once, in one line.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from loaxa.errors import StoreError
from loaxa.province.server.batch import Batch, StateCache
from loaxa.province.server.records import SIGNIFICANT, STATUS_OF, Incoming, IngestResult, epoch_of
from loaxa.province.server.settings import ProvinceServerSettings

__all__ = ["SIGNIFICANT", "STATUS_OF", "Database", "DatabaseError", "Incoming", "IngestResult", "epoch_of"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
FULL_BELOW = 1 << 20  # bytes free under which SQLite's file system counts as full (it fails with less than a page)


class DatabaseError(StoreError):
    """The province database cannot be opened, migrated or written."""


class Database:
    def __init__(self, engine: Engine, lock_wait_s: float = 7.5) -> None:
        self.engine = engine
        self.lock_wait_s = lock_wait_s  # PostgreSQL: how long a batch waits for a lock held elsewhere
        self._states = StateCache()  # the ingest's memory of each station's last state, checked against the rows
        self._ingest_lock = threading.Lock()  # one batch at a time: the cache follows the commits in order
        self.migrated = False

    # -- start-up ---------------------------------------------------------------
    @classmethod
    def open(cls, settings: ProvinceServerSettings, wait_for_space: bool = False) -> Database:
        """Engine and migrations; `wait_for_space` (the server) starts on a full SQLite disk instead of failing."""
        url = settings.database_url
        if url.startswith("sqlite"):
            try:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the data dir {settings.data_dir}: {exc}") from None
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            _sqlite_pragmas(engine, settings.database.synchronous)
        # The session's thread waits in the batch and sends no ping meanwhile: the broker drops it after 1.5
        # keep-alives of silence, and the last ping may be up to one keep-alive old.
        db = cls(engine, lock_wait_s=settings.broker.keepalive_s / 4)
        try:
            db.migrate()
        except DatabaseError as exc:
            if not wait_for_space or db.full() is None:
                raise
            # Freeing space is the fix, not a restart: the ingest migrates once it can, the broker keeps the rest.
            log.error("%s; storing nothing until there is space", exc)
        return db

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); a no-op when it is there."""
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are per plugin, not per change
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot open or migrate the database {self.where}: {self._why(exc)}") from None
        self.migrated = True

    def full(self) -> str | None:
        """SQLite's folder when its file system is full (SQLite may call that a disk I/O error), else None."""
        if self.engine.dialect.name != "sqlite" or not self.engine.url.database:
            return None
        folder = Path(self.engine.url.database).parent
        try:
            return str(folder) if shutil.disk_usage(folder).free < FULL_BELOW else None
        except OSError:
            return None

    def _why(self, exc: SQLAlchemyError) -> str:
        folder = self.full()
        return f"{first_line(exc)} (no space left on the file system of {folder})" if folder else first_line(exc)

    @property
    def where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # -- ingest -----------------------------------------------------------------
    def ingest(self, batch: list[Incoming]) -> IngestResult:
        """Store a batch in one transaction; raises DatabaseError and then stores nothing."""
        with self._ingest_lock:
            if not self.migrated:
                self.migrate()
                log.info("database %s migrated: storing again", self.where)
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "sqlite":
                        # The write lock before the batch reads: the driver would begin only at the first write,
                        # and reads before it could miss what another instance committed meanwhile (batch.py).
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                    elif conn.dialect.name == "postgresql":  # a VACUUM FULL or a LOCK TABLE elsewhere: fail and retry
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(self.lock_wait_s * 1000)}")
                    work = Batch(conn, time.time(), self._states)
                    result = work.run(batch)
            except SQLAlchemyError as exc:
                raise DatabaseError(f"cannot write to the database {self.where}: {self._why(exc)}") from None
            work.remember()
            return result


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def first_line(exc: SQLAlchemyError) -> str:
    """The driver's own message, its first line (SQLAlchemy adds the statement and a link below it)."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]
