"""The province database: engine, migrations at start, and the ingest transaction.

SQLite by default (WAL, one file under the data dir) or PostgreSQL by URL,
both through SQLAlchemy Core. `ingest()` writes one batch of states and
events in one transaction: an event already stored (the same station and
`seq`, a QoS 1 redelivery) is skipped, a jump in a station's `seq` is
recorded as a gap, and a late event that fills a gap shrinks it. Only after
`ingest()` returns may the batch be acknowledged to the broker.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from loaxa.errors import StoreError
from loaxa.jsonwire import compact
from loaxa.province.server import schema as t
from loaxa.province.server.settings import ProvinceServerSettings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# A receipt's name → the bulletin status it leaves; those absent leave the status as it was.
STATUS_OF = {
    e: e
    for e in [
        "received",
        "rejected",
        "scheduled",
        "started",
        "finished",
        "interrupted",
        "resumed",
        "failed",
        "missed",
        "expired",
        "cancelled",
        "superseded",
        "held",
        "awaiting_approval",
        "approved",
        "declined",
    ]
}
SIGNIFICANT = ("online", "version", "voice", "clock_synced", "audio", "amplifier", "storage", "groups")


class DatabaseError(StoreError):
    """The province database cannot be opened, migrated or written."""


@dataclass(frozen=True)
class Incoming:
    """One state or event as it came off the broker."""

    station: str  # p/c/s
    kind: str  # "state" or "event"
    body: dict[str, Any]
    retained: bool
    arrived: float  # epoch seconds


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    states: int = 0
    changes: int = 0
    renumbered: int = 0  # a seq already stored with another event: kept without its seq
    gaps: list[tuple[str, int, int]] = field(default_factory=list)


def epoch_of(value: object) -> float | None:
    """An ISO 8601 time with its offset as epoch seconds; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # -- start-up ---------------------------------------------------------------
    @classmethod
    def open(cls, settings: ProvinceServerSettings) -> Database:
        url = settings.database_url
        if url.startswith("sqlite"):
            try:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the data dir {settings.data_dir}: {exc}") from None
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            _sqlite_pragmas(engine, settings.database.synchronous)
        db = cls(engine)
        db.migrate()
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
            raise DatabaseError(f"cannot open or migrate the database {self.where}: {_short(exc)}") from None

    @property
    def where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # -- ingest -----------------------------------------------------------------
    def ingest(self, batch: list[Incoming]) -> IngestResult:
        """Store a batch in one transaction; raises DatabaseError and then stores nothing."""
        try:
            with self.engine.begin() as conn:
                return _Ingest(conn, self._insert, time.time()).run(batch)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot write to the database {self.where}: {_short(exc)}") from None


class _Ingest:
    """One batch inside one transaction."""

    def __init__(self, conn: Connection, insert: Any, now: float) -> None:
        self.conn = conn
        self.insert = insert
        self.now = now
        self.result = IngestResult()
        self.rows: dict[str, dict[str, Any]] = {}  # station rows touched, as they will be written

    def run(self, batch: list[Incoming]) -> IngestResult:
        self._load_stations({m.station for m in batch})
        events = self._new_events([m for m in batch if m.kind == "event"])
        for msg in batch:
            if msg.kind == "state":
                self._state(msg)
        self._write_events(events)
        self._write_stations()
        self._track_bulletins(events)
        return self.result

    def _load_stations(self, names: Iterable[str]) -> None:
        names = sorted(names)
        for row in self.conn.execute(select(t.stations).where(t.stations.c.station.in_(names))).mappings():
            self.rows[row["station"]] = dict(row)

    def _row(self, station: str, seen: float) -> dict[str, Any]:
        row = self.rows.get(station)
        if row is None:
            row = {c.name: None for c in t.stations.columns}
            row.update(station=station, commune=station.split("/")[1], first_seen_at=seen, last_seen_at=seen)
            self.rows[station] = row
        row["last_seen_at"] = max(row["last_seen_at"], seen)
        return row

    # -- events -------------------------------------------------------------------
    def _new_events(self, msgs: list[Incoming]) -> list[dict[str, Any]]:
        """The events of the batch not stored before, in seq order per station."""
        first: dict[tuple[str, int], Incoming] = {}
        unnumbered: list[Incoming] = []
        for msg in msgs:
            seq = msg.body.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                if (msg.station, seq) in first:
                    self.result.duplicates += 1
                else:
                    first[(msg.station, seq)] = msg
            else:
                unnumbered.append(msg)
        if first:
            e = t.events.c
            stored = self.conn.execute(
                select(e.station, e.seq, e.payload).where(tuple_(e.station, e.seq).in_(list(first)))
            ).all()
            for station, seq, payload in stored:
                msg = first.pop((station, seq))
                if payload == compact(msg.body):
                    self.result.duplicates += 1
                else:  # not a redelivery: the station's numbering restarted (its store was replaced)
                    log.warning(
                        "%s sent another event with seq %d (its store was reset?): kept unnumbered", station, seq
                    )
                    self.result.renumbered += 1
                    unnumbered.append(msg)
        rows = []
        for (station, seq), msg in sorted(first.items()):
            self._number(station, seq, msg)
            rows.append(self._event_row(msg, seq))
        rows.extend(self._event_row(m, None) for m in unnumbered)
        for msg in unnumbered:
            self._row(msg.station, msg.arrived)
        return rows

    def _number(self, station: str, seq: int, msg: Incoming) -> None:
        row = self._row(station, msg.arrived)
        last = row["max_seq"]
        if last is None or seq > last:
            if last is not None and seq > last + 1:
                self.result.gaps.append((station, last + 1, seq - 1))
            row["max_seq"] = seq
        else:
            self._fill_gap(station, seq)

    def _fill_gap(self, station: str, seq: int) -> None:
        """A late event inside a recorded gap: shrink or split the gap."""
        g = t.gaps.c
        found = (
            self.conn.execute(select(t.gaps).where(g.station == station, g.first_seq <= seq, g.last_seq >= seq))
            .mappings()
            .first()
        )
        if found is None:
            return
        self.conn.execute(t.gaps.delete().where(g.id == found["id"]))
        for first, last in ((found["first_seq"], seq - 1), (seq + 1, found["last_seq"])):
            if first <= last:
                self.conn.execute(
                    t.gaps.insert().values(
                        station=station, first_seq=first, last_seq=last, noticed_at=found["noticed_at"]
                    )
                )

    def _event_row(self, msg: Incoming, seq: int | None) -> dict[str, Any]:
        b = msg.body
        detail = b.get("detail")
        return {
            "station": msg.station,
            "seq": seq,
            "bulletin_id": _text(b.get("id"), 64),
            "rev": b["rev"] if isinstance(b.get("rev"), int) and not isinstance(b.get("rev"), bool) else None,
            "event": _text(b.get("event"), 32) or "unknown",
            "at": _text(b.get("at"), 40),
            "at_epoch": epoch_of(b.get("at")),
            "occurrence": _text(b.get("occurrence"), 40),
            "detail": detail if isinstance(detail, str) else None,
            "payload": compact(b),
            "stored_at": self.now,
        }

    def _write_events(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(self.insert(t.events).on_conflict_do_nothing(), rows)
            self.result.stored += len(rows)
        if self.result.gaps:
            self.conn.execute(
                t.gaps.insert(),
                [{"station": s, "first_seq": a, "last_seq": b, "noticed_at": self.now} for s, a, b in self.result.gaps],
            )

    # -- states -------------------------------------------------------------------
    def _state(self, msg: Incoming) -> None:
        b = msg.body
        made = epoch_of(b.get("at"))
        # A retained state may be old (redelivered on reconnect): it proves the station lived when it was made.
        seen = min(made, msg.arrived) if msg.retained and made is not None else msg.arrived
        row = self._row(msg.station, seen)
        self.result.states += 1
        if row["state_at"] is not None and made is not None and made < row["state_at"]:
            return  # an older state than the one kept
        old = json.loads(row["state"]) if row["state"] else {}
        if {k: old.get(k) for k in SIGNIFICANT} != {k: b.get(k) for k in SIGNIFICANT}:
            self.conn.execute(
                t.station_changes.insert().values(
                    station=msg.station, at=made or msg.arrived, change=compact({k: b.get(k) for k in SIGNIFICANT})
                )
            )
            self.result.changes += 1
        online = b.get("online") if isinstance(b.get("online"), bool) else None
        if row["online"] != online or row["online_since"] is None:
            row["online_since"] = made or msg.arrived
        voice, audio, amp, storage = (_dict(b.get(k)) for k in ("voice", "audio", "amplifier", "storage"))
        groups = b.get("groups")
        row.update(
            state_at=made or msg.arrived,
            online=online,
            version=_text(b.get("version"), 40),
            voice=_voice(voice),
            voice_fallback=voice.get("fallback") if isinstance(voice.get("fallback"), bool) else None,
            clock_synced=b.get("clock_synced") if isinstance(b.get("clock_synced"), bool) else None,
            audio_error=_text(audio.get("error"), 2000),
            amplifier_fault=_text(amp.get("fault"), 2000),
            storage_fault=_text(storage.get("fault"), 2000),
            groups=compact(groups) if isinstance(groups, list) else None,
            on_air=_text(b.get("on_air"), 64),
            queue=b.get("queue") if isinstance(b.get("queue"), int) else None,
            state=compact(b),
        )

    def _write_stations(self) -> None:
        if not self.rows:
            return
        stmt = self.insert(t.stations)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.stations.c.station],
            set_={
                c.name: stmt.excluded[c.name] for c in t.stations.columns if c.name not in ("station", "first_seen_at")
            },
        )
        self.conn.execute(stmt, list(self.rows.values()))

    # -- bulletins sent through the server ----------------------------------------
    def _track_bulletins(self, events: list[dict[str, Any]]) -> None:
        mine = [e for e in events if e["bulletin_id"] and e["event"] in STATUS_OF]
        if not mine:
            return
        b = t.bulletins.c
        known = {
            (r.bulletin_id, r.rev): r.id
            for r in self.conn.execute(
                select(b.id, b.bulletin_id, b.rev).where(b.bulletin_id.in_({e["bulletin_id"] for e in mine}))
            )
        }
        mine = [e for e in mine if (e["bulletin_id"], e["rev"] or 1) in known]
        if not mine:
            return
        s = t.bulletin_stations.c
        pks = {known[(e["bulletin_id"], e["rev"] or 1)] for e in mine}
        rows = {
            (r["bulletin"], r["station"]): dict(r)
            for r in self.conn.execute(
                select(t.bulletin_stations).where(s.bulletin.in_(pks), s.station.in_({e["station"] for e in mine}))
            ).mappings()
        }
        fresh: set[tuple[int, str]] = set()
        for e in sorted(mine, key=lambda e: (e["station"], e["seq"] or 0)):
            key = (known[(e["bulletin_id"], e["rev"] or 1)], e["station"])
            row = rows.get(key)
            if row is None:  # a station not known at send time (a group member that never said so)
                row = rows[key] = {c.name: None for c in t.bulletin_stations.columns}
                row.update(bulletin=key[0], station=key[1], expected=False)
                fresh.add(key)
            row["status"] = STATUS_OF[e["event"]]
            row["detail"] = e["detail"]
            row["updated_at"] = self.now
            for name in ("received", "started", "finished"):
                if e["event"] == name and row[f"{name}_at"] is None:
                    row[f"{name}_at"] = e["at_epoch"] or self.now
        touched = [row for key, row in rows.items() if row["updated_at"] == self.now]
        if fresh:
            self.conn.execute(
                t.bulletin_stations.insert(), [r for r in touched if (r["bulletin"], r["station"]) in fresh]
            )
        known_rows = [
            {**{f"_{k}": v for k, v in r.items() if k in ("bulletin", "station")}, **r}
            for r in touched
            if (r["bulletin"], r["station"]) not in fresh
        ]
        if known_rows:
            fields = ("status", "detail", "received_at", "started_at", "finished_at", "updated_at")
            self.conn.execute(
                t.bulletin_stations.update()
                .where(s.bulletin == bindparam("_bulletin"), s.station == bindparam("_station"))
                .values({f: bindparam(f) for f in fields}),
                [{k: r[k] for k in ("_bulletin", "_station", *fields)} for r in known_rows],
            )


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def _voice(voice: dict[str, Any]) -> str | None:
    """`engine:name` (`piper:vi_VN-vais1000-medium`), once, whether or not the name already says the engine."""
    engine, name = voice.get("engine"), voice.get("name")
    if not isinstance(name, str):
        return engine if isinstance(engine, str) else None
    return name if not isinstance(engine, str) or name.startswith(f"{engine}:") else f"{engine}:{name}"[:200]


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _short(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]
