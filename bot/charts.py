"""The chart of the weekly and monthly reports, drawn with matplotlib into a PNG: the three
rates per department (bars, league order) and the district's three rates over the last weeks
(lines). Names arrive translated (:class:`bot.services.reports.ChartData`); Chinese needs a
CJK font, looked up among the usual ones (Debian's ``fonts-wqy-microhei`` or
``fonts-noto-cjk``), with glyph fallback so Latin text keeps the default font.

matplotlib is imported on first use: only the report job needs it.
"""

from __future__ import annotations

import io
import logging
import threading
from functools import cache
from typing import Any

from bot.services.reports import ChartData

logger = logging.getLogger(__name__)

CJK_FONTS = (
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Droid Sans Fallback",
    "SimHei",
    "Microsoft YaHei",
)
COLOURS = ("#1f6feb", "#2da44e", "#d4a72c")
_LOCK = threading.Lock()  # pyplot's state is global


@cache
def _setup() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    installed = {font.name for font in font_manager.fontManager.ttflist}
    cjk = [name for name in CJK_FONTS if name in installed]
    if not cjk:
        logger.warning("chart.no_cjk_font")
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", *cjk]
    matplotlib.rcParams["axes.unicode_minus"] = False
    return plt


def cjk_font_available() -> bool:
    from matplotlib import font_manager

    _setup()
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return any(name in installed for name in CJK_FONTS)


def draw_report_chart(lang: str, data: ChartData) -> bytes:
    """The chart as PNG bytes (about 1000×760 pixels)."""
    plt = _setup()
    with _LOCK:
        figure, (bars, trend) = plt.subplots(
            2, 1, figsize=(10, 7.6), dpi=100, gridspec_kw={"height_ratios": [3, 2]}
        )
        try:
            figure.suptitle(data.title, fontsize=15)
            _bars(bars, data)
            _trend(trend, data)
            figure.tight_layout(rect=(0, 0, 1, 0.96))
            out = io.BytesIO()
            figure.savefig(out, format="png")
        finally:
            plt.close(figure)
    return out.getvalue()


def _percent(value: float | None) -> float:
    return 0.0 if value is None else value * 100


def _bars(axes: Any, data: ChartData) -> None:
    axes.set_title(data.by_department, loc="left", fontsize=12)
    if not data.departments:
        axes.text(0.5, 0.5, data.empty, ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    names = [name for name, _rates in data.departments]
    count = len(names)
    width = 0.8 / 3
    for i, label in enumerate(data.rate_names):
        positions = [k + (i - 1) * width for k in range(count)]
        values = [_percent(rates[i]) for _name, rates in data.departments]
        axes.barh(positions, values, height=width, label=label, color=COLOURS[i])
    axes.set_yticks(range(count), names)
    axes.invert_yaxis()  # the league's first at the top
    axes.set_xlim(0, 100)
    axes.xaxis.set_major_formatter("{x:.0f}%")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="best", fontsize=9)


def _trend(axes: Any, data: ChartData) -> None:
    axes.set_title(data.trend_title, loc="left", fontsize=12)
    labels = [label for label, _rates in data.trend]
    for i, label in enumerate(data.rate_names):
        # A week without cases has no rate: a gap in the line, not a fall to 0.
        values = [
            float("nan") if rates[i] is None else rates[i] * 100  # type: ignore[operator]
            for _label, rates in data.trend
        ]
        axes.plot(labels, values, marker="o", label=label, color=COLOURS[i])
    axes.set_ylim(0, 105)
    axes.yaxis.set_major_formatter("{x:.0f}%")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=9)
