"""The files a harness run writes: the per-run CSV, the per-row summary CSV and the plot.

The CSVs carry every figure of :mod:`benchmarks._report` (one line per run, one per row), the
pipeline's channel statistics as ``ch_<channel>_{items,send_wait,receive_wait}`` columns, and
the small-things figures of issue 15 (items, CPU per file or item). The plot is throughput
against chunk size, drawn with matplotlib (:mod:`benchmarks.plot`, the ``bench`` extra); a run
without matplotlib says so and writes everything else.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import tuspipe

from ._report import Summary, bottleneck, channel_names, vs_curl, vs_tuspy
from ._runs import MiB, RunResult, Setting, format_size
from ._worker import ChannelFigures

__all__ = ["plot_series", "write_plot", "write_runs_csv", "write_summary_csv"]


def _setting_columns(setting: Setting, size: int) -> list[object]:
    chunk_bytes = size if setting.whole else setting.chunk_size
    return [
        setting.workload,
        setting.client,
        setting.loop,
        setting.chunk_label,
        "" if chunk_bytes is None else chunk_bytes,
        setting.checksum_label,
        setting.parallel,
        setting.source,
        "" if setting.read_size is None else setting.read_size,
        "" if setting.read_ahead is None else setting.read_ahead,
    ]


_SETTING_HEADER = [
    "workload",
    "client",
    "loop",
    "chunk",
    "chunk_bytes",
    "checksum",
    "parallel",
    "source",
    "read_size",
    "read_ahead",
]


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _channel_columns(channels: Sequence[ChannelFigures], names: Sequence[str]) -> list[str]:
    by_name = {c.name: c for c in channels}
    cells: list[str] = []
    for name in names:
        figures = by_name.get(name)
        if figures is None:
            cells += ["", "", ""]
        else:
            cells += [str(figures.items), f"{figures.send_wait:.4f}", f"{figures.receive_wait:.4f}"]
    return cells


def _channel_header(names: Sequence[str]) -> list[str]:
    return [
        f"ch_{name}_{part}" for name in names for part in ("items", "send_wait", "receive_wait")
    ]


def write_runs_csv(path: Path, results: Sequence[RunResult], size: int) -> None:
    """One line per run; channel statistics as ``ch_<channel>_{items,send_wait,receive_wait}``."""
    names = channel_names(run.channels for run in results)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                *_SETTING_HEADER,
                "repeat",
                "ok",
                "bytes",
                "files",
                "items",
                "seconds",
                "mb_per_s",
                "files_per_s",
                "cpu_upload_s",
                "cpu_s_per_gib",
                "cpu_process_s",
                "peak_rss_mib",
                "base_rss_mib",
                "ru_maxrss_mib",
                "wall_s",
                "error",
                *_channel_header(names),
            ]
        )
        for run in results:
            writer.writerow(
                [
                    *_setting_columns(run.setting, size),
                    run.repeat + 1,
                    int(run.ok),
                    run.bytes,
                    run.files,
                    run.items,
                    _number(run.seconds, 4),
                    _number(run.mb_per_s, 1),
                    _number(run.files_per_s, 1),
                    _number(run.cpu_upload, 3),
                    _number(run.cpu_per_gib, 3),
                    f"{run.cpu_process:.3f}",
                    "" if run.peak_rss_kib is None else f"{run.peak_rss_kib / 1024:.1f}",
                    "" if run.base_rss_kib is None else f"{run.base_rss_kib / 1024:.1f}",
                    f"{run.ru_maxrss_kib / 1024:.1f}",
                    f"{run.wall_seconds:.3f}",
                    (run.error or "").splitlines()[0] if run.error else "",
                    *_channel_columns(run.channels, names),
                ]
            )


def write_summary_csv(path: Path, rows: Sequence[Summary], size: int) -> None:
    """One line per setting: medians, maxima, ratios, the bottleneck, channel medians."""
    names = channel_names(row.channels for row in rows)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                *_SETTING_HEADER,
                "runs",
                "failures",
                "bytes",
                "files",
                "items",
                "seconds_median",
                "mb_per_s_median",
                "files_per_s_median",
                "items_per_s_median",
                "cpu_upload_s_median",
                "cpu_us_per_file_or_item",
                "cpu_s_per_gib_median",
                "cpu_process_s_median",
                "peak_rss_mib_max",
                "base_rss_mib_max",
                "vs_tuspy",
                "vs_curl",
                "bottleneck",
                *_channel_header(names),
            ]
        )
        for row in rows:
            writer.writerow(
                [
                    *_setting_columns(row.setting, size),
                    row.runs,
                    row.failures,
                    row.bytes,
                    row.files,
                    row.items,
                    _number(row.seconds, 4),
                    _number(row.mb_per_s, 1),
                    _number(row.files_per_s, 1),
                    _number(row.items_per_s, 0),
                    _number(row.cpu_upload, 4),
                    _number(None if row.cpu_per_thing is None else row.cpu_per_thing * 1e6, 2),
                    _number(row.cpu_per_gib, 3),
                    _number(row.cpu_process, 3),
                    _number(row.peak_rss_mib, 1),
                    _number(row.base_rss_mib, 1),
                    _number(vs_tuspy(rows, row), 3),
                    _number(vs_curl(rows, row), 3),
                    bottleneck(row.channels),
                    *_channel_columns(row.channels, names),
                ]
            )


def plot_series(
    rows: Sequence[Summary], size: int
) -> tuple[dict[str, list[tuple[float, float]]], dict[float, str]]:
    """Throughput against chunk size: one series per client and checksum, and tick labels.

    The whole-file rows sit at x = the file size in MiB, labelled "whole". tuspipe's rows with
    no settings (the defaults workload, under trio and under asyncio) are a point each, at
    tuspipe's default chunk size (or the whole file, if that is smaller).
    """
    series: dict[str, list[tuple[float, float]]] = {}
    ticks: dict[float, str] = {}
    for row in rows:
        setting = row.setting
        if row.mb_per_s is None:
            continue
        if setting.workload == "defaults" and setting.client == "tuspipe":
            chunk = min(tuspipe.DEFAULT_CHUNK_SIZE, size)
            x = chunk / MiB
            ticks.setdefault(x, "whole" if chunk == size else format_size(chunk).replace(" ", ""))
            series.setdefault(f"tuspipe defaults, {setting.loop}", []).append((x, row.mb_per_s))
            continue
        if setting.workload not in ("chunks", "checksums"):
            continue
        if setting.whole:
            x = size / MiB
            ticks[x] = "whole"
        elif setting.chunk_size is not None:
            x = setting.chunk_size / MiB
            ticks.setdefault(x, format_size(setting.chunk_size).replace(" ", ""))
        else:
            continue
        series.setdefault(f"{setting.client} {setting.checksum_label}", []).append(
            (x, row.mb_per_s)
        )
    for points in series.values():
        points.sort()
    return series, dict(sorted(ticks.items()))


def write_plot(
    path: Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    ticks: Mapping[float, str],
    title: str,
) -> str | None:
    """Write the PNG with :func:`benchmarks.plot.write_line_plot`; None, or why it was not."""
    if not series:
        return "no chunks, checksums or tuspipe defaults rows were measured"
    try:
        # matplotlib is the optional bench extra: without it the run still gives its figures.
        from benchmarks.plot import write_line_plot
    except ImportError as exc:
        return f"matplotlib is not installed, pip install -e '.[bench]' ({exc})"
    write_line_plot(
        path,
        series,
        title=title,
        x_label="chunk size (MiB, log2 scale)",
        y_label="throughput (MB/s, median)",
        x_log2=True,
        x_tick_labels=ticks,
    )
    return None
