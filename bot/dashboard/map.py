"""The map of open cases, drawn on the server as inline SVG: no tiles, no internet.

Points are placed by a plain equirectangular projection (longitude scaled by the cosine of the
middle latitude), which is exact enough for a district a few tens of kilometres across. The
frame is the district's outline when the file has one (cases outside it widen the frame),
else the cases' own bounding box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.dashboard.queries import MapCase

WIDTH = 640.0
MIN_HEIGHT = 240.0
MAX_HEIGHT = 460.0
PADDING = 0.06  # of the span, on each side
MIN_SPAN = 0.005  # degrees: a single case still gets a frame of about half a kilometre


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    case: MapCase


@dataclass(frozen=True)
class MapView:
    width: float
    height: float
    outline: str | None  # SVG points attribute
    dots: list[Dot]


def draw(
    outline: Sequence[tuple[float, float]] | None, cases: Sequence[MapCase]
) -> MapView | None:
    """The map, or None when there is nothing to place (no outline and no located case)."""
    corners = list(outline or ())
    positions = [(c.latitude, c.longitude) for c in cases]
    everything = corners + positions
    if not everything:
        return None
    south = min(lat for lat, _ in everything)
    north = max(lat for lat, _ in everything)
    west = min(lon for _, lon in everything)
    east = max(lon for _, lon in everything)
    if north - south < MIN_SPAN:
        south, north = south - MIN_SPAN / 2, north + MIN_SPAN / 2
    if east - west < MIN_SPAN:
        west, east = west - MIN_SPAN / 2, east + MIN_SPAN / 2
    pad_lat, pad_lon = (north - south) * PADDING, (east - west) * PADDING
    south, north, west, east = south - pad_lat, north + pad_lat, west - pad_lon, east + pad_lon
    squeeze = math.cos(math.radians((north + south) / 2))
    span_x, span_y = (east - west) * squeeze, north - south
    scale = WIDTH / span_x
    height = span_y * scale
    if height > MAX_HEIGHT:  # a tall district: keep the page short, narrow the drawing
        scale = MAX_HEIGHT / span_y
        height = MAX_HEIGHT
    height = max(height, MIN_HEIGHT)
    width = span_x * scale
    offset_y = (height - span_y * scale) / 2

    def place(lat: float, lon: float) -> tuple[float, float]:
        return (
            round((lon - west) * squeeze * scale, 1),
            round((north - lat) * scale + offset_y, 1),
        )

    drawn = " ".join(f"{x},{y}" for x, y in (place(lat, lon) for lat, lon in corners))
    dots = [Dot(*place(c.latitude, c.longitude), case=c) for c in cases]
    return MapView(round(width, 1), round(height, 1), drawn or None, dots)
