"""Reports on screen: the as-run report of a scope and a period, with its chart, and its CSV and XLSX files.

Everything comes from `loaxa.province.server.asrun`, the code behind
`loaxa province report` and the API's report, so the screen, the download
and the command line agree. The page adds what a person would rather see
than read: minutes on air per commune per day as a bar chart.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loaxa.errors import LoaxaError
from loaxa.province.console import charts
from loaxa.province.console.fleet import commune_names, metadata
from loaxa.province.console.watch import PRIORITIES
from loaxa.province.console.web import N_, Console, User
from loaxa.province.server import asrun
from loaxa.province.server import schema as t
from loaxa.province.server.api import XLSX
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

PERIODS = {"day": N_("Day"), "week": N_("Week"), "month": N_("Month"), "year": N_("Year")}
PROBLEMS = ("failed", *asrun.NOT_AIRED)
# How a play ended (asrun's `state`), in words.
ENDINGS = {
    "finished": N_("finished"),
    "interrupted": N_("interrupted"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "on air": N_("on air"),
    "missed": N_("missed"),
    "expired": N_("expired"),
    "rejected": N_("rejected"),
    "declined": N_("declined"),
}
ROWS_SHOWN = 300  # the as-run rows on screen; the downloads have them all


def scopes(db: Database, province: str) -> tuple[list[str], list[str]]:
    """The communes (P/C) and the groups (P/group/G) known from the stations' states."""
    s = t.stations.c
    communes: set[str] = set()
    groups: set[str] = set()
    with db.engine.connect() as conn:
        for station, listed in conn.execute(select(s.station, s.groups)):
            communes.add("/".join(station.split("/")[:2]))
            groups.update(f"{province}/group/{g}" for g in (json.loads(listed) if listed else []))
    return sorted(communes), sorted(groups)


def period_days(result: dict[str, Any]) -> list[str]:
    first = datetime.fromisoformat(result["from"]).date()
    last = datetime.fromisoformat(result["until"]).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days)]


def by_commune(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for d in result["days"]:
        commune = "/".join(d["station"].split("/")[:2])
        per_day = out.setdefault(commune, {})
        per_day[d["day"]] = per_day.get(d["day"], 0.0) + d["minutes_on_air"]
    return out


class Reports:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.db = console.ctx.db
        self.province = console.ctx.settings.province.id
        self.zone = ZoneInfo(console.ctx.settings.province.timezone)

    def ask(self, request: Request) -> tuple[str, str, date]:
        """Scope, period and date from the query (a station typed in wins over the scope chosen)."""
        q = request.query_params
        scope = (q.get("station") or "").strip() or q.get("scope") or self.province
        period = q.get("period", "day")
        if period not in PERIODS:
            raise LoaxaError(N_("Choose a day, a week, a month or a year."))
        try:
            day = date.fromisoformat(q["date"]) if q.get("date") else datetime.now(self.zone).date()
        except ValueError:
            raise LoaxaError(N_("The date must be written YYYY-MM-DD.")) from None
        return scope, period, day

    def page(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        communes, groups = scopes(self.db, self.province)
        names = commune_names(metadata(self.db))
        translate = self.console.gettext(self.console.language(request))
        values: dict[str, Any] = {
            "communes": communes,
            "groups": groups,
            "names": names,
            "periods": PERIODS,
            "province": self.province,
            "result": None,
            "endings": ENDINGS,
            "priorities": PRIORITIES,
            "error": None,
        }
        try:
            scope, period, day = self.ask(request)
            values.update(scope=scope, period=period, day=day.isoformat())
            result = asrun.report(self.db, scope, period, day, self.zone)
        except LoaxaError as exc:
            values.update(error=translate(str(exc)), scope=self.province, period="day", day="")
            return self.console.render(request, "reports.html", status_code=400, **values)
        rows = result["rows"]
        per_commune = by_commune(result)
        values.update(
            result=result,
            chart=Markup(charts.minutes_by_commune(per_commune, period_days(result), names, translate)),
            totals={
                "minutes": charts.in_minutes(sum(d["minutes_on_air"] for d in result["days"])),
                "sessions": sum(d["sessions"] for d in result["days"]),
                "emergencies": sum(d["emergencies"] for d in result["days"]),
                "missed": sum(1 for r in rows if r["state"] == "missed"),
                "failed": sum(1 for r in rows if r["state"] in PROBLEMS and r["state"] != "missed"),
            },
            problems=[r for r in rows if r["state"] in PROBLEMS],
            rows=rows[:ROWS_SHOWN],
            more=max(0, len(rows) - ROWS_SHOWN),
            query=f"scope={scope}&period={period}&date={day.isoformat()}",
        )
        return self.console.render(request, "reports.html", **values)

    def download(self, request: Request, user: User, form: dict[str, Any] | None) -> Response:
        fmt = request.query_params.get("format", "csv")
        try:
            scope, period, day = self.ask(request)
            if fmt not in ("csv", "xlsx"):
                raise LoaxaError(N_("The format must be csv or xlsx."))
            result = asrun.report(self.db, scope, period, day, self.zone)
        except LoaxaError as exc:
            return self.console.error(request, 400, str(exc))
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"asrun-{scope}-{period}-{day.isoformat()}") + f".{fmt}"
        data, kind = (
            (asrun.to_xlsx(result), XLSX) if fmt == "xlsx" else (asrun.to_csv(result), "text/csv; charset=utf-8")
        )
        return Response(data, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def routes(console: Console) -> list[BaseRoute]:
    reports = Reports(console)
    viewer = console.page("viewer")
    return [
        Route("/reports", viewer(reports.page), methods=["GET"]),
        Route("/reports/download", viewer(reports.download), methods=["GET"]),
    ]
