"""The stations registry: each station as its retained states and receipts describe it.

`status` is `online` or `offline` as the station last said (the Last Will
says offline for it when it drops), or `silent` when nothing came from it
for longer than `stations.silent_after_s`: a live station republishes its
state at least every 60 s, so a silent one is a dead cluster, a cut line or
a broker that no longer carries it, whatever its last state claimed.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select

from loaxa.province.server import schema as t
from loaxa.province.server.database import Database
from loaxa.province.targets import Target


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def status_of(row: Any, now: float, silent_after_s: float) -> str:
    if now - row.last_seen_at > silent_after_s:
        return "silent"
    return "online" if row.online else "offline"


def list_stations(
    db: Database, silent_after_s: float, *, commune: str | None = None, now: float | None = None
) -> list[dict[str, Any]]:
    """Every known station, sorted, as the API and `loaxa province stations` show it."""
    now = time.time() if now is None else now
    s, g = t.stations.c, t.gaps.c
    missing = select(g.station, func.sum(g.last_seq - g.first_seq + 1).label("missing")).group_by(g.station).subquery()
    query = select(t.stations, missing.c.missing).outerjoin(missing, missing.c.station == s.station)
    if commune:
        query = query.where(s.station.like(f"{commune}/%"))
    with db.engine.connect() as conn:
        rows = conn.execute(query.order_by(s.station)).all()
    return [_view(r, now, silent_after_s) for r in rows]


def _view(r: Any, now: float, silent_after_s: float) -> dict[str, Any]:
    return {
        "station": r.station,
        "status": status_of(r, now, silent_after_s),
        "online": r.online,
        "since": iso(r.online_since),
        "last_seen": iso(r.last_seen_at),
        "silent_s": round(now - r.last_seen_at, 1),
        "version": r.version,
        "voice": r.voice,
        "voice_fallback": r.voice_fallback,
        "clock_synced": r.clock_synced,
        "audio_error": r.audio_error,
        "amplifier_fault": r.amplifier_fault,
        "storage_fault": r.storage_fault,
        "groups": json.loads(r.groups) if r.groups else None,
        "on_air": r.on_air,
        "queue": r.queue,
        "last_seq": r.max_seq,
        "missing_events": int(r.missing or 0),
    }


def addressed(db: Database, targets: list[Target]) -> list[str]:
    """The known stations these targets address (a group: those that list it in their state)."""
    provinces = {tg.province for tg in targets}
    s = t.stations.c
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(s.station, s.groups).where(or_(*(s.station.like(f"{p}/%") for p in provinces)))
        ).all()
    out = []
    for station, groups in rows:
        state = {"groups": json.loads(groups)} if groups else {}
        if any(tg.covers(station, state) for tg in targets):
            out.append(station)
    return sorted(out)
