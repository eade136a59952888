"""The store looked at from outside, read-only, for `loaxa doctor`.

Its folder must exist and be writable (a card that turned read-only stops
the daemon at start, with one line in the log), the file must pass SQLite's
`quick_check`, be the store the marker names, and have no recent incident.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from loaxa.store.identity import damage_of, read_marker
from loaxa.store.opening import incident_of

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Verdict:
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


def examine(path: Path, *, keep_s: float) -> Verdict:
    """What a technician should know about the store at `path`; incidents older than `keep_s` are history."""
    folder = path.parent
    if not folder.is_dir():
        return Verdict(
            FAIL,
            f"{folder} does not exist: the daemon stops at start",
            "create storage.dir, owned by the service user, or correct storage.dir in the config",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        where = "is on a read-only file system" if readonly else "is not writable by this user"
        return Verdict(
            FAIL,
            f"{folder} {where}: the daemon stops at start",
            "a card that turned read-only is failing: replace it"
            if readonly
            else "give storage.dir to the service user",
        )
    marker = read_marker(path)
    if not path.exists():
        if marker is None:
            return Verdict(OK, f"no store yet in {folder}: the daemon makes one at its first start")
        return Verdict(
            WARN,
            f"{path.name} is missing (store {marker.store_id} was there): the daemon starts a new one "
            "and tells the province",
            "find out what deleted it; send again what must still air",
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return Verdict(FAIL, f"{path} cannot be opened: {exc}", "check the card and storage.dir's owner")
    try:
        damage = damage_of(db)
        if damage is not None:
            return Verdict(
                FAIL,
                f"{path.name} is damaged ({damage}): at its next start the daemon keeps it aside and starts a new one",
                "restart the service; the card may be failing",
            )
        try:
            meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
            events = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        except sqlite3.Error:  # a store from before the store had an id
            meta, events = {}, 0
    finally:
        db.close()
    store_id = meta.get("store_id")
    if marker is not None and store_id is not None and store_id != marker.store_id:
        return Verdict(
            WARN,
            f"{path.name} is store {store_id}, not {marker.store_id} that the station last wrote: it was replaced",
            "at its next start the daemon keeps it aside, starts a new one and tells the province",
        )
    incident = incident_of(meta)
    if incident is not None and time.time() - incident.at_s < keep_s:
        return Verdict(WARN, f"at {incident.at}: {incident.what}", "the province was told; find out why it happened")
    return Verdict(OK, f"{path.name} intact (quick_check), store {store_id or 'without id yet'}, {events} events")
