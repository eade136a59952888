"""Which store this is, and what became of the one before it.

Every store carries its own id in its `meta` table. Beside the file,
`station.db.marker` (JSON, replaced atomically and fsynced) names the store
the station last wrote and a reservation of event numbers: no event of that
store ever has a `seq` above `seq_reserved`, because the reservation is
moved on (by `SEQ_BLOCK`) before a transaction that would pass it commits.

When the store the marker names is gone (deleted, replaced, damaged beyond
use), the next one starts its `seq` above the reservation, so an operator
that de-duplicates by station and `seq` never drops a new receipt as an old
one, and it records an `Incident`: the receipt the province gets, the
`storage.incident` of the state, and, when the seen ids were lost with it,
the instant from which commands issued earlier are refused as possible
replays (`check_issued`).

Beside it too, `station.db.seen` is a journal of the ids the store has seen
(one JSON line each, appended after the commit, rewritten from the store at
each hourly prune): a store made after a loss takes them over, so a bulletin
that aired is answered `duplicate`, signed or not.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loaxa.errors import CommandError, StoreError
from loaxa.timing import parse_instant

log = logging.getLogger(__name__)

SEQ_BLOCK = 1000  # event numbers reserved at a time: one marker write (an fsync) per this many events
MARKER_FORMAT = "loaxa-store-marker-v1"


@dataclass(frozen=True)
class Marker:
    """What the station last knew of its store, kept beside it."""

    store_id: str
    seq_reserved: int  # no event of that store has a higher seq
    seq_written: int  # its seq when the marker was written: an older copy of the store is behind this


@dataclass(frozen=True)
class Incident:
    """The last time this station's store was lost or replaced, in the station's words."""

    at: str  # ISO time
    at_s: float
    what: str
    kept_as: str | None  # the file set aside, if any
    history_lost: bool  # the ids seen before `at` are gone: earlier commands may be replays

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "at_s"}


def new_store_id() -> str:
    return uuid.uuid4().hex[:16]


def marker_path(store: Path) -> Path:
    return store.with_name(store.name + ".marker")


def read_marker(store: Path) -> Marker | None:
    """The marker beside `store`; None when there is none or it cannot be read (said in the log)."""
    path = marker_path(store)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MARKER_FORMAT:
            raise ValueError(f"format is not {MARKER_FORMAT}")
        return Marker(str(data["store_id"]), int(data["seq_reserved"]), int(data["seq_written"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("the store marker %s cannot be read (%s); it is written again", path, exc)
        return None


def write_marker(store: Path, marker: Marker) -> None:
    """Replace the marker atomically, durable before this returns (StoreError otherwise)."""
    path = marker_path(store)
    tmp = path.with_name(f".{path.name}.tmp")
    body = json.dumps({"format": MARKER_FORMAT, **asdict(marker)}, sort_keys=True) + "\n"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write the store marker {path}: {exc.strerror or exc}") from None


SeenRow = tuple[str, str, int, float]  # issuer, id, rev, when


def seen_path(store: Path) -> Path:
    return store.with_name(store.name + ".seen")


def append_seen(store: Path, rows: list[SeenRow]) -> None:
    """One line per id seen, after its commit: what a store made after a loss takes over (OSError if not)."""
    with open(seen_path(store), "a", encoding="utf-8") as f:
        f.writelines(json.dumps(list(row), ensure_ascii=False) + "\n" for row in rows)


def read_seen(store: Path) -> list[SeenRow]:
    """The ids in the journal beside `store`; a line cut short by a power cut is left out."""
    try:
        lines = seen_path(store).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("the seen journal %s cannot be read: %s", seen_path(store), exc)
        return []
    rows = []
    for line in lines:
        try:
            issuer, id, rev, at = json.loads(line)
            rows.append((str(issuer), str(id), int(rev), float(at)))
        except (ValueError, TypeError):
            continue
    return rows


def rewrite_seen(store: Path, rows: list[SeenRow]) -> None:
    """The journal replaced by `rows` (the store's seen table after pruning), atomically."""
    path = seen_path(store)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(list(row), ensure_ascii=False) + "\n" for row in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_aside(store: Path, why: str, *, sides_only: bool = False) -> Path:
    """Rename the store file (and its -wal and -shm) to `<name>.<why>-<UTC time>`; the new name.

    A -wal left without its file is moved too (or alone, `sides_only`): SQLite
    would otherwise apply it to the next file of that name.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = store.with_name(f"{store.name}.{why}-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = store.with_name(f"{store.name}.{why}-{stamp}-{n}")
    try:
        for suffix in ("-wal", "-shm"):  # the log first: the main file's new name must not meet a stale one
            side = store.with_name(store.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
        if store.exists() and not sides_only:
            os.replace(store, aside)
        sync_dir(store.parent)
    except OSError as exc:
        raise StoreError(f"cannot set the station store {store} aside: {exc.strerror or exc}") from None
    return aside


def damage_of(db: sqlite3.Connection) -> str | None:
    """What SQLite's quick_check finds wrong with the open store; None when it is intact."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    said = [str(r[0]) for r in rows]
    return None if said == ["ok"] else "; ".join(said[:3])


def salvage(damaged: Path) -> tuple[int, list[SeenRow]]:
    """What can still be read from a damaged store: its last seq and the ids it saw (best effort)."""
    seq, seen = 0, list[SeenRow]()
    try:
        db = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return seq, seen
    try:
        try:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            seq = int(row[0]) if row else 0
        except sqlite3.Error:
            pass
        try:
            seen = [(str(i), str(d), int(r), float(a)) for i, d, r, a in db.execute("SELECT * FROM seen")]
        except (sqlite3.Error, ValueError, TypeError):
            pass
    finally:
        db.close()
    return seq, seen


def check_issued(incident: Incident | None, command: object) -> None:
    """CommandError for a command issued before the store lost the ids it had seen.

    Such a command may have been received and aired by the lost store; the
    station cannot tell, so it refuses it (the issuer sends it again, with a
    new `issued`). A command without `issued` cannot be dated and passes:
    only signed commands must carry one. After the replay window has gone by
    since the loss, the signature's own window refuses such commands anyway.
    """
    if incident is None or not incident.history_lost or not isinstance(command, dict):
        return
    if time.time() < incident.at_s:  # the clock went back since: that instant cannot be trusted
        return
    value = command.get("issued")
    if value is None:
        return
    try:
        issued = parse_instant(value, "issued")
    except CommandError:
        return  # its own check says what is wrong with it
    if issued.timestamp() < incident.at_s:
        raise CommandError(
            f"'issued' {value} is before {incident.at}, when this station's store was lost "
            "with the ids it had seen: it may have aired already; send it again with a new issued time"
        )
