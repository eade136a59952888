"""The fleet: every station as the registry sees it, grouped by commune, and a map of those with coordinates.

One query for the stations (the registry's own, with its online / offline /
silent logic) and one for their names and positions (`station_meta`), however
many stations there are; the page is a plain table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
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


def metadata(db: Database) -> dict[str, Meta]:
    m = t.station_meta.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(m.station, m.name, m.commune_name, m.lat, m.lon, m.note)).all()
    return {r.station: Meta(r.name, r.commune_name, r.lat, r.lon, r.note) for r in rows}


def faults(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, the station's words) for each fault it reports."""
    found = [(N_("audio"), s["audio_error"]), (N_("amplifier"), s["amplifier_fault"]), (N_("storage"), s["storage_fault"])]
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

    def local(self, iso: str | None) -> str:
        return "" if not iso else datetime.fromisoformat(iso).astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def page(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        show = request.query_params.get("show", "all")
        show = show if show in FILTERS else "all"
        stations = registry.list_stations(self.db, self.silent_after_s)
        meta = metadata(self.db)
        groups: dict[str, list[dict[str, Any]]] = {}
        tally: dict[str, dict[str, int]] = {}
        for s in stations:
            commune = "/".join(s["station"].split("/")[:2])
            n = tally.setdefault(commune, {"stations": 0, "online": 0, "offline": 0, "silent": 0, "faults": 0})
            n["stations"] += 1
            n[s["status"]] += 1
            n["faults"] += bool(faults(s))
            if matches(s, show):
                groups.setdefault(commune, []).append(s)
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
            faults=faults,
            local=self.local,
            mapped=sum(1 for m in meta.values() if m.lat is not None and m.lon is not None),
        )

    def map_svg(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        stations = registry.list_stations(self.db, self.silent_after_s)
        meta = metadata(self.db)
        translate = self.console.gettext(self.console.language(request))
        points = [
            fleetmap.Point(s["station"], m.name, m.lat, m.lon, s["status"])
            for s in stations
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
