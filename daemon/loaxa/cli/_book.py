"""`loaxa log --book`: the programme log book, printed or exported (see `loaxa.logbook`)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from loaxa import logbook
from loaxa.config import Settings
from loaxa.errors import LoaxaError


def show_book(args: argparse.Namespace, settings: Settings, db_path: Path) -> int:
    tz = settings.station.tz
    today = datetime.now(tz).date()
    if args.week and (args.first or args.last):
        raise LoaxaError("give either --week or --from/--to, not both")
    if args.week:
        period = logbook.week(args.week)
    elif args.first or args.last:
        period = logbook.days(args.first, args.last, today)
    else:
        period = logbook.this_week(today)
    # The book is the commune's record in Vietnamese whatever the locale; `--lang en` asks for English.
    lang: logbook.Lang = "en" if getattr(args, "lang", None) == "en" else "vi"
    book = logbook.read_book(db_path, period, tz)
    title = f"{logbook.TITLE[lang]} — {settings.station.path} — {period.describe(lang)}"
    fmt = args.format or (Path(args.output).suffix.lstrip(".").lower() if args.output else None)
    if fmt is None and not args.output:
        _print(book, title, lang)
        return 0
    if fmt not in ("csv", "xlsx", "pdf"):
        raise LoaxaError(f"--output {args.output}: say --format csv, xlsx or pdf")
    if fmt == "csv" and not args.output:
        logbook.write_csv(book, sys.stdout, lang)
        return 0
    if not args.output:
        raise LoaxaError(f"--format {fmt} needs --output FILE")
    out = Path(args.output)
    if fmt == "csv":
        try:
            with out.open("w", encoding="utf-8-sig", newline="") as f:  # the BOM lets spreadsheets read UTF-8
                logbook.write_csv(book, f, lang)
        except OSError as exc:
            raise LoaxaError(f"cannot write {out}: {exc.strerror or exc}") from None
    elif fmt == "xlsx":
        logbook.write_xlsx(book, out, title=title, lang=lang)
    else:
        logbook.write_pdf(book, out, title=title, lang=lang)
    print(f"wrote {out}: {len(book)} entries, {period.describe(lang)}")
    return 0


def _print(book: list[logbook.Entry], title: str, lang: logbook.Lang) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*logbook.headers(lang), title=title)
    for row in logbook.rows_of(book, lang):
        table.add_row(*row)
    Console().print(table if book else f"{title}: {'không có mục nào' if lang == 'vi' else 'no entries'}")
