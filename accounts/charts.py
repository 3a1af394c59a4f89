"""Bar charts drawn on the server as inline SVG: no script, no CDN, readable without JavaScript.

``stacked_bars`` computes the geometry; ``accounts/charts/bars.html`` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
OUTCOME_COLOURS = {"ok": "#009E73", "rejected": "#E69F00", "failed": "#D55E00", "cancelled": "#999999"}


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass
class Tick:
    position: float
    label: str


@dataclass
class BarChart:
    title: str
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    plot_left: int
    rects: list[Rect] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.rects


def human(value: float) -> str:
    """1234 -> 1.2k, 5_600_000 -> 5.6M; percentages are formatted by the caller."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}"


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_bars(
    title: str,
    labels: list[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    width: int = 720,
    height: int = 200,
    value_format=human,
) -> BarChart:
    """One bar per label, each made of the series' values stacked bottom-up.

    ``series`` is ``[(name, colour, values)]`` with one value per label.
    """
    left, right, top, bottom = 48, 8, 8, 24
    chart = BarChart(title, width, height, plot_top=top, plot_bottom=height - bottom, plot_left=left)
    chart.legend = [(name, colour) for name, colour, values in series if any(values)]
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    ceiling = _nice_ceiling(max(totals, default=0))
    plot_height = height - top - bottom
    slot = (width - left - right) / max(len(labels), 1)
    bar_width = max(slot * 0.75, 1)
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_width) / 2
        base: float = height - bottom
        for name, colour, values in series:
            value = values[i]
            if value <= 0:
                continue
            h = value / ceiling * plot_height
            base -= h
            title = f"{label} · {name}: {value_format(value)}"
            chart.rects.append(Rect(round(x, 1), round(base, 1), round(bar_width, 1), round(h, 1), colour, title))
    every = max(1, math.ceil(len(labels) / 10))
    chart.x_ticks = [
        Tick(round(left + i * slot + slot / 2, 1), label) for i, label in enumerate(labels) if i % every == 0
    ]
    chart.y_ticks = [
        Tick(round(height - bottom - plot_height * fraction, 1), value_format(ceiling * fraction))
        for fraction in (0, 0.5, 1)
    ]
    return chart
