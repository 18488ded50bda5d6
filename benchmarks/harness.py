"""The benchmark harness of issues 7, 13 and 15: ``python -m benchmarks`` (``--help`` lists the
options).

It uploads the same data with tuspipe, tuspy 1.1.0 (aiotus 1.1.0 too, for many small files)
and a ceiling (curl, and a raw-socket ``sendfile()`` PATCH) to one tus server: the local
discard sink of :mod:`benchmarks.sink`, started in its own process, or ``--url`` (loopback
only). Every run is a fresh Python (or curl) process, so its peak RSS (its own ``VmHWM``)
and CPU time belong to one upload; runs are interleaved, round-robin over all the
configurations, repeat after repeat, in alternating order, so a noisy neighbour on the
machine hits every client alike.

Workloads (``--workloads``, default all):

* ``defaults``: each client with no settings at all (tuspipe under trio and under asyncio),
  and the ceiling (curl, sendfile);
* ``chunks``: chunk sizes 1, 8, 64 MiB and the whole file, checksum off (tuspipe, tuspy);
* ``checksums``: the same chunk sizes with sha1 (tuspipe, tuspy) and crc32 (tuspipe only);
* ``parallel``: tuspipe with 1, 2 and 4 parts (needs the concatenation extension);
* ``many``: 1000 files of 16 KiB, 8 at a time: ``tuspipe.upload_many`` (and
  ``upload_many_async`` under asyncio), aiotus on one aiohttp session, bare httpx POSTs and
  ``curl --parallel`` POSTs (the ceiling), against a loop of tuspy uploads;
* ``stream``: tuspipe reading a one-pass stream (a generator, a pipe) of the test file
  (needs creation-defer-length);
* ``items``: tuspipe uploading 200k items of 33 bytes from a generator, and the same bytes
  as one ``bytes`` object (tuspy cannot take a generator; the report says so).

The report: the machine, a table (MB/s, files/s, CPU s/GiB, peak RSS, ratios to tuspy and
curl), the small-things table (seconds, files or items per second, CPU per file or item),
the pipeline's channel statistics per tuspipe row, the targets of issues 7, 13 and 15
(PASS/FAIL with the figures), and the files written: ``<out>/bench-<time>.csv`` (one line per run),
``...-summary.csv`` (one line per row), ``.png`` (throughput against chunk size) and ``.txt``
(the report itself). ``--tune`` (see :mod:`benchmarks.tune`) sweeps tuspipe's settings.

Exit status: 0 when every run passed its checks (whatever the targets say), 1 when a run
failed (its upload incomplete, the client crashed, a timeout), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tuspipe.cli import parse_size

from ._files import plot_series, write_plot, write_runs_csv, write_summary_csv
from ._http import NotLoopbackError, require_loopback
from ._plan import DEFAULT_MANY_CONCURRENCY, plan_settings, schedule
from ._report import render_channels, render_small_table, render_table, summarize
from ._runs import (
    ROOT,
    MiB,
    Runner,
    RunResult,
    find_curl,
    format_size,
    make_test_data,
)
from ._session import Report, describe_machine, load_average, open_server
from ._targets import (
    evaluate_loop_targets,
    evaluate_small_targets,
    evaluate_targets,
    render_targets,
)
from ._worker import ITEM_SIZE
from .tune import run_tune

__all__ = [
    "DEFAULT_CHUNK_SIZES",
    "WORKLOADS",
    "main",
    "parse_args",
    "plan_settings",
    "schedule",
]

WORKLOADS = ("defaults", "chunks", "checksums", "parallel", "many", "stream", "items")
DEFAULT_CHUNK_SIZES = (1 * MiB, 8 * MiB, 64 * MiB)
DEFAULT_SIZE = 1024 * MiB
DEFAULT_REPEAT = 3
DEFAULT_MANY_FILES = 1000
DEFAULT_MANY_SIZE = 16 * 1024
DEFAULT_STREAM_ITEMS = 200_000
#: --quick: a fast look (about a minute on 2 cores): a smaller file, one run, fewer settings.
QUICK_SIZE = 256 * MiB
QUICK_REPEAT = 1
QUICK_CHUNK_SIZES = (1 * MiB, 8 * MiB)
QUICK_MANY_FILES = 250
QUICK_STREAM_ITEMS = 20_000
TUNE_SIZE = 256 * MiB
DEFAULT_OUT = ROOT / "benchmarks" / "results"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _size(text: str) -> int:
    """A size as the tuspipe command reads one (1GiB, 256MiB, 100MB or bytes), for argparse."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _size_list(text: str) -> tuple[int, ...]:
    sizes = tuple(_size(part) for part in text.split(",") if part.strip())
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size, e.g. 1MiB,8MiB,64MiB")
    return sizes


def _workload_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if names == ("all",):
        return WORKLOADS
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{','.join(WORKLOADS)} or all"
        )
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark tuspipe against tuspy 1.1.0 (and aiotus 1.1.0 for many small "
        "files) and a curl / sendfile() ceiling on one loopback tus server (the local discard "
        "sink unless --url), each run in a fresh process, interleaved; print a table, the "
        "small-things table, the pipeline's channel statistics and the targets of issues 7, "
        "13 and 15; write CSVs and a PNG plot. With --tune, sweep tuspipe's "
        "settings instead and recommend the fastest.",
        epilog=f"Workloads: {', '.join(WORKLOADS)}. Exit status: 0 when every run passed its "
        "checks (the targets do not change it), 1 when a run failed, 2 for bad arguments.",
    )
    target = parser.add_argument_group("server")
    target.add_argument(
        "--url",
        help="a tus creation URL on a loopback address (default: start the local discard "
        "sink, benchmarks/sink.py, in its own process)",
    )
    target.add_argument(
        "--verify-checksums",
        action="store_true",
        help="make the local sink verify every Upload-Checksum (adds server work to the runs)",
    )
    what = parser.add_argument_group("what to run")
    what.add_argument(
        "--workloads",
        type=_workload_list,
        default=WORKLOADS,
        metavar="LIST",
        help=f"comma-separated, default all: {','.join(WORKLOADS)}",
    )
    what.add_argument(
        "--size",
        type=_size,
        metavar="SIZE",
        help="test file size: 1GiB (default; --quick and --tune 256MiB)",
    )
    what.add_argument(
        "--repeat",
        type=_positive,
        metavar="N",
        help=f"runs per configuration (default {DEFAULT_REPEAT}; --quick {QUICK_REPEAT}); "
        "speeds are medians, peak RSS the maximum",
    )
    what.add_argument(
        "--chunk-sizes",
        type=_size_list,
        metavar="LIST",
        help="chunk sizes of the chunks/checksums workloads (default 1MiB,8MiB,64MiB; --quick "
        "1MiB,8MiB); the whole file is always added; sizes not below the file size are dropped",
    )
    what.add_argument(
        "--many-files",
        type=_positive,
        metavar="N",
        help=f"files in the many workload (default {DEFAULT_MANY_FILES}; --quick "
        f"{QUICK_MANY_FILES})",
    )
    what.add_argument(
        "--many-size",
        type=_size,
        metavar="SIZE",
        default=DEFAULT_MANY_SIZE,
        help="size of each of those files (default 16KiB)",
    )
    what.add_argument(
        "--many-concurrency",
        type=_positive,
        metavar="N",
        default=DEFAULT_MANY_CONCURRENCY,
        help="uploads at once in every concurrent many-files row: tuspipe.upload_many, "
        f"aiotus, bare httpx, curl --parallel-max (default {DEFAULT_MANY_CONCURRENCY}; the "
        "tuspy loop uploads one at a time)",
    )
    what.add_argument(
        "--stream-items",
        type=_positive,
        metavar="N",
        help=f"items of 33 bytes in the items workload (default {DEFAULT_STREAM_ITEMS}; "
        f"--quick {QUICK_STREAM_ITEMS})",
    )
    what.add_argument(
        "--quick",
        action="store_true",
        help=f"a fast look: {format_size(QUICK_SIZE)}, {QUICK_REPEAT} run each, chunk sizes "
        f"1MiB,8MiB, {QUICK_MANY_FILES} small files, {QUICK_STREAM_ITEMS} items (explicit "
        "options still win)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=DEFAULT_OUT,
        help="folder for the CSVs, PNG and report text (default benchmarks/results/)",
    )
    out.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="the per-run CSV (default <out>/bench-<time>.csv); the per-row summary goes "
        "next to it as <name>-summary.csv",
    )
    out.add_argument(
        "--png", type=Path, metavar="FILE", help="the plot (default <out>/bench-<time>.png)"
    )
    misc = parser.add_argument_group("other")
    misc.add_argument("--tmpdir", type=Path, metavar="DIR", help="where the test files are written")
    misc.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="seconds before a run is killed (600)",
    )
    misc.add_argument("--curl", metavar="PATH", help="the curl executable (default: curl on PATH)")
    misc.add_argument(
        "--tune",
        nargs="?",
        const="",
        metavar="URL",
        help="sweep tuspipe's chunk size, read-ahead, read size, parallelism and checksum "
        "against URL (loopback only; without URL, the local sink) and recommend settings",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the arguments; exits 2 with a message for bad ones (non-loopback
    URLs included)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("url", "tune"):
        value = getattr(args, name)
        if value:
            try:
                require_loopback(value)
            except NotLoopbackError as exc:
                parser.error(str(exc))
    if args.url and args.tune:
        parser.error("give the server either as --url or as --tune URL, not both")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    tuning = args.tune is not None
    if args.size is None:
        args.size = TUNE_SIZE if tuning else QUICK_SIZE if args.quick else DEFAULT_SIZE
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else DEFAULT_REPEAT
    if args.chunk_sizes is None:
        args.chunk_sizes = QUICK_CHUNK_SIZES if args.quick else DEFAULT_CHUNK_SIZES
    if args.many_files is None:
        args.many_files = QUICK_MANY_FILES if args.quick else DEFAULT_MANY_FILES
    if args.stream_items is None:
        args.stream_items = QUICK_STREAM_ITEMS if args.quick else DEFAULT_STREAM_ITEMS
    return args


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _progress(number: int, total: int, run: RunResult) -> str:
    setting = run.setting
    head = f"  [{number:>3}/{total}] r{run.repeat + 1} {setting.label:<50}"
    if not run.ok:
        return f"{head} FAILED: {(run.error or '').splitlines()[0]}"
    speed = f"{run.mb_per_s or 0:7.0f} MB/s"
    if setting.source == "files":
        speed += f" {run.files_per_s or 0:6.0f} files/s"
    elif run.items and run.seconds:
        speed += f" {run.seconds:7.3f} s"
    cpu = f"{run.cpu_per_gib:5.2f} CPU s/GiB" if run.cpu_per_gib is not None else ""
    rss = "" if run.peak_rss_kib is None else f"{run.peak_rss_kib / 1024:7.1f} MiB"
    return f"{head} {speed}  {cpu}  {rss}"


def _output_paths(args: argparse.Namespace) -> tuple[Path, Path, Path, Path]:
    """The per-run CSV, summary CSV, PNG and report text paths (folders created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs_csv: Path = args.csv or args.out / f"bench-{stamp}.csv"
    summary_csv = runs_csv.with_name(runs_csv.stem + "-summary.csv")
    png: Path = args.png or args.out / f"bench-{stamp}.png"
    text = runs_csv.with_suffix(".txt")
    for path in (runs_csv, png):
        path.parent.mkdir(parents=True, exist_ok=True)
    return runs_csv, summary_csv, png, text


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run every planned setting, print the report, write the files; the exit status."""
    began = time.monotonic()
    report = Report()
    curl = find_curl(args.curl)
    big = set(args.workloads) - {"many", "items"}
    sized = f"{format_size(args.size)} file, " if big else ""
    report.say(f"tuspipe benchmark harness: {sized}{args.repeat} repeat(s)")
    for line in describe_machine(argv, curl):
        report.say(line)
    runs_csv, summary_csv, png, text = _output_paths(args)
    results: list[RunResult] = []
    with contextlib.ExitStack() as stack:
        opened = open_server(stack, report, args.url, args.verify_checksums)
        if opened is None:
            return 1
        http, url, server = opened
        plan = plan_settings(
            args.workloads,
            size=args.size,
            chunk_sizes=args.chunk_sizes,
            server=server,
            curl=curl,
            many_concurrency=args.many_concurrency,
            have_aiotus=importlib.util.find_spec("aiotus") is not None,
        )
        scratch = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="tuspipe-bench-", dir=args.tmpdir)
            )
        )
        started = time.monotonic()
        many = args.many_files if "many" in args.workloads else 0
        items = args.stream_items if "items" in args.workloads else 0
        # The big file only when a row uploads it (many and items alone do not).
        size = args.size if any(s.moves_big_file for s in plan.settings) else 0
        data = make_test_data(scratch, size, many, args.many_size, items)
        what = [data.big_file.name] if size else []
        if many:
            what.append(f"{many} files of {format_size(args.many_size)}")
        if items:
            what.append(f"{items} items of {ITEM_SIZE} B (made in each run's process)")
        what_text = ", ".join(what)
        report.say(f"  test data: {what_text} ({time.monotonic() - started:.1f} s to write)")
        report.say(f"  workloads: {','.join(args.workloads)}; {len(plan.settings)} rows")
        report.say()
        runner = Runner(url, http, data, scratch, timeout=args.timeout, curl=curl)
        planned = list(schedule(plan.settings, args.repeat))
        for number, (repeat, setting) in enumerate(planned, 1):
            run = runner.run(setting, repeat)
            results.append(run)
            report.say(_progress(number, len(planned), run))
            for warning in run.warnings:
                report.say(f"        warning: {warning}")

    rows = summarize(results)
    report.say()
    report.say(render_table(rows, args.repeat))
    small = render_small_table(rows, args.repeat, plan.unmeasured)
    if small:
        report.say()
        report.say(small)
    if plan.left_out:
        report.say("Not measured:")
        for reason in plan.left_out:
            report.say(f"  {reason}")
    channels = render_channels(rows)
    if channels:
        report.say()
        report.say(channels)
    failures = [run for run in results if not run.ok]
    if failures:
        report.say()
        report.say(f"FAILED RUNS ({len(failures)}):")
        for run in failures:
            report.say(f"  {run.setting.label} (repeat {run.repeat + 1}): {run.error}")
    report.say()
    report.say(render_targets(evaluate_targets(rows)))
    report.say()
    if "defaults" in args.workloads or "many" in args.workloads:
        report.say(render_targets(evaluate_loop_targets(rows), issue=13))
        report.say()
    if "many" in args.workloads or "items" in args.workloads:
        report.say(render_targets(evaluate_small_targets(rows), issue=15))
        report.say()
    write_runs_csv(runs_csv, results, args.size)
    write_summary_csv(summary_csv, rows, args.size)
    series, ticks = plot_series(rows, args.size)
    title = f"tus upload throughput, {format_size(args.size)} file, median of {args.repeat}"
    not_plotted = write_plot(png, series, ticks, title)
    report.say(f"CSV (one line per run): {runs_csv}")
    report.say(f"CSV (one line per row): {summary_csv}")
    report.say(f"PNG: {png}" if not_plotted is None else f"PNG: not written, {not_plotted}")
    report.say(f"Report text: {text}")
    report.say(f"Total time: {time.monotonic() - began:.0f} s; load average now {load_average()}")
    report.save(text)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks``: the benchmark, or with ``--tune`` the settings sweep."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)
    if args.tune is not None:
        return run_tune(args, arguments)
    return run_benchmark(args, arguments)
