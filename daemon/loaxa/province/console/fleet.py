"""The fleet: every station as the registry sees it, grouped by commune, and a map of those with coordinates.

One query for the stations (the registry's own, with its online / offline /
silent logic) and one for their names and positions (`station_meta`), however
many stations there are; the page is a plain table.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loaxa.province.console import fleetmap
from loaxa.province.console.web import N_, Console, User
from loaxa.province.server import registry
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

STATUS_LOOK = {
    "online": ("●", N_("Online")),
    "offline": ("○", N_("Offline")),
    "silent": ("✗", N_("Silent")),
}
FILTERS = {
    "all": N_("All"),
    "silent": N_("Silent"),
    "offline": N_("Offline"),
    "faults": N_("Faults"),
    "fallback": N_("Fallback voice"),
}


@dataclass(frozen=True)
class Meta:
    name: str | None
    commune_name: str | None
    lat: float | None
    lon: float | None
    note: str | None


class Row(NamedTuple):
    """One station's line of the fleet table, every text ready (5,000 of them: no work left for the template)."""

    dom: str
    status: str
    since: str
    seen: str
    name: str | None
    station: str
    voice: str
    fallback: bool
    clock: bool | None
    faults: list[tuple[str, str]]
    on_air: str
    queue: str


def stations(db: Database, silent_after_s: float, now: float | None = None) -> list[dict[str, Any]]:
    """Every station with what the fleet shows, its status by the registry's rule; one query, times as epochs."""
    s = t.stations.c
    columns = [s.station, s.last_seen_at, s.online, s.online_since, s.voice, s.voice_fallback, s.clock_synced]
    columns += [s.audio_error, s.amplifier_fault, s.storage_fault, s.on_air, s.queue]
    now = time.time() if now is None else now
    with db.engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(s.station)).all()
    return [{**r._asdict(), "status": registry.status_of(r, now, silent_after_s)} for r in rows]


def metadata(db: Database) -> dict[str, Meta]:
    m = t.station_meta.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(m.station, m.name, m.commune_name, m.lat, m.lon, m.note)).all()
    return {r.station: Meta(r.name, r.commune_name, r.lat, r.lon, r.note) for r in rows}


def faults(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, the station's words) for each fault it reports."""
    found = [
        (N_("audio"), s["audio_error"]),
        (N_("amplifier"), s["amplifier_fault"]),
        (N_("storage"), s["storage_fault"]),
    ]
    return [(what, text) for what, text in found if text]


def matches(s: dict[str, Any], show: str) -> bool:
    if show in ("silent", "offline"):
        return bool(s["status"] == show)
    if show == "faults":
        return bool(faults(s))
    if show == "fallback":
        return bool(s["voice_fallback"])
    return True


def commune_names(meta: dict[str, Meta]) -> dict[str, str]:
    out: dict[str, str] = {}
    for station in sorted(meta):
        if meta[station].commune_name:
            out.setdefault("/".join(station.split("/")[:2]), meta[station].commune_name or "")
    return out


class Fleet:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.db = console.ctx.db
        self.silent_after_s = console.ctx.settings.stations.silent_after_s
        self.zone = ZoneInfo(console.ctx.settings.province.timezone)
        self._offsets: dict[int, timedelta] = {}

    def local(self, epoch: float | None) -> str:
        """An epoch as the province's wall clock, `MM-DD HH:MM:SS`."""
        if epoch is None:
            return ""
        return (datetime.fromtimestamp(epoch, UTC) + self._offset(int(epoch) // 3600)).isoformat(sep=" ")[5:19]

    def _offset(self, hour: int) -> timedelta:
        """The zone's offset from UTC during that hour since the epoch (looked up once an hour, not per station)."""
        found = self._offsets.get(hour)
        if found is None:
            if len(self._offsets) > 1000:
                self._offsets.clear()
            found = self._offsets[hour] = datetime.fromtimestamp(hour * 3600, self.zone).utcoffset() or timedelta(0)
        return found

    def row(self, s: dict[str, Any], meta: Meta | None, translate: Any) -> Row:
        return Row(
            dom="fs-" + s["station"].replace("/", "."),
            status=s["status"],
            since=self.local(s["last_seen_at"] if s["status"] == "silent" else s["online_since"]),
            seen=self.local(s["last_seen_at"]),
            name=meta.name if meta else None,
            station=s["station"],
            voice=s["voice"] or "",
            fallback=bool(s["voice_fallback"]),
            clock=s["clock_synced"],
            faults=[(translate(what), text) for what, text in faults(s)],
            on_air=s["on_air"] or "",
            queue="" if s["queue"] is None else str(s["queue"]),
        )

    def page(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        show = request.query_params.get("show", "all")
        show = show if show in FILTERS else "all"
        listed = stations(self.db, self.silent_after_s)
        meta = metadata(self.db)
        translate = self.console.gettext(self.console.language(request))
        groups: dict[str, list[Row]] = {}
        tally: dict[str, dict[str, int]] = {}
        for s in listed:
            commune = "/".join(s["station"].split("/")[:2])
            n = tally.setdefault(commune, {"stations": 0, "online": 0, "offline": 0, "silent": 0, "faults": 0})
            n["stations"] += 1
            n[s["status"]] += 1
            n["faults"] += bool(faults(s))
            if matches(s, show):
                groups.setdefault(commune, []).append(self.row(s, meta.get(s["station"]), translate))
        total = {k: sum(n[k] for n in tally.values()) for k in ("stations", "online", "offline", "silent", "faults")}
        return self.console.render(
            request,
            "fleet.html",
            groups=groups,
            tally=tally,
            total=total,
            meta=meta,
            names=commune_names(meta),
            show=show,
            filters=FILTERS,
            look=STATUS_LOOK,
            words={status: (sym, translate(label)) for status, (sym, label) in STATUS_LOOK.items()},
            mapped=sum(1 for m in meta.values() if m.lat is not None and m.lon is not None),
        )

    def map_svg(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        listed = stations(self.db, self.silent_after_s)
        meta = metadata(self.db)
        translate = self.console.gettext(self.console.language(request))
        points = [
            fleetmap.Point(s["station"], m.name, m.lat, m.lon, s["status"])
            for s in listed
            if (m := meta.get(s["station"])) is not None and m.lat is not None and m.lon is not None
        ]
        svg = fleetmap.render(points, commune_names(meta), translate, STATUS_LOOK)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def routes(console: Console) -> list[BaseRoute]:
    fleet = Fleet(console)
    viewer = console.page("viewer")
    return [
        Route("/fleet", viewer(fleet.page), methods=["GET"]),
        Route("/fleet/map.svg", viewer(fleet.map_svg), methods=["GET"]),
    ]
