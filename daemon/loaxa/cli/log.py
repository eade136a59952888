"""`loaxa log`: what this station aired (or missed), read from its store."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from loaxa.cli._common import add_config_arg, settings_from
from loaxa.cli._table import Column, local_time, print_table
from loaxa.errors import ConfigError, StoreError
from loaxa.i18n import _
from loaxa.store import aired as read_aired
from loaxa.store import open_readonly

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("log", help="show what aired, from the station's store")
    add_config_arg(p)
    p.add_argument(
        "--since", default="1d", type=_since_arg, help="a duration back (30m, 12h, 7d) or an ISO date/time (default 1d)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per play")
    add_book_args(p)
    p.set_defaults(func=show_log)


def add_book_args(p: argparse.ArgumentParser) -> None:
    """The programme log book (`--book`): its period, format and language; see `loaxa.logbook`."""
    book = p.add_argument_group("log book")
    book.add_argument("--book", action="store_true", help="the programme log book (this week unless told)")
    book.add_argument("--week", help="an ISO week, e.g. 2026-W48")
    book.add_argument("--from", dest="first", metavar="DATE", help="first day, e.g. 2026-11-24")
    book.add_argument("--to", dest="last", metavar="DATE", help="last day (default: today, or --from alone)")
    book.add_argument("--format", choices=("csv", "xlsx", "pdf"), help="export (default: from --output, else csv)")
    book.add_argument("--output", "-o", metavar="FILE", help="write the export here (csv: standard output)")


def _since_arg(value: str) -> datetime:
    try:
        return parse_since(value, datetime.now(UTC))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_since(value: str, now: datetime) -> datetime:
    """`12h` back from `now`, or an ISO date/time (local time when it has no offset)."""
    match = _AGO.match(value.strip().lower())
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since {value!r}: expected a duration like 12h or 7d, or an ISO date/time") from None
    return when if when.tzinfo else when.astimezone()


def aired(db_path: Any, since: datetime) -> list[dict[str, Any]]:
    """Plays that went on air or were given up, oldest first."""
    db = open_readonly(db_path)
    try:
        rows = read_aired(db, since)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the station store {db_path}: {exc}") from None
    finally:
        db.close()
    return [_entry(r) for r in rows]


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    def at(ts: float | None) -> str | None:
        return datetime.fromtimestamp(ts, UTC).astimezone().isoformat(timespec="seconds") if ts else None

    seconds = row["ended_at"] - row["started_at"] if row["ended_at"] and row["started_at"] else None
    return {
        "id": row["id"],
        "rev": row["rev"],
        "issuer": row["issuer"],
        "state": row["state"],
        "slot": row["occurrence"],
        "started": at(row["started_at"]),
        "ended": at(row["ended_at"]),
        "seconds": round(seconds, 1) if seconds is not None else None,
        "detail": row["detail"],
    }


def show_log(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db_path = settings.storage.dir / "station.db"
    if not db_path.exists():
        raise StoreError(_("no station store at {path}; has the daemon run with this config?").format(path=db_path))
    if args.book or args.week or args.first or args.last or args.format or args.output:
        from loaxa.cli._book import show_book

        return show_book(args, settings, db_path)
    entries = aired(db_path, args.since)
    if args.json:
        for entry in entries:
            print(json.dumps(entry, ensure_ascii=False))
        return 0
    if not entries:
        print(_("nothing aired in that time"))
        return 0
    zone = settings.station.tz  # the station's clock, not the machine's or UTC
    rows = [
        [
            local_time(e["started"], zone),
            e["id"],
            str(e["rev"]),
            e["state"],
            local_time(e["slot"], zone) if e["slot"] else "asap",
            "-" if e["seconds"] is None else f"{e['seconds']:.1f}",
            e["detail"] or "",
        ]
        for e in entries
    ]
    title = _("aired at {station} ({zone})").format(station=settings.station.path, zone=settings.station.timezone)
    print_table(LOG_COLUMNS, rows, title=title)
    return 0


LOG_COLUMNS = (
    Column("started"),
    Column("id"),
    Column("rev", rank=3, right=True),
    Column("state"),
    Column("slot", rank=2),
    Column("s", rank=4, right=True),
    Column("detail", rank=1, wrap=True),
)
