"""The programme log book ("sổ nhật ký chương trình phát thanh"): the station's as-run record.

One entry per play that aired or was given up, in the columns the commune's
log book has and the district's inspectors check: date, start, end,
duration, content (bulletin id, first words, kind), source (the issuer),
priority, voice, how it ended, approval. Headers and words are Vietnamese as
the book writes them, or English. `loaxa log --book` prints it or exports it
as CSV, XLSX or PDF (the PDF in a system font that has every Vietnamese
letter).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO
from zoneinfo import ZoneInfo

from loaxa.errors import LoaxaError

Lang = Literal["vi", "en"]

TITLE = {"vi": "SỔ NHẬT KÝ CHƯƠNG TRÌNH PHÁT THANH", "en": "PROGRAMME LOG BOOK"}
# (key, Vietnamese header, English header, relative width in the PDF)
COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("date", "Ngày", "Date", 9),
    ("start", "Bắt đầu", "Start", 7),
    ("end", "Kết thúc", "End", 7),
    ("duration", "Thời lượng", "Duration", 7),
    ("content", "Nội dung", "Content", 30),
    ("source", "Nguồn tin", "Source", 9),
    ("priority", "Mức độ", "Priority", 8),
    ("voice", "Giọng đọc", "Voice", 11),
    ("ending", "Kết quả", "How it ended", 16),
    ("approval", "Người duyệt", "Approval", 11),
)
KINDS = {  # a bulletin body's content key -> the log book's kind
    "text": ("text", "văn bản"),
    "audio": ("recorded", "ghi âm"),
    "stream": ("relay", "tiếp sóng"),
    "parts": ("parts", "nhiều phần"),
    "live": ("live", "trực tiếp"),
}
PRIORITY_WORDS = {"emergency": "khẩn cấp", "high": "ưu tiên", "normal": "thường", "low": "thấp"}
ENDINGS = {  # play state (or `resumed`) -> (English, Vietnamese)
    "done": ("finished", "phát xong"),
    "resumed": ("interrupted and resumed", "bị ngắt, đã phát tiếp"),
    "cancelled": ("cancelled", "đã hủy"),
    "failed": ("failed", "lỗi"),
    "missed": ("missed", "bỏ lỡ"),
    "expired": ("expired", "hết hạn"),
    "superseded": ("superseded", "thay bằng bản mới"),
    "declined": ("declined by the commune", "xã không duyệt"),
    "on_air": ("on air", "đang phát"),
}
FIRST_WORDS = 8
WITH_WHY = ("failed", "missed", "expired", "declined")  # endings that carry the station's reason
LOCAL, LOCAL_WORDS = "local", "tại đài"  # the technician's say, play and live, at the station itself
# The player's `finished` detail names the voice that spoke: "12.3 s on air, voice NAME".
_VOICE = re.compile(r"\bvoice (\S+?)(?:;|$|\s)")
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/local/share/fonts"))
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")


class LogbookError(LoaxaError):
    """The log book cannot be read, exported or written."""


@dataclass(frozen=True)
class Entry:
    """One line of the log book, from one play."""

    started: datetime | None  # station time; None when it never went on air
    ended: datetime | None
    due: datetime
    id: str
    rev: int
    kind: str  # text, recorded, relay, parts, live
    words: str  # the first words of a text, or what a recording or relay is
    issuer: str
    priority: str
    voice: str
    state: str  # the play's state
    interrupted: int  # times an emergency cut in
    why: str | None  # the reason of a failure or a miss, in the station's words
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()

    def ending(self, lang: Lang = "vi") -> str:
        """How it ended, with why when it failed or was missed."""
        key = "resumed" if self.state == "done" and self.interrupted else self.state
        english, vietnamese = ENDINGS.get(key, (key, key))
        words = vietnamese if lang == "vi" else english
        if self.interrupted and key != "resumed":
            words += f" (bị ngắt {self.interrupted} lần)" if lang == "vi" else f" (interrupted {self.interrupted}×)"
        return f"{words}: {self.why}" if self.why and self.state in WITH_WHY else words

    def cells(self, lang: Lang = "vi") -> dict[str, str]:
        """The entry in the log book's columns, as text."""
        when = self.started or self.due
        kind = self.kind if lang == "en" else KINDS.get(_body_key(self.kind), (self.kind, self.kind))[1]
        seconds = self.seconds
        approval = ""
        if self.approved_by:
            at = f" {self.approved_at:%d/%m %H:%M}" if self.approved_at else ""
            approval = f"{self.approved_by}{at}"
        return {
            "date": f"{when:%d/%m/%Y}" if lang == "vi" else f"{when:%Y-%m-%d}",
            "start": f"{self.started:%H:%M:%S}" if self.started else "",
            "end": f"{self.ended:%H:%M:%S}" if self.ended and self.started else "",
            "duration": _duration(seconds) if seconds is not None else "",
            "content": f"{self.id} ({kind}): {self.words}" if self.words else f"{self.id} ({kind})",
            "source": LOCAL_WORDS if lang == "vi" and self.issuer == LOCAL else self.issuer,
            "priority": PRIORITY_WORDS.get(self.priority, self.priority) if lang == "vi" else self.priority,
            "voice": self.voice,
            "ending": self.ending(lang),
            "approval": approval,
        }


@dataclass(frozen=True)
class Period:
    """Days of the log book, both inclusive, in the station's time zone."""

    first: date
    last: date
    label: str = ""

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """From the first day's midnight to the midnight after the last, as instants."""
        start = datetime.combine(self.first, time(0), tz)
        end = datetime.combine(self.last + timedelta(days=1), time(0), tz)
        return start, end

    def describe(self, lang: Lang = "vi") -> str:
        days = f"{self.first:%d/%m/%Y} – {self.last:%d/%m/%Y}"
        if not self.label:
            return days
        return f"{'tuần' if lang == 'vi' else 'week'} {self.label} ({days})"


def week(label: str) -> Period:
    """`2026-W48`: Monday to Sunday of that ISO week."""
    match = re.fullmatch(r"(\d{4})-?W(\d{1,2})", label.strip(), re.IGNORECASE)
    if not match:
        raise LogbookError(f"--week {label!r}: expected an ISO week like 2026-W48")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise LogbookError(f"--week {label!r}: {match[1]} has no week {int(match[2])}") from None
    return Period(monday, monday + timedelta(days=6), f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}")


def this_week(today: date) -> Period:
    """The ISO week `today` is in."""
    year, number, _ = today.isocalendar()
    return week(f"{year}-W{number:02d}")


def days(first: str | None, last: str | None, today: date) -> Period:
    """`--from D --to D` (either may be left out: the other day alone, or up to today)."""
    try:
        start = date.fromisoformat(first) if first else None
        end = date.fromisoformat(last) if last else None
    except ValueError as exc:
        raise LogbookError(f"--from/--to: expected dates like 2026-11-24 ({exc})") from None
    start = start or end or today
    end = end or (today if first else start)
    if end < start:
        raise LogbookError(f"--to {end} is before --from {start}")
    return Period(start, end)


# -- reading the store --------------------------------------------------------------
def read_book(db_path: Path, period: Period, tz: ZoneInfo) -> list[Entry]:
    """The log book of `period` from the station's store, opened read-only."""
    from loaxa.store import as_run, open_readonly

    db = open_readonly(db_path)
    try:
        start, end = period.bounds(tz)
        return entries(as_run(db, start, end), tz)
    except sqlite3.Error as exc:
        raise LogbookError(f"cannot read the station store {db_path}: {exc}") from None
    finally:
        db.close()


def entries(rows: Iterable[sqlite3.Row], tz: ZoneInfo) -> list[Entry]:
    """Log book entries of the store's `as_run` rows."""
    return [entry_of(row, tz) for row in rows]


def entry_of(row: sqlite3.Row, tz: ZoneInfo) -> Entry:
    keys = set(row.keys())
    body = json.loads(row["b_body"]) if row["b_body"] else {}
    kind_key = next((k for k in KINDS if body.get(k) is not None), "text")
    detail = row["detail"]
    spoken = kind_key in ("text", "parts")  # a recording or a relay has no voice of the station's
    voice = _VOICE.search(detail or "") if spoken and row["state"] == "done" else None
    approved_by, approved_at = approval_of(row, keys)
    return Entry(
        started=_at(row["started_at"], tz),
        ended=_at(row["ended_at"], tz),
        due=_at(row["due_at"], tz) or datetime.now(tz),
        id=row["id"],
        rev=row["rev"],
        kind=KINDS[kind_key][0],
        words=_what(kind_key, body.get(kind_key)),
        issuer=row["issuer"],
        priority=row["b_priority"] or "",
        voice=voice[1] if voice else (str(body.get("voice") or "") if spoken else ""),
        state=row["state"],
        interrupted=int(row["interrupted"]) if "interrupted" in keys else 0,
        why=detail if row["state"] in WITH_WHY else None,
        approved_by=approved_by,
        approved_at=approved_at.astimezone(tz) if approved_at else None,
    )


def approval_of(row: sqlite3.Row, keys: set[str]) -> tuple[str | None, datetime | None]:
    """Who approved the bulletin and when (the bulletin's `approval`, `approval_by`, `approval_at`).

    None when it needed no approval, or was not approved (a declined one's
    play says `declined` in the ending instead).
    """
    if "approval" not in keys or row["approval"] != "approved":
        return None, None
    who = row["approval_by"] if "approval_by" in keys else None
    when = row["approval_at"] if "approval_at" in keys else None
    if isinstance(when, (int, float)):
        return who, datetime.fromtimestamp(when, UTC)
    if isinstance(when, str) and when:
        try:
            return who, datetime.fromisoformat(when)
        except ValueError:
            return who, None
    return who, None


def _at(ts: float | None, tz: ZoneInfo) -> datetime | None:
    return datetime.fromtimestamp(ts, tz) if ts else None


def _what(kind_key: str, spec: Any) -> str:
    """The first words of a text; the file or host of a recording or a relay."""
    if kind_key == "text" and isinstance(spec, str):
        words = unicodedata.normalize("NFC", spec).split()
        return " ".join(words[:FIRST_WORDS]) + (" …" if len(words) > FIRST_WORDS else "")
    if kind_key == "parts" and isinstance(spec, list):
        texts = [p["text"] for p in spec if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return _what("text", texts[0]) if texts else f"{len(spec)} parts"
    if kind_key == "live" and isinstance(spec, dict):
        return str(spec.get("input") or "")
    if isinstance(spec, dict):
        url = spec.get("url") or next(iter(spec.get("urls") or []), "")
        return str(url).rsplit("/", 1)[-1] or str(url)
    return ""


def _body_key(kind: str) -> str:
    return next((k for k, (name, _) in KINDS.items() if name == kind), kind)


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else f"{whole // 60}:{whole % 60:02d}"
    )


# -- exports ------------------------------------------------------------------------
def headers(lang: Lang = "vi") -> list[str]:
    return [vi if lang == "vi" else en for _, vi, en, _ in COLUMNS]


def rows_of(book: Sequence[Entry], lang: Lang = "vi") -> list[list[str]]:
    return [[e.cells(lang)[key] for key, *_ in COLUMNS] for e in book]


def write_csv(book: Sequence[Entry], out: TextIO, lang: Lang = "vi") -> None:
    writer = csv.writer(out)
    writer.writerow(headers(lang))
    writer.writerows(rows_of(book, lang))


def write_xlsx(book: Sequence[Entry], path: Path, *, title: str, lang: Lang = "vi") -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    sheet = wb.active
    assert sheet is not None
    sheet.title = "so-nhat-ky" if lang == "vi" else "log-book"
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(headers(lang))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows_of(book, lang):
        sheet.append(row)
    for index, (_, _, _, width) in enumerate(COLUMNS):
        sheet.column_dimensions[chr(ord("A") + index)].width = max(10, width * 1.6)
    for row in sheet.iter_rows(min_row=3):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A3"
    _save(lambda: wb.save(path), path)


def write_pdf(book: Sequence[Entry], path: Path, *, title: str, lang: Lang = "vi") -> None:
    """A4 landscape, the table with its header row on every page, in a font with every Vietnamese letter."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    regular, bold = find_fonts()
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its font subsetting logs every glyph at INFO
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title(title)
    pdf.add_font("Book", "", str(regular))
    pdf.add_font("Book", "B", str(bold))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Book", "B", 13)
    pdf.multi_cell(0, 7, title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Book", "", 8)
    widths = tuple(width for *_, width in COLUMNS)
    empty = "(không có mục nào)" if lang == "vi" else "(no entries)"
    with pdf.table(
        col_widths=widths, line_height=4.2, text_align="LEFT", headings_style=FontFace(emphasis="BOLD")
    ) as table:
        for line in [headers(lang), *(rows_of(book, lang) or [[empty, *[""] * (len(COLUMNS) - 1)]])]:
            row = table.row()
            for text in line:
                row.cell(unicodedata.normalize("NFC", text))
    _save(lambda: pdf.output(str(path)), path)


def find_fonts() -> tuple[Path, Path]:
    """DejaVu Sans (Debian's fonts-dejavu-core), regular and bold."""
    for folder in FONT_DIRS:
        found = [folder / name for name in FONT_FILES]
        if all(p.exists() for p in found):
            return found[0], found[1]
    raise LogbookError("no font with Vietnamese letters for the PDF: install the fonts-dejavu-core package")


def _save(write: Any, path: Path) -> None:
    try:
        write()
    except OSError as exc:
        raise LogbookError(f"cannot write {path}: {exc.strerror or exc}") from None
