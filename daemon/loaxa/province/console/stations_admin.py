"""`/admin/stations`: what the stations cannot say about themselves: their names, their communes' names, where they are.

One station at a time through the form, or many from a CSV file with the
columns `station,name,commune_name,lat,lon` (a header line, UTF-8, commas).
An import checks every line first and writes nothing when any is wrong,
listing every wrong line at once; a blank cell leaves that field empty.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loaxa import config
from loaxa.province.console.fleet import metadata
from loaxa.province.console.web import N_, Console, User
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

COLUMNS = ("station", "name", "commune_name", "lat", "lon")
SLUG = re.compile(config.SLUG)  # as the stations' own configuration names them
MAX_TEXT = 200


@dataclass(frozen=True)
class Problem:
    """A wrong field: where (a line of the file, or none for the form) and the message's fields."""

    line: int | None
    message: str
    value: str


def _float(text: str, low: float, high: float) -> float | None:
    if not text.strip():
        return None
    value = float(text.replace(",", "."))  # ValueError for what is not a number
    if not low <= value <= high:
        raise ValueError(text)
    return value


def check(
    fields: dict[str, str], province: str, line: int | None = None
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One station's metadata as a row to store, or what is wrong with it."""
    problems = []
    station = (fields.get("station") or "").strip()
    parts = station.split("/")
    if len(parts) != 3 or parts[0] != province or not all(SLUG.match(p) for p in parts):
        problems.append(Problem(line, N_("station must be {province}/COMMUNE/STATION"), station))
    row: dict[str, Any] = {"station": station}
    for key in ("name", "commune_name", "note"):
        text = (fields.get(key) or "").strip()
        if len(text) > MAX_TEXT:
            problems.append(Problem(line, N_("a name is at most 200 characters"), text[:40]))
        row[key] = text or None
    for key, low, high in (("lat", -90.0, 90.0), ("lon", -180.0, 180.0)):
        try:
            row[key] = _float(fields.get(key) or "", low, high)
        except ValueError:
            message = (
                N_("latitude must be a number from -90 to 90")
                if key == "lat"
                else N_("longitude must be a number from -180 to 180")
            )
            problems.append(Problem(line, message, fields.get(key) or ""))
    if (row.get("lat") is None) != (row.get("lon") is None) and not problems:
        problems.append(Problem(line, N_("give both latitude and longitude, or neither"), station))
    return (None if problems else row), problems


def parse_csv(data: bytes, province: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [Problem(None, N_("the file is not UTF-8 text"), "")]
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        return [], [
            Problem(1, N_("the header line must name the columns station,name,commune_name,lat,lon"), ",".join(missing))
        ]
    rows, problems = [], []
    for number, fields in enumerate(reader, start=2):
        row, wrong = check({k: v or "" for k, v in fields.items() if k}, province, number)
        problems.extend(wrong)
        if row is not None:
            rows.append(row)
    return rows, problems


def store(db: Database, rows: list[dict[str, Any]], keep_notes: bool) -> None:
    """Upsert each station's row in one transaction (an import keeps the notes it has no column for)."""
    now = time.time()
    m = t.station_meta.c
    with db.engine.begin() as conn:
        known = {
            r.station: r.note
            for r in conn.execute(select(m.station, m.note).where(m.station.in_([r["station"] for r in rows])))
        }
        for row in rows:
            values = {**row, "updated_at": now}
            if keep_notes:
                values["note"] = known.get(row["station"])
            if row["station"] in known:
                conn.execute(t.station_meta.update().where(m.station == row["station"]).values(values))
            else:
                conn.execute(t.station_meta.insert().values(values))


class StationsAdmin:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.db = console.ctx.db
        self.province = console.ctx.settings.province.id

    def _page(self, request: Request, status: int = 200, **values: Any) -> Response:
        s = t.stations.c
        with self.db.engine.connect() as conn:
            known = [r.station for r in conn.execute(select(s.station).order_by(s.station))]
        meta = metadata(self.db)
        chosen = request.query_params.get("station", "")
        values.setdefault("form", {"station": chosen, **(meta[chosen].__dict__ if chosen in meta else {})})
        return self.console.render(
            request,
            "stations_admin.html",
            status_code=status,
            stations=sorted(set(known) | set(meta)),
            known=set(known),
            meta=meta,
            province=self.province,
            columns=",".join(COLUMNS),
            **values,
        )

    def show(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        return self._page(request, saved=request.query_params.get("saved"))

    def change(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        form = form or {}
        upload = form.get("csv")
        if isinstance(upload, dict) and upload.get("data"):
            rows, problems = parse_csv(upload["data"], self.province)
            if not rows and not problems:
                problems = [Problem(None, N_("the file has no station lines"), "")]
            if problems:
                request.state.audit_detail = f"import refused: {len(problems)} wrong line(s)"
                return self._page(request, 400, problems=problems, form={})
            store(self.db, rows, keep_notes=True)
            request.state.audit_detail = f"imported {len(rows)} station(s) from {upload.get('name') or 'a file'}"
            log.info("%s imported the metadata of %d stations", user.name, len(rows))
            return RedirectResponse(f"/admin/stations?saved={len(rows)}", status_code=303)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        row, problems = check(fields, self.province)
        if row is None:
            request.state.audit_detail = "refused: " + "; ".join(p.message for p in problems)
            return self._page(request, 400, problems=problems, form=fields)
        store(self.db, [row], keep_notes=False)
        request.state.audit_detail = f"station {row['station']}: name, commune name, position saved"
        return RedirectResponse("/admin/stations?saved=1", status_code=303)


def routes(console: Console) -> list[BaseRoute]:
    admin = StationsAdmin(console)
    return [
        Route("/admin/stations", console.page("admin")(admin.show), methods=["GET"]),
        Route("/admin/stations", console.page("admin")(admin.change), methods=["POST"]),
    ]
