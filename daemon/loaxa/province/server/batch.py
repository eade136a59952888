"""One ingest batch in one transaction, written through the driver's own `executemany`.

The rules (database.py): an event already stored is skipped, a jump in a
station's `seq` is a gap, a late event shrinks its gap, a state older than
the one kept is ignored, a state whose significant fields changed adds a
`station_changes` row. What makes it cheap, measured by
`scripts/bench_ingest.py`: each table is written with one parameterised
statement per batch (SQLAlchemy's per-row parameter processing cost more
than SQLite itself); only the station columns the rules need are read; an
event above its station's stored `max_seq` needs no look-up (only a
redelivery or a gap-filler does); and the significant fields of each
station's last state are remembered between batches, trusted only while
the row's `state_at` in the database is still the one remembered (another
instance, or a rolled-back batch, makes it differ and the row is read).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from loaxa.jsonwire import compact
from loaxa.province.server import schema as t
from loaxa.province.server.records import (
    SIGNIFICANT,
    STATUS_OF,
    Incoming,
    IngestResult,
    epoch_of,
    voice_of,
)

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "station",
    "seq",
    "bulletin_id",
    "rev",
    "event",
    "at",
    "at_epoch",
    "occurrence",
    "detail",
    "payload",
    "stored_at",
)
STATE_COLUMNS = (
    "state_at",
    "online",
    "online_since",
    "version",
    "voice",
    "voice_fallback",
    "clock_synced",
    "audio_error",
    "amplifier_fault",
    "storage_fault",
    "groups",
    "on_air",
    "queue",
    "state",
)
READ_COLUMNS = ("station", "first_seen_at", "last_seen_at", "state_at", "online", "online_since", "max_seq")
# Never move these back: another instance may have stored a later event of the station meanwhile.
LATEST = "CASE WHEN stations.{c} IS NULL OR excluded.{c} > stations.{c} THEN excluded.{c} ELSE stations.{c} END"


class StateCache:
    """Each station's last significant fields, keyed by the `state_at` they were stored with."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, station: str, state_at: float | None) -> dict[str, Any] | None:
        found = self._known.get(station)
        return found[1] if found is not None and found[0] == state_at else None

    def put(self, station: str, state_at: float, significant: dict[str, Any]) -> None:
        self._known[station] = (state_at, significant)


class Batch:
    """One batch inside one transaction (`conn` is in a transaction already)."""

    def __init__(self, conn: Connection, now: float, cache: StateCache) -> None:
        self.conn = conn
        self.now = now
        self.cache = cache
        self.mark = "%s" if conn.dialect.name == "postgresql" else "?"
        self.result = IngestResult()
        self.rows: dict[str, dict[str, Any]] = {}  # the stations of the batch: what is stored, then what will be
        self.stated: set[str] = set()  # a state of the batch was taken
        self.significant: dict[str, dict[str, Any]] = {}  # station -> significant fields of its kept state
        self.changes: list[tuple[str, float, str]] = []  # station_changes rows to insert

    def run(self, batch: list[Incoming]) -> IngestResult:
        self._load_stations({m.station for m in batch})
        events = self._new_events([m for m in batch if m.kind == "event"])
        states = [m for m in batch if m.kind == "state"]
        self._load_significant({m.station for m in states})
        for msg in states:
            self._state(msg)
        self._write_events(events)
        self._write_stations()
        self._track_bulletins(events)
        return self.result

    def remember(self) -> None:
        """After the commit: the kept states' significant fields, for the next batches."""
        for station in self.stated:
            self.cache.put(station, self.rows[station]["state_at"], self.significant[station])

    # -- SQL in the driver's dialect ----------------------------------------------
    def _marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

    def _many(self, sql: str, params: Sequence[tuple[Any, ...]]) -> None:
        if params:
            self.conn.exec_driver_sql(sql, list(params))

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return list(self.conn.exec_driver_sql(sql, params).all())

    # -- stations -------------------------------------------------------------------
    def _load_stations(self, names: Iterable[str]) -> None:
        """The batch's station rows; on PostgreSQL locked until the commit, always in the stations' order.

        Another instance's batch with the same stations waits, then reads the `max_seq` this one wrote: without
        the lock, each saw the other's event missing (the first stores seq 5, the second seq 6 and records 5 as a
        gap) and the gap stayed though nothing was missing. In one order for all, two batches cannot deadlock. On
        SQLite the batch holds the database's write lock from its start (`Database.ingest`).
        """
        names = sorted(names)
        lock = " ORDER BY station FOR UPDATE" if self.conn.dialect.name == "postgresql" else ""
        for i in range(0, len(names), 500):
            chunk = tuple(names[i : i + 500])
            sql = f"SELECT {', '.join(READ_COLUMNS)} FROM stations WHERE station IN ({self._marks(len(chunk))}){lock}"
            for r in self._select(sql, chunk):
                self.rows[r[0]] = dict(zip(READ_COLUMNS, r, strict=True))

    def _row(self, station: str, seen: float) -> dict[str, Any]:
        row = self.rows.get(station)
        if row is None:
            row = dict.fromkeys(READ_COLUMNS)
            row.update(station=station, first_seen_at=seen, last_seen_at=seen)
            self.rows[station] = row
        row["last_seen_at"] = max(row["last_seen_at"], seen)
        return row

    def _load_significant(self, names: set[str]) -> None:
        """The significant fields of each station's kept state: remembered, or read when not trusted."""
        unknown = []
        for station in names:
            row = self.rows.get(station)
            if row is None or row["state_at"] is None:
                self.significant[station] = {}
                continue
            known = self.cache.get(station, row["state_at"])
            if known is None:
                unknown.append(station)
            else:
                self.significant[station] = known
        for i in range(0, len(unknown), 500):
            chunk = tuple(unknown[i : i + 500])
            sql = f"SELECT station, state FROM stations WHERE station IN ({self._marks(len(chunk))})"
            for station, state in self._select(sql, chunk):
                old = json.loads(state) if state else {}
                self.significant[station] = {k: old.get(k) for k in SIGNIFICANT}

    # -- events ---------------------------------------------------------------------
    def _new_events(self, msgs: list[Incoming]) -> list[tuple[Any, ...]]:
        """The events of the batch not stored before (rows to insert), in seq order per station."""
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
        # Only a seq at or below what the station's row says was stored can be there already.
        stored_max = {station: row["max_seq"] for station, row in self.rows.items() if row["max_seq"] is not None}
        doubtful = [key for key in first if key[0] in stored_max and key[1] <= stored_max[key[0]]]
        for i in range(0, len(doubtful), 500):
            chunk = doubtful[i : i + 500]
            values = ", ".join([f"({self.mark}, {self.mark})"] * len(chunk))
            sql = f"SELECT station, seq, payload FROM events WHERE (station, seq) IN (VALUES {values})"
            for station, seq, payload in self._select(sql, tuple(v for key in chunk for v in key)):
                msg = first.pop((station, seq))
                if payload == msg.text or json.loads(payload) == msg.body:
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
        """A late event inside a recorded gap: shrink or split the gap (rare: Core is fast enough)."""
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

    def _event_row(self, msg: Incoming, seq: int | None) -> tuple[Any, ...]:
        b = msg.body
        detail, rev = b.get("detail"), b.get("rev")
        return (
            msg.station,
            seq,
            _text(b.get("id"), 64),
            rev if isinstance(rev, int) and not isinstance(rev, bool) else None,
            _text(b.get("event"), 32) or "unknown",
            _text(b.get("at"), 40),
            epoch_of(b.get("at")),
            _text(b.get("occurrence"), 40),
            _text(detail, 2000),  # the whole payload is kept beside it
            msg.text,
            self.now,
        )

    def _write_events(self, rows: list[tuple[Any, ...]]) -> None:
        names, marks = ", ".join(EVENT_COLUMNS), self._marks(len(EVENT_COLUMNS))
        self._many(f"INSERT INTO events ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows)
        self.result.stored += len(rows)
        self._many(
            f"INSERT INTO gaps (station, first_seq, last_seq, noticed_at) VALUES ({self._marks(4)})",
            [(s, a, b, self.now) for s, a, b in self.result.gaps],
        )

    # -- states ---------------------------------------------------------------------
    def _state(self, msg: Incoming) -> None:
        b = msg.body
        made = epoch_of(b.get("at"))
        # A retained state may be old (redelivered on reconnect): it proves the station lived when it was made.
        seen = min(made, msg.arrived) if msg.retained and made is not None else msg.arrived
        row = self._row(msg.station, seen)
        self.result.states += 1
        if row["state_at"] is not None and made is not None and made < row["state_at"]:
            return  # an older state than the one kept
        significant = {k: b.get(k) for k in SIGNIFICANT}
        if self.significant.get(msg.station, {}) != significant:
            self.changes.append((msg.station, made or msg.arrived, compact(significant)))
            self.result.changes += 1
        self.significant[msg.station] = significant
        self.stated.add(msg.station)
        online = b.get("online") if isinstance(b.get("online"), bool) else None
        if row["online"] != online or row["online_since"] is None:
            row["online_since"] = made or msg.arrived
        voice, audio, amp, storage = (_dict(b.get(k)) for k in ("voice", "audio", "amplifier", "storage"))
        groups = b.get("groups")
        queue = b.get("queue")
        row.update(
            state_at=made or msg.arrived,
            online=online,
            version=_text(b.get("version"), 40),
            voice=voice_of(voice),
            voice_fallback=voice.get("fallback") if isinstance(voice.get("fallback"), bool) else None,
            clock_synced=b.get("clock_synced") if isinstance(b.get("clock_synced"), bool) else None,
            audio_error=_text(audio.get("error"), 2000),
            amplifier_fault=_text(amp.get("fault"), 2000),
            storage_fault=_text(storage.get("fault"), 2000),
            # Only slugs name groups; anything else a station sends there is not one of its groups.
            groups=compact([g for g in groups if isinstance(g, str) and g][:50]) if isinstance(groups, list) else None,
            on_air=_text(b.get("on_air"), 64),
            queue=queue if isinstance(queue, int) and not isinstance(queue, bool) else None,
            state=msg.text,
        )

    def _write_stations(self) -> None:
        self._many(f"INSERT INTO station_changes (station, at, change) VALUES ({self._marks(3)})", self.changes)
        seen = ("last_seen_at", "max_seq")
        latest = ", ".join(f"{c} = {LATEST.format(c=c)}" for c in seen)
        # Stations a state of the batch describes: every column the state gives.
        cols: tuple[str, ...] = ("station", "commune", "first_seen_at", *seen, *STATE_COLUMNS)
        update = ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS)
        self._many(
            f"INSERT INTO stations ({', '.join(cols)}) VALUES ({self._marks(len(cols))}) "
            f"ON CONFLICT (station) DO UPDATE SET {latest}, {update}",
            [self._station_params(s, cols) for s in sorted(self.stated)],
        )
        # Stations only events of the batch touched: when they were seen and their highest seq.
        cols = ("station", "commune", "first_seen_at", *seen)
        self._many(
            f"INSERT INTO stations ({', '.join(cols)}) VALUES ({self._marks(len(cols))}) "
            f"ON CONFLICT (station) DO UPDATE SET {latest}",
            [self._station_params(s, cols) for s in sorted(self.rows.keys() - self.stated)],
        )

    def _station_params(self, station: str, cols: tuple[str, ...]) -> tuple[Any, ...]:
        row = self.rows[station]
        return tuple(station.split("/")[1] if c == "commune" else row[c] for c in cols)

    # -- bulletins sent through the server --------------------------------------------
    def _track_bulletins(self, events: list[tuple[Any, ...]]) -> None:
        station_i, seq_i, id_i, rev_i, event_i, epoch_i, detail_i = 0, 1, 2, 3, 4, 6, 8
        mine = [e for e in events if e[id_i] and e[event_i] in STATUS_OF]
        if not mine:
            return
        ids = sorted({e[id_i] for e in mine})
        known = {
            (bid, rev): pk
            for pk, bid, rev in self._select(
                f"SELECT id, bulletin_id, rev FROM bulletins WHERE bulletin_id IN ({self._marks(len(ids))})",
                tuple(ids),
            )
        }
        rows = []
        for e in sorted(mine, key=lambda e: (e[station_i], e[seq_i] or 0)):
            pk = known.get((e[id_i], e[rev_i] or 1))
            if pk is None:
                continue
            moment = e[epoch_i] or self.now
            first = [moment if e[event_i] == name else None for name in ("received", "started", "finished")]
            rows.append((pk, e[station_i], False, STATUS_OF[e[event_i]], e[detail_i], *first, self.now))
        # A station not expected at send time (a group member that never said so) gets its row here.
        cols = ("bulletin", "station", "expected", "status", "detail", "received_at", "started_at", "finished_at")
        firsts = ", ".join(f"{c} = COALESCE(bulletin_stations.{c}, excluded.{c})" for c in cols[5:])
        self._many(
            f"INSERT INTO bulletin_stations ({', '.join(cols)}, updated_at) VALUES ({self._marks(len(cols) + 1)}) "
            "ON CONFLICT (bulletin, station) DO UPDATE SET status = excluded.status, detail = excluded.detail, "
            f"{firsts}, updated_at = excluded.updated_at",
            rows,
        )


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
