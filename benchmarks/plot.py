"""Line charts as PNG files, with nothing but the standard library.

    python -m benchmarks.plot --demo out.png

The benchmarks print tables; a chart of throughput against chunk size says more at a glance.
tuspipe must not grow dependencies for that (no matplotlib, no Pillow), so this module draws
into an RGB raster itself (a 5x7 bitmap font, Bresenham lines, filled markers) and encodes the
raster as a PNG with :mod:`zlib` and :mod:`struct`. The result is plain but readable: axes with
ticks and numbers, a light grid, one coloured polyline per series, a legend and a title.

Only :func:`write_line_plot` is public. :func:`_layout` decides where everything goes, including
the mapping from data to pixels (:meth:`_Layout.pixel`); the tests call it to know where a
data point must appear.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

__all__ = ["write_line_plot"]

_Color = bytes
"""Three bytes, red, green, blue: the raster's own pixel format, so a fill is a slice copy."""

# Tableau's ten categorical colours: distinct from each other and from the greys used for
# text, axes and grid, so every series stays identifiable (the tests rely on that too).
_PALETTE: tuple[_Color, ...] = tuple(
    bytes.fromhex(code)
    for code in (
        "1f77b4",  # blue
        "ff7f0e",  # orange
        "2ca02c",  # green
        "d62728",  # red
        "9467bd",  # purple
        "8c564b",  # brown
        "e377c2",  # pink
        "7f7f7f",  # grey
        "bcbd22",  # olive
        "17becf",  # cyan
    )
)
_WHITE = b"\xff\xff\xff"
_TEXT = bytes.fromhex("222222")
_AXIS = bytes.fromhex("444444")
_GRID = bytes.fromhex("e3e3e3")

# The font: one glyph per character from " " (32) to "~" (126). A glyph is 5 pixels wide and up
# to 9 rows tall: rows 0-6 hold capitals and digits (the baseline is under row 6), rows 7-8
# hold descenders (g j p q y , _). Each row is one base-32 digit whose 5 bits are the pixels,
# the highest bit leftmost; trailing empty rows are left out. Encoding rows as digits keeps all
# 95 glyphs in a few lines instead of hundreds of lines of ASCII art.
_GLYPHS = (
    "", "4444404", "aaa", "aavavaa", "4fke5u4", "op248j3", "cik8lid", "448", "2488842",
    "8422248", "04lel4", "044v44", "00000c48", "000e", "00000cc", "01248g", "ehjlphe", "4c4444e",
    "eh1248v", "v2421he", "26aiv22", "vgu11he", "68guhhe", "v124888", "ehhehhe", "ehhf12c",
    "0cc0cc", "0cc0c48", "248g842", "00v0v", "8421248", "eh12404", "eh1dlle", "ehhvhhh",
    "uhhuhhu", "ehggghe", "sihhhis", "vgguggv", "vgguggg", "ehgnhhf", "hhhvhhh", "e44444e",
    "72222ic", "hikokih", "ggggggv", "hrllhhh", "hhpljhh", "ehhhhhe", "uhhuggg", "ehhhlid",
    "uhhukih", "fgge11u", "v444444", "hhhhhhe", "hhhhha4", "hhhllla", "hha4ahh", "hha4444",
    "v1248gv", "e88888e", "0g8421", "e22222e", "4ah", "0000000v", "842", "00e1fhf", "ggmphhu",
    "00egghe", "11djhhf", "00ehvge", "698s888", "00fhhjd1e", "ggmphhh", "40c444e", "2062222ic",
    "ggikoki", "c44444e", "00qlllh", "00mphhh", "00ehhhe", "00uhhhugg", "00fhhhf11", "00mpggg",
    "00fge1u", "88s8896", "00hhhjd", "00hhha4", "00hhlla", "00ha4ah", "00hhhhf1e", "00v248v",
    "688g886", "444444444", "c22122c", "008l2",
)  # fmt: skip
_UNKNOWN_GLYPH = "vhhhhhv"  # a hollow box for characters outside ASCII 32..126
_GLYPH_WIDTH = 5
_GLYPH_HEIGHT = 7  # capitals; descenders hang below into the line gap
_ADVANCE = _GLYPH_WIDTH + 1  # one blank column between characters

_MIN_WIDTH, _MIN_HEIGHT = 200, 150
_MAX_SIDE = 10_000  # a 10000 x 10000 raster is already 300 MB; more is surely a mistake
_MIN_PLOT_SIDE = 40  # what must be left for the data once the labels have their room
_MARKER_RADIUS = 3  # a 7 x 7 marker: visible, but small enough not to hide nearby points
_TICK_LENGTH = 5
_SWATCH = 16  # the legend's sample line, in font pixels (so it grows with the text)


def _glyph_pixels(char: str) -> list[tuple[int, int]]:
    """The (column, row) of every lit pixel of one character's glyph."""
    code = ord(char)
    rows = _GLYPHS[code - 32] if 32 <= code <= 126 else _UNKNOWN_GLYPH
    return [
        (column, row)
        for row, digit in enumerate(rows)
        for column in range(_GLYPH_WIDTH)
        if int(digit, 32) >> (_GLYPH_WIDTH - 1 - column) & 1
    ]


def _text_width(text: str, scale: int) -> int:
    """How many pixels wide the text is drawn, from its first lit column to its last."""
    return max(len(text) * _ADVANCE - 1, 0) * scale


def _fit(text: str, max_width: int, scale: int) -> str:
    """The text, shortened with "..." if needed, so that it is at most max_width pixels wide."""
    if _text_width(text, scale) <= max_width:
        return text
    keep = max(max_width // (_ADVANCE * scale) - 3, 0)
    return text[:keep] + "..."


class _Canvas:
    """An RGB raster, top row first, three bytes a pixel; drawing outside it is clipped."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(_WHITE * (width * height))

    def fill_rect(self, left: int, top: int, right: int, bottom: int, color: _Color) -> None:
        """Fill columns left..right and rows top..bottom, both inclusive."""
        left, right = max(left, 0), min(right, self.width - 1)
        top, bottom = max(top, 0), min(bottom, self.height - 1)
        if left > right:
            return
        run = color * (right - left + 1)
        for row in range(top, bottom + 1):
            start = (row * self.width + left) * 3
            self.pixels[start : start + len(run)] = run

    def line(self, x0: int, y0: int, x1: int, y1: int, color: _Color, thickness: int = 2) -> None:
        """A straight line by Bresenham's algorithm, with a square brush for its thickness."""
        # The brush straddles the ideal line (offsets -1..0 for thickness 2), so a thick line
        # stays centred on the points it joins.
        low = -(thickness // 2)
        high = low + thickness - 1
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        step_x = 1 if x0 < x1 else -1
        step_y = 1 if y0 < y1 else -1
        error = dx + dy
        x, y = x0, y0
        while True:
            self.fill_rect(x + low, y + low, x + high, y + high, color)
            if x == x1 and y == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x += step_x
            if doubled <= dx:
                error += dx
                y += step_y

    def marker(self, x: int, y: int, color: _Color, shape: int) -> None:
        """A filled marker centred on (x, y): 0 square, 1 diamond, 2 triangle.

        Shapes other than the square only matter past ten series, when the palette repeats.
        """
        radius = _MARKER_RADIUS
        for offset in range(-radius, radius + 1):
            if shape == 0:
                half = radius
            elif shape == 1:
                half = radius - abs(offset)
            else:
                half = (offset + radius) // 2
            self.fill_rect(x - half, y + offset, x + half, y + offset, color)

    def text(self, left: int, top: int, text: str, color: _Color, scale: int = 1) -> None:
        """Draw text with its top-left corner at (left, top); each font pixel is scale^2."""
        for index, char in enumerate(text):
            origin = left + index * _ADVANCE * scale
            for column, row in _glyph_pixels(char):
                x, y = origin + column * scale, top + row * scale
                self.fill_rect(x, y, x + scale - 1, y + scale - 1, color)

    def text_up(self, left: int, bottom: int, text: str, color: _Color, scale: int = 1) -> None:
        """Draw text turned a quarter left (reading upwards), starting at (left, bottom).

        The glyph's top lies on the left, so descenders hang to the right.
        """
        for index, char in enumerate(text):
            origin = bottom - index * _ADVANCE * scale
            for column, row in _glyph_pixels(char):
                x, y = left + row * scale, origin - column * scale
                self.fill_rect(x, y - scale + 1, x + scale - 1, y, color)

    def png(self) -> bytes:
        """The raster as a PNG file: 8-bit RGB, no interlacing, unfiltered scanlines."""
        stride = self.width * 3
        # Filter type 0 ("None") before each scanline: simplest, and a chart that is mostly
        # flat colour compresses well enough without the smarter filters.
        raw = b"".join(
            b"\x00" + self.pixels[row * stride : (row + 1) * stride] for row in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"".join(
            (
                b"\x89PNG\r\n\x1a\n",
                _chunk(b"IHDR", header),
                _chunk(b"IDAT", zlib.compress(raw, 9)),
                _chunk(b"IEND", b""),
            )
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, and the CRC-32 of type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about count steps in span."""
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * power * (1 + 1e-9):
            return factor * power
    return 10.0 * power  # not reached: raw < 10 * power by the choice of power


def _format_number(value: float, step: float) -> str:
    """A tick value with as many decimals as the step needs (0.25 steps need two)."""
    if abs(value) < step * 1e-6:
        return "0"  # no "-0" or "1e-17" from accumulated rounding
    decimals = 0
    while decimals < 10 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return text if len(text) <= 10 else f"{value:.3g}"


@dataclass(frozen=True)
class _Tick:
    """A tick on an axis, with the text printed beside it."""

    position: float  # on the transformed axis (log2(x) when the axis is log2)
    label: str


@dataclass(frozen=True)
class _LegendEntry:
    """Where one series' legend entry (sample line with marker, then label) is drawn."""

    left: int  # where the swatch starts
    top: int  # the top of the label text
    text: str  # the label, shortened if it could not fit on a line of its own


@dataclass(frozen=True)
class _Layout:
    """Where everything goes: the plot area in pixels and the data ranges it shows.

    The plot area spans columns left..right and rows top..bottom (inclusive); the axes run
    along its left and bottom edges. x values are inset from the left and right edges so that
    markers at the ends of the range do not sit on the axis or frame.
    """

    width: int
    height: int
    scale: int
    left: int
    top: int
    right: int
    bottom: int
    inset: int
    x_log2: bool
    x_low: float  # transformed, like _Tick.position
    x_high: float
    y_low: float
    y_high: float
    x_ticks: tuple[_Tick, ...]
    y_ticks: tuple[_Tick, ...]
    legend: tuple[_LegendEntry, ...]  # one per series, in the order of the series

    def x_position(self, x: float) -> float:
        """The x value on the transformed axis (like :attr:`_Tick.position`)."""
        return math.log2(x) if self.x_log2 else x

    def column(self, position: float) -> int:
        """The pixel column of a transformed x position."""
        usable = self.right - self.left - 2 * self.inset
        fraction = (position - self.x_low) / (self.x_high - self.x_low)
        return self.left + self.inset + round(fraction * usable)

    def row(self, y: float) -> int:
        """The pixel row of a y value: y_low on the bottom edge, y_high on the top edge."""
        fraction = (y - self.y_low) / (self.y_high - self.y_low)
        return self.bottom - round(fraction * (self.bottom - self.top))

    def pixel(self, x: float, y: float) -> tuple[int, int]:
        """The (column, row) at which the data point (x, y) is drawn."""
        return self.column(self.x_position(x)), self.row(y)


def _check_finite(value: float, what: str) -> None:
    """Reject NaN and infinities: they have no place on an axis and would poison its range."""
    if not math.isfinite(value):
        raise ValueError(f"{what} is not a finite number: {value!r}")


def _validate(
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_log2: bool,
    x_tick_labels: Mapping[float, str] | None,
    width: int,
    height: int,
) -> None:
    """Raise ValueError, naming the culprit, for arguments no sensible chart can come from."""
    if not (_MIN_WIDTH <= width <= _MAX_SIDE and _MIN_HEIGHT <= height <= _MAX_SIDE):
        raise ValueError(
            f"a chart of {width} x {height} pixels cannot be drawn: the width must be "
            f"{_MIN_WIDTH}..{_MAX_SIDE} and the height {_MIN_HEIGHT}..{_MAX_SIDE}"
        )
    if not series:
        raise ValueError("there is nothing to plot: no series given")
    for label, points in series.items():
        if len(points) == 0:
            raise ValueError(f"series {label!r} has no points")
        for x, y in points:
            _check_finite(x, f"an x value of series {label!r}")
            _check_finite(y, f"a y value of series {label!r}")
            if x_log2 and x <= 0:
                raise ValueError(
                    f"series {label!r} has x = {x!r}, which a log2 axis cannot show "
                    "(x must be > 0; pass x_log2=False for a linear axis)"
                )
    for x in x_tick_labels or {}:
        _check_finite(x, "an x_tick_labels position")
        if x_log2 and x <= 0:
            raise ValueError(f"x_tick_labels has x = {x!r}, which a log2 axis cannot show")


def _y_range(values: Sequence[float], steps: int) -> tuple[float, float, float]:
    """(low, high, step) of the y axis: from 0 (or a round value below a negative minimum)
    to a round value above the maximum, in round steps, as close to `steps` of them as can be.
    """
    low, high = min(0.0, *values), max(0.0, *values)
    if high == low:
        high = low + 1.0  # all zero: any scale shows that; 0..1 is the least surprising
    # The smallest round step of at least span / steps can give half as many steps as wanted
    # (span 151 in 6 steps: 25.2 -> 50, 4 steps), so the neighbouring round steps compete.
    base = _nice_step(high - low, steps)
    best: tuple[tuple[int, float], tuple[float, float, float]] | None = None
    for step in (base / 2.5, base / 2, base, base * 2, base * 2.5):
        # Strictly above the largest value (and below a negative smallest one), so that no
        # point sits on the edge of the plot where its marker would merge with the frame.
        top = (math.floor(high / step + 1e-9) + 1) * step
        bottom = 0.0 if low >= 0 else (math.ceil(low / step - 1e-9) - 1) * step
        # Ties go to the larger step: fewer numbers to read.
        key = (abs(round((top - bottom) / step) - steps), -step)
        if _is_round(step) and (best is None or key < best[0]):
            best = key, (bottom, top, step)
    assert best is not None  # base itself is round
    return best[1]


def _is_round(step: float) -> bool:
    """Whether step is 1, 2, 2.5 or 5 times a power of ten."""
    mantissa = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
    return any(math.isclose(mantissa, factor) for factor in (1.0, 2.0, 2.5, 5.0))


def _x_ticks(low: float, high: float, x_log2: bool) -> list[_Tick]:
    """Default x ticks over the transformed range: powers of two, or round linear steps."""
    if x_log2:
        first, last = math.ceil(low - 1e-9), math.floor(high + 1e-9)
        stride = max(1, math.ceil((last - first + 1) / 12))  # at most about 12 ticks
        return [_Tick(float(power), f"{2.0**power:g}") for power in range(first, last + 1, stride)]
    step = _nice_step(high - low, 6)
    index = math.ceil(low / step - 1e-9)
    ticks = []
    while index * step <= high + step * 1e-9:
        ticks.append(_Tick(index * step, _format_number(index * step, step)))
        index += 1
    return ticks


def _layout(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_log2: bool = True,
    x_tick_labels: Mapping[float, str] | None = None,
    width: int = 960,
    height: int = 600,
) -> _Layout:
    """Check the arguments of :func:`write_line_plot` and decide where everything goes.

    The title and axis labels take a fixed line each (cut short to fit when drawn), so they
    do not change the layout and are not needed here.
    """
    _validate(series, x_log2, x_tick_labels, width, height)
    # Twice-size text on a normal chart: the 5x7 font at its native size is hard to read.
    scale = 2 if width >= 640 and height >= 400 else 1
    pad = 6 * scale
    line = (_GLYPH_HEIGHT + 3) * scale  # text height plus room for descenders

    def transform(x: float) -> float:
        return math.log2(x) if x_log2 else x

    positions = [transform(x) for points in series.values() for x, _ in points]
    # Explicit tick labels widen the range: a caller naming "whole file" wants to see it.
    positions += [transform(x) for x in x_tick_labels or {}]
    x_low, x_high = min(positions), max(positions)
    if x_low == x_high:
        # One x value: centre it, with a power of two (or one unit) on either side.
        x_low, x_high = x_low - 1, x_high + 1
    if x_tick_labels:
        x_ticks = [_Tick(transform(x), text) for x, text in sorted(x_tick_labels.items())]
    else:
        x_ticks = _x_ticks(x_low, x_high, x_log2)
        if len(x_ticks) < 2:
            # A range inside one octave has no power of two to mark; mark the data instead.
            xs = sorted({x for points in series.values() for x, _ in points})
            x_ticks = [_Tick(transform(x), f"{x:g}") for x in xs[:12]]

    # The legend goes under the title, in rows filled left to right and centred, like a web
    # chart's. Beside the plot it would take width from the data and cut long labels short.
    swatch = _SWATCH * scale
    gap = 3 * pad  # between one entry and the next on a row
    usable = width - 2 * pad
    entries: list[tuple[str, int]] = []  # (text, width of swatch and text)
    for label in series:
        text = _fit(label, usable - swatch - pad, scale)
        entries.append((text, swatch + pad + _text_width(text, scale)))
    rows: list[list[tuple[str, int]]] = [[]]
    for entry in entries:
        row = rows[-1]
        if row and sum(w for _, w in row) + gap * len(row) + entry[1] > usable:
            rows.append([entry])
        else:
            row.append(entry)
    legend_top = pad + line + pad  # under the title
    legend = []
    for number, row in enumerate(rows):
        position = (width - sum(w for _, w in row) - gap * (len(row) - 1)) // 2
        for text, entry_width in row:
            legend.append(_LegendEntry(position, legend_top + number * line, text))
            position += entry_width + gap
    legend_bottom = legend_top + len(rows) * line
    top = legend_bottom + pad + line // 2  # half a line for the top tick's number
    bottom = height - (pad + line + pad + line + _TICK_LENGTH)  # x label, tick numbers, ticks

    # As many y steps as fit with some air between their numbers, at most seven.
    steps = max(2, min(7, (bottom - top) // (3 * line)))
    ys = [y for points in series.values() for _, y in points]
    y_low, y_high, y_step = _y_range(ys, steps)
    y_ticks = [
        _Tick(y_low + i * y_step, _format_number(y_low + i * y_step, y_step))
        for i in range(round((y_high - y_low) / y_step) + 1)
    ]

    tick_label_width = max(_text_width(tick.label, scale) for tick in y_ticks)
    # Left: the upward y label, then the tick numbers, then the ticks.
    left = pad + line + pad + tick_label_width + pad + _TICK_LENGTH
    # Right: room for the part of the last x tick's centred label that overhangs the plot.
    right = width - pad - max(_text_width(x_ticks[-1].label, scale) // 2, pad)
    if right - left < _MIN_PLOT_SIDE or bottom - top < _MIN_PLOT_SIDE:
        raise ValueError(
            f"a chart of {width} x {height} pixels is too small for these labels and legend"
        )
    return _Layout(
        width=width,
        height=height,
        scale=scale,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        inset=max(6 * scale, (right - left) // 30),
        x_log2=x_log2,
        x_low=x_low,
        x_high=x_high,
        y_low=y_low,
        y_high=y_high,
        x_ticks=tuple(x_ticks),
        y_ticks=tuple(y_ticks),
        legend=tuple(legend),
    )


def _draw(
    layout: _Layout,
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    x_label: str,
    y_label: str,
) -> _Canvas:
    """Draw the whole chart as laid out; later drawing covers earlier (grid under data)."""
    canvas = _Canvas(layout.width, layout.height)
    scale = layout.scale
    pad = 6 * scale
    line = (_GLYPH_HEIGHT + 3) * scale
    text_height = _GLYPH_HEIGHT * scale

    # Grid first, so that axes, lines and text are drawn over it.
    for tick in layout.y_ticks:
        row = layout.row(tick.position)
        canvas.fill_rect(layout.left, row, layout.right, row, _GRID)
    for tick in layout.x_ticks:
        column = layout.column(tick.position)
        canvas.fill_rect(column, layout.top, column, layout.bottom, _GRID)

    # Axes along the left and bottom edges, with outward ticks and their numbers.
    canvas.fill_rect(layout.left, layout.top, layout.left, layout.bottom, _AXIS)
    canvas.fill_rect(layout.left, layout.bottom, layout.right, layout.bottom, _AXIS)
    for tick in layout.y_ticks:
        row = layout.row(tick.position)
        canvas.fill_rect(layout.left - _TICK_LENGTH, row, layout.left, row, _AXIS)
        text_right = layout.left - _TICK_LENGTH - pad // 2
        canvas.text(
            text_right - _text_width(tick.label, scale),
            row - text_height // 2,
            tick.label,
            _TEXT,
            scale,
        )
    label_top = layout.bottom + _TICK_LENGTH + pad // 2
    previous_end = -layout.width  # right edge of the last x tick label drawn
    for tick in layout.x_ticks:
        column = layout.column(tick.position)
        canvas.fill_rect(column, layout.bottom, column, layout.bottom + _TICK_LENGTH, _AXIS)
        label_width = _text_width(tick.label, scale)
        start = min(max(column - label_width // 2, pad), layout.width - pad - label_width)
        # Labels that would run into the previous one are left out (the tick stays), rather
        # than printed over each other.
        if start >= previous_end + 2 * _ADVANCE * scale:
            canvas.text(start, label_top, tick.label, _TEXT, scale)
            previous_end = start + label_width

    # Axis labels: x centred under the plot, y reading upwards along the left edge.
    plot_width = layout.right - layout.left
    plot_height = layout.bottom - layout.top
    text = _fit(x_label, plot_width, scale)
    canvas.text(
        layout.left + (plot_width - _text_width(text, scale)) // 2,
        layout.height - pad - line,
        text,
        _TEXT,
        scale,
    )
    text = _fit(y_label, plot_height, scale)
    canvas.text_up(
        pad, layout.bottom - (plot_height - _text_width(text, scale)) // 2, text, _TEXT, scale
    )

    # The title, centred over the whole chart; bold by printing it twice a pixel apart.
    text = _fit(title, layout.width - 2 * pad, scale)
    title_left = (layout.width - _text_width(text, scale)) // 2
    canvas.text(title_left, pad, text, _TEXT, scale)
    canvas.text(title_left + 1, pad, text, _TEXT, scale)

    # The data, in the order given, each series over the ones before it. Points are joined in
    # x order, so results collected in any order still give a line rather than a zigzag.
    for index, points in enumerate(series.values()):
        color = _PALETTE[index % len(_PALETTE)]
        shape = index // len(_PALETTE) % 3
        pixels = [layout.pixel(x, y) for x, y in sorted(points, key=lambda point: point[0])]
        for (x0, y0), (x1, y1) in pairwise(pixels):
            canvas.line(x0, y0, x1, y1, color)
        for x, y in pixels:
            canvas.marker(x, y, color, shape)

        entry = layout.legend[index]
        middle = entry.top + text_height // 2
        swatch_end = entry.left + _SWATCH * scale - 1
        canvas.line(entry.left, middle, swatch_end, middle, color)
        canvas.marker((entry.left + swatch_end) // 2, middle, color, shape)
        canvas.text(swatch_end + 1 + pad, entry.top, entry.text, _TEXT, scale)
    return canvas


def write_line_plot(
    path: str | os.PathLike[str],
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_log2: bool = True,
    x_tick_labels: Mapping[float, str] | None = None,
    width: int = 960,
    height: int = 600,
) -> None:
    """Write a line chart of the series to path as a PNG image.

    series maps each legend label to its (x, y) points; each series gets a colour of its own
    (ten distinct ones, then with other marker shapes) and a marker on every point, joined by
    a line in x order. The y axis runs from 0 (or below a negative minimum) to a round value
    above the largest y. With x_log2 the x axis is logarithmic, base 2, ticked at powers of
    two; x_tick_labels replaces the default ticks by ticks at the given x values with the
    given texts (and the axis extends to show them all). Text outside ASCII shows as boxes.

    Raises ValueError if there is no series, a series has no points, a value is not finite, an
    x value (or tick) is <= 0 on a log2 axis, or the image is too small (or too large).
    """
    layout = _layout(
        series,
        x_log2=x_log2,
        x_tick_labels=x_tick_labels,
        width=width,
        height=height,
    )
    canvas = _draw(layout, series, title, x_label, y_label)
    Path(path).write_bytes(canvas.png())


def _demo(path: str) -> None:
    """A chart shaped like the chunk-size benchmark's, with made-up numbers."""
    write_line_plot(
        path,
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


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: only ``--demo PNG`` for now, to look at the output by eye."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plot",
        description="Line charts as PNG files; --demo writes a sample chart to look at.",
    )
    parser.add_argument(
        "--demo", metavar="PNG", required=True, help="write a demo chart to this file"
    )
    args = parser.parse_args(argv)
    _demo(args.demo)
    print(f"wrote {args.demo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
