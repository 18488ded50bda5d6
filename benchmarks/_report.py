"""Runs reduced to figures: the summary rows, the tables, the targets, the CSVs and the plot.

Every figure is computed from the runs of the one harness invocation, so ratios compare
clients measured side by side, interleaved, on the same machine at the same time:

* MB/s: payload bytes over the upload call's time (decimal MB), the median over repeats;
* files/s: files over the upload call's time (many-files rows), the median;
* CPU s/GiB: user + system seconds of the child during the upload call (all its threads),
  scaled to 1 GiB of payload, the median; "proc CPU s" is the whole child process (interpreter
  start and imports included), the median;
* peak RSS: the child's own high-water mark (``VmHWM``), the maximum over repeats (not
  ``ru_maxrss`` from ``os.wait4``, which on Linux includes the parent's RSS at the spawn; it
  is in the per-run CSV as ``ru_maxrss_mib``);
* channel statistics (tuspipe rows): per channel, the medians of the seconds the writing stage
  sat blocked on a full channel (send) and the reading stage on an empty one (receive).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._runs import MiB, RunResult, Setting, format_size
from ._worker import ChannelFigures

__all__ = [
    "RSS_TARGET_MIB",
    "Summary",
    "TargetCheck",
    "bottleneck",
    "evaluate_targets",
    "plot_series",
    "render_channels",
    "render_table",
    "render_targets",
    "summarize",
    "write_plot",
    "write_runs_csv",
    "write_summary_csv",
]

#: tuspipe's peak RSS must stay at or below this at every chunk size (issue 7).
RSS_TARGET_MIB = 64.0
#: The channels tuspipe's pipeline reports, in pipeline order; others are listed after them.
KNOWN_CHANNELS = ("chunks", "hashed", "blocks", "acks")
#: The stage between two channels ("" = the chain's start or end), for readable verdicts.
_STAGE_NAMES = {
    ("", "chunks"): "chunker",
    ("chunks", "hashed"): "checksummer",
    ("chunks", "blocks"): "reader",
    ("hashed", "blocks"): "reader",
    ("blocks", "acks"): "sender",
    ("acks", ""): "reporter",
}


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


@dataclass(frozen=True)
class Summary:
    """A setting's runs reduced to one table row (None: no successful run)."""

    setting: Setting
    runs: int
    failures: int
    bytes: int
    files: int
    mb_per_s: float | None
    files_per_s: float | None
    cpu_per_gib: float | None
    cpu_process: float | None
    peak_rss_mib: float | None
    base_rss_mib: float | None
    channels: tuple[ChannelFigures, ...]

    @property
    def speed(self) -> float | None:
        """The figure clients are compared by: files/s for many files, MB/s otherwise."""
        return self.files_per_s if self.setting.source == "files" else self.mb_per_s


def summarize(results: Sequence[RunResult]) -> list[Summary]:
    """One Summary per setting, in the order the settings first ran."""
    grouped: dict[Setting, list[RunResult]] = {}
    for run in results:
        grouped.setdefault(run.setting, []).append(run)
    rows = []
    for setting, runs in grouped.items():
        good = [run for run in runs if run.ok]
        names: list[str] = []
        for run in good:
            names += [c.name for c in run.channels if c.name not in names]
        channels = []
        for name in names:
            figures = [c for run in good for c in run.channels if c.name == name]
            channels.append(
                ChannelFigures(
                    name,
                    int(statistics.median(c.items for c in figures)),
                    statistics.median(c.send_wait for c in figures),
                    statistics.median(c.receive_wait for c in figures),
                )
            )
        rss = [run.peak_rss_kib / 1024 for run in good if run.peak_rss_kib is not None]
        base = [run.base_rss_kib / 1024 for run in good if run.base_rss_kib is not None]
        rows.append(
            Summary(
                setting=setting,
                runs=len(runs),
                failures=len(runs) - len(good),
                bytes=runs[0].bytes,
                files=runs[0].files,
                mb_per_s=_median(run.mb_per_s for run in good),
                files_per_s=_median(run.files_per_s for run in good),
                cpu_per_gib=_median(run.cpu_per_gib for run in good),
                cpu_process=_median(run.cpu_process for run in good),
                peak_rss_mib=max(rss) if rss else None,
                base_rss_mib=max(base) if base else None,
                channels=tuple(channels),
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------


def _partner(rows: Sequence[Summary], row: Summary, client: str) -> Summary | None:
    """The row of `client` that measures what `row` measures."""
    return next(
        (
            other
            for other in rows
            if other.setting.client == client and other.setting.pair_key == row.setting.pair_key
        ),
        None,
    )


def _curl(rows: Sequence[Summary]) -> Summary | None:
    return next((row for row in rows if row.setting.client == "curl"), None)


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    return mine / theirs if mine is not None and theirs else None


def _vs_tuspy(rows: Sequence[Summary], row: Summary) -> float | None:
    if row.setting.client != "tuspipe":
        return None
    tuspy = _partner(rows, row, "tuspy")
    return _ratio(row.speed, tuspy.speed) if tuspy else None


def _vs_curl(rows: Sequence[Summary], row: Summary) -> float | None:
    curl = _curl(rows)
    if curl is None or row is curl or not row.setting.moves_big_file:
        return None
    return _ratio(row.mb_per_s, curl.mb_per_s)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _detail(setting: Setting) -> str:
    if setting.source == "files":
        return "bare httpx POSTs" if setting.client == "httpx" else "many files"
    if setting.source in ("generator", "pipe"):
        return f"from a {setting.source}"
    if setting.parallel > 1:
        return f"parallel {setting.parallel}"
    if setting.client == "sendfile":
        return "sendfile()"
    if setting.client == "curl":
        return "curl -T"
    if setting.bare:
        return "no settings"
    return ""


def _layout(header: Sequence[str], cells: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def render(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    return [render(header), "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(render, cells)]


def render_table(rows: Sequence[Summary], repeats: int) -> str:
    """The results table: one row per setting, with ratios to tuspy and to curl."""
    header = [
        "workload",
        "client",
        "chunk",
        "checksum",
        "detail",
        "MB/s",
        "files/s",
        "CPU s/GiB",
        "proc CPU s",
        "peak RSS MiB",
        "x tuspy",
        "x curl",
        "runs",
    ]
    cells = []
    for row in rows:
        setting = row.setting
        failed = row.speed is None
        runs = f"{row.runs - row.failures}/{row.runs}"
        cells.append(
            [
                setting.workload,
                setting.client,
                setting.chunk_label,
                setting.checksum_label,
                _detail(setting),
                _fmt(row.mb_per_s, ".0f", "FAILED" if failed else "-"),
                _fmt(row.files_per_s, ".0f") if setting.source == "files" else "",
                _fmt(row.cpu_per_gib, ".2f"),
                _fmt(row.cpu_process, ".2f"),
                _fmt(row.peak_rss_mib, ".1f"),
                _fmt(_vs_tuspy(rows, row), ".2f", ""),
                _fmt(_vs_curl(rows, row), ".2f", ""),
                runs,
            ]
        )
    lines = _layout(header, cells, right={5, 6, 7, 8, 9, 10, 11, 12})
    lines.append(
        f"MB/s: payload / upload-call time, 10^6 B/s, median of {repeats} run(s); files/s "
        "likewise. CPU s/GiB: user+sys CPU of the upload call (all threads), per GiB, median; "
        "curl: its whole process. proc CPU s: the whole child process, median. peak RSS: "
        "the child's own VmHWM, max over runs. x tuspy: tuspipe's speed / tuspy's in the "
        "same setting (files/s for many files). x curl: MB/s / curl's MB/s. runs: ok/total."
    )
    return "\n".join(lines)


def _chain(channels: Sequence[ChannelFigures]) -> list[ChannelFigures]:
    """The channels in pipeline order: the known ones first, any others as reported."""
    known = {c.name: c for c in channels if c.name in KNOWN_CHANNELS}
    return [known[name] for name in KNOWN_CHANNELS if name in known] + [
        c for c in channels if c.name not in KNOWN_CHANNELS
    ]


def _stage_name(before: str, after: str) -> str:
    named = _STAGE_NAMES.get((before, after))
    if named:
        return named
    if not before:
        return f"writer of {after!r}"
    if not after:
        return f"reader of {before!r}"
    return f"stage {before!r}->{after!r}"


@dataclass(frozen=True)
class StageWaits:
    """One pipeline stage, as the channel statistics around it describe it."""

    name: str
    blocked: float  # seconds it sat blocked: waiting for input, or for room to send
    waited_for: float  # seconds its neighbours sat blocked on it
    lead: float  # how much the channels upstream lean "full" (see stage_waits)


def stage_waits(channels: Sequence[ChannelFigures]) -> list[StageWaits]:
    """The stages of the chain the channels link (stage k reads channel k-1, writes k).

    A channel's lean, send wait minus receive wait, is positive when its reader is the
    slower side and negative when its writer is. Upstream of the slowest stage every channel
    leans "full", downstream every one "empty", so the slowest stage is where the running
    sum of the leans (``lead``) peaks. The trivial stages at the ends do not distort this:
    the chunker's constant wait to hand on chunks adds to every later stage alike, and the
    reporter's constant wait for acknowledgements counts only against the reporter.
    """
    chain = _chain(channels)
    if not chain:
        return []
    names = ["", *(c.name for c in chain), ""]
    stages = []
    lead = 0.0
    for k in range(len(chain) + 1):
        inbound = chain[k - 1] if k > 0 else None
        outbound = chain[k] if k < len(chain) else None
        if inbound is not None:
            lead += inbound.send_wait - inbound.receive_wait
        blocked = (inbound.receive_wait if inbound else 0.0) + (
            outbound.send_wait if outbound else 0.0
        )
        waited_for = (inbound.send_wait if inbound else 0.0) + (
            outbound.receive_wait if outbound else 0.0
        )
        stages.append(StageWaits(_stage_name(names[k], names[k + 1]), blocked, waited_for, lead))
    return stages


def bottleneck(channels: Sequence[ChannelFigures]) -> str:
    """``sender (waited for 1.23 s)``: the slowest stage by the channel waits, or ''."""
    stages = stage_waits(channels)
    if not stages:
        return ""
    # Ties (a one-chunk upload leaves the chunker's channel idle) go to the stage that
    # its neighbours actually waited for.
    slowest = max(stages, key=lambda stage: (round(stage.lead, 3), stage.waited_for))
    return f"{slowest.name} (waited for {slowest.waited_for:.2f} s)"


def _waited_most(channels: Sequence[ChannelFigures]) -> str:
    stages = stage_waits(channels)
    if not stages:
        return ""
    idle = max(stages, key=lambda stage: stage.blocked)
    return f"{idle.name} ({idle.blocked:.2f} s)"


def render_channels(rows: Sequence[Summary]) -> str:
    """Per tuspipe row, each channel's waits and the stage that waited most / held up most."""
    with_stats = [row for row in rows if row.setting.client == "tuspipe" and row.channels]
    if not with_stats:
        tuspipe_rows = [row for row in rows if row.setting.client == "tuspipe"]
        if not tuspipe_rows:
            return ""
        return (
            "Pipeline channels: not reported (this tuspipe's UploadResult has no "
            "channel_stats yet)."
        )
    names = _channel_names(row.channels for row in with_stats)
    header = ["tuspipe row", *names, "waited most", "slowest stage (bottleneck)"]
    cells = []
    for row in with_stats:
        by_name = {c.name: c for c in row.channels}
        setting = row.setting
        label = " ".join(
            word
            for word in (
                setting.workload,
                "" if setting.chunk_label == "default" else setting.chunk_label,
                setting.checksum_label,
                _detail(setting),
            )
            if word
        )
        cells.append(
            [
                label,
                *(
                    f"{by_name[n].send_wait:.2f}/{by_name[n].receive_wait:.2f}"
                    if n in by_name
                    else "-"
                    for n in names
                ),
                _waited_most(row.channels),
                bottleneck(row.channels),
            ]
        )
    lines = [
        "Pipeline channels (tuspipe rows; seconds, median over runs, as send/receive wait):",
        *_layout(header, cells, right=set(range(1, len(names) + 1))),
        "send: the stage writing the channel sat blocked on a full channel (its reader is "
        "slower); receive: the stage reading it sat blocked on an empty one (its writer is "
        "slower). waited most: the stage blocked longest (idle). slowest stage: where the "
        "channels turn from full (upstream) to empty (downstream), with the seconds its "
        "neighbours waited for it.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    """One target of issue 7: its verdict (PASS, FAIL or "not measured") and the figures."""

    name: str
    verdict: str
    figures: str


def _find(rows: Sequence[Summary], **wanted: object) -> Summary | None:
    """The first row whose setting has all the `wanted` attribute values."""
    for row in rows:
        if all(getattr(row.setting, key) == value for key, value in wanted.items()):
            return row
    return None


def _ratio_target(
    name: str, mine: Summary | None, theirs: Summary | None, minimum: float, unit: str
) -> TargetCheck:
    if mine is None or theirs is None:
        return TargetCheck(name, "not measured", "its rows were not run")
    mine_speed, theirs_speed = mine.speed, theirs.speed
    if mine_speed is None or theirs_speed is None:
        return TargetCheck(name, "not measured", "its runs failed")
    ratio = mine_speed / theirs_speed
    figures = (
        f"{mine.setting.client} {mine_speed:.0f} {unit} / {theirs.setting.client} "
        f"{theirs_speed:.0f} {unit} = {ratio:.2f}x (target >= {minimum:g}x)"
    )
    return TargetCheck(name, "PASS" if ratio >= minimum else "FAIL", figures)


def _rss_target(rows: Sequence[Summary]) -> TargetCheck:
    name = f"tuspipe peak RSS <= {RSS_TARGET_MIB:g} MiB at every chunk size, whole file too"
    chunk_rows = [
        row
        for row in rows
        if row.setting.client == "tuspipe" and row.setting.workload in ("chunks", "checksums")
    ]
    if not chunk_rows:
        return TargetCheck(name, "not measured", "no chunks/checksums rows were run")
    measured = [row for row in chunk_rows if row.peak_rss_mib is not None]
    if not measured:
        return TargetCheck(name, "not measured", "its runs failed")
    worst = max(measured, key=lambda row: row.peak_rss_mib or 0.0)
    whole = [row.peak_rss_mib for row in measured if row.setting.whole and row.peak_rss_mib]
    figures = (
        f"highest {worst.peak_rss_mib:.1f} MiB ({worst.setting.chunk_label}, checksum "
        f"{worst.setting.checksum_label}) over {len(measured)} rows"
    )
    if (worst.peak_rss_mib or 0.0) > RSS_TARGET_MIB:
        return TargetCheck(name, "FAIL", figures)
    if not whole:
        # Under the limit where measured, but the whole-file case, the hardest, is missing.
        return TargetCheck(name, "not measured", figures + "; the whole-file rows did not run")
    return TargetCheck(name, "PASS", figures + f"; whole file: {max(whole):.1f} MiB")


def _cpu_target(rows: Sequence[Summary]) -> TargetCheck:
    name = "tuspipe CPU s/GiB below tuspy's at every setting both have"
    pairs = []
    for row in rows:
        if row.setting.client != "tuspipe":
            continue
        tuspy = _partner(rows, row, "tuspy")
        if tuspy is not None:
            pairs.append((row, tuspy))
    if not pairs:
        return TargetCheck(name, "not measured", "no setting ran with both clients")
    measured = [
        (mine, theirs)
        for mine, theirs in pairs
        if mine.cpu_per_gib is not None and theirs.cpu_per_gib is not None
    ]
    if not measured:
        return TargetCheck(name, "not measured", "its runs failed")
    over = [(m, t) for m, t in measured if (m.cpu_per_gib or 0.0) >= (t.cpu_per_gib or 0.0)]

    def describe(mine: Summary, theirs: Summary) -> str:
        s = mine.setting
        where = " ".join(w for w in (s.workload, s.chunk_label, s.checksum_label) if w)
        return f"{where}: {mine.cpu_per_gib:.2f} vs {theirs.cpu_per_gib:.2f}"

    if over:
        figures = f"{len(over)} of {len(measured)} settings not below: " + "; ".join(
            describe(m, t) for m, t in over
        )
        return TargetCheck(name, "FAIL", figures)
    worst = max(
        measured, key=lambda pair: (pair[0].cpu_per_gib or 0.0) / (pair[1].cpu_per_gib or 1)
    )
    figures = (
        f"below in all {len(measured)} settings; closest {describe(*worst)} "
        f"({(worst[0].cpu_per_gib or 0.0) / (worst[1].cpu_per_gib or 1):.2f}x)"
    )
    if len(measured) < len(pairs):
        figures += f"; {len(pairs) - len(measured)} setting(s) failed and were not compared"
    return TargetCheck(name, "PASS", figures)


def evaluate_targets(rows: Sequence[Summary]) -> list[TargetCheck]:
    """The five targets of issue 7, from this run's own rows."""
    defaults_tuspipe = _find(rows, workload="defaults", client="tuspipe")
    many_tuspipe = _find(rows, workload="many", client="tuspipe")
    many_tuspy = _find(rows, workload="many", client="tuspy")
    many_name = "upload_many >= 5x a tuspy loop in files/s"
    if many_tuspipe is not None:
        each = format_size(many_tuspipe.bytes // max(1, many_tuspipe.files))
        many_name = f"upload_many of {many_tuspipe.files} x {each} >= 5x a tuspy loop in files/s"
    return [
        _ratio_target(
            "defaults, no checksum: tuspipe >= 2.5x tuspy",
            defaults_tuspipe,
            _find(rows, workload="defaults", client="tuspy"),
            2.5,
            "MB/s",
        ),
        _ratio_target(
            "defaults, no checksum: tuspipe >= 0.65x curl",
            defaults_tuspipe,
            _find(rows, workload="defaults", client="curl"),
            0.65,
            "MB/s",
        ),
        _ratio_target(
            "8 MiB chunks + sha1: tuspipe >= 1.4x tuspy",
            _find(
                rows, workload="checksums", client="tuspipe", chunk_size=8 * MiB, checksum="sha1"
            ),
            _find(rows, workload="checksums", client="tuspy", chunk_size=8 * MiB, checksum="sha1"),
            1.4,
            "MB/s",
        ),
        _rss_target(rows),
        _with_floor(
            _ratio_target(many_name, many_tuspipe, many_tuspy, 5.0, "files/s"),
            _find(rows, workload="many", client="httpx"),
            many_tuspy,
        ),
        _cpu_target(rows),
    ]


def _with_floor(check: TargetCheck, floor: Summary | None, tuspy: Summary | None) -> TargetCheck:
    """Add what bare httpx reaches to the many-files target: no tus client can beat it."""
    if floor is None or tuspy is None or floor.speed is None or not tuspy.speed:
        return check
    figures = (
        f"{check.figures}; bare httpx POSTs {floor.speed:.0f} files/s = "
        f"{floor.speed / tuspy.speed:.2f}x tuspy"
    )
    return TargetCheck(check.name, check.verdict, figures)


def render_targets(checks: Sequence[TargetCheck]) -> str:
    """The targets block: one line per target, verdict first."""
    width = max(len(check.verdict) for check in checks)
    lines = ["Targets (issue 7; from this run's own figures):"]
    for check in checks:
        lines.append(f"  {check.verdict:<{width}}  {check.name}")
        lines.append(f"  {'':<{width}}    {check.figures}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _channel_names(groups: Iterable[Sequence[ChannelFigures]]) -> list[str]:
    """Every channel name in the groups, in pipeline order (unknown names last)."""
    seen: list[str] = []
    for channels in groups:
        seen += [c.name for c in channels if c.name not in seen]
    return [n for n in KNOWN_CHANNELS if n in seen] + [n for n in seen if n not in KNOWN_CHANNELS]


def _setting_columns(setting: Setting, size: int) -> list[object]:
    chunk_bytes = size if setting.whole else setting.chunk_size
    return [
        setting.workload,
        setting.client,
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
    names = _channel_names(run.channels for run in results)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                *_SETTING_HEADER,
                "repeat",
                "ok",
                "bytes",
                "files",
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
    names = _channel_names(row.channels for row in rows)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                *_SETTING_HEADER,
                "runs",
                "failures",
                "bytes",
                "files",
                "mb_per_s_median",
                "files_per_s_median",
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
                    _number(row.mb_per_s, 1),
                    _number(row.files_per_s, 1),
                    _number(row.cpu_per_gib, 3),
                    _number(row.cpu_process, 3),
                    _number(row.peak_rss_mib, 1),
                    _number(row.base_rss_mib, 1),
                    _number(_vs_tuspy(rows, row), 3),
                    _number(_vs_curl(rows, row), 3),
                    bottleneck(row.channels),
                    *_channel_columns(row.channels, names),
                ]
            )


def plot_series(
    rows: Sequence[Summary], size: int
) -> tuple[dict[str, list[tuple[float, float]]], dict[float, str]]:
    """Throughput against chunk size: one series per client and checksum, and tick labels.

    The whole-file rows sit at x = the file size in MiB, labelled "whole".
    """
    series: dict[str, list[tuple[float, float]]] = {}
    ticks: dict[float, str] = {}
    for row in rows:
        setting = row.setting
        if setting.workload not in ("chunks", "checksums") or row.mb_per_s is None:
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
        return "no chunks/checksums rows were measured"
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
