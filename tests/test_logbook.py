"""The programme log book (issue 13 item 5): a day with every kind of entry, printed and exported.

The day is made through the ledger's real transitions on a real store, as
the player and the inbox make them (accept, start, an emergency cutting in,
resume, cancel on air, failures), then read back by `loaxa log --book` as a
technician runs it: CSV on standard output, XLSX, and a PDF that is rendered
to an image (pdftoppm) and read back as text (pdftotext).
"""

from __future__ import annotations

import csv
import io
import os
import shlex
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from loaxa import logbook
from loaxa.protocol import Bulletin, validate_command
from loaxa.states import Outcome
from loaxa.store import Ledger, Play, Store

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 11, 27)  # a Friday of ISO week 2026-W48
STATION = "hue/phu-vang/loa-1"
ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "broadcast.md").read_text(encoding="utf-8")
LOAXA = str(Path(sys.executable).with_name("loaxa"))


class Day:
    """A store and a ledger whose clock the test sets, as the player's transitions see it."""

    def __init__(self, root: Path) -> None:
        self.store = Store(root / "var" / "station.db")
        self.now = datetime(DAY.year, DAY.month, DAY.day, 6, 0, tzinfo=TZ).timestamp()
        self.ledger = Ledger(self.store, STATION, clock=lambda: self.now)

    def at(self, hh: int, mm: int, ss: int = 0) -> None:
        self.now = datetime(DAY.year, DAY.month, DAY.day, hh, mm, ss, tzinfo=TZ).timestamp()

    def accept(self, issuer: str, **command: object) -> None:
        bulletin = validate_command({"type": "bulletin", **command})
        assert isinstance(bulletin, Bulletin)
        assert self.ledger.accept(
            issuer, bulletin, datetime.fromtimestamp(self.now, TZ), max_queue=100, first_slot=None
        ).stored

    def play(self, id: str) -> Play:
        (play,) = [p for p in self.ledger.open_plays() if p.id == id]
        return play


def make_day(root: Path) -> Day:
    d = Day(root)
    d.at(6, 0)
    d.accept("ubnd-xa", id="sang-1", text="Thông báo của ủy ban nhân dân xã về lịch tiêm phòng cho gia súc.")
    assert d.ledger.start(d.play("sang-1"))
    d.at(6, 1, 5)
    d.ledger.end(d.play("sang-1"), Outcome.FINISHED, "65.0 s on air, voice vi_VN-vais1000-medium")

    d.at(7, 0)
    d.accept(
        "tinh",
        id="ghi-am",
        priority="high",
        audio={"url": "http://tinh.example/ban-tin-H-mong.mp3", "sha256": "a" * 64},
    )
    assert d.ledger.start(d.play("ghi-am"))
    d.at(7, 3)
    d.ledger.end(d.play("ghi-am"), Outcome.FINISHED, "180.0 s on air, voice vi_VN-vais1000-medium")

    d.at(8, 0)
    d.accept("tinh", id="tiep-song", stream={"url": "http://radio.example/vov1", "duration_s": 600})
    assert d.ledger.start(d.play("tiep-song"))
    d.at(8, 10)
    d.ledger.end(d.play("tiep-song"), Outcome.FINISHED, "600.0 s on air, voice espeak:vi; relay: 0 drops")

    # A normal bulletin cut by an emergency, which airs, then the normal one resumes and finishes.
    d.at(9, 0)
    d.accept("ubnd-xa", id="hop-thon", text="Mời bà con dự họp thôn vào tối thứ bảy tại nhà văn hóa.")
    assert d.ledger.start(d.play("hop-thon"))
    d.at(9, 0, 20)
    d.accept("tinh", id="lu-khan", priority="emergency", text="Khẩn cấp. Nước sông Hương đang lên nhanh.")
    d.ledger.end(d.play("hop-thon"), Outcome.PREEMPTED)
    assert d.ledger.start(d.play("lu-khan"))
    d.at(9, 0, 50)
    d.ledger.end(d.play("lu-khan"), Outcome.FINISHED, "30.0 s on air, voice espeak:vi")
    assert d.ledger.start(d.play("hop-thon"))
    d.at(9, 1, 40)
    d.ledger.end(d.play("hop-thon"), Outcome.FINISHED, "50.0 s on air, voice vi_VN-vais1000-medium")

    d.at(10, 0)  # cancelled while on air
    d.accept("ubnd-xa", id="nham", text="Thông báo nhầm, xin bỏ qua.")
    assert d.ledger.start(d.play("nham"))
    d.at(10, 0, 10)
    assert d.ledger.cancel("ubnd-xa", "nham")
    d.ledger.end(d.play("nham"), Outcome.CANCELLED)

    d.at(11, 0)  # failed before anything aired
    d.accept("tinh", id="hong", audio={"url": "http://tinh.example/hong.wav", "sha256": "b" * 64})
    d.ledger.end(d.play("hong"), Outcome.FAILED, "sha256 mismatch: expected bbbbbbbbbbbb…, got 0123456789ab…")

    d.at(12, 0)  # a live announcement from the station's microphone
    d.ledger.live("local", "live-1", "loaxa-mic", datetime.fromtimestamp(d.now, TZ))
    assert d.ledger.start(d.play("live-1"))
    d.at(12, 2, 30)
    d.ledger.end(d.play("live-1"), Outcome.FINISHED, "152.0 s on air, voice espeak:vi; live: 150.0 s from the input")

    d.at(13, 0)  # a bulletin the commune approved before it aired
    bulletin = validate_command({"type": "bulletin", "id": "duyet", "text": "Lịch cắt điện ngày mai."})
    assert isinstance(bulletin, Bulletin)
    now = datetime.fromtimestamp(d.now, TZ)
    d.ledger.accept("tinh", bulletin, now, max_queue=100, first_slot=None, approval_until=now + timedelta(hours=2))
    d.at(13, 20)
    assert d.ledger.approve("chu-tich-xa", "duyet", datetime.fromtimestamp(d.now, TZ)).ok
    assert d.ledger.start(d.play("duyet"))
    d.at(13, 20, 30)
    d.ledger.end(d.play("duyet"), Outcome.FINISHED, "30.0 s on air, voice espeak:vi")

    d.at(23, 0)  # the next day's bulletin is not in this day's book
    d.now += 3600
    d.accept("ubnd-xa", id="hom-sau", text="Ngày mai.")
    assert d.ledger.start(d.play("hom-sau"))
    d.store.close()
    return d


def config(root: Path) -> Path:
    path = root / "loaxa.yaml"
    settings = {
        "station": {"province": "hue", "commune": "phu-vang", "id": "loa-1"},
        "storage": {"dir": str(root / "var")},
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def loaxa(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOAXA_CONFIG": str(config(root))}
    return subprocess.run([LOAXA, *args], capture_output=True, text=True, env=env, cwd=cwd or root, timeout=60)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logbook")
    make_day(root)
    return root


def test_csv_on_standard_output_has_the_log_book_columns_in_vietnamese_and_every_kind_of_entry(day):
    done = loaxa(day, "log", "--book", "--from", "2026-11-27", "--to", "2026-11-27", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == [
        "Ngày", "Bắt đầu", "Kết thúc", "Thời lượng", "Nội dung",
        "Nguồn tin", "Mức độ", "Giọng đọc", "Kết quả", "Người duyệt",
    ]  # fmt: skip
    book = {row[4].split(" ")[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert list(book) == ["sang-1", "ghi-am", "tiep-song", "hop-thon", "lu-khan", "nham", "hong", "live-1", "duyet"]
    assert "hom-sau" not in done.stdout  # the next day's

    first = book["sang-1"]
    assert (first["Ngày"], first["Bắt đầu"], first["Kết thúc"], first["Thời lượng"]) == (
        "27/11/2026", "06:00:00", "06:01:05", "1:05",
    )  # fmt: skip
    assert first["Nội dung"] == "sang-1 (văn bản): Thông báo của ủy ban nhân dân xã …"
    assert (first["Nguồn tin"], first["Mức độ"], first["Giọng đọc"]) == ("ubnd-xa", "thường", "vi_VN-vais1000-medium")
    assert first["Kết quả"] == "phát xong"
    assert first["Người duyệt"] == ""  # it needed no approval

    assert book["ghi-am"]["Nội dung"] == "ghi-am (ghi âm): ban-tin-H-mong.mp3"
    assert (book["ghi-am"]["Mức độ"], book["ghi-am"]["Giọng đọc"]) == ("ưu tiên", "")
    assert book["tiep-song"]["Nội dung"] == "tiep-song (tiếp sóng): vov1"
    assert book["tiep-song"]["Thời lượng"] == "10:00"
    assert book["lu-khan"]["Mức độ"] == "khẩn cấp"
    cut = book["hop-thon"]
    assert cut["Kết quả"] == "bị ngắt, đã phát tiếp"
    assert (cut["Bắt đầu"], cut["Kết thúc"]) == ("09:00:00", "09:01:40")  # from its first sound to its last
    assert book["nham"]["Kết quả"] == "đã hủy"
    live = book["live-1"]
    assert (live["Nội dung"], live["Nguồn tin"], live["Thời lượng"]) == (
        "live-1 (trực tiếp): loaxa-mic",
        "tại đài",
        "2:30",
    )
    assert (live["Mức độ"], live["Giọng đọc"], live["Kết quả"]) == ("ưu tiên", "", "phát xong")
    approved = book["duyet"]
    assert (approved["Bắt đầu"], approved["Người duyệt"]) == ("13:20:00", "chu-tich-xa 27/11 13:20")
    failed = book["hong"]
    assert failed["Kết quả"] == "lỗi: sha256 mismatch: expected bbbbbbbbbbbb…, got 0123456789ab…"
    assert (failed["Bắt đầu"], failed["Thời lượng"]) == ("", "")  # it never went on air


def test_english_headers_and_words_are_available(day):
    done = loaxa(day, "log", "--book", "--from", "2026-11-27", "--format", "csv", "--lang", "en")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(rows[0]) == [
        "Date", "Start", "End", "Duration", "Content", "Source", "Priority", "Voice", "How it ended", "Approval",
    ]  # fmt: skip
    endings = {row["Content"].split(" ")[0]: row["How it ended"] for row in rows}
    assert endings["hop-thon"] == "interrupted and resumed"
    assert endings["nham"] == "cancelled"
    assert endings["hong"].startswith("failed: sha256 mismatch")
    assert next(r["Content"] for r in rows if r["Content"].startswith("live-1")) == "live-1 (live): loaxa-mic"
    assert rows[0]["Date"] == "2026-11-27" and rows[0]["Content"].startswith("sang-1 (text): ")


def test_the_week_is_monday_to_sunday_and_this_week_is_the_default():
    w48 = logbook.week("2026-W48")
    assert (w48.first, w48.last) == (date(2026, 11, 23), date(2026, 11, 29))
    assert logbook.this_week(date(2026, 11, 27)) == w48
    assert logbook.this_week(date(2026, 11, 29)) == w48 and logbook.this_week(date(2026, 11, 30)) != w48
    start, end = w48.bounds(TZ)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-23T00:00:00+07:00", "2026-11-30T00:00:00+07:00")
    with pytest.raises(logbook.LogbookError, match="no week 54"):
        logbook.week("2026-W54")


def test_bad_periods_are_one_readable_line_not_a_traceback(day):
    for args in (("--week", "48"), ("--from", "27/11/2026"), ("--from", "2026-11-27", "--to", "2026-11-01")):
        done = loaxa(day, "log", "--book", *args)
        assert done.returncode == 1, done.stdout
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert loaxa(day, "log", "--book", "--format", "pdf").returncode == 1  # a PDF needs a file


def test_xlsx_export_has_the_title_headers_and_entries(day, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "so.xlsx"
    done = loaxa(day, "log", "--book", "--week", "2026-W48", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "10 entries" in done.stdout  # the whole week: the next day's bulletin, still on air, too
    sheet = load_workbook(out).active
    rows = [[c or "" for c in row] for row in sheet.iter_rows(values_only=True)]
    assert rows[0][0].startswith("SỔ NHẬT KÝ CHƯƠNG TRÌNH PHÁT THANH — hue/phu-vang/loa-1 — tuần 2026-W48")
    assert rows[1][:5] == ["Ngày", "Bắt đầu", "Kết thúc", "Thời lượng", "Nội dung"]
    ids = [r[4].split(" ")[0] for r in rows[2:]]
    assert ids == ["sang-1", "ghi-am", "tiep-song", "hop-thon", "lu-khan", "nham", "hong", "live-1", "duyet", "hom-sau"]
    assert (rows[-1][0], rows[-1][8]) == ("28/11/2026", "đang phát")


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils (pdftoppm, pdftotext) is not installed")
def test_the_pdf_as_the_docs_write_it_renders_a_page_and_reads_back_with_its_diacritics(day, tmp_path):
    from PIL import Image

    line = next(line for line in DOCS.splitlines() if line.strip().startswith("loaxa log --book --week"))
    argv = shlex.split(line.strip())
    assert argv[:2] == ["loaxa", "log"]
    done = loaxa(day, *argv[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pdf = tmp_path / argv[argv.index("--output") + 1]

    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    (png,) = tmp_path.glob("page*.png")
    page = Image.open(png).convert("L")
    dark = int((np.asarray(page) < 128).sum())
    assert dark > 0.005 * page.width * page.height, "the first page is blank"

    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for words in ("SỔ NHẬT KÝ CHƯƠNG TRÌNH PHÁT THANH", "Người duyệt", "Thông báo của ủy ban", "bị ngắt, đã phát",
                  "khẩn cấp", "Khẩn cấp. Nước sông Hương", "tiếp sóng", "đã hủy", "ưu tiên", "trực tiếp"):  # fmt: skip
        assert words in " ".join(text.split()), f"{words!r} not read back from the PDF:\n{text[:2000]}"
