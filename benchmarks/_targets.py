"""The targets of issues 7, 13 and 15, computed from one harness run's own rows.

Each target prints PASS, FAIL or "not measured" (its rows were not run, or their runs failed)
with the figures it was decided on, so a reader can check the verdict.

Issue 7 (large files and the first many-files figure): with no settings, tuspipe >= 2.5x
tuspy and >= 0.65x curl in MB/s; 8 MiB chunks + sha1, tuspipe >= 1.4x tuspy; tuspipe's peak
RSS <= 64 MiB in every chunks and checksums row, whole file included; ``upload_many`` >= 5x a
tuspy loop in files/s; tuspipe's CPU s/GiB below tuspy's in every setting both ran.

Issue 15 (small things): a stream of 200k 33-byte items from a generator in under 0.5 s (for
another count, the bound scales with it) and within 2x of the same bytes as one ``bytes``
object; 1000 x 16 KiB files, tuspipe ``upload_many`` >= 5x a tuspy loop, >= 3x aiotus and
>= 0.3x the ``curl --parallel`` ceiling in files/s.

Issue 13 (asyncio): tuspipe under asyncio (the async call in ``asyncio.run``, trio in guest
mode) within 10 % of the same call under trio, measured side by side in the same run: the
1 GiB file with no settings in MB/s, and 1000 x 16 KiB files in files/s (ratio of the
medians >= 0.9); the figures add both rows' CPU per GiB or per file.

The targets of issues 7 and 15 compare tuspipe's rows under trio (its blocking calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._report import Summary, find_row, partner
from ._runs import MiB, format_size

__all__ = [
    "ASYNCIO_TARGET",
    "ITEMS_SECONDS",
    "ITEMS_TARGET_COUNT",
    "RSS_TARGET_MIB",
    "TargetCheck",
    "evaluate_loop_targets",
    "evaluate_small_targets",
    "evaluate_targets",
    "render_targets",
]

#: tuspipe's peak RSS must stay at or below this at every chunk size (issue 7).
RSS_TARGET_MIB = 64.0
#: Issue 15: this many small items from a generator in under ITEMS_SECONDS (scaled for others).
ITEMS_TARGET_COUNT = 200_000
ITEMS_SECONDS = 0.5
#: Issue 13: tuspipe under asyncio reaches at least this fraction of its speed under trio.
ASYNCIO_TARGET = 0.9


@dataclass(frozen=True)
class TargetCheck:
    """One target: its verdict (PASS, FAIL or "not measured") and the figures."""

    name: str
    verdict: str
    figures: str


def _ratio_target(
    name: str,
    mine: Summary | None,
    theirs: Summary | None,
    minimum: float,
    unit: str,
    *,
    names: tuple[str, str] | None = None,
) -> TargetCheck:
    """PASS when `mine`'s speed is at least `minimum` times `theirs` (ratio of the medians);
    the figures name the two rows by client, or by `names`."""
    if mine is None or theirs is None:
        return TargetCheck(name, "not measured", "its rows were not run")
    mine_speed, theirs_speed = mine.speed, theirs.speed
    if mine_speed is None or theirs_speed is None:
        return TargetCheck(name, "not measured", "its runs failed")
    ratio = mine_speed / theirs_speed
    mine_name, theirs_name = names or (mine.setting.client, theirs.setting.client)
    figures = (
        f"{mine_name} {mine_speed:.0f} {unit} / {theirs_name} "
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
        if row.setting.client != "tuspipe" or row.setting.loop != "trio":
            continue
        tuspy = partner(rows, row, "tuspy")
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
    """The six targets of issue 7, from this run's own rows."""
    defaults_tuspipe = find_row(rows, workload="defaults", client="tuspipe", loop="trio")
    many_tuspipe = find_row(rows, workload="many", client="tuspipe", loop="trio")
    many_tuspy = find_row(rows, workload="many", client="tuspy")
    many_name = "upload_many >= 5x a tuspy loop in files/s"
    if many_tuspipe is not None:
        each = format_size(many_tuspipe.bytes // max(1, many_tuspipe.files))
        many_name = f"upload_many of {many_tuspipe.files} x {each} >= 5x a tuspy loop in files/s"
    return [
        _ratio_target(
            "defaults, no checksum: tuspipe >= 2.5x tuspy",
            defaults_tuspipe,
            find_row(rows, workload="defaults", client="tuspy"),
            2.5,
            "MB/s",
        ),
        _ratio_target(
            "defaults, no checksum: tuspipe >= 0.65x curl",
            defaults_tuspipe,
            find_row(rows, workload="defaults", client="curl"),
            0.65,
            "MB/s",
        ),
        _ratio_target(
            "8 MiB chunks + sha1: tuspipe >= 1.4x tuspy",
            find_row(
                rows,
                workload="checksums",
                client="tuspipe",
                chunk_size=8 * MiB,
                checksum="sha1",
                loop="trio",
            ),
            find_row(
                rows, workload="checksums", client="tuspy", chunk_size=8 * MiB, checksum="sha1"
            ),
            1.4,
            "MB/s",
        ),
        _rss_target(rows),
        _with_floor(
            _ratio_target(many_name, many_tuspipe, many_tuspy, 5.0, "files/s"),
            find_row(rows, workload="many", client="httpx"),
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


def render_targets(checks: Sequence[TargetCheck], issue: int = 7) -> str:
    """The targets block of `issue`: one line per target, verdict first."""
    width = max(len(check.verdict) for check in checks)
    lines = [f"Targets (issue {issue}; from this run's own figures):"]
    for check in checks:
        lines.append(f"  {check.verdict:<{width}}  {check.name}")
        lines.append(f"  {'':<{width}}    {check.figures}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Issue 15
# --------------------------------------------------------------------------------------------


def _items_time_target(items: Summary | None) -> TargetCheck:
    name = (
        f"a stream of {ITEMS_TARGET_COUNT} small items from a generator in under "
        f"{ITEMS_SECONDS:g} s"
    )
    if items is None:
        return TargetCheck(name, "not measured", "its row was not run")
    bound = ITEMS_SECONDS * items.items / ITEMS_TARGET_COUNT
    if items.items != ITEMS_TARGET_COUNT:
        name = (
            f"a stream of {items.items} small items from a generator in under {bound:.3g} s "
            f"({ITEMS_SECONDS:g} s for {ITEMS_TARGET_COUNT}, scaled)"
        )
    if items.seconds is None or not items.items:
        return TargetCheck(name, "not measured", "its runs failed")
    figures = (
        f"{items.seconds:.3f} s, {items.seconds / items.items * 1e6:.2f} us/item, "
        f"{items.items / items.seconds:.0f} items/s (target < {bound:.3g} s)"
    )
    return TargetCheck(name, "PASS" if items.seconds < bound else "FAIL", figures)


def _items_vs_bytes_target(items: Summary | None, whole: Summary | None) -> TargetCheck:
    name = "the items from a generator within 2x of the same bytes as one bytes object"
    if items is None or whole is None:
        return TargetCheck(name, "not measured", "its rows were not run")
    if items.seconds is None or whole.seconds is None:
        return TargetCheck(name, "not measured", "its runs failed")
    ratio = items.seconds / whole.seconds
    figures = (
        f"generator {items.seconds:.3f} s / one bytes object {whole.seconds:.3f} s = "
        f"{ratio:.2f}x the time (target <= 2x)"
    )
    return TargetCheck(name, "PASS" if ratio <= 2.0 else "FAIL", figures)


def evaluate_small_targets(rows: Sequence[Summary]) -> list[TargetCheck]:
    """The targets of issue 15, from this run's own rows."""
    many = find_row(rows, workload="many", client="tuspipe", loop="trio")
    what = "many small files"
    if many is not None:
        what = f"{many.files} x {format_size(many.bytes // max(1, many.files))}"
    items = find_row(rows, workload="items", client="tuspipe", source="items", loop="trio")
    return [
        _items_time_target(items),
        _items_vs_bytes_target(
            items, find_row(rows, workload="items", client="tuspipe", source="bytes", loop="trio")
        ),
        *(
            _ratio_target(
                f"{what}: tuspipe upload_many >= {minimum:g}x {whom} in files/s",
                many,
                find_row(rows, workload="many", client=client),
                minimum,
                "files/s",
            )
            for client, whom, minimum in (
                ("tuspy", "a tuspy loop", 5.0),
                ("aiotus", "aiotus", 3.0),
                ("curl", "the curl --parallel ceiling", 0.3),
            )
        ),
    ]


# --------------------------------------------------------------------------------------------
# Issue 13
# --------------------------------------------------------------------------------------------


def _cpu_of(row: Summary) -> str:
    """The row's CPU figure: per file for many files, per GiB otherwise; '-' if none."""
    if row.setting.source == "files":
        per = row.cpu_per_thing
        return "-" if per is None else f"{per * 1e3:.3f} ms/file"
    return "-" if row.cpu_per_gib is None else f"{row.cpu_per_gib:.2f} s/GiB"


def _loop_target(rows: Sequence[Summary], workload: str) -> TargetCheck:
    """tuspipe under asyncio >= ASYNCIO_TARGET x tuspipe under trio in `workload`."""
    under_trio = find_row(rows, workload=workload, client="tuspipe", loop="trio")
    under_asyncio = find_row(rows, workload=workload, client="tuspipe", loop="asyncio")
    sized = under_trio or under_asyncio
    if workload == "many":
        unit = "files/s"
        what = "many small files"
        if sized is not None:
            what = f"{sized.files} x {format_size(sized.bytes // max(1, sized.files))}"
        call = "upload_many"
    else:
        unit = "MB/s"
        what = "defaults" if sized is None else f"{format_size(sized.bytes)}, no settings"
        call = "upload"
    name = f"{what}: tuspipe {call} under asyncio >= {ASYNCIO_TARGET:g}x under trio in {unit}"
    check = _ratio_target(
        name, under_asyncio, under_trio, ASYNCIO_TARGET, unit, names=("asyncio", "trio")
    )
    if under_asyncio is None or under_trio is None or check.verdict == "not measured":
        return check
    cpu = f"CPU asyncio {_cpu_of(under_asyncio)}, trio {_cpu_of(under_trio)}"
    figures = f"{check.figures}; {cpu}"
    return TargetCheck(check.name, check.verdict, figures)


def evaluate_loop_targets(rows: Sequence[Summary]) -> list[TargetCheck]:
    """The targets of issue 13, from this run's own rows: the big file with no settings and
    the many small files, each under asyncio against under trio."""
    return [_loop_target(rows, "defaults"), _loop_target(rows, "many")]
