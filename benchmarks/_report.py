"""Runs reduced to figures: the summary rows, the comparisons between them and the tables.

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
  sat blocked on a full channel (send) and the reading stage on an empty one (receive);
* the small-things table (issue 15): the many-files and small-items rows with the seconds of
  the call, files or items per second and CPU per file or item.

The targets are computed in :mod:`benchmarks._targets`; the CSVs and the plot are written by
:mod:`benchmarks._files`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._runs import RunResult, Setting, format_size
from ._worker import ChannelFigures

__all__ = [
    "Summary",
    "bottleneck",
    "channel_names",
    "find_row",
    "partner",
    "render_channels",
    "render_small_table",
    "render_table",
    "stage_waits",
    "summarize",
    "vs_curl",
    "vs_tuspy",
]

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
    seconds: float | None = None  # the upload call, median
    cpu_upload: float | None = None  # CPU seconds of the upload call, median
    items: int = 0  # small items of the items rows

    @property
    def speed(self) -> float | None:
        """The figure clients are compared by: files/s for many files, MB/s otherwise."""
        return self.files_per_s if self.setting.source == "files" else self.mb_per_s

    @property
    def items_per_s(self) -> float | None:
        return self.items / self.seconds if self.items and self.seconds else None

    @property
    def cpu_per_thing(self) -> float | None:
        """CPU seconds of the call per file (many files) or per item (items rows)."""
        count = self.items or self.files
        return self.cpu_upload / count if self.cpu_upload is not None and count else None


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
                seconds=_median(run.seconds for run in good),
                cpu_upload=_median(run.cpu_upload for run in good),
                items=runs[0].items,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------


def find_row(rows: Sequence[Summary], **wanted: object) -> Summary | None:
    """The first row whose setting has all the `wanted` attribute values."""
    for row in rows:
        if all(getattr(row.setting, key) == value for key, value in wanted.items()):
            return row
    return None


def partner(rows: Sequence[Summary], row: Summary, client: str) -> Summary | None:
    """The row of `client` that measures what `row` measures."""
    return next(
        (
            other
            for other in rows
            if other.setting.client == client and other.setting.pair_key == row.setting.pair_key
        ),
        None,
    )


def _curl(rows: Sequence[Summary], row: Summary) -> Summary | None:
    """The curl ceiling for `row`: the many-files one for many files, else the PATCH of the
    big file (the defaults row) for every row that moves the big file."""
    if row.setting.source == "files":
        return find_row(rows, workload=row.setting.workload, client="curl")
    if row.setting.moves_big_file:
        return find_row(rows, workload="defaults", client="curl")
    return None


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    return mine / theirs if mine is not None and theirs else None


def vs_tuspy(rows: Sequence[Summary], row: Summary) -> float | None:
    """tuspipe's speed over tuspy's in the same setting (None for other rows)."""
    if row.setting.client != "tuspipe":
        return None
    tuspy = partner(rows, row, "tuspy")
    return _ratio(row.speed, tuspy.speed) if tuspy else None


def vs_curl(rows: Sequence[Summary], row: Summary) -> float | None:
    """The row's speed over its curl ceiling's (MB/s; files/s for many files), or None."""
    curl = _curl(rows, row)
    if curl is None or row is curl:
        return None
    return _ratio(row.speed, curl.speed)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _detail(setting: Setting) -> str:
    """What the row does beyond its columns; tuspipe under asyncio says so."""
    what = _shape(setting)
    if setting.loop == "trio":
        return what
    return f"{what}, under {setting.loop}" if what else f"under {setting.loop}"


def _shape(setting: Setting) -> str:
    if setting.source == "files":
        what = {
            "httpx": "bare httpx POSTs",
            "curl": "curl --parallel POSTs",
            "tuspy": "many files, a loop",
        }.get(setting.client, "many files")
        if setting.concurrency is not None:
            what += f", {setting.concurrency} at a time"
        return what
    if setting.source == "items":
        return "a generator of items"
    if setting.source == "bytes":
        return "the same, one bytes object"
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
                _fmt(vs_tuspy(rows, row), ".2f", ""),
                _fmt(vs_curl(rows, row), ".2f", ""),
                runs,
            ]
        )
    lines = _layout(header, cells, right={5, 6, 7, 8, 9, 10, 11, 12})
    lines.append(
        f"MB/s: payload / upload-call time, 10^6 B/s, median of {repeats} run(s); files/s "
        "likewise. CPU s/GiB: user+sys CPU of the upload call (all threads), per GiB, median; "
        "curl: its whole process. proc CPU s: the whole child process, median. peak RSS: "
        "the child's own VmHWM, max over runs. x tuspy: tuspipe's speed / tuspy's in the "
        "same setting (files/s for many files). x curl: MB/s / curl's MB/s (files/s / curl "
        "--parallel's for many files). under asyncio: the same tuspipe call awaited in "
        "asyncio.run (trio in guest mode on the asyncio loop); the other tuspipe rows are "
        "the blocking call (trio.run). runs: ok/total."
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
            "Pipeline channels: none reported (these tuspipe uploads ran no pipeline, or "
            "this tuspipe's UploadResult has no channel_stats)."
        )
    names = channel_names(row.channels for row in with_stats)
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


def channel_names(groups: Iterable[Sequence[ChannelFigures]]) -> list[str]:
    """Every channel name in the groups, in pipeline order (unknown names last)."""
    seen: list[str] = []
    for channels in groups:
        seen += [c.name for c in channels if c.name not in seen]
    return [n for n in KNOWN_CHANNELS if n in seen] + [n for n in seen if n not in KNOWN_CHANNELS]


# --------------------------------------------------------------------------------------------
# Small things (issue 15)
# --------------------------------------------------------------------------------------------


def _rate(row: Summary) -> str:
    if row.setting.source == "files":
        return _fmt(row.files_per_s, ".0f") + " files/s"
    return _fmt(row.items_per_s, ".0f") + " items/s"


def _cpu_per_thing(row: Summary) -> str:
    per = row.cpu_per_thing
    if per is None:
        return "-"
    if row.setting.source == "files":
        return f"{per * 1e3:.3f} ms/file"
    return f"{per * 1e6:.2f} us/item"


def _vs_tuspipe(rows: Sequence[Summary], row: Summary) -> str:
    """tuspipe's speed (under trio) over this row's: tuspipe's own generator row for the
    bytes row, the same call under trio for a row under asyncio."""
    setting = row.setting
    if setting.client == "tuspipe" and setting.source != "bytes" and setting.loop == "trio":
        return ""
    source = "items" if setting.source == "bytes" else setting.source
    mine = find_row(rows, workload=setting.workload, client="tuspipe", source=source, loop="trio")
    return "" if mine is None else _fmt(_ratio(mine.speed, row.speed), ".2f", "")


def render_small_table(
    rows: Sequence[Summary], repeats: int, unmeasured: Sequence[tuple[Setting, str]] = ()
) -> str:
    """The many-files and small-items rows with per-file and per-item figures; the rows of
    `unmeasured` (a setting that cannot run, and why) are listed too, with their reason."""
    small = [row for row in rows if row.setting.source == "files" or row.items]
    if not small and not unmeasured:
        return ""
    header = [
        "workload",
        "client",
        "detail",
        "seconds",
        "rate",
        "MB/s",
        "CPU s",
        "CPU per file/item",
        "proc CPU s",
        "peak RSS MiB",
        "tuspipe x",
        "runs",
    ]
    cells = []
    for row in small:
        setting = row.setting
        cells.append(
            [
                setting.workload,
                setting.client,
                _detail(setting),
                _fmt(row.seconds, ".3f", "FAILED"),
                _rate(row),
                _fmt(row.mb_per_s, ".1f"),
                _fmt(row.cpu_upload, ".3f"),
                _cpu_per_thing(row),
                _fmt(row.cpu_process, ".2f"),
                _fmt(row.peak_rss_mib, ".1f"),
                _vs_tuspipe(rows, row),
                f"{row.runs - row.failures}/{row.runs}",
            ]
        )
    notes = []
    for number, (setting, reason) in enumerate(unmeasured, 1):
        detail = _detail(setting)
        cells.append([setting.workload, setting.client, detail, f"not measured [{number}]"])
        cells[-1] += [""] * (len(header) - len(cells[-1]) - 1) + ["0/0"]
        notes.append(f"[{number}] {setting.workload} {setting.client} ({detail}): {reason}")
    what: list[str] = []
    for row in small:
        count = row.files if row.setting.source == "files" else row.items
        noun = "files" if row.setting.source == "files" else "items"
        text = f"{count} {noun} of {format_size(row.bytes // max(1, count))}"
        what += [] if text in what else [text]
    lines = [
        f"Small things (issue 15): {', '.join(what) or 'none measured'}; "
        f"median of {repeats} run(s):",
        *_layout(header, cells, right={3, 4, 5, 6, 7, 8, 9, 10, 11}),
        "seconds: the upload call (curl --parallel: its whole process, start included). CPU s: "
        "user+sys CPU of the call (curl: its whole process, from wait4), per file or item "
        "beside it. tuspipe x: tuspipe's files/s over this row's (the bytes row: the item "
        "generator's speed over the one bytes object's; a row under asyncio: tuspipe's "
        "files/s under trio over its own).",
        *notes,
    ]
    return "\n".join(lines)
