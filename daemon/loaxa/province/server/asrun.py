"""As-run reports: what aired where, for how long, what was missed and why; planned versus aired.

A scope (`P`, `P/C`, `P/C/S` or `P/group/G`) and a period (a `day`, `week`,
`month` or `year` containing a date, in the province's time zone). The
rows are the commune log book: one per play, in the columns of the
station's own `loaxa log` (`id`, `rev`, `issuer`, `state`, `slot`,
`started`, `ended`, `seconds`, `detail`), with the station, the kind and the
priority in front. A play is a `started` receipt and the receipt that ended
it (`finished`, `interrupted`, `failed`, `cancelled`); `missed`, `expired`
and `rejected` receipts are rows without a start. Exports: CSV and XLSX.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from loaxa.errors import LoaxaError
from loaxa.province.server import schema as t
from loaxa.province.server.bulletins import target_of
from loaxa.province.server.database import Database

PERIODS = ("day", "week", "month", "year")
CELL_MAX = 2000  # a station's detail can be any length; a cell of a report need not
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
FORMULA = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "station",
    "kind",
    "priority",
    "id",
    "rev",
    "issuer",
    "state",
    "slot",
    "started",
    "ended",
    "seconds",
    "detail",
)
ENDS = ("finished", "interrupted", "failed", "cancelled")
NOT_AIRED = ("missed", "expired", "rejected", "declined")
LATE_S = 600.0  # an as-soon-as-possible bulletin that started later than this after it was sent aired late


def period_bounds(period: str, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the day, ISO week (Monday first), month or year that contains `day`."""
    if period == "day":
        first, last = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
    elif period == "year":
        first, last = day.replace(month=1, day=1), day.replace(year=day.year + 1, month=1, day=1)
    else:
        raise LoaxaError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    return datetime.combine(first, datetime.min.time(), tz), datetime.combine(last, datetime.min.time(), tz)


def report(db: Database, scope: str, period: str, day: date, tz: ZoneInfo) -> dict[str, Any]:
    """The as-run rows, per-station-per-day totals and planned versus aired, as one JSON-ready object."""
    target = target_of(scope)
    start, end = period_bounds(period, day, tz)
    stations = _stations(db, target)
    events = _events(db, stations, start.timestamp(), end.timestamp())
    sent = _bulletins(db)
    rows = _plays(events, sent, tz)
    return {
        "scope": scope,
        "period": period,
        "from": start.isoformat(),
        "until": end.isoformat(),
        "stations": len(stations),
        "rows": rows,
        "days": _days(rows, tz),
        "planned_vs_aired": _planned(db, target, start.timestamp(), end.timestamp()),
    }


def _stations(db: Database, target: Any) -> list[str]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.stations.c.station, t.stations.c.groups)).all()
    return sorted(s for s, g in rows if target.covers(s, {"groups": json.loads(g)} if g else {}))


def _events(db: Database, stations: list[str], start: float, end: float) -> list[Any]:
    e = t.events.c
    if not stations:
        return []
    with db.engine.connect() as conn:
        return list(
            conn.execute(
                select(t.events)
                .where(e.station.in_(stations), e.at_epoch >= start, e.at_epoch < end)
                .order_by(e.station, e.seq, e.id)
            ).all()
        )


def _bulletins(db: Database) -> dict[tuple[str, int], Any]:
    with db.engine.connect() as conn:
        return {(r.bulletin_id, r.rev): r for r in conn.execute(select(t.bulletins)).all()}


def _plays(events: list[Any], sent: dict[tuple[str, int], Any], tz: ZoneInfo) -> list[dict[str, Any]]:
    received: dict[tuple[str, str | None], tuple[str, str]] = {}  # (station, id) -> (priority, kind) from `received`
    open_: dict[tuple[str, str | None], Any] = {}
    rows: list[dict[str, Any]] = []
    for ev in events:
        key = (ev.station, ev.bulletin_id)
        if ev.event == "received" and ev.detail and "," in ev.detail:
            priority, kind = (p.strip() for p in ev.detail.split(",", 1))
            received[key] = (priority, kind)
        elif ev.event == "started":
            open_[key] = ev
        elif ev.event in ENDS and key in open_:
            rows.append(_row(open_.pop(key), ev, received, sent, tz))
        elif ev.event in NOT_AIRED:
            rows.append(_row(None, ev, received, sent, tz))
    for begun in open_.values():  # on air at the end of the period, or its end never arrived
        rows.append(_row(begun, None, received, sent, tz))
    return sorted(rows, key=lambda r: (r["station"], r["started"] or r["ended"] or ""))


def _row(begun: Any, ended: Any, received: dict, sent: dict, tz: ZoneInfo) -> dict[str, Any]:
    ev = begun or ended
    priority, kind = received.get((ev.station, ev.bulletin_id), (None, None))
    ours = sent.get((ev.bulletin_id, ev.rev or 1))
    if ours is not None:
        priority, kind = ours.priority, ours.kind
    seconds = ended.at_epoch - begun.at_epoch if begun is not None and ended is not None else None
    return {
        "station": ev.station,
        "kind": kind,
        "priority": priority,
        "id": ev.bulletin_id,
        "rev": ev.rev,
        "issuer": ours.issuer if ours is not None else None,
        "state": ended.event if ended is not None else "on air",
        "slot": ev.occurrence,
        "started": _local(begun.at_epoch, tz) if begun is not None else None,
        "ended": _local(ended.at_epoch, tz) if ended is not None else None,
        "seconds": round(seconds, 1) if seconds is not None else None,
        "detail": ended.detail if ended is not None else None,
    }


def _days(rows: list[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    """Per station and day: minutes on air, sessions, emergencies, and what failed or was missed, with why."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        day = (r["started"] or r["ended"] or "")[:10]
        d = out.setdefault(
            (r["station"], day),
            {
                "station": r["station"],
                "day": day,
                "minutes_on_air": 0.0,
                "sessions": 0,
                "emergencies": 0,
                "problems": [],
            },
        )
        if r["started"]:
            d["sessions"] += 1
            d["minutes_on_air"] += (r["seconds"] or 0) / 60
            d["emergencies"] += r["priority"] == "emergency"
        if r["state"] in ("failed", *NOT_AIRED):
            why = f" ({r['detail']})" if r["detail"] else ""
            d["problems"].append(f"{r['id']}: {r['state']}{why}")
    for d in out.values():
        d["minutes_on_air"] = round(d["minutes_on_air"], 2)
    return [out[k] for k in sorted(out)]


def _planned(db: Database, target: Any, start: float, end: float) -> list[dict[str, Any]]:
    """Each bulletin sent through the server in the period: which stations in scope aired it, late, not at all.

    Its stations are those it was sent to (expected, or answering unexpectedly), in the scope even when
    they never reported anything else.
    """
    b, s = t.bulletins.c, t.bulletin_stations.c
    with db.engine.connect() as conn:
        groups = {r.station: json.loads(r.groups) for r in conn.execute(select(t.stations)) if r.groups}
        sent = conn.execute(select(t.bulletins).where(b.sent_at >= start, b.sent_at < end).order_by(b.sent_at)).all()
        out = []
        for bulletin in sent:
            rows = [
                r
                for r in conn.execute(select(t.bulletin_stations).where(s.bulletin == bulletin.id))
                if target.covers(r.station, {"groups": groups.get(r.station)})
            ]
            if not rows:
                continue
            scheduled = "schedule" in json.loads(bulletin.command)[0]
            aired = [r for r in rows if r.started_at is not None]
            late = [r.station for r in aired if not scheduled and r.started_at - bulletin.sent_at > LATE_S]
            out.append(
                {
                    "id": bulletin.bulletin_id,
                    "rev": bulletin.rev,
                    "planned": len(rows),
                    "aired": len(aired),
                    "late": sorted(late),
                    "not_aired": sorted(
                        f"{r.station}: {r.status}{f' ({r.detail})' if r.detail else ''}"
                        for r in rows
                        if r.started_at is None
                    ),
                }
            )
    return out


def _why(r: Any) -> str:
    return f"{r.station}: {r.status}" + (f" ({r.detail})" if r.detail else "")


def _local(epoch: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")


def cell(value: Any) -> Any:
    """A value as an exported cell: stations write these texts, an operator opens them in a spreadsheet.

    Control characters go (XLSX cannot hold them), a text is cut to CELL_MAX, and one
    that a spreadsheet would take for a formula (`=cmd|...`) gets a leading apostrophe.
    """
    if not isinstance(value, str):
        return value
    text = CONTROL.sub("", value)[:CELL_MAX]
    return "'" + text if text.startswith(FORMULA) else text


def to_csv(result: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in row.items()} for row in result["rows"])
    return buf.getvalue().encode("utf-8-sig")  # the BOM lets spreadsheet programs read Vietnamese text right


def to_xlsx(result: dict[str, Any]) -> bytes:
    """Three sheets: the log book, the days, planned versus aired."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "as-run"
    sheet.append(list(COLUMNS))
    for row in result["rows"]:
        sheet.append([cell(row[c]) for c in COLUMNS])
    days = book.create_sheet("days")
    days.append(["station", "day", "minutes_on_air", "sessions", "emergencies", "problems"])
    for d in result["days"]:
        days.append(
            [
                cell(v)
                for v in (d["station"], d["day"], d["minutes_on_air"], d["sessions"], d["emergencies"])
                + ("; ".join(d["problems"]),)
            ]
        )
    planned = book.create_sheet("planned vs aired")
    planned.append(["id", "rev", "planned", "aired", "late", "not_aired"])
    for p in result["planned_vs_aired"]:
        planned.append(
            [
                cell(v)
                for v in (p["id"], p["rev"], p["planned"], p["aired"], ", ".join(p["late"]), "; ".join(p["not_aired"]))
            ]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
