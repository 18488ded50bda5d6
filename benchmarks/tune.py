"""``python -m benchmarks --tune [URL]``: find tuspipe's fastest settings for one server.

The sweep is coordinate descent from tuspipe's defaults: one knob at a time is varied over
its candidate values while the others stay at the best found so far, and the fastest value
is kept before the next knob. Knobs, in order:

1. ``chunk_size``: 1, 4, 8, 16, 32, 64 MiB (values above the test file's size are skipped);
2. ``read_ahead``: 1, 2, 4, 8 blocks;
3. ``read_size``: tuspipe's default (2 MiB blocks in memory, 8 MiB spans of a file), or one
   size for both: 256 KiB, 1 MiB, 4 MiB;
4. ``parallel``: 1, 2, 4 parts, when the server offers concatenation.

Then the tuned settings and tuspipe's defaults run side by side once more, since the sweeps
measured them minutes apart; unless the tuned ones are more than :data:`MARGIN` faster there
too, the defaults are recommended. Last, the checksum: every algorithm both tuspipe and the
server know, at the recommended settings, against no checksum; it is reported as what
integrity costs (off is always fastest), with the fastest algorithm.

Each candidate is uploaded ``--repeat`` times (default 3) with the harness's runner (a fresh
process per run, checked by HEAD and deleted afterwards with DELETE, so tuning a real
server leaves nothing behind when it offers termination); the candidates of one knob run
interleaved, in alternating order, and the speed is their median. A candidate replaces the
current value only when it is more than :data:`MARGIN` faster, so noise does not move the
recommendation away from the defaults. With a 256 MiB file (the default ``--size``) the sweep
takes a minute or two against the local sink.

The result is printed as a ready-to-paste ``tuspipe.upload(...)`` call and a ``tuspipe
upload`` command line (with the options the CLI has).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._http import ServerInfo
from ._runs import (
    ROOT,
    MiB,
    Runner,
    RunResult,
    Setting,
    find_curl,
    format_size,
    make_test_data,
)
from ._session import Report, describe_machine, open_server

__all__ = ["MARGIN", "Knob", "TuneOutcome", "python_call", "run_tune", "tune"]

#: A candidate must beat the current value by this fraction to replace it.
MARGIN = 0.03
CHUNK_SIZES = (1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB, 64 * MiB)
READ_AHEADS = (1, 2, 4, 8)
READ_SIZES = (256 * 1024, 1 * MiB, 4 * MiB)
PARALLEL_PARTS = (1, 2, 4)


@dataclass(frozen=True)
class Knob:
    """One setting the sweep varies: its Setting field and its candidate values (None: the
    library's default, which no single value states)."""

    field: str
    values: tuple[int | None, ...]
    show: Callable[[int | None], str]


def _shown_size(size: int | None) -> str:
    return "default" if size is None else format_size(size)


def _candidates(values: set[int | None]) -> list[int | None]:
    """`values` in order: the default (None) first, then the numbers."""
    numbers = sorted(value for value in values if value is not None)
    return [None, *numbers] if None in values else list(numbers)


@dataclass(frozen=True)
class TuneOutcome:
    """The sweep's result: the best setting, its speed, the defaults' speed, the checksum."""

    best: Setting
    defaults: Setting
    best_mb_per_s: float
    default_mb_per_s: float | None
    checksum: str | None
    checksum_mb_per_s: float | None
    off_mb_per_s: float | None  # no checksum, in the checksum round
    failures: int


def _knobs(size: int, server: ServerInfo) -> list[Knob]:
    chunks = tuple(chunk for chunk in CHUNK_SIZES if chunk <= size) or (size,)
    knobs = [
        Knob("chunk_size", chunks, _shown_size),
        Knob("read_ahead", READ_AHEADS, str),
        Knob("read_size", READ_SIZES, _shown_size),
    ]
    if server.supports("concatenation"):
        knobs.append(Knob("parallel", PARALLEL_PARTS, str))
    return knobs


def _measure(
    runner: Runner, candidates: Sequence[Setting], repeats: int, say: Callable[[str], None]
) -> tuple[dict[Setting, float | None], int]:
    """Median MB/s of each candidate (None when every run failed), and the failed runs."""
    speeds: dict[Setting, list[float]] = {candidate: [] for candidate in candidates}
    failures = 0
    for repeat in range(repeats):
        order = candidates if repeat % 2 == 0 else list(reversed(candidates))
        for candidate in order:
            run: RunResult = runner.run(candidate, repeat)
            if run.mb_per_s is None:
                failures += 1
                say(f"      run failed: {(run.error or '').splitlines()[0]}")
            else:
                speeds[candidate].append(run.mb_per_s)
    medians = {
        candidate: statistics.median(found) if found else None
        for candidate, found in speeds.items()
    }
    return medians, failures


def _show(speed: float | None) -> str:
    return "failed" if speed is None else f"{speed:7.0f} MB/s"


def tune(
    runner: Runner, server: ServerInfo, size: int, repeats: int, say: Callable[[str], None]
) -> TuneOutcome:
    """Coordinate descent over the knobs, a side-by-side check against the defaults, then
    the checksum; see the module docstring."""
    import tuspipe

    defaults = Setting(
        "tune",
        "tuspipe",
        chunk_size=min(tuspipe.DEFAULT_CHUNK_SIZE, size),
        read_size=None,  # the library's: 2 MiB blocks in memory, 8 MiB spans of a file
        read_ahead=tuspipe.DEFAULT_READ_AHEAD,
    )
    best = defaults
    best_speed: float | None = None
    failures = 0
    for knob in _knobs(size, server):
        current = getattr(best, knob.field)
        values = _candidates({*knob.values, current})
        changes: list[dict[str, Any]] = [{knob.field: value} for value in values]
        candidates = [replace(best, **change) for change in changes]
        say(f"  {knob.field}: {', '.join(knob.show(v) for v in values)}")
        medians, failed = _measure(runner, candidates, repeats, say)
        failures += failed
        for candidate, value in zip(candidates, values, strict=True):
            mark = " (current)" if value == current else ""
            say(f"    {knob.show(value):>8}  {_show(medians[candidate])}{mark}")
        incumbent = medians[best]
        measured = [(speed, c) for c, speed in medians.items() if speed is not None]
        if measured:
            fastest_speed, fastest = max(measured, key=lambda pair: pair[0])
            if incumbent is None or fastest_speed > incumbent * (1 + MARGIN):
                best, best_speed = fastest, fastest_speed
            else:
                best_speed = incumbent
        say(f"    -> {knob.field} = {knob.show(getattr(best, knob.field))}")

    default_speed = best_speed
    if best != defaults:
        # The sweeps measured the defaults and the winner minutes apart; on a noisy machine
        # only a side-by-side round says whether tuning gained anything.
        say("  tuned against tuspipe's defaults, side by side:")
        medians, failed = _measure(runner, [best, defaults], repeats, say)
        failures += failed
        tuned_speed, default_speed = medians[best], medians[defaults]
        say(f"       tuned  {_show(tuned_speed)}")
        say(f"    defaults  {_show(default_speed)}")
        if tuned_speed is None or (
            default_speed is not None and tuned_speed <= default_speed * (1 + MARGIN)
        ):
            say(f"    -> not more than {MARGIN:.0%} faster: keeping tuspipe's defaults")
            best, best_speed = defaults, default_speed
        else:
            best_speed = tuned_speed

    checksum: str | None = None
    checksum_speed: float | None = None
    off_speed: float | None = None
    algorithms = [name for name in tuspipe.CHECKSUM_ALGORITHMS if server.offers_checksum(name)]
    if algorithms:
        say(f"  checksum (at the settings above): off, {', '.join(algorithms)}")
        candidates = [best, *(replace(best, checksum=name) for name in algorithms)]
        medians, failed = _measure(runner, candidates, repeats, say)
        failures += failed
        for candidate in candidates:
            say(f"    {candidate.checksum_label:>8}  {_show(medians[candidate])}")
        # The cost of a checksum is measured against "off" in this same round.
        off_speed = medians[best]
        if best == defaults and off_speed is not None:
            best_speed = default_speed = off_speed
        with_checksum = [
            (speed, c.checksum) for c, speed in medians.items() if c.checksum and speed is not None
        ]
        if with_checksum:
            checksum_speed, checksum = max(with_checksum, key=lambda pair: pair[0])
    else:
        say("  checksum: the server offers no algorithm tuspipe knows; not swept")
    return TuneOutcome(
        best=best,
        defaults=defaults,
        best_mb_per_s=best_speed or 0.0,
        default_mb_per_s=default_speed,
        checksum=checksum,
        checksum_mb_per_s=checksum_speed,
        off_mb_per_s=off_speed,
        failures=failures,
    )


def _python_size(size: int) -> str:
    """``16 * 1024 * 1024`` for 16 MiB: the way a reader checks a size at a glance."""
    if size % MiB == 0:
        return f"{size // MiB} * 1024 * 1024"
    if size % 1024 == 0:
        return f"{size // 1024} * 1024"
    return str(size)


def python_call(setting: Setting, url: str, checksum: str | None = None) -> str:
    """``tuspipe.upload("FILE", URL, chunk_size=..., ...)`` for `setting`."""
    arguments = [
        '"FILE"',
        f'"{url}"',
        f"chunk_size={_python_size(setting.chunk_size or 0)}",
    ]
    if setting.read_size is not None:
        arguments.append(f"read_size={_python_size(setting.read_size)}")
    arguments.append(f"read_ahead={setting.read_ahead}")
    if setting.parallel > 1:
        arguments.append(f"parallel={setting.parallel}")
    if checksum:
        arguments.append(f'checksum="{checksum}"')
    return f"tuspipe.upload({', '.join(arguments)})"


def _cli_options() -> set[str]:
    """The long options ``tuspipe upload`` has (asked, so new ones are used once they exist)."""
    try:
        said = subprocess.run(
            [sys.executable, "-m", "tuspipe", "upload", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=str(ROOT),
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {word.strip(",[]") for word in said.split() if word.startswith("--")}


def cli_line(setting: Setting, url: str, checksum: str | None, options: set[str]) -> str:
    """``tuspipe upload --chunk-size 16MiB ... FILE URL`` and the knobs it cannot express."""
    words = ["tuspipe", "upload"]
    missing = []
    wanted = [
        ("--chunk-size", "chunk_size", format_size(setting.chunk_size or 0).replace(" ", "")),
        ("--read-ahead", "read_ahead", str(setting.read_ahead)),
    ]
    if setting.read_size is not None:
        wanted.append(("--read-size", "read_size", format_size(setting.read_size).replace(" ", "")))
    if setting.parallel > 1:
        wanted.append(("--parallel", "parallel", str(setting.parallel)))
    if checksum:
        wanted.append(("--checksum", "checksum", checksum))
    for option, name, value in wanted:
        if option in options:
            words += [option, value]
        else:
            missing.append(name)
    words += ["FILE", url]
    line = " ".join(words)
    if missing:
        line += f"   # no CLI option for {', '.join(missing)} (API only)"
    return line


def run_tune(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The ``--tune`` mode: sweep, print the recommendation; 1 when a run failed."""
    began = time.monotonic()
    report = Report()
    report.say(
        f"tuspipe settings sweep: {format_size(args.size)} file, {args.repeat} run(s) per "
        "candidate, coordinate descent from tuspipe's defaults"
    )
    for line in describe_machine(argv, find_curl(args.curl)):
        report.say(line)
    with contextlib.ExitStack() as stack:
        opened = open_server(stack, report, args.tune or None, args.verify_checksums)
        if opened is None:
            return 1
        http, url, server = opened
        if not server.supports("termination"):
            report.say(
                "  NOTE: the server does not offer termination; the uploads made while tuning "
                "stay on it"
            )
        scratch = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="tuspipe-tune-", dir=args.tmpdir)
            )
        )
        data = make_test_data(scratch, args.size, 0, 0)
        report.say()
        runner = Runner(url, http, data, scratch, timeout=args.timeout, curl=None)
        outcome = tune(runner, server, args.size, args.repeat, report.say)

    best = outcome.best
    options = _cli_options()
    report.say()
    report.say(f"Recommended settings for {url}:")
    report.say(f"  {python_call(best, url)}")
    report.say(f"  {cli_line(best, url, None, options)}")
    speed = f"  {outcome.best_mb_per_s:.0f} MB/s"
    if best == outcome.defaults:
        speed += " (tuspipe's defaults are the fastest found)"
    elif outcome.default_mb_per_s:
        speed += (
            f"; tuspipe's defaults, measured side by side: {outcome.default_mb_per_s:.0f} MB/s "
            f"({outcome.best_mb_per_s / outcome.default_mb_per_s:.2f}x)"
        )
    report.say(speed)
    if outcome.checksum and outcome.checksum_mb_per_s:
        off = outcome.off_mb_per_s
        if off and off > outcome.checksum_mb_per_s:
            price = f"{1 - outcome.checksum_mb_per_s / off:.0%} less than without, {off:.0f} MB/s"
        else:
            price = "no slower than without in this round"
        report.say(
            f"With checksums, the fastest the server offers is {outcome.checksum} "
            f"({outcome.checksum_mb_per_s:.0f} MB/s, {price}):"
        )
        report.say(f"  {python_call(best, url, outcome.checksum)}")
        report.say(f"  {cli_line(best, url, outcome.checksum, options)}")
    if outcome.failures:
        report.say(f"{outcome.failures} run(s) failed; their candidates count as not measured.")
    report.say(f"Total time: {time.monotonic() - began:.0f} s")
    return 1 if outcome.failures else 0
