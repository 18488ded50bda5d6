"""The standard-library PNG line charts of benchmarks/plot.py, read back pixel by pixel.

The charts are decoded by a small PNG reader written here (chunks, CRCs, zlib, scanlines), not
by the writer's own code, so an encoding mistake cannot cancel itself out. Where a point must
appear comes from the module's layout (`plot._layout(...).pixel`); the layout itself is also
checked against the image (the axes are where it says) and against plain arithmetic (a log2
axis spaces 1, 2, 4, 8 evenly).
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from benchmarks import plot

ROOT = Path(__file__).resolve().parent.parent
WHITE = b"\xff\xff\xff"

Series = Mapping[str, Sequence[tuple[float, float]]]


class Options(TypedDict, total=False):
    """The optional keyword arguments of write_line_plot (and of plot._layout)."""

    x_log2: bool
    x_tick_labels: Mapping[float, str] | None
    width: int
    height: int


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    rows: tuple[bytes, ...]  # RGB, three bytes a pixel, filter bytes removed

    def at(self, x: int, y: int) -> bytes:
        return self.rows[y][3 * x : 3 * x + 3]

    def where(self, color: bytes) -> list[tuple[int, int]]:
        """Every (x, y) whose pixel has exactly this colour."""
        found = []
        for y, row in enumerate(self.rows):
            index = row.find(color)
            while index != -1:
                if index % 3 == 0:  # a match straddling two pixels is no pixel
                    found.append((index // 3, y))
                index = row.find(color, index + 1)
        return found


def read_png(path: Path) -> Image:
    """Decode an 8-bit RGB, non-interlaced PNG whose scanlines all use filter 0."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    chunks: list[tuple[bytes, bytes]] = []
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert len(body) == length, f"{kind!r} chunk is cut short"
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC on the {kind!r} chunk"
        chunks.append((kind, body))
        position += 12 + length
    assert position == len(data), "bytes after the last chunk"
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    assert chunks[-1][1] == b""
    assert set(kinds) == {b"IHDR", b"IDAT", b"IEND"}
    assert kinds.count(b"IHDR") == 1
    assert kinds.count(b"IEND") == 1
    width, height, depth, color_type, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, color_type, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0, f"scanline {y} uses filter {line[0]}, not 0"
        rows.append(line[1:])
    return Image(width, height, tuple(rows))


def block(image: Image, x: int, y: int, radius: int) -> set[bytes]:
    """The colours in the square of side 2 * radius + 1 centred on (x, y)."""
    return {
        image.at(column, row)
        for row in range(y - radius, y + radius + 1)
        for column in range(x - radius, x + radius + 1)
    }


# Three series kept well apart, points deliberately out of x order, one with a single point.
SERIES: Series = {
    "zigzag": [(64, 20.0), (1, 10.0), (8, 40.0)],
    "high": [(2, 80.0), (32, 95.0)],
    "alone": [(16, 50.0)],
}
TICKS: Mapping[float, str] = {1: "1 MiB", 8: "8 MiB", 64: "64 MiB"}


def _with_defaults(options: Options) -> Options:
    # Not the default size: the tests must not depend on what the defaults happen to be.
    arguments: Options = {"x_tick_labels": TICKS, "width": 720, "height": 480}
    arguments.update(options)
    return arguments


def draw(path: Path, series: Series = SERIES, **options: Unpack[Options]) -> Image:
    """Write a chart (with the test defaults for what options leave out) and decode it."""
    plot.write_line_plot(
        path,
        series,
        title="Throughput by chunk size",
        x_label="chunk size",
        y_label="MB/s",
        **_with_defaults(options),
    )
    return read_png(path)


def layout_for(series: Series = SERIES, **options: Unpack[Options]) -> plot._Layout:
    """The layout of the chart that draw() with the same arguments writes."""
    return plot._layout(series, **_with_defaults(options))


def test_the_file_is_a_well_formed_png_of_the_requested_size(tmp_path: Path) -> None:
    # Not the default size, and not square: a swapped width and height would show.
    image = draw(tmp_path / "chart.png", width=700, height=450)
    assert (image.width, image.height) == (700, 450)
    assert image.at(0, 0) == WHITE
    assert image.at(699, 449) == WHITE
    colours = {image.at(x, y) for y in range(0, 450, 3) for x in range(0, 700, 3)}
    assert len(colours) > 5  # not a blank page


def test_every_point_has_a_marker_of_its_series_colour_where_the_layout_puts_it(
    tmp_path: Path,
) -> None:
    image = draw(tmp_path / "chart.png")
    layout = layout_for()
    for index, points in enumerate(SERIES.values()):
        colour = plot._PALETTE[index]
        for x, y in points:
            column, row = layout.pixel(x, y)
            assert layout.left < column < layout.right
            assert layout.top < row < layout.bottom
            # The 7 x 7 marker covers at least the 5 x 5 square around its centre.
            assert block(image, column, row, 2) == {colour}, (index, x, y)


def test_points_are_joined_in_x_order(tmp_path: Path) -> None:
    image = draw(tmp_path / "chart.png")
    layout = layout_for()
    colour = plot._PALETTE[0]
    ordered = sorted(SERIES["zigzag"])
    for (x0, y0), (x1, y1) in pairwise(ordered):
        (c0, r0), (c1, r1) = layout.pixel(x0, y0), layout.pixel(x1, y1)
        assert colour in block(image, (c0 + c1) // 2, (r0 + r1) // 2, 1)
    # Given as 64, 1, 8: joined in that order, a segment would run from 64 back to 1. Halfway
    # between 8 and 64 (log2 4.5) it would pass y = 17.5; the x-order line passes y = 30.
    column = layout.column(4.5)
    assert colour in block(image, column, layout.row(30.0), 1)
    assert colour not in block(image, column, layout.row(17.5), 3)


def test_the_layout_agrees_with_the_drawn_axes(tmp_path: Path) -> None:
    image = draw(tmp_path / "chart.png")
    layout = layout_for()
    axis = image.at(layout.left, (layout.top + layout.bottom) // 2)
    assert axis != WHITE
    assert all(image.at(layout.left, y) == axis for y in range(layout.top, layout.bottom + 1))
    assert all(image.at(x, layout.bottom) == axis for x in range(layout.left, layout.right + 1))
    # y = 0 lies on the x axis; every point lies right of the y axis and above the x axis.
    assert layout.pixel(1, 0.0)[1] == layout.bottom
    for points in SERIES.values():
        for x, y in points:
            column, row = layout.pixel(x, y)
            assert layout.left < column < layout.right
            assert layout.top < row < layout.bottom


def test_a_log2_axis_spaces_powers_of_two_evenly_and_a_linear_one_does_not() -> None:
    points = {"s": [(1.0, 1.0), (2.0, 1.0), (4.0, 1.0), (8.0, 1.0)]}
    for x_log2 in (True, False):
        layout = plot._layout(points, x_log2=x_log2)
        columns = [layout.pixel(x, 1.0)[0] for x, _ in points["s"]]
        gaps = [b - a for a, b in pairwise(columns)]
        assert all(gap > 0 for gap in gaps)
        if x_log2:
            assert max(gaps) - min(gaps) <= 1, gaps
        else:
            assert gaps[2] >= 3 * gaps[0], gaps  # 4 -> 8 is four times 1 -> 2


def test_the_y_axis_runs_from_zero_to_a_round_value_above_the_largest() -> None:
    for largest in (0.37, 9.0, 95.0, 100.0, 1290.0, 123456.0):
        layout = plot._layout({"s": [(1, largest / 3), (2, largest)]})
        values = [tick.position for tick in layout.y_ticks]
        step = values[1] - values[0]
        assert values[0] == 0.0
        assert layout.y_low == 0.0
        assert math.isclose(values[-1], layout.y_high)
        assert largest < layout.y_high <= largest + step + 1e-9
        assert all(math.isclose(b - a, step) for a, b in pairwise(values))
        mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
        assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), step
        assert 3 <= len(values) <= 9
        assert [float(tick.label) for tick in layout.y_ticks] == pytest.approx(values)


def test_a_lone_point_gets_a_full_marker(tmp_path: Path) -> None:
    series = {"only": [(5.0, 3.0)]}
    image = draw(tmp_path / "chart.png", series, x_tick_labels=None)
    column, row = layout_for(series, x_tick_labels=None).pixel(5.0, 3.0)
    assert block(image, column, row, 3) == {plot._PALETTE[0]}
    # Nothing else of that colour in the plot: there is no line to draw.
    layout = layout_for(series, x_tick_labels=None)
    in_plot = [
        (x, y)
        for x, y in image.where(plot._PALETTE[0])
        if layout.left <= x <= layout.right and layout.top <= y <= layout.bottom
    ]
    assert len(in_plot) == 49


def test_ten_series_get_ten_distinct_colours_in_plot_and_legend(tmp_path: Path) -> None:
    series = {f"series {i}": [(1.0, 10.0 * i + 5), (4.0, 10.0 * i + 8)] for i in range(10)}
    image = draw(tmp_path / "chart.png", series, x_tick_labels=None, width=960, height=600)
    layout = layout_for(series, x_tick_labels=None, width=960, height=600)
    assert len(set(plot._PALETTE)) == 10
    for index in range(10):
        found = image.where(plot._PALETTE[index])
        in_plot = [(x, y) for x, y in found if layout.top <= y <= layout.bottom]
        in_legend = [(x, y) for x, y in found if y < layout.top]
        assert len(in_plot) > 50, index  # a line and two markers
        assert in_legend, index
        entry = layout.legend[index]
        assert any(entry.left <= x and entry.top <= y < entry.top + 30 for x, y in in_legend)


def test_text_is_drawn_for_title_ticks_and_labels(tmp_path: Path) -> None:
    image = draw(tmp_path / "chart.png")
    layout = layout_for()
    text = plot._TEXT
    found = image.where(text)
    title_bottom = layout.legend[0].top
    assert any(y < title_bottom for _, y in found), "no title"
    assert any(x < layout.left - 5 and layout.top <= y <= layout.bottom for x, y in found)
    assert any(y > layout.bottom + 5 for _, y in found), "no x tick labels or x label"
    # The y axis label reads upwards in the leftmost strip (a padding of 6 font pixels, then
    # the glyphs' 9 rows lying on their side), left of the tick numbers.
    strip = (6 + 9) * layout.scale
    assert any(x < strip and layout.top <= y <= layout.bottom for x, y in found), "no y label"
    assert not any(x < strip and y < layout.top for x, y in found)


def test_the_font_covers_printable_ascii_with_distinct_glyphs() -> None:
    glyphs = {chr(code): frozenset(plot._glyph_pixels(chr(code))) for code in range(33, 127)}
    assert all(glyphs.values()), [char for char, pixels in glyphs.items() if not pixels]
    assert len(set(glyphs.values())) == len(glyphs)
    assert plot._glyph_pixels(" ") == []
    assert all(0 <= column < 5 and 0 <= row < 9 for p in glyphs.values() for column, row in p)
    # Descenders hang below the baseline; capitals do not.
    assert any(row > 6 for _, row in glyphs["g"])
    assert all(row <= 6 for _, row in glyphs["E"])
    assert plot._glyph_pixels("\u00b5")  # outside ASCII: a box, not nothing


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


def test_zero_and_negative_values_are_fine_on_a_linear_axis(tmp_path: Path) -> None:
    series = {"a": [(-3.0, -2.0), (0.0, 0.0), (5.0, 4.0)]}
    image = draw(tmp_path / "chart.png", series, x_tick_labels=None, x_log2=False)
    layout = layout_for(series, x_tick_labels=None, x_log2=False)
    assert layout.y_low < -2.0
    for x, y in series["a"]:
        assert block(image, *layout.pixel(x, y), 2) == {plot._PALETTE[0]}


def test_too_many_legend_rows_for_the_height_is_a_value_error(tmp_path: Path) -> None:
    # At 400 x 200 each of these labels needs a legend row of its own: 40 rows do not fit.
    series = {f"a rather long series label number {i}": [(1.0, 1.0)] for i in range(40)}
    path = tmp_path / "chart.png"
    with pytest.raises(ValueError, match="too small"):
        plot.write_line_plot(
            path, series, title="t", x_label="x", y_label="y", width=400, height=200
        )
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
    image = read_png(path)
    assert (image.width, image.height) == (960, 600)
    for colour in plot._PALETTE[:4]:  # the demo's four series
        assert image.where(colour)
    assert not image.where(plot._PALETTE[4])
