"""The fleet map: an SVG of the stations that have coordinates, drawn by the server.

No tiles (no tile server can be reached from a province's network): the
positions alone, projected equirectangularly (longitude scaled by the cosine
of the middle latitude, which is faithful at a province's size), one mark
per station in its status' colour and shape, each commune's name at the
middle of its stations, and a legend. Presentation attributes only, no
<style> element: the console's content security policy forbids those.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from loaxa.province.console.web import N_

WIDTH = 960
MAX_HEIGHT = 540
PAD_X, PAD_Y = 90, 30  # room for the communes' names at the edges
MIN_SPAN_DEG = 0.02  # one station, or several at one place, still get a map around them
COLOURS = {"online": "#1a7f37", "offline": "#9a6700", "silent": "#cf222e"}


@dataclass(frozen=True)
class Point:
    station: str
    name: str | None
    lat: float
    lon: float
    status: str


def _mark(status: str, x: float, y: float, title: str) -> str:
    """Online a filled disc, offline a ring, silent a square: told apart without colour."""
    colour = COLOURS.get(status, "#555")
    tip = f"<title>{escape(title)}</title>"
    if status == "silent":
        return (
            f'<rect class="mark s-silent" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
            f'fill="{colour}" stroke="#fff" stroke-width="1">{tip}</rect>'
        )
    fill = colour if status == "online" else "#fff"
    return (
        f'<circle class="mark s-{escape(status)}" cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{fill}" '
        f'stroke="{colour}" stroke-width="2">{tip}</circle>'
    )


def render(
    points: list[Point],
    commune_names: dict[str, str],
    translate: Callable[[str], str],
    look: dict[str, tuple[str, str]],
) -> str:
    """The whole SVG document."""
    if points:
        south, north = min(p.lat for p in points), max(p.lat for p in points)
        west, east = min(p.lon for p in points), max(p.lon for p in points)
    else:
        south = north = west = east = 0.0
    mid = (south + north) / 2
    scale_x = math.cos(math.radians(mid))
    span_x = max((east - west) * scale_x, MIN_SPAN_DEG)
    span_y = max(north - south, MIN_SPAN_DEG)
    legend_h = 40
    per_deg = min((WIDTH - 2 * PAD_X) / span_x, (MAX_HEIGHT - legend_h - 2 * PAD_Y) / span_y)
    height = int(span_y * per_deg + legend_h + 2 * PAD_Y)
    cx, cy = (west + east) / 2, (south + north) / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return WIDTH / 2 + (lon - cx) * scale_x * per_deg, (legend_h + height) / 2 - (lat - cy) * per_deg

    title = translate(N_("Map of the stations"))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="12" role="img" aria-label={quoteattr(title)}>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f7f9fb"/>',
    ]
    by_commune: dict[str, list[tuple[float, float]]] = {}
    marks = []
    for p in points:
        x, y = xy(p.lat, p.lon)
        by_commune.setdefault("/".join(p.station.split("/")[:2]), []).append((x, y))
        word = translate(look.get(p.status, ("", p.status))[1])
        marks.append(_mark(p.status, x, y, f"{p.name or p.station} ({p.station}): {word}"))
    out.append('<g class="marks">' + "".join(marks) + "</g>")
    labels = []
    for commune, spots in sorted(by_commune.items()):
        x = sum(s[0] for s in spots) / len(spots)
        y = min(s[1] for s in spots) - 9
        labels.append(
            f'<text class="commune" x="{x:.1f}" y="{y:.1f}" text-anchor="middle" font-weight="bold" fill="#1f2d3d" '
            f'stroke="#f7f9fb" stroke-width="3" paint-order="stroke">{escape(commune_names.get(commune, commune))}'
            "</text>"
        )
    out.append('<g class="labels">' + "".join(labels) + "</g>")
    out.append(_legend(points, translate, look))
    if not points:
        empty = translate(N_("No station has coordinates yet (Admin → Stations)."))
        out.append(
            f'<text x="{WIDTH / 2}" y="{height / 2 + 20}" text-anchor="middle" fill="#555">{escape(empty)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _legend(points: list[Point], translate: Callable[[str], str], look: dict[str, tuple[str, str]]) -> str:
    parts = ['<g class="legend">', '<rect x="8" y="8" width="420" height="26" fill="#fff" stroke="#ccc"/>']
    x = 22.0
    for status in ("online", "offline", "silent"):
        n = sum(1 for p in points if p.status == status)
        parts.append(_mark(status, x, 21, translate(look[status][1])).replace('class="mark ', 'class="key '))
        label = f"{translate(look[status][1])}: {n}"
        parts.append(f'<text x="{x + 10:.0f}" y="25" fill="#1f2d3d">{escape(label)}</text>')
        x += 135
    parts.append("</g>")
    return "".join(parts)
