"""Sizes as the command reads and prints them.

:func:`parse_size` is tuspipe's one reading of a size (the command's options, and the benchmark
harness's): bytes, or a number with a unit, KB = 1000 and KiB = 1024, a fraction only where it
makes whole bytes, and nothing ambiguous ("8M" is refused: MB or MiB?).
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["ByteCount", "format_bytes", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def parse_size(text: str) -> int:
    """Bytes in `text`: ``8MiB``, ``512KB``, ``1.5GiB``, ``1048576`` (KB = 1000, KiB = 1024).

    Raises ValueError for anything else, or for a size that is not a positive whole number of
    bytes.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a size; give bytes, or a number with a unit: "
            "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    number, unit = match.groups()
    value = Fraction(number) * _UNITS[(unit or "b").lower()]
    if value.denominator != 1 or value <= 0:
        raise ValueError(f"{text!r} is not a positive whole number of bytes")
    return int(value)


class ByteCount(int):
    """A size option's bytes that prints as the user wrote it (``1MiB``, not ``1048576``), so
    the command that resumes an upload reads like the one typed."""

    text: str

    def __new__(cls, text: str) -> ByteCount:
        value = super().__new__(cls, parse_size(text))
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text


def format_bytes(count: float) -> str:
    """`count` bytes in binary units: ``512 B``, ``1.5 KiB``, ``256.0 MiB``."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"
