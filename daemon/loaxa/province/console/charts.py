"""Charts drawn by the server as SVG: nothing to load, nothing to run in the browser.

`minutes_by_commune` is one row per commune, one bar per day of the period,
all rows on one scale, so a quiet commune stands out at a glance; every bar
carries its figure as a tooltip and each row its total in words, so the
chart does not have to be read by bar heights alone.
"""

from __future__ import annotations

from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

from loaxa.province.console.web import N_

LABEL_W = 190  # the communes' names
TOTAL_W = 90
ROW_H = 34
BAR_AREA = 700
BAR = "#2f6ea5"
EMPTY = "#d0d7de"
MAX_BAR = 48.0  # a day's bar in a short period


def minutes_by_commune(
    minutes: dict[str, dict[str, float]],
    days: list[str],
    labels: dict[str, str],
    translate: Callable[[str], str],
) -> str:
    """`minutes[commune][day]` as small bars; `days` the period's days (YYYY-MM-DD) in order."""
    communes = sorted(minutes, key=lambda c: labels.get(c, c))
    top = max((v for per_day in minutes.values() for v in per_day.values()), default=0.0) or 1.0
    step = BAR_AREA / max(len(days), 1)
    width = LABEL_W + BAR_AREA + TOTAL_W
    height = 30 + ROW_H * max(len(communes), 1) + 22
    unit = translate(N_("min"))
    title = translate(N_("Minutes on air per commune per day"))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" font-family="sans-serif" font-size="12" role="img" aria-label={quoteattr(title)}>',
        f'<text x="0" y="16" font-weight="bold" fill="#1f2d3d">{escape(title)}</text>',
    ]
    for i, commune in enumerate(communes):
        y0 = 30 + i * ROW_H
        per_day = minutes[commune]
        name = labels.get(commune, commune)
        out.append(f'<g class="row"><text x="0" y="{y0 + ROW_H - 12}" fill="#1f2d3d">{escape(name)}</text>')
        for j, day in enumerate(days):
            value = per_day.get(day, 0.0)
            h = max((ROW_H - 8) * value / top, 1.0 if value else 0.0)
            x = LABEL_W + j * step
            tip = f"{name} {day}: {in_minutes(value)} {unit}"
            bar = min(max(step * 0.8, 1.0), MAX_BAR)
            out.append(
                f'<rect class="bar" x="{x + (step - bar) / 2:.1f}" y="{y0 + ROW_H - 4 - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{BAR if value else EMPTY}"><title>{escape(tip)}</title></rect>'
            )
        out.append(
            f'<line x1="{LABEL_W}" x2="{LABEL_W + BAR_AREA}" y1="{y0 + ROW_H - 4}" y2="{y0 + ROW_H - 4}" '
            'stroke="#999"/>'
        )
        total = sum(per_day.values())
        out.append(
            f'<text class="total" x="{LABEL_W + BAR_AREA + 8}" y="{y0 + ROW_H - 12}" fill="#1f2d3d">'
            f"{in_minutes(total)} {escape(unit)}</text></g>"
        )
    if not communes:
        nothing = translate(N_("Nothing aired in this period."))
        out.append(f'<text x="{LABEL_W}" y="50" fill="#555">{escape(nothing)}</text>')
    axis_y = 30 + ROW_H * max(len(communes), 1) + 14
    every = max(1, len(days) // 10)
    for j, day in enumerate(days):
        if j % every == 0:
            x = LABEL_W + j * step + step / 2
            out.append(
                f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle" fill="#555" font-size="10">{day[5:]}</text>'
            )
    tallest = translate(N_("tallest bar"))
    out.append(
        f'<text x="{LABEL_W + BAR_AREA}" y="16" text-anchor="end" fill="#555" font-size="10">'
        f"{escape(tallest)}: {in_minutes(top)} {escape(unit)}</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def in_minutes(value: float) -> str:
    """Minutes to read: one decimal, two below a minute (a 40-second bulletin is not "0.0")."""
    return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2f}"
