"""The small-things rows of the benchmark harness (issue 15), run for real with tiny sizes.

A stream of small items from a generator beside the same bytes as one object (tuspipe; tuspy
cannot take a generator, and the report says so), and many small files with tuspipe (under
trio and under asyncio), a tuspy loop, aiotus, bare httpx and ``curl --parallel``: the rows
appear with sane figures, every upload they made is checked and deleted, and the targets of
issues 15 and 13 are computed. The curl
config and the reading of curl's answers are checked on their own, and a curl that leaves its
uploads incomplete makes a failed run whose uploads are deleted all the same.
"""

from __future__ import annotations

import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._curl import many_command, read_many_output, write_many_config
from benchmarks._http import LoopbackHttp, ServerInfo
from benchmarks._plan import TUSPY_NO_GENERATOR, plan_settings
from benchmarks._report import Summary, render_small_table
from benchmarks._runs import Runner, Setting
from benchmarks._runs import TestData as BenchData  # not a pytest class
from benchmarks._targets import evaluate_small_targets
from benchmarks._worker import ITEM_SIZE, make_items
from benchmarks.sink import TusSink

from .benchrun import read_csv, run_harness

KiB = 1024
FILES = 20
ITEMS = 2000


@pytest.fixture
def sink() -> Iterator[TusSink]:
    with TusSink() as running:
        yield running


def _small_files(folder: Path, count: int, size: int = 16 * KiB) -> tuple[Path, ...]:
    folder.mkdir()
    paths = []
    for index in range(count):
        path = folder / f"small-{index:03d}.bin"
        path.write_bytes(bytes([index % 256]) * size)
        paths.append(path)
    return tuple(paths)


# --------------------------------------------------------------------------------------------
# The harness end to end
# --------------------------------------------------------------------------------------------


def test_small_things_rows_run_checked_and_deleted(sink: TusSink, tmp_path: Path) -> None:
    runs_csv = tmp_path / "runs.csv"
    done = run_harness(
        "--url", sink.url, "--workloads", "many,items", "--many-files", str(FILES),
        "--stream-items", str(ITEMS), "--repeat", "1", "--out", str(tmp_path),
        "--csv", str(runs_csv),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    runs = read_csv(runs_csv)
    rows = [(r["workload"], r["client"], r["loop"], r["source"]) for r in runs]
    assert sorted(rows) == sorted(
        [
            ("many", client, "trio", "files")
            for client in ("tuspipe", "tuspy", "aiotus", "httpx", "curl")
        ]
        + [("many", "tuspipe", "asyncio", "files")]  # upload_many_async under asyncio (issue 13)
        + [("items", "tuspipe", "trio", "items"), ("items", "tuspipe", "trio", "bytes")]
    )
    for run in runs:
        assert run["ok"] == "1", run
        # CPU of the call for every client, curl's from its whole process (wait4).
        for column in ("seconds", "mb_per_s", "cpu_upload_s", "cpu_process_s"):
            assert float(run[column]) > 0, (column, run)
        assert float(run["seconds"]) < 30, run
        if run["workload"] == "many":
            assert (run["files"], run["bytes"], run["items"]) == (
                str(FILES),
                str(FILES * 16 * KiB),
                "0",
            )
            assert float(run["files_per_s"]) == pytest.approx(
                FILES / float(run["seconds"]), rel=0.01
            )
        else:
            assert (run["files"], run["bytes"], run["items"]) == (
                "1",
                str(ITEMS * ITEM_SIZE),
                str(ITEMS),
            )

    summary = {
        (r["client"], r["loop"], r["source"]): r for r in read_csv(tmp_path / "runs-summary.csv")
    }
    assert len(summary) == len(runs)
    for (client, _, source), row in summary.items():
        assert float(row["cpu_us_per_file_or_item"]) > 0, row
        # Many files are compared with curl's POSTs; the items rows have no curl beside them.
        assert (row["vs_curl"] != "") == (source == "files" and client != "curl"), row
    assert float(summary[("tuspipe", "trio", "items")]["items_per_s_median"]) > 0
    assert float(summary[("tuspipe", "asyncio", "files")]["files_per_s_median"]) > 0

    # Every upload was made on the sink (aiotus and curl included) and deleted again.
    assert sink.stats.uploads_created == 6 * FILES + 2
    assert sink.uploads() == {}

    small = out[out.index("Small things (issue 15)") :]
    assert f"{FILES} files of 16 KiB, {ITEMS} items of 33 B" in small.splitlines()[0]
    for client in ("tuspipe", "tuspy", "aiotus", "httpx", "curl"):
        assert re.search(rf"^many +{client} .* files/s .* ms/file ", small, re.M), client
    # The asyncio row, with its CPU per file and tuspipe's speed under trio over its own.
    assert re.search(
        r"^many +tuspipe +many files, 8 at a time, under asyncio .* files/s .* ms/file .* "
        r"\d+\.\d\d +1/1$",
        small,
        re.M,
    )
    assert re.search(r"^items +tuspipe +a generator of items .* items/s .* us/item ", small, re.M)
    # tuspy has a row that says why it was not measured, not a silent gap.
    assert re.search(r"^items +tuspy +a generator of items +not measured \[1\]", small, re.M)
    assert f"[1] items tuspy (a generator of items): {TUSPY_NO_GENERATOR}" in small

    loops = out[out.index("Targets (issue 13") : out.index("Targets (issue 15")]
    verdicts = re.findall(r"^  (PASS|FAIL|not measured) +(.+)$", loops, re.M)
    assert len(verdicts) == 2, loops
    (defaults_verdict, _), (many_verdict, many_name) = verdicts
    assert defaults_verdict == "not measured"  # the defaults workload did not run
    assert many_verdict in ("PASS", "FAIL")  # measured, whatever this machine makes of it
    assert many_name == (
        f"{FILES} x 16 KiB: tuspipe upload_many under asyncio >= 0.9x under trio in files/s"
    )

    targets = out[out.index("Targets (issue 15") :]
    verdicts = re.findall(r"^  (PASS|FAIL|not measured) +(.+)$", targets, re.M)
    assert len(verdicts) == 5, targets
    assert all(verdict != "not measured" for verdict, _ in verdicts), targets
    names = [name for _, name in verdicts]
    assert f"a stream of {ITEMS} small items from a generator in under 0.005 s" in names[0]
    assert "within 2x of the same bytes as one bytes object" in names[1]
    for name, wanted in zip(
        names[2:], ("5x a tuspy loop", "3x aiotus", "0.3x the curl"), strict=True
    ):
        assert name.startswith(f"{FILES} x 16 KiB: tuspipe upload_many >= {wanted}"), name
    assert re.search(r"tuspipe \d+ files/s / curl \d+ files/s = [\d.]+x", targets)


# --------------------------------------------------------------------------------------------
# curl's config and answers
# --------------------------------------------------------------------------------------------


def test_the_curl_config_posts_every_file_with_next_between(tmp_path: Path) -> None:
    paths = _small_files(tmp_path / 'we"ird\\name', 3, size=100)
    config = tmp_path / "curl.conf"
    write_many_config(config, "http://127.0.0.1:9/files/", paths)
    text = config.read_text()
    entries = text.split("next\n")
    assert len(entries) == 3  # "next" between the entries, none after the last
    for index, entry in enumerate(entries):
        lines = entry.splitlines()
        assert lines[0] == 'url = "http://127.0.0.1:9/files/"'
        assert 'request = "POST"' in lines
        for header in (
            "Tus-Resumable: 1.0.0",
            "Upload-Length: 100",
            "Content-Type: application/offset+octet-stream",
            "Expect:",
        ):
            assert f'header = "{header}"' in lines
        escaped = str(paths[index]).replace("\\", "\\\\").replace('"', '\\"')
        assert f'data-binary = "@{escaped}"' in lines
        assert f'write-out = "{index} %{{http_code}} %header{{location}}\\n"' in lines
    command = many_command("/usr/bin/curl", config, 8)
    assert command[command.index("--parallel-max") + 1] == "8"
    assert "--parallel" in command
    assert command[-2:] == ["--config", str(config)]


def test_curl_answers_give_every_url_or_say_what_failed() -> None:
    url = "http://127.0.0.1:9/files/"
    said = "1 201 http://127.0.0.1:9/files/b\n0 201 /files/a\n"
    assert read_many_output(said, url, 2) == (
        ["http://127.0.0.1:9/files/a", "http://127.0.0.1:9/files/b"],
        None,
    )
    urls, problem = read_many_output("0 201 /files/a\n1 500 /files/b\n", url, 3)
    assert urls == ["http://127.0.0.1:9/files/a", "http://127.0.0.1:9/files/b"]  # to delete
    assert problem is not None
    assert "file 1: POST answered 500" in problem
    assert "no upload for 1 of 3 files" in problem
    _, problem = read_many_output("0 000\n", url, 1)
    assert problem is not None
    assert "without a Location" in problem
    _, problem = read_many_output("0 201 %header{location}\n", url, 1)  # curl < 7.84
    assert problem is not None
    assert "without a Location" in problem
    _, problem = read_many_output("0 201 http://10.0.0.1/files/a\n", url, 1)
    assert problem is not None
    assert "not a loopback address" in problem


FAKE_CURL = """\
import http.client, re, sys
from urllib.parse import urlsplit
config = open(sys.argv[sys.argv.index("--config") + 1]).read()
for index, entry in enumerate(config.split("next\\n")):
    url = urlsplit(re.search(r'url = "([^"]+)"', entry).group(1))
    length = re.search(r"Upload-Length: (\\d+)", entry).group(1)
    connection = http.client.HTTPConnection(url.hostname, url.port)
    # Creates the upload but sends none of its bytes: every upload stays incomplete.
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": length}
    connection.request("POST", url.path, headers=headers)
    answer = connection.getresponse()
    print(index, answer.status, answer.getheader("Location"))
"""


def test_a_curl_that_leaves_its_uploads_incomplete_fails_and_they_are_deleted(
    sink: TusSink, tmp_path: Path
) -> None:
    curl = tmp_path / "fake-curl"
    curl.write_text(f"#!{sys.executable}\n{FAKE_CURL}")
    curl.chmod(curl.stat().st_mode | stat.S_IXUSR)
    files = _small_files(tmp_path / "small", 3)
    data = BenchData(tmp_path / "unused.bin", 0, files)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with LoopbackHttp() as http:
        runner = Runner(sink.url, http, data, scratch, timeout=30, curl=str(curl))
        run = runner.run(Setting("many", "curl", source="files", concurrency=8), 0)
    assert not run.ok
    assert run.error is not None
    assert re.search(r"HEAD .*: Upload-Offset 0, Upload-Length 16384, not 16384", run.error)
    assert sink.stats.uploads_created == 3
    assert sink.uploads() == {}  # deleted although the run failed


# --------------------------------------------------------------------------------------------
# The plan, the table and the targets
# --------------------------------------------------------------------------------------------


def _server(*extensions: str) -> ServerInfo:
    return ServerInfo("http://127.0.0.1:1/files/", frozenset(extensions), (), None)


def test_the_plan_of_the_small_things_rows() -> None:
    full = plan_settings(
        ("many", "items"),
        size=0,
        chunk_sizes=(),
        server=_server("creation", "creation-with-upload", "creation-defer-length"),
        curl="/usr/bin/curl",
    )
    many = [s for s in full.settings if s.workload == "many"]
    assert [(s.client, s.loop) for s in many] == [
        ("tuspipe", "trio"),
        ("tuspipe", "asyncio"),  # the same upload_many settings, under asyncio (issue 13)
        ("tuspy", "trio"),
        ("aiotus", "trio"),
        ("httpx", "trio"),
        ("curl", "trio"),
    ]
    # Every concurrent client 8 at a time; the tuspy loop one file after another.
    assert [s.concurrency for s in many] == [8, 8, None, 8, 8, 8]
    assert many[0].tuspipe_options(0) == many[1].tuspipe_options(0)
    items = [s for s in full.settings if s.workload == "items"]
    assert [(s.client, s.source) for s in items] == [("tuspipe", "items"), ("tuspipe", "bytes")]
    assert [(s.client, reason) for s, reason in full.unmeasured] == [("tuspy", TUSPY_NO_GENERATOR)]
    assert not full.left_out

    bare = plan_settings(
        ("many", "items"),
        size=0,
        chunk_sizes=(),
        server=_server("creation"),
        curl=None,
        have_aiotus=False,
    )
    assert [s.client for s in bare.settings] == ["tuspipe", "tuspipe", "tuspy"]
    reasons = "\n".join(bare.left_out)
    for wanted in ("aiotus is not installed", "creation-with-upload", "defer-length"):
        assert wanted in reasons


def _row(client: str, source: str, seconds: float, *, files: int = 1, items: int = 0) -> Summary:
    size = files * 16 * KiB if source == "files" else items * ITEM_SIZE
    return Summary(
        setting=Setting("many" if source == "files" else "items", client, source=source),
        runs=1,
        failures=0,
        bytes=size,
        files=files,
        mb_per_s=size / seconds / 1e6,
        files_per_s=files / seconds if source == "files" else None,
        cpu_per_gib=1.0,
        cpu_process=seconds + 0.2,
        peak_rss_mib=40.0,
        base_rss_mib=30.0,
        channels=(),
        seconds=seconds,
        cpu_upload=seconds * 0.9,
        items=items,
    )


def test_the_targets_of_issue_15() -> None:
    rows = [
        _row("tuspipe", "files", 0.2, files=1000),  # 5000 files/s
        _row("tuspy", "files", 1.0, files=1000),  # 1000: 5.0x
        _row("aiotus", "files", 0.5, files=1000),  # 2000: 2.5x
        _row("curl", "files", 0.05, files=1000),  # 20000: 0.25x
        _row("tuspipe", "items", 0.45, items=200_000),
        _row("tuspipe", "bytes", 0.2, items=200_000),  # 2.25x faster than the generator
    ]
    checks = evaluate_small_targets(rows)
    assert [check.verdict for check in checks] == ["PASS", "FAIL", "PASS", "FAIL", "FAIL"]
    assert "0.450 s, 2.25 us/item" in checks[0].figures
    assert "generator 0.450 s / one bytes object 0.200 s = 2.25x" in checks[1].figures
    assert "= 5.00x (target >= 5x)" in checks[2].figures
    assert checks[2].name == "1000 x 16 KiB: tuspipe upload_many >= 5x a tuspy loop in files/s"
    assert "= 2.50x (target >= 3x)" in checks[3].figures
    assert "tuspipe 5000 files/s / curl 20000 files/s = 0.25x" in checks[4].figures

    # Another item count scales the 0.5 s bound; rows not run are "not measured".
    scaled = evaluate_small_targets([_row("tuspipe", "items", 0.004, items=2000)])
    assert scaled[0].verdict == "PASS"
    assert "2000 small items from a generator in under 0.005 s" in scaled[0].name
    assert [check.verdict for check in scaled[1:]] == ["not measured"] * 4

    table = render_small_table(rows, 3)
    assert re.search(
        r"^many +tuspipe .* 0\.200 +5000 files/s .* 0\.180 +0\.180 ms/file", table, re.M
    )
    assert re.search(r"^many +tuspy .* 5\.00 +1/1$", table, re.M)  # tuspipe's speed over it
    assert re.search(r"^items +tuspipe .* 444444 items/s .* 2\.02 us/item", table, re.M)


def test_the_items_are_distinct_lines_of_the_item_size() -> None:
    items = make_items(1000)
    assert {len(item) for item in items} == {ITEM_SIZE}
    assert len(set(items)) == 1000
    assert all(item.endswith(b"\n") for item in items)
