"""As-run reports checked against a hand-computed day: issue 14, item 4.

Receipts go through the real ingest transaction into real SQLite; the
report, its CSV and XLSX exports, and `loaxa province report` are read back.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from openpyxl import load_workbook

from loaxa.province.server import asrun
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database, Incoming
from loaxa.province.server.settings import parse_settings

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
A, B, C = "hn/ba-vi/loa-1", "hn/ba-vi/loa-2", "hn/son-tay/loa-1"


def at(hhmmss: str, day: str = "2026-12-01") -> str:
    return f"{day}T{hhmmss}.000+07:00"


def receipts(station: str, rows: list[tuple[str, str, str, str | None]]) -> list[Incoming]:
    out = []
    for seq, (bid, event, when, detail) in enumerate(rows, 1):
        body = {"id": bid, "rev": 1, "event": event, "at": when, "station": station, "seq": seq}
        if detail:
            body["detail"] = detail
        out.append(Incoming(station, "event", body, False, time.time()))
    return out


@pytest.fixture
def day_db(tmp_path: Path):
    """One day of two communes, written as the stations would have reported it."""
    config = {"province": {"id": "hn"}, "data_dir": str(tmp_path)}
    (tmp_path / "province.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    db = Database.open(parse_settings(config))
    sent_at = datetime(2026, 12, 1, 7, 59, 0, tzinfo=TZ).timestamp()
    with db.engine.begin() as conn:  # b-1 went out through the server to the three stations at 07:59
        pk = conn.execute(
            t.bulletins.insert().values(
                bulletin_id="b-1",
                rev=1,
                kind="text",
                priority="normal",
                targets='["hn"]',
                sender="api:sttt",
                issuer="hn-2026",
                command='[{"type": "bulletin"}]',
                sent_at=sent_at,
            )
        ).inserted_primary_key[0]
        conn.execute(
            t.bulletin_stations.insert(),
            [{"bulletin": pk, "station": s, "expected": True, "status": "no_answer"} for s in (A, B, C)],
        )
    db.ingest(
        receipts(
            A,
            [
                ("b-1", "received", at("07:59:01"), "normal, text"),
                ("b-1", "started", at("08:00:05"), None),
                ("b-1", "finished", at("08:02:05"), "120.0 s on air, voice piper:vi"),
                ("b-9", "received", at("08:59:59"), "emergency, text"),
                ("b-9", "started", at("09:00:00"), None),
                ("b-9", "finished", at("09:00:30"), "30.0 s on air"),
                ("b-7", "missed", at("10:00:00"), "the station was off at 05:30"),
                ("b-8", "received", at("07:00:00", "2026-12-02"), "normal, text"),
                ("b-8", "started", at("07:00:01", "2026-12-02"), None),
                ("b-8", "finished", at("07:01:01", "2026-12-02"), None),
            ],
        )
        + receipts(
            B,
            [
                ("b-1", "received", at("07:59:02"), "normal, text"),
                ("b-1", "started", at("08:10:10"), None),
                ("b-1", "failed", at("08:10:20"), "audio output unavailable: no device"),
            ],
        )
    )
    yield db, tmp_path
    db.close()


def test_a_hand_computed_day_of_a_commune(day_db):
    """Ba Vì on 1 December: loa-1 aired 2.5 min in 2 sessions (1 emergency) and missed b-7; loa-2 failed b-1."""
    db, _ = day_db
    result = asrun.report(db, "hn/ba-vi", "day", date(2026, 12, 1), TZ)
    assert result["from"] == "2026-12-01T00:00:00+07:00" and result["until"] == "2026-12-02T00:00:00+07:00"
    plays = [(r["station"], r["id"], r["state"], r["started"], r["seconds"]) for r in result["rows"]]
    assert plays == [
        (A, "b-1", "finished", "2026-12-01T08:00:05+07:00", 120.0),
        (A, "b-9", "finished", "2026-12-01T09:00:00+07:00", 30.0),
        (A, "b-7", "missed", None, None),
        (B, "b-1", "failed", "2026-12-01T08:10:10+07:00", 10.0),
    ]
    assert [r["issuer"] for r in result["rows"]] == ["hn-2026", None, None, "hn-2026"]
    assert result["rows"][1]["priority"] == "emergency" and result["rows"][0]["kind"] == "text"
    assert result["days"] == [
        {
            "station": A,
            "day": "2026-12-01",
            "minutes_on_air": 2.5,
            "sessions": 2,
            "emergencies": 1,
            "problems": ["b-7: missed (the station was off at 05:30)"],
        },
        {
            "station": B,
            "day": "2026-12-01",
            "minutes_on_air": 0.17,
            "sessions": 1,
            "emergencies": 0,
            "problems": ["b-1: failed (audio output unavailable: no device)"],
        },
    ]


def test_planned_versus_aired_for_a_bulletin_sent_through_the_server(day_db):
    """b-1 went to three stations: loa-1 aired it on time, loa-2 started it 11 min late (then failed), son-tay never."""
    db, _ = day_db
    (planned,) = asrun.report(db, "hn", "day", date(2026, 12, 1), TZ)["planned_vs_aired"]
    assert planned == {
        "id": "b-1",
        "rev": 1,
        "planned": 3,
        "aired": 2,
        "late": [B],
        "not_aired": [f"{C}: no_answer"],
    }


def test_week_month_year_include_the_next_day_and_a_day_does_not(day_db):
    db, _ = day_db
    counts = {p: len(asrun.report(db, A, p, date(2026, 12, 1), TZ)["rows"]) for p in asrun.PERIODS}
    assert counts == {"day": 3, "week": 4, "month": 4, "year": 4}


def test_report_command_exports_csv_and_xlsx_with_the_log_book_columns(day_db):
    """`loaxa province report` as CSV (the station's `loaxa log` columns) and XLSX (three sheets)."""
    _, root = day_db
    base = [sys.executable, "-m", "loaxa", "province", "report", "--config", str(root / "province.yaml")]
    base += ["--scope", "hn/ba-vi", "--date", "2026-12-01"]
    done = subprocess.run([*base, "--format", "csv"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8-sig"))))
    assert list(rows[0]) == list(asrun.COLUMNS)
    assert [(r["station"], r["id"], r["state"], r["seconds"]) for r in rows][:2] == [
        (A, "b-1", "finished", "120.0"),
        (A, "b-9", "finished", "30.0"),
    ]
    out = root / "day.xlsx"
    done = subprocess.run([*base, "--format", "xlsx", "--output", str(out)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    book = load_workbook(out)
    assert book.sheetnames == ["as-run", "days", "planned vs aired"]
    assert [c.value for c in book["days"][2]][:5] == [A, "2026-12-01", 2.5, 2, 1]
    as_json = subprocess.run(base, capture_output=True, timeout=60)
    assert json.loads(as_json.stdout)["stations"] == 2
