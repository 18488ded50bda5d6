"""The benchmark harness (``python -m benchmarks``), run for real with tiny sizes.

The harness runs in a subprocess, as a user runs it, against the local discard sink: its
exit status, the CSVs, the PNG and the printed blocks are checked. The pure parts (the plan,
the schedule, the channel verdicts, the targets) are checked directly with made-up figures.
tuspipe's rows under asyncio (issue 13) are run for real through the harness's runner, and
their target is checked both ways with given figures.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

import benchmarks._runs
from benchmarks._files import plot_series, write_runs_csv
from benchmarks._http import LoopbackHttp, NotLoopbackError, ServerInfo, require_loopback
from benchmarks._http import check_upload as harness_check
from benchmarks._report import Summary, bottleneck
from benchmarks._runs import MiB, Runner, RunResult, Setting
from benchmarks._runs import TestData as BenchData  # not a pytest class
from benchmarks._targets import evaluate_loop_targets, evaluate_targets, render_targets
from benchmarks._worker import LOOPS, ChannelFigures, _channel_figures, _tuspipe_calls
from benchmarks.harness import plan_settings, schedule
from benchmarks.sink import TusSink

from .benchrun import read_csv, run_harness

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def sink() -> Iterator[TusSink]:
    with TusSink() as running:
        yield running


# --------------------------------------------------------------------------------------------
# The harness end to end
# --------------------------------------------------------------------------------------------


def test_benchmark_run_writes_table_csvs_png_and_targets(tmp_path: Path) -> None:
    runs_csv, png = tmp_path / "runs.csv", tmp_path / "plot.png"
    done = run_harness(
        "--size", "12MiB", "--repeat", "1", "--chunk-sizes", "8MiB",
        "--workloads", "defaults,chunks,checksums,many", "--many-files", "20",
        "--out", str(tmp_path), "--csv", str(runs_csv), "--png", str(png),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    # The machine description comes first, so RESULTS.md can quote it.
    for label in ("date:", "command: python -m benchmarks --size 12MiB", "machine:", "software:"):
        assert label in out
    assert "tuspy 1.1.0" in out

    expected = {
        ("defaults", "tuspipe", "trio", "default", "off"),
        ("defaults", "tuspipe", "asyncio", "default", "off"),  # issue 13
        ("defaults", "tuspy", "trio", "default", "off"),
        ("defaults", "curl", "trio", "default", "off"),
        ("defaults", "sendfile", "trio", "default", "off"),
        *(
            (workload, client, "trio", chunk, checksum)
            for workload, checksum, clients in (
                ("chunks", "off", ("tuspipe", "tuspy")),
                ("checksums", "sha1", ("tuspipe", "tuspy")),
                ("checksums", "crc32", ("tuspipe",)),
            )
            for client in clients
            for chunk in ("8 MiB", "whole")
        ),
        ("many", "tuspipe", "trio", "default", "off"),
        ("many", "tuspipe", "asyncio", "default", "off"),  # issue 13
        ("many", "tuspy", "trio", "default", "off"),
        ("many", "aiotus", "trio", "default", "off"),
        ("many", "httpx", "trio", "default", "off"),  # the floor: bare httpx POSTs
        ("many", "curl", "trio", "default", "off"),  # the ceiling: curl --parallel POSTs
    }
    runs = read_csv(runs_csv)
    assert {
        (r["workload"], r["client"], r["loop"], r["chunk"], r["checksum"]) for r in runs
    } == expected
    assert len(runs) == len(expected)  # one repeat: one line per row
    for run in runs:
        assert run["ok"] == "1", run
        for column in ("seconds", "mb_per_s", "cpu_process_s", "ru_maxrss_mib"):
            assert float(run[column]) > 0, (column, run)
        if run["client"] != "curl":  # curl's RSS is polled; a short run may leave none
            assert float(run["cpu_upload_s"]) > 0, run
            assert 5 < float(run["peak_rss_mib"]) <= float(run["ru_maxrss_mib"]), run
        if run["workload"] == "many":
            assert run["files"] == "20"
            assert float(run["files_per_s"]) > 0
        else:
            assert run["bytes"] == str(12 * MiB)
    # tuspy sends the whole file in one PATCH from memory; tuspipe must not hold it.
    by_key = {(r["workload"], r["client"], r["loop"], r["chunk"], r["checksum"]): r for r in runs}
    assert float(by_key[("chunks", "tuspipe", "trio", "whole", "off")]["peak_rss_mib"]) < 64

    summary = read_csv(tmp_path / "runs-summary.csv")
    assert len(summary) == len(expected)
    for row in summary:
        assert (row["runs"], row["failures"]) == ("1", "0")
        assert float(row["mb_per_s_median"]) > 0
        # Every tuspipe row has a tuspy twin, except crc32 (tuspy knows sha1 only).
        paired = row["client"] == "tuspipe" and row["checksum"] != "crc32"
        assert (row["vs_tuspy"] != "") == paired, row
        # Every row has its curl ceiling: the PATCH of the big file, or curl's many POSTs.
        assert (row["vs_curl"] != "") == (row["client"] != "curl"), row

    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert data[12:16] == b"IHDR"
    assert 300 <= width <= 4000
    assert 200 <= height <= 3000

    assert re.search(r"^workload +client +chunk +checksum .*MB/s.*CPU s/GiB.*peak RSS", out, re.M)
    # The asyncio rows sit beside tuspipe's, with their figures and CPU (issue 13).
    assert re.search(
        r"^defaults +tuspipe +default +off +no settings, under asyncio +\d+ ", out, re.M
    )
    assert re.search(
        r"^many +tuspipe .* 8 at a time, under asyncio +\d+ +\d+ +[\d.]+ +[\d.]+ ", out, re.M
    )
    targets = out[out.index("Targets (issue 7") : out.index("Targets (issue 13")]
    verdicts = re.findall(r"^  (PASS|FAIL|not measured) +(.+)$", targets, re.M)
    assert len(verdicts) == 6, targets
    names = " | ".join(name for _, name in verdicts)
    for wanted in ("2.5x tuspy", "0.65x curl", "1.4x tuspy", "64 MiB", "5x a tuspy loop", "CPU"):
        assert wanted in names
    # Every row of these workloads ran, so every target has its figures.
    assert all(verdict != "not measured" for verdict, _ in verdicts), targets
    assert re.search(r"bare httpx POSTs \d+ files/s = [\d.]+x tuspy", targets), targets
    loops = out[out.index("Targets (issue 13") : out.index("Targets (issue 15")]
    verdicts = re.findall(r"^  (PASS|FAIL) +(.+)\n +(.+)$", loops, re.M)
    assert [name for _, name, _ in verdicts] == [
        "12 MiB, no settings: tuspipe upload under asyncio >= 0.9x under trio in MB/s",
        "20 x 16 KiB: tuspipe upload_many under asyncio >= 0.9x under trio in files/s",
    ], loops
    units = ("MB/s", "s/GiB"), ("files/s", "ms/file")
    for (_, _, figures), (speed, cpu) in zip(verdicts, units, strict=True):
        assert re.fullmatch(
            rf"asyncio \d+ {speed} / trio \d+ {speed} = [\d.]+x \(target >= 0.9x\); "
            rf"CPU asyncio [\d.]+ {cpu}, trio [\d.]+ {cpu}",
            figures,
        ), figures
    assert f"PNG: {png}" in out


def test_a_missing_curl_leaves_the_ceiling_row_unmeasured(tmp_path: Path) -> None:
    done = run_harness(
        "--size", "4MiB", "--repeat", "1", "--workloads", "defaults",
        "--curl", str(tmp_path / "no-such-curl"), "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "curl is not installed" in done.stdout
    assert re.search(r"not measured +defaults, no checksum: tuspipe >= 0.65x curl", done.stdout)
    assert "curl not installed" in done.stdout


@pytest.mark.parametrize(
    "arguments",
    [
        ("--url", "http://example.com/files/"),
        ("--url", "http://10.1.2.3:1080/files/"),
        ("--tune", "https://tus.example/files/"),
    ],
)
def test_a_server_off_loopback_is_refused(arguments: tuple[str, str]) -> None:
    done = run_harness(*arguments, timeout=30)
    assert done.returncode == 2
    assert "is not a loopback address" in done.stderr
    assert "only talks to 127.0.0.0/8" in done.stderr
    assert done.stdout == ""  # refused before any work began


def test_tune_against_a_sink_recommends_settings_and_cleans_up(sink: TusSink) -> None:
    done = run_harness("--tune", sink.url, "--size", "4MiB", "--repeat", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for knob in ("chunk_size:", "read_ahead:", "read_size:", "parallel:", "checksum"):
        assert knob in out
    recommended = out[out.index("Recommended settings") :]
    call = re.search(r'tuspipe\.upload\("FILE", "([^"]+)", chunk_size=(\d+) \* 1024', recommended)
    assert call is not None, recommended
    assert call.group(1) == sink.url
    assert re.search(r"tuspipe upload --chunk-size \d+MiB .*FILE " + re.escape(sink.url), out)
    assert re.search(r"\d+ MB/s", recommended)
    assert sink.stats.uploads_created >= 18  # one upload per run at least
    assert sink.uploads() == {}  # every upload the sweep made was deleted again


# --------------------------------------------------------------------------------------------
# The pure parts
# --------------------------------------------------------------------------------------------


def _server(*extensions: str, checksums: tuple[str, ...] = ()) -> ServerInfo:
    return ServerInfo("http://127.0.0.1:1/files/", frozenset(extensions), checksums, None)


def test_the_plan_follows_what_the_server_offers() -> None:
    bare = plan_settings(
        ("chunks", "checksums", "parallel", "stream"),
        size=16 * MiB,
        chunk_sizes=(1 * MiB, 8 * MiB, 64 * MiB),
        server=_server("creation"),
        curl=None,
    )
    assert {s.workload for s in bare.settings} == {"chunks", "parallel"}
    assert [s.parallel for s in bare.settings if s.workload == "parallel"] == [1]
    assert {s.chunk_label for s in bare.settings} == {"1 MiB", "8 MiB", "whole", "default"}
    reasons = "\n".join(bare.left_out)
    for wanted in ("64 MiB", "sha1", "crc32", "parallel 2", "parallel 4", "defer-length"):
        assert wanted in reasons

    full = plan_settings(
        ("defaults", "checksums", "parallel", "stream"),
        size=16 * MiB,
        chunk_sizes=(8 * MiB,),
        server=_server(
            "creation", "checksum", "concatenation", "creation-defer-length",
            checksums=("sha1", "crc32"),
        ),
        curl="/usr/bin/curl",
    )  # fmt: skip
    clients = [(s.client, s.loop) for s in full.settings if s.workload == "defaults"]
    assert clients == [
        ("tuspipe", "trio"),
        ("tuspipe", "asyncio"),  # the same call under asyncio, beside it (issue 13)
        ("tuspy", "trio"),
        ("curl", "trio"),
        ("sendfile", "trio"),
    ]
    tuspipe_rows = [s for s in full.settings if s.workload == "defaults" and s.bare]
    assert [s.tuspipe_options(16 * MiB) for s in tuspipe_rows] == [{}, {}]  # no settings
    assert [s.parallel for s in full.settings if s.workload == "parallel"] == [1, 2, 4]
    assert [s.source for s in full.settings if s.workload == "stream"] == ["generator", "pipe"]
    crc32 = [s for s in full.settings if s.checksum == "crc32"]
    assert crc32
    assert {s.client for s in crc32} == {"tuspipe"}  # tuspy knows sha1 only
    assert not full.left_out


def test_the_schedule_interleaves_and_alternates() -> None:
    settings = [Setting("chunks", client) for client in ("tuspipe", "tuspy", "curl")]
    order = list(schedule(settings, 3))
    assert [repeat for repeat, _ in order] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [s.client for _, s in order] == [
        *("tuspipe", "tuspy", "curl"),
        *("curl", "tuspy", "tuspipe"),
        *("tuspipe", "tuspy", "curl"),
    ]


def test_setting_options_match_between_the_clients() -> None:
    whole = Setting("chunks", "tuspipe", whole=True, checksum="sha1")
    assert whole.tuspipe_options(100) == {
        "journal": None,
        "resume": False,
        "chunk_size": 100,
        "checksum": "sha1",
    }
    assert Setting("chunks", "tuspy", whole=True, checksum="sha1").tuspy_options() == {
        "upload_checksum": True  # and tuspy's default chunk size: the whole file
    }
    assert Setting("chunks", "tuspy", chunk_size=MiB).tuspy_options() == {"chunk_size": MiB}
    assert Setting("defaults", "tuspipe", bare=True).tuspipe_options(100) == {}
    with pytest.raises(ValueError, match="crc32"):
        Setting("checksums", "tuspy", checksum="crc32").tuspy_options()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8/f/", "http://[::1]:8/f/", "https://localhost/"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert require_loopback(url) == url


@pytest.mark.parametrize(
    "url", ["http://192.168.1.2/f/", "http://tus.example/f/", "ftp://127.0.0.1/", "127.0.0.1"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(NotLoopbackError):
        require_loopback(url)


def _channels(**waits: tuple[float, float]) -> tuple[ChannelFigures, ...]:
    return tuple(ChannelFigures(name, 10, send, receive) for name, (send, receive) in waits.items())


def test_the_bottleneck_is_the_stage_its_neighbours_wait_for() -> None:
    # The reader keeps the blocks channel full and the reporter waits: the sender is slowest.
    network_bound = _channels(chunks=(1.5, 0.0), blocks=(1.2, 0.01), acks=(0.0, 1.3))
    assert bottleneck(network_bound).startswith("sender")
    # The reader and sender wait on empty channels behind the checksummer.
    hash_bound = _channels(chunks=(0.1, 0.0), hashed=(0.0, 0.9), blocks=(0.0, 1.0), acks=(0, 1.3))
    assert bottleneck(hash_bound).startswith("checksummer")
    # The sender waits for blocks while the chunker waits for room: the reader is slowest.
    read_bound = _channels(chunks=(2.0, 0.0), blocks=(0.0, 1.8), acks=(0.0, 2.0))
    assert bottleneck(read_bound).startswith("reader")
    # One chunk: the chunker's channel idles, the sender waited for the reader a little.
    one_chunk = _channels(chunks=(0.0, 0.0), blocks=(0.0, 0.18), acks=(0.0, 0.51))
    assert bottleneck(one_chunk) == "reader (waited for 0.18 s)"
    assert bottleneck(()) == ""


def test_channel_stats_are_summed_by_name_and_optional() -> None:
    def stat(name: str, items: int, send: float, receive: float) -> SimpleNamespace:
        return SimpleNamespace(name=name, items=items, send_wait=send, receive_wait=receive)

    results = [
        SimpleNamespace(channel_stats=(stat("chunks", 2, 0.5, 0.25), stat("blocks", 8, 1, 0))),
        SimpleNamespace(channel_stats=(stat("chunks", 3, 0.25, 0.25),)),
        SimpleNamespace(),  # a tuspipe that does not report them
    ]
    assert _channel_figures(results) == [
        ChannelFigures("chunks", 5, 0.75, 0.5),
        ChannelFigures("blocks", 8, 1.0, 0.0),
    ]


def _summary(setting: Setting, mb_per_s: float, cpu: float, rss: float = 40.0) -> Summary:
    files = 1000 if setting.source == "files" else 1
    return Summary(
        setting=setting,
        runs=1,
        failures=0,
        bytes=MiB * 1024,
        files=files,
        mb_per_s=mb_per_s,
        files_per_s=mb_per_s if setting.source == "files" else None,
        cpu_per_gib=cpu,
        cpu_process=cpu,
        peak_rss_mib=rss,
        base_rss_mib=30.0,
        channels=(),
    )


def test_targets_compare_the_rows_of_one_run() -> None:
    rows = [
        # Listed first, and far off: the targets of issue 7 must take tuspipe under trio.
        _summary(Setting("defaults", "tuspipe", bare=True, loop="asyncio"), 100, 2.0),
        _summary(Setting("defaults", "tuspipe", bare=True), 1300, 0.5),
        _summary(Setting("defaults", "tuspy"), 500, 0.9, rss=1100),
        _summary(Setting("defaults", "curl"), 2100, 0.3, rss=10),
        _summary(Setting("checksums", "tuspipe", chunk_size=8 * MiB, checksum="sha1"), 800, 1.2),
        _summary(Setting("checksums", "tuspy", chunk_size=8 * MiB, checksum="sha1"), 600, 1.1),
        _summary(Setting("chunks", "tuspipe", whole=True), 1500, 0.4, rss=70),
        _summary(Setting("chunks", "tuspy", whole=True), 900, 0.8, rss=1100),
    ]
    verdicts = {check.name: check for check in evaluate_targets(rows)}
    assert len(verdicts) == 6
    speed_vs_tuspy = verdicts["defaults, no checksum: tuspipe >= 2.5x tuspy"]
    assert speed_vs_tuspy.verdict == "PASS"
    assert "2.60x" in speed_vs_tuspy.figures
    assert verdicts["defaults, no checksum: tuspipe >= 0.65x curl"].verdict == "FAIL"  # 0.62x
    assert verdicts["8 MiB chunks + sha1: tuspipe >= 1.4x tuspy"].verdict == "FAIL"  # 1.33x
    rss = next(check for name, check in verdicts.items() if "peak RSS" in name)
    assert rss.verdict == "FAIL"
    assert "70.0 MiB" in rss.figures
    many = next(check for name, check in verdicts.items() if "upload_many" in name)
    assert many.verdict == "not measured"
    cpu = next(check for name, check in verdicts.items() if "CPU" in name)
    assert cpu.verdict == "FAIL"
    assert "checksums 8 MiB sha1: 1.20 vs 1.10" in cpu.figures
    assert cpu.figures.startswith("1 of 3 settings not below")  # the asyncio row is not one


def test_the_runs_csv_carries_channel_statistics(tmp_path: Path) -> None:
    run = RunResult(Setting("chunks", "tuspipe", chunk_size=MiB), 0, ok=True, bytes=MiB)
    run.seconds, run.cpu_upload, run.peak_rss_kib = 0.01, 0.005, 30_000
    run.channels = _channels(blocks=(0.5, 0.125))
    path = tmp_path / "runs.csv"
    write_runs_csv(path, [run], MiB)
    (line,) = read_csv(path)
    assert (line["client"], line["loop"]) == ("tuspipe", "trio")
    assert (line["ch_blocks_items"], line["ch_blocks_send_wait"]) == ("10", "0.5000")
    assert line["ch_blocks_receive_wait"] == "0.1250"
    assert float(line["mb_per_s"]) == pytest.approx(104.9, abs=0.1)


# --------------------------------------------------------------------------------------------
# tuspipe under asyncio (issue 13)
# --------------------------------------------------------------------------------------------


def test_an_event_loop_is_a_tuspipe_setting_and_the_label_names_it() -> None:
    under_asyncio = Setting("many", "tuspipe", source="files", concurrency=8, loop="asyncio")
    under_trio = replace(under_asyncio, loop="trio")
    assert under_asyncio.label == "many tuspipe default off 8 at a time under asyncio"
    assert under_trio.label == "many tuspipe default off 8 at a time"
    # The same settings either way, and the same tuspy row to compare with.
    assert under_asyncio.tuspipe_options(0) == under_trio.tuspipe_options(0)
    assert under_asyncio.pair_key == Setting("many", "tuspy", source="files").pair_key
    with pytest.raises(ValueError, match="only tuspipe runs under a chosen event loop"):
        Setting("defaults", "tuspy", loop="asyncio")
    with pytest.raises(ValueError, match="unknown event loop 'curio'"):
        Setting("defaults", "tuspipe", loop="curio")


def _loop_rows(defaults: tuple[float, float], many: tuple[float, float]) -> list[Summary]:
    """tuspipe's defaults and many rows under trio and asyncio with the given speeds
    (MB/s, files/s), each pair (trio, asyncio), and tuspy beside them."""
    many_bytes = 1000 * 16 * 1024

    def many_row(loop: str, files_per_s: float, cpu: float) -> Summary:
        setting = Setting("many", "tuspipe", source="files", concurrency=8, loop=loop)
        return replace(_summary(setting, files_per_s, 0.0), bytes=many_bytes, cpu_upload=cpu)

    return [
        _summary(Setting("defaults", "tuspipe", bare=True), defaults[0], 0.18),
        _summary(Setting("defaults", "tuspipe", bare=True, loop="asyncio"), defaults[1], 0.19),
        _summary(Setting("defaults", "tuspy"), 900, 0.9),  # not part of these targets
        many_row("trio", many[0], 0.736),
        many_row("asyncio", many[1], 0.752),
    ]


def test_the_targets_of_issue_13_compare_asyncio_with_trio() -> None:
    within = evaluate_loop_targets(_loop_rows((5000, 4500), (1300, 1250)))  # 0.90x, 0.96x
    assert [check.verdict for check in within] == ["PASS", "PASS"]
    assert [check.name for check in within] == [
        "1 GiB, no settings: tuspipe upload under asyncio >= 0.9x under trio in MB/s",
        "1000 x 16 KiB: tuspipe upload_many under asyncio >= 0.9x under trio in files/s",
    ]
    assert within[0].figures == (
        "asyncio 4500 MB/s / trio 5000 MB/s = 0.90x (target >= 0.9x); "
        "CPU asyncio 0.19 s/GiB, trio 0.18 s/GiB"
    )
    assert within[1].figures == (
        "asyncio 1250 files/s / trio 1300 files/s = 0.96x (target >= 0.9x); "
        "CPU asyncio 0.752 ms/file, trio 0.736 ms/file"
    )

    # More than 10 % slower fails, each workload on its own account.
    slower = evaluate_loop_targets(_loop_rows((5000, 4400), (1300, 1250)))  # 0.88x, 0.96x
    assert [check.verdict for check in slower] == ["FAIL", "PASS"]
    assert "= 0.88x (target >= 0.9x)" in slower[0].figures
    slower = evaluate_loop_targets(_loop_rows((5000, 5600), (1300, 1160)))  # 1.12x, 0.89x
    assert [check.verdict for check in slower] == ["PASS", "FAIL"]
    assert "asyncio 1160 files/s / trio 1300 files/s = 0.89x" in slower[1].figures

    text = render_targets(within, issue=13)
    assert text.startswith("Targets (issue 13; from this run's own figures):\n  PASS  1 GiB")


def test_the_targets_of_issue_13_need_both_rows_measured() -> None:
    rows = _loop_rows((5000, 4500), (1300, 1250))
    without_asyncio = [row for row in rows if row.setting.loop == "trio"]
    assert [(c.verdict, c.figures) for c in evaluate_loop_targets(without_asyncio)] == [
        ("not measured", "its rows were not run")
    ] * 2
    failed = [replace(row, mb_per_s=None, files_per_s=None) if row.setting.loop == "asyncio"
              else row for row in rows]  # fmt: skip
    assert [(c.verdict, c.figures) for c in evaluate_loop_targets(failed)] == [
        ("not measured", "its runs failed")
    ] * 2


def test_the_plot_carries_tuspipes_defaults_rows_under_both_loops() -> None:
    rows = [
        *_loop_rows((5000, 5200), (1300, 1250)),
        _summary(Setting("chunks", "tuspipe", chunk_size=8 * MiB), 3000, 0.3),
    ]
    series, ticks = plot_series(rows, 1024 * MiB)
    # At tuspipe's default chunk size (64 MiB); many files and tuspy's defaults are not drawn.
    assert series == {
        "tuspipe defaults, trio": [(64.0, 5000)],
        "tuspipe defaults, asyncio": [(64.0, 5200)],
        "tuspipe off": [(8.0, 3000)],
    }
    assert ticks == {8.0: "8MiB", 64.0: "64MiB"}
    # A file below the default chunk size goes in one PATCH: the whole file.
    series, ticks = plot_series(rows[:2], 12 * MiB)
    assert series == {
        "tuspipe defaults, trio": [(12.0, 5000)],
        "tuspipe defaults, asyncio": [(12.0, 5200)],
    }
    assert ticks == {12.0: "whole"}


@pytest.mark.parametrize("loop", LOOPS)
def test_the_worker_runs_tuspipe_under_the_loop_it_is_given(
    loop: str, sink: TusSink, tmp_path: Path
) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(bytes(range(256)) * 400)
    seen: list[str] = []

    def on_progress(acknowledged: int, total: int | None) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen.append("no asyncio loop")
        else:
            seen.append("asyncio")

    calls = _tuspipe_calls(loop)
    result = calls.upload(str(path), sink.url, journal=None, on_progress=on_progress)
    assert result.offset == 256 * 400
    # Under asyncio, trio's guest run calls back from inside the asyncio loop.
    assert seen
    assert set(seen) == {"asyncio" if loop == "asyncio" else "no asyncio loop"}
    with pytest.raises(ValueError, match="unknown event loop 'curio'"):
        _tuspipe_calls("curio")


def test_the_asyncio_rows_upload_and_pass_the_harness_check(
    sink: TusSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (3 * MiB // 256))
    small = tmp_path / "small"
    small.mkdir()
    files = []
    for index in range(5):
        files.append(small / f"small-{index}.bin")
        files[-1].write_bytes(bytes([index]) * 16 * 1024)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    checked: list[tuple[int, str | None]] = []

    def check_upload(http: LoopbackHttp, url: str, size: int) -> str | None:
        problem = harness_check(http, url, size)
        checked.append((size, problem))
        return problem

    monkeypatch.setattr(benchmarks._runs, "check_upload", check_upload)
    loops = []
    with LoopbackHttp() as http:
        runner = Runner(
            sink.url, http, BenchData(big, 3 * MiB, tuple(files)), scratch, timeout=60, curl=None
        )
        runs = []
        for setting in (
            Setting("defaults", "tuspipe", bare=True, loop="asyncio"),
            Setting("many", "tuspipe", source="files", concurrency=8, loop="asyncio"),
        ):
            runs.append(runner.run(setting, 0))
            loops.append(json.loads((scratch / "spec.json").read_text())["loop"])
    for run in runs:
        assert run.ok, run.error
        assert run.seconds
        assert run.cpu_upload is not None
    assert loops == ["asyncio", "asyncio"]  # what the worker was told
    assert runs[1].files == 5
    # The harness's own HEAD check found every upload complete, then deleted it.
    assert checked == [(3 * MiB, None)] + [(16 * 1024, None)] * 5
    assert sink.stats.uploads_created == 6
    assert sink.stats.bytes_received == 3 * MiB + 5 * 16 * 1024
    assert sink.uploads() == {}
