"""Tables a person reads on an 80-column terminal: ids whole, columns dropped rather than cut.

Each column says whether it may wrap and how much it matters. When the
terminal is too narrow, the least important columns are left out (the
caption says which, and `--json` has everything); a column that may not wrap
(an id, a time) is never shortened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from loaxa.i18n import _

GAP = 2  # spaces between columns
WRAPPED_MIN = 16  # the narrowest a wrapping column is squeezed to


@dataclass(frozen=True)
class Column:
    name: str
    rank: int = 0  # 0: always shown; higher is dropped first when the terminal is narrow
    wrap: bool = False  # may break onto more lines (details, reasons); ids and times never do
    right: bool = False


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> tuple[list[int], list[str]]:
    """The indices of the columns that fit in `width`, and the names of those left out."""
    keep = list(range(len(columns)))

    def need(i: int) -> int:
        longest = max([len(_(columns[i].name)), *(len(r[i]) for r in rows)])
        return min(longest, WRAPPED_MIN) if columns[i].wrap else longest

    while sum(need(i) for i in keep) + GAP * (len(keep) - 1) > width:
        droppable = [i for i in keep if columns[i].rank > 0]
        if not droppable:
            break
        keep.remove(max(droppable, key=lambda i: (columns[i].rank, i)))
    return keep, [_(columns[i].name) for i in range(len(columns)) if i not in keep]


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    styles: Sequence[str] | None = None,
    console: Any = None,
    title: str | None = None,
) -> None:
    """Print `rows` under `columns`, fitted to the console's width."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    keep, left_out = fitted(columns, rows, console.width)
    table = Table(box=None, pad_edge=False, padding=(0, GAP // 2), title=title, title_justify="left")
    for i in keep:
        c = columns[i]
        table.add_column(
            _(c.name),
            no_wrap=not c.wrap,
            overflow="fold",
            justify="right" if c.right else "left",
            min_width=None if c.wrap else max([len(_(c.name)), *(len(r[i]) for r in rows)]),
            header_style="bold",
        )
    for n, row in enumerate(rows):
        table.add_row(*(row[i] for i in keep), style=styles[n] if styles else None)
    console.print(table)
    if left_out:
        note = _("(not shown at this width: {columns}; --json has everything)").format(columns=", ".join(left_out))
        console.print(note, style="dim")


def local_time(value: str | float | None, zone: tzinfo | None = None, now: datetime | None = None) -> str:
    """An ISO time or a timestamp as the reader's clock shows it: HH:MM:SS today, else with the date."""
    if value is None or value == "":
        return "-"
    try:
        when = (
            datetime.fromtimestamp(value, UTC)
            if isinstance(value, (int, float))
            else datetime.fromisoformat(str(value))
        )
    except ValueError:
        return str(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(zone) if zone else when.astimezone()
    today = (now or datetime.now(UTC)).astimezone(when.tzinfo).date()
    return when.strftime("%H:%M:%S") if when.date() == today else when.strftime("%Y-%m-%d %H:%M")
