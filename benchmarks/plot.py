"""Line charts as PNG files, drawn by matplotlib's Agg renderer (no display needed).

    python -m benchmarks.plot --demo out.png

The harness writes one: throughput against chunk size, a line per client and checksum.
matplotlib is the ``bench`` extra (``pip install -e '.[bench]'``), not a dependency of tuspipe;
without it the harness leaves the chart out and says why.

:func:`line_chart` builds the figure and :func:`write_line_plot` saves it; the tests draw the
same figure to know where each point must appear in the image.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator, ScalarFormatter

__all__ = ["line_chart", "write_line_plot"]

Series = Mapping[str, Sequence[tuple[float, float]]]

DPI = 100  # pixels per inch: the figure's size in inches is its size in pixels / 100
_MIN_WIDTH, _MIN_HEIGHT = 200, 150
_MAX_SIDE = 10_000  # a 10000 x 10000 image is already 300 MB raw; more is surely a mistake
# Past the ten colours of the palette, series differ by their marker too.
_MARKERS = ("s", "D", "^")


def _validate(
    series: Series, x_log2: bool, x_tick_labels: Mapping[float, str] | None, width: int, height: int
) -> None:
    """Raise ValueError, naming the culprit, for arguments no sensible chart can come from.

    matplotlib would draw most of these quietly wrong (a log axis drops x <= 0, NaN leaves a
    gap), so they are refused before anything is drawn.
    """
    if not (_MIN_WIDTH <= width <= _MAX_SIDE and _MIN_HEIGHT <= height <= _MAX_SIDE):
        raise ValueError(
            f"a chart of {width} x {height} pixels cannot be drawn: the width must be "
            f"{_MIN_WIDTH}..{_MAX_SIDE} and the height {_MIN_HEIGHT}..{_MAX_SIDE}"
        )
    if not series:
        raise ValueError("there is nothing to plot: no series given")
    xs = [(x, f"an x value of series {label!r}") for label, p in series.items() for x, _ in p]
    xs += [(x, "an x_tick_labels position") for x in x_tick_labels or {}]
    for label, points in series.items():
        if len(points) == 0:
            raise ValueError(f"series {label!r} has no points")
        for _, y in points:
            if not math.isfinite(y):
                raise ValueError(f"a y value of series {label!r} is not a finite number: {y!r}")
    for x, what in xs:
        if not math.isfinite(x):
            raise ValueError(f"{what} is not a finite number: {x!r}")
        if x_log2 and x <= 0:
            raise ValueError(
                f"{what} is {x!r}, which a log2 axis cannot show "
                "(x must be > 0; pass x_log2=False for a linear axis)"
            )


def line_chart(
    series: Series,
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_log2: bool = True,
    x_tick_labels: Mapping[float, str] | None = None,
    width: int = 960,
    height: int = 600,
) -> Figure:
    """The chart as a matplotlib figure of width x height pixels at :data:`DPI`.

    series maps each legend label to its (x, y) points; each series gets a line of its own
    colour (matplotlib's ten, then again with another marker) with a marker on every point,
    joined in x order. The y axis starts at 0 (lower for negative values). With x_log2 the x
    axis is logarithmic, base 2; x_tick_labels replaces the x ticks by ticks at the given x
    values with the given texts (the axis extends to show them all).

    Raises ValueError if there is no series, a series has no points, a value is not finite, an
    x value (or tick) is <= 0 on a log2 axis, or the size is out of 200x150..10000x10000.
    """
    _validate(series, x_log2, x_tick_labels, width, height)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: the figure renders with Agg, never a display
    axes = figure.add_subplot()
    for index, (label, points) in enumerate(series.items()):
        xs, ys = zip(*sorted(points, key=lambda point: point[0]), strict=True)
        axes.plot(
            xs,
            ys,
            color=f"C{index % 10}",  # matplotlib's default cycle, Tableau's ten
            marker=_MARKERS[index // 10 % len(_MARKERS)],
            markersize=5,
            linewidth=1.5,
            label=label,
        )
    if x_log2:
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(ScalarFormatter())  # 8, not 2^3
        axes.xaxis.set_minor_locator(NullLocator())
    if x_tick_labels:
        positions = sorted(x_tick_labels)
        axes.set_xticks(positions, labels=[x_tick_labels[x] for x in positions])
    lowest = min(y for points in series.values() for _, y in points)
    if lowest >= 0:
        axes.set_ylim(bottom=0)
    axes.grid(True, color="#e3e3e3")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    figure.suptitle(title, fontweight="bold")
    # Above the plot, under the title: beside it, the legend would take width from the data.
    axes.legend(
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(series), 5), frameon=False
    )
    return figure


def write_line_plot(
    path: str | os.PathLike[str],
    series: Series,
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_log2: bool = True,
    x_tick_labels: Mapping[float, str] | None = None,
    width: int = 960,
    height: int = 600,
) -> None:
    """Write :func:`line_chart` of the same arguments to path as a PNG of width x height.

    Raises ValueError as line_chart does, before the file is touched.
    """
    figure = line_chart(
        series,
        title=title,
        x_label=x_label,
        y_label=y_label,
        x_log2=x_log2,
        x_tick_labels=x_tick_labels,
        width=width,
        height=height,
    )
    figure.savefig(os.fspath(path), format="png", dpi=DPI)


def main(argv: Sequence[str] | None = None) -> int:
    """``--demo PNG``: a chart shaped like the harness's, with made-up numbers, to look at."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plot",
        description="Line charts as PNG files; --demo writes a sample chart to look at.",
    )
    parser.add_argument(
        "--demo", metavar="PNG", required=True, help="write a demo chart to this file"
    )
    args = parser.parse_args(argv)
    write_line_plot(
        args.demo,
        {
            "tuspipe": [(1, 410.0), (8, 905.5), (64, 1130.0), (1024, 1162.0)],
            "tuspipe, sha1 checksums": [(1, 350.0), (8, 640.0), (64, 702.0), (1024, 715.0)],
            "tuspy 1.1.0": [(1, 95.0), (8, 310.0), (64, 402.0), (1024, 388.0)],
            "curl, one PUT (reference)": [(1024, 1290.0)],
        },
        title="Upload throughput by chunk size (1 GiB file, local sink) - demo data",
        x_label="chunk size (log2 scale)",
        y_label="throughput (MB/s)",
        x_tick_labels={1: "1 MiB", 8: "8 MiB", 64: "64 MiB", 1024: "whole file"},
    )
    print(f"wrote {args.demo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
