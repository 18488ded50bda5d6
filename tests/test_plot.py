"""The matplotlib line charts of benchmarks/plot.py, read back from the PNG files they write.

Where a point or a text must appear comes from the figure itself (`plot.line_chart`, the
figure `write_line_plot` saves): its data-to-pixel transform and its texts' extents. The PNG
is decoded by matplotlib's image reader and looked at pixel by pixel there; its header is read
by hand (signature, IHDR size), so the file is a real PNG of the requested size.
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np
import numpy.typing as npt
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from benchmarks import plot

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Series = Mapping[str, Sequence[tuple[float, float]]]
Image = npt.NDArray[np.float32]  # rows top first, RGB(A) in 0..1


class Options(TypedDict, total=False):
    """The optional keyword arguments of write_line_plot (and of plot.line_chart)."""

    x_log2: bool
    x_tick_labels: Mapping[float, str] | None
    width: int
    height: int


# Three series kept well apart, points deliberately out of x order, one with a single point.
SERIES: Series = {
    "zigzag": [(64, 20.0), (1, 10.0), (8, 40.0)],
    "high": [(2, 80.0), (32, 95.0)],
    "alone": [(16, 50.0)],
}
TICKS: Mapping[float, str] = {1: "1 MiB", 8: "8 MiB", 64: "64 MiB"}
TEXTS = {"title": "Throughput by chunk size", "x_label": "chunk size", "y_label": "MB/s"}


def _with_defaults(options: Options) -> Options:
    # Not the default size: the tests must not depend on what the defaults happen to be.
    arguments: Options = {"x_tick_labels": TICKS, "width": 720, "height": 480}
    arguments.update(options)
    return arguments


def draw(path: Path, series: Series = SERIES, **options: Unpack[Options]) -> Image:
    """Write a chart (with the test defaults for what options leave out) and decode it."""
    plot.write_line_plot(path, series, **TEXTS, **_with_defaults(options))
    image: Image = imread(path)
    return image


def laid_out(series: Series = SERIES, **options: Unpack[Options]) -> tuple[Figure, Axes]:
    """The figure that draw() with the same arguments saves, laid out as when saved."""
    figure = plot.line_chart(series, **TEXTS, **_with_defaults(options))
    # Drawing runs the constrained layout, as saving does; window extents are the drawn ones.
    figure.canvas.draw()
    return figure, figure.axes[0]


def pixel(image: Image, axes: Axes, x: float, y: float) -> tuple[int, int]:
    """The (column, row) of the image where the data point (x, y) lies."""
    column, up = axes.transData.transform((x, y))
    return int(column), image.shape[0] - 1 - int(up)  # display y counts from the bottom


def matches(image: Image, colour: str) -> npt.NDArray[np.bool_]:
    """Which pixels have this colour (up to rounding and antialiasing at the edges)."""
    found: npt.NDArray[np.bool_] = np.all(
        np.abs(image[..., :3] - np.array(to_rgb(colour))) < 0.02, axis=-1
    )
    return found


def block(mask: npt.NDArray[np.bool_], column: int, row: int, radius: int) -> npt.NDArray[np.bool_]:
    """The part of the mask in the square of side 2 * radius + 1 centred on (column, row)."""
    return mask[row - radius : row + radius + 1, column - radius : column + radius + 1]


def inside(mask: npt.NDArray[np.bool_], box: Bbox) -> int:
    """How many pixels of the mask lie in the box (display coordinates, from the bottom)."""
    height = mask.shape[0]
    rows = slice(max(height - int(box.y1), 0), height - int(box.y0))
    return int(mask[rows, max(int(box.x0), 0) : int(box.x1) + 1].sum())


def the_text(figure: Figure, content: str) -> Text:
    """The one text artist of the figure that reads content."""
    found = figure.findobj(lambda artist: isinstance(artist, Text) and artist.get_text() == content)
    assert len(found) == 1, found
    assert isinstance(found[0], Text)
    return found[0]


def series_colours(axes: Axes) -> list[str]:
    return [str(line.get_color()) for line in axes.get_lines()]


def test_the_file_is_a_png_of_the_requested_size(tmp_path: Path) -> None:
    # Not the default size, and not square: a swapped width and height would show.
    path = tmp_path / "chart.png"
    image = draw(path, width=700, height=450)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (700, 450)
    assert image.shape[:2] == (450, 700)
    white = matches(image, "white")
    assert white[0, 0]
    assert white[449, 699]
    colours = {
        tuple(np.round(image[y, x, :3], 2)) for y in range(0, 450, 3) for x in range(0, 700, 3)
    }
    assert len(colours) > 5  # not a blank page


def test_every_point_has_a_marker_of_its_series_colour_where_the_axes_put_it(
    tmp_path: Path,
) -> None:
    image = draw(tmp_path / "chart.png")
    _, axes = laid_out()
    colours = series_colours(axes)
    assert len(set(colours)) == len(SERIES)
    for colour, (label, points) in zip(colours, SERIES.items(), strict=True):
        mask = matches(image, colour)
        for x, y in points:
            # A 5-point marker is about 7 x 7 pixels: its 3 x 3 centre is all its colour.
            assert block(mask, *pixel(image, axes, x, y), 1).all(), (label, x, y)


def test_points_are_joined_in_x_order(tmp_path: Path) -> None:
    image = draw(tmp_path / "chart.png")
    _, axes = laid_out()
    mask = matches(image, series_colours(axes)[0])
    for (x0, y0), (x1, y1) in pairwise(sorted(SERIES["zigzag"])):
        (c0, r0), (c1, r1) = pixel(image, axes, x0, y0), pixel(image, axes, x1, y1)
        assert block(mask, (c0 + c1) // 2, (r0 + r1) // 2, 1).any()
    # Given as 64, 1, 8: joined in that order, a segment would run from 64 back to 1. Halfway
    # between 8 and 64 (log2 4.5) it would pass y = 17.5; the x-order line passes y = 30.
    assert block(mask, *pixel(image, axes, 2**4.5, 30.0), 1).any()
    assert not block(mask, *pixel(image, axes, 2**4.5, 17.5), 3).any()


def test_a_lone_point_gets_a_marker_and_no_line(tmp_path: Path) -> None:
    series = {"only": [(5.0, 3.0)]}
    image = draw(tmp_path / "chart.png", series, x_tick_labels=None)
    _, axes = laid_out(series, x_tick_labels=None)
    mask = matches(image, series_colours(axes)[0])
    assert block(mask, *pixel(image, axes, 5.0, 3.0), 2).all()
    # About 7 x 7 pixels in the plot; a line across it would be hundreds.
    assert 25 <= inside(mask, axes.get_window_extent()) <= 81


def test_ten_colours_then_other_markers_in_plot_and_legend(tmp_path: Path) -> None:
    series = {f"s{i}": [(1.0, 10.0 * i + 5), (4.0, 10.0 * i + 8)] for i in range(12)}
    image = draw(tmp_path / "chart.png", series, x_tick_labels=None, width=960, height=600)
    _, axes = laid_out(series, x_tick_labels=None, width=960, height=600)
    lines = axes.get_lines()
    colours = series_colours(axes)
    assert len(set(colours[:10])) == 10
    # Past ten the colours repeat; the marker tells the series apart.
    assert colours[10] == colours[0]
    assert lines[10].get_marker() != lines[0].get_marker()
    legend = axes.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == list(series)
    plot_box = axes.get_window_extent()
    legend_box = legend.get_window_extent()
    for index, colour in enumerate(colours[:10]):
        mask = matches(image, colour)
        assert inside(mask, plot_box) > 50, index  # a line and two markers
        assert inside(mask, legend_box) > 10, index  # its sample line and marker


def test_the_x_ticks_are_the_given_ones_and_the_axis_reaches_them() -> None:
    ticks = {**TICKS, 1024: "whole"}  # beyond every point: the axis must extend to show it
    _, axes = laid_out(x_tick_labels=ticks)
    assert list(axes.get_xticks()) == sorted(ticks)
    assert [label.get_text() for label in axes.get_xticklabels()] == list(ticks.values())
    low, high = axes.get_xlim()
    assert low <= 1
    assert high >= 1024


def test_a_log2_axis_spaces_powers_of_two_evenly_and_a_linear_one_does_not() -> None:
    points = {"s": [(1.0, 1.0), (2.0, 1.0), (4.0, 1.0), (8.0, 1.0)]}
    for x_log2 in (True, False):
        _, axes = laid_out(points, x_log2=x_log2, x_tick_labels=None)
        columns = [axes.transData.transform((x, 1.0))[0] for x, _ in points["s"]]
        gaps = [b - a for a, b in pairwise(columns)]
        assert all(gap > 0 for gap in gaps)
        if x_log2:
            assert max(gaps) - min(gaps) < 0.5, gaps
        else:
            assert gaps[2] == pytest.approx(4 * gaps[0]), gaps  # 4 -> 8 is four times 1 -> 2


def test_the_y_axis_starts_at_zero_and_shows_the_largest() -> None:
    for largest in (0.37, 9.0, 95.0, 1290.0, 123456.0):
        _, axes = laid_out({"s": [(1, largest / 3), (2, largest)]}, x_tick_labels=None)
        low, high = axes.get_ylim()
        assert low == 0.0
        assert largest < high <= 1.5 * largest
    _, axes = laid_out({"s": [(-3.0, -2.0), (0.0, 0.0), (5.0, 4.0)]}, x_log2=False)
    low, high = axes.get_ylim()
    assert low < -2.0
    assert high > 4.0


def test_title_labels_and_legend_are_drawn_without_overlapping(tmp_path: Path) -> None:
    image = draw(tmp_path / "chart.png")
    figure, axes = laid_out()
    dark = np.all(image[..., :3] < 0.3, axis=-1)
    legend = axes.get_legend()
    assert legend is not None
    title, x_label, y_label = figure.get_suptitle(), axes.get_xlabel(), axes.get_ylabel()
    assert (title, x_label, y_label) == tuple(TEXTS.values())
    texts = {
        "title": the_text(figure, title),
        "x label": axes.xaxis.label,
        "y label": axes.yaxis.label,
        **{f"legend {t.get_text()}": t for t in legend.get_texts()},
    }
    boxes = {name: text.get_window_extent() for name, text in texts.items()}
    for name, box in boxes.items():
        assert inside(dark, box) > 10, f"no {name} drawn where the figure puts it"
    figure_box = figure.bbox
    plot_box = axes.get_window_extent()
    legend_box = legend.get_window_extent()
    for box in (*boxes.values(), legend_box, plot_box):
        assert figure_box.x0 <= box.x0
        assert box.x1 <= figure_box.x1
        assert figure_box.y0 <= box.y0
        assert box.y1 <= figure_box.y1
    # Top down: the title, the legend, the plot.
    assert boxes["title"].y0 >= legend_box.y1
    assert legend_box.y0 >= plot_box.y1 - 1
    assert boxes["x label"].y1 < plot_box.y0
    assert boxes["y label"].x1 < plot_box.x0


@pytest.mark.parametrize(
    ("series", "options", "message"),
    [
        ({}, {}, "no series"),
        ({"a": []}, {}, "'a' has no points"),
        ({"a": [(0.0, 1.0)]}, {}, "log2"),
        ({"a": [(-2.0, 1.0)]}, {}, "log2"),
        ({"a": [(1.0, math.nan)]}, {}, "not a finite number"),
        ({"a": [(math.inf, 1.0)]}, {"x_log2": False}, "not a finite number"),
        ({"a": [(1.0, -math.inf)]}, {}, "not a finite number"),
        ({"a": [(1.0, 1.0)]}, {"x_tick_labels": {0.0: "zero"}}, "log2"),
        ({"a": [(1.0, 1.0)]}, {"x_tick_labels": {math.nan: "?"}}, "not a finite number"),
        ({"a": [(1.0, 1.0)]}, {"width": 100}, "100 x 600"),
        ({"a": [(1.0, 1.0)]}, {"height": 20}, "960 x 20"),
        ({"a": [(1.0, 1.0)]}, {"width": 0, "height": 0}, "0 x 0"),
        ({"a": [(1.0, 1.0)]}, {"width": 100_000}, "width must be"),
    ],
)
def test_bad_arguments_raise_value_error_and_write_nothing(
    tmp_path: Path, series: Series, options: Options, message: str
) -> None:
    path = tmp_path / "chart.png"
    with pytest.raises(ValueError, match=message):
        plot.write_line_plot(path, series, title="t", x_label="x", y_label="y", **options)
    assert not path.exists()


def test_demo_command_writes_a_chart(tmp_path: Path) -> None:
    path = tmp_path / "demo.png"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.plot", "--demo", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    image: Image = imread(path)
    assert image.shape[:2] == (600, 960)
    for colour in ("C0", "C1", "C2", "C3"):  # the demo's four series
        assert matches(image, colour).sum() > 10, colour
    assert not matches(image, "C4").any()
