"""Configurations and single runs: what one row of the table is, and how one run of it goes.

A :class:`Setting` is one client configuration (a row of the table); a run is one upload of
it in a fresh process, measured by :mod:`benchmarks._worker` (or, for curl, by curl itself),
with the process's CPU time read from ``os.wait4``. Its peak RSS is the process's own
high-water mark (``VmHWM``: the worker reads it after the upload; curl's is polled from
/proc): ``ru_maxrss`` from ``os.wait4`` is kept in the CSV too, but on Linux it is never below
the parent's RSS at the spawn, since the kernel carries the parent's high-water mark into the
child across fork + exec. After the process ends, the parent checks every upload it made
with HEAD (the offset must equal the size) and deletes it, so the server does not fill up; a
run whose upload is not complete is a failed run. What curl is asked and what its answers
mean is in :mod:`benchmarks._curl`.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._curl import (
    CurlOutputError,
    many_command,
    parse_patch_output,
    patch_command,
    read_many_output,
    write_many_config,
)
from ._http import LoopbackHttp, check_upload, create_upload, delete_upload
from ._worker import ITEM_SIZE, LOOPS, ChannelFigures, peak_rss_kib

__all__ = [
    "CLIENTS",
    "ITEM_SOURCES",
    "ROOT",
    "GiB",
    "MiB",
    "RunResult",
    "Runner",
    "Setting",
    "TestData",
    "find_curl",
    "format_size",
    "make_test_data",
]

MiB = 1024 * 1024
GiB = 1024 * MiB
ROOT = Path(__file__).resolve().parent.parent
#: Every client the harness knows, in table order.
CLIENTS = ("tuspipe", "tuspy", "aiotus", "curl", "sendfile", "httpx")
#: The sources of the small-items rows: a generator of items, the same bytes as one object.
ITEM_SOURCES = ("items", "bytes")


def format_size(size: int) -> str:
    """``1 GiB``, ``8 MiB``, ``16 KiB`` or ``12345 B``: binary units when exact."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class Setting:
    """One client configuration, measured run after run: one row of the table.

    Attributes:
        workload: defaults, chunks, checksums, parallel, many, stream, items (or tune).
        client: tuspipe, tuspy, aiotus, curl, sendfile or httpx.
        chunk_size: bytes per PATCH; None leaves the client's default (or means `whole`).
        whole: the whole file in one PATCH (tuspipe ``chunk_size=<size>``, tuspy its default).
        checksum: None or an algorithm name.
        parallel: tuspipe's ``parallel=`` (concatenation parts).
        source: file (a path), files (the many-files set), generator or pipe (one-pass, the
            big file), items (a generator of small items) or bytes (those items as one object).
        read_size, read_ahead: tuspipe's knobs; None leaves its defaults.
        bare: pass no settings at all (the "defaults" rows).
        concurrency: uploads at once in the many-files rows (tuspipe's ``upload_many``,
            aiotus, bare httpx, curl's ``--parallel-max``); None leaves tuspipe's default.
        loop: the event loop tuspipe's call runs under: trio (the blocking call, ``trio.run``)
            or asyncio (``asyncio.run`` of the async call: trio in guest mode on the asyncio
            loop). Other clients are always "trio" here, which says nothing about them.
    """

    workload: str
    client: str
    chunk_size: int | None = None
    whole: bool = False
    checksum: str | None = None
    parallel: int = 1
    source: str = "file"
    read_size: int | None = None
    read_ahead: int | None = None
    bare: bool = False
    concurrency: int | None = None
    loop: str = "trio"

    def __post_init__(self) -> None:
        if self.loop not in LOOPS:
            raise ValueError(f"unknown event loop {self.loop!r}: choose from {', '.join(LOOPS)}")
        if self.loop != "trio" and self.client != "tuspipe":
            raise ValueError(f"only tuspipe runs under a chosen event loop, not {self.client}")

    @property
    def chunk_label(self) -> str:
        if self.whole:
            return "whole"
        if self.chunk_size is None:
            return "default"
        return format_size(self.chunk_size)

    @property
    def checksum_label(self) -> str:
        return self.checksum or "off"

    @property
    def label(self) -> str:
        """``chunks tuspipe 8 MiB sha1`` and the like, for progress lines and failures."""
        words = [self.workload, self.client, self.chunk_label, self.checksum_label]
        if self.parallel > 1:
            words.append(f"parallel {self.parallel}")
        if self.source in ("generator", "pipe"):
            words.append(f"from a {self.source}")
        elif self.source == "items":
            words.append("from a generator of items")
        elif self.source == "bytes":
            words.append("as one bytes object")
        elif self.source == "files" and self.concurrency is not None:
            words.append(f"{self.concurrency} at a time")
        if self.loop != "trio":
            words.append(f"under {self.loop}")
        return " ".join(words)

    @property
    def pair_key(self) -> tuple[object, ...]:
        """Equal for the rows of different clients that measure the same thing (the event
        loop is not part of it: tuspipe under asyncio is compared with tuspy as under trio)."""
        return (
            self.workload,
            self.chunk_label,
            self.checksum,
            self.parallel,
            self.source,
            self.read_size,
            self.read_ahead,
        )

    @property
    def moves_big_file(self) -> bool:
        """True for rows that upload the one big test file (not many files, not items)."""
        return self.source in ("file", "generator", "pipe")

    def tuspipe_options(self, size: int) -> dict[str, Any]:
        """Keyword arguments for ``tuspipe.upload`` / ``upload_many`` (JSON-ready)."""
        if self.bare:
            return {}
        # No journal and always a new upload: tuspy keeps no journal either, and a run must
        # never continue another run's upload. The bare "defaults" rows keep the journal.
        options: dict[str, Any] = {"journal": None, "resume": False}
        if self.whole:
            options["chunk_size"] = size
        elif self.chunk_size is not None:
            options["chunk_size"] = self.chunk_size
        if self.checksum is not None:
            options["checksum"] = self.checksum
        if self.parallel > 1:
            options["parallel"] = self.parallel
        if self.read_size is not None:
            options["read_size"] = self.read_size
        if self.read_ahead is not None:
            options["read_ahead"] = self.read_ahead
        if self.source == "files" and self.concurrency is not None:
            options["concurrency"] = self.concurrency
        return options

    def tuspy_options(self) -> dict[str, Any]:
        """Keyword arguments for tuspy's ``TusClient.uploader`` (JSON-ready)."""
        options: dict[str, Any] = {}
        if self.chunk_size is not None and not self.whole:
            options["chunk_size"] = self.chunk_size  # whole file: tuspy's default, sys.maxsize
        if self.checksum == "sha1":
            options["upload_checksum"] = True  # tuspy knows sha1 only
        elif self.checksum is not None:
            raise ValueError(f"tuspy cannot send {self.checksum} checksums")
        return options


@dataclass(frozen=True)
class TestData:
    """What the runs upload: one big file, the many small ones, and the count of small
    items the items rows make in the worker (``ITEM_SIZE`` bytes each)."""

    big_file: Path
    size: int
    small_files: tuple[Path, ...] = ()
    items: int = 0

    @property
    def items_bytes(self) -> int:
        return self.items * ITEM_SIZE

    @property
    def small_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.small_files)


def _random_blocks(seed: int, total: int, block: int = 8 * MiB) -> Sequence[bytes]:
    """Pseudo-random bytes (fast, unlike os.urandom) in blocks; incompressible all the same."""
    import random

    generator = random.Random(seed)
    blocks = []
    remaining = total
    while remaining:
        blocks.append(generator.randbytes(min(block, remaining)))
        remaining -= len(blocks[-1])
    return blocks


def make_test_data(
    directory: Path, size: int, small_count: int, small_size: int, items: int = 0
) -> TestData:
    """Write the big test file (`size` bytes) and `small_count` files of `small_size` bytes;
    the items rows make their `items` themselves."""
    big_file = directory / f"bench-{size}.bin"
    with open(big_file, "wb") as out:
        written = 0
        seed = 0
        while written < size:  # one 8 MiB block at a time, so writing needs little memory
            (block,) = _random_blocks(seed, min(8 * MiB, size - written))
            out.write(block)
            written += len(block)
            seed += 1
    small_files = []
    if small_count:
        folder = directory / "small"
        folder.mkdir()
        blocks = _random_blocks(-1, small_count * small_size, small_size)
        for index, content in enumerate(blocks):
            path = folder / f"small-{index:05d}.bin"
            path.write_bytes(content)
            small_files.append(path)
    return TestData(big_file, size, tuple(small_files), items)


@dataclass
class RunResult:
    """One run of a setting, and what the checks afterwards found."""

    setting: Setting
    repeat: int
    ok: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    bytes: int = 0
    files: int = 1
    items: int = 0  # small items of the items rows (0 elsewhere)
    seconds: float | None = None  # the upload call (curl: its time_total)
    cpu_upload: float | None = None  # user + system seconds during the upload call
    cpu_process: float = 0.0  # user + system seconds of the whole child process
    peak_rss_kib: int | None = None  # the child's own peak RSS (VmHWM)
    ru_maxrss_kib: int = 0  # from os.wait4: includes the parent's RSS at the spawn
    base_rss_kib: int | None = None
    wall_seconds: float = 0.0
    channels: tuple[ChannelFigures, ...] = ()

    @property
    def mb_per_s(self) -> float | None:
        """Decimal MB per second of the upload call."""
        if not self.ok or not self.seconds:
            return None
        return self.bytes / self.seconds / 1e6

    @property
    def files_per_s(self) -> float | None:
        if not self.ok or not self.seconds:
            return None
        return self.files / self.seconds

    @property
    def cpu_per_gib(self) -> float | None:
        """CPU seconds of the upload call, scaled to 1 GiB of payload."""
        if not self.ok or self.cpu_upload is None or not self.bytes:
            return None
        return self.cpu_upload * GiB / self.bytes


def _wait_with_rusage(
    process: subprocess.Popen[bytes], timeout: float, *, watch_rss: bool = False
) -> tuple[int, Any, bool, int | None]:
    """Wait for `process` with ``os.wait4``: (exit code, its rusage, timed out?, peak RSS).

    Polled rather than blocking, so a run that hangs is killed (by its own process id) after
    `timeout` seconds without a second thread racing the reaping of the process. Between
    polls it waits on the process's pidfd, which wakes it the moment the process ends, so
    the wall time of a short run (curl's 1000 small POSTs) is not rounded up to the poll
    interval. With `watch_rss`, the child's own high-water mark (``VmHWM``) is read on every
    poll and the last (largest) value returned; else None.
    """
    deadline = time.monotonic() + timeout
    timed_out = False
    peak: int | None = None
    try:
        pidfd: int | None = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: sleep between polls instead
        pidfd = None
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == process.pid:
                code = os.waitstatus_to_exitcode(status)
                process.returncode = code  # reaped here; Popen must not wait for it again
                return code, usage, timed_out, peak
            if watch_rss:
                seen = peak_rss_kib(process.pid)
                if seen is not None:
                    peak = max(peak or 0, seen)
            if not timed_out and time.monotonic() > deadline:
                timed_out = True
                os.kill(process.pid, signal.SIGKILL)
            if pidfd is None:
                time.sleep(0.01)
            else:
                select.select([pidfd], [], [], 0.01)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _feed_pipe(path: Path, pipe: int) -> None:
    """Copy the file into the pipe's write end (the child's standard input), then close it."""
    try:
        with open(path, "rb") as source:
            offset = 0
            size = os.fstat(source.fileno()).st_size
            while offset < size:
                # sendfile() into a pipe: the parent spends next to no CPU feeding the child.
                sent = os.sendfile(pipe, source.fileno(), offset, min(size - offset, 8 * MiB))
                if sent == 0:
                    break
                offset += sent
    except BrokenPipeError:
        pass  # the child died early; its run fails on its own account
    finally:
        os.close(pipe)


class Runner:
    """Runs settings against one server, one fresh process per run, and checks the uploads."""

    def __init__(
        self,
        url: str,
        http: LoopbackHttp,
        data: TestData,
        scratch: Path,
        *,
        timeout: float,
        curl: str | None,
    ) -> None:
        self.url = url
        self.http = http
        self.data = data
        self.scratch = scratch
        self.timeout = timeout
        self.curl = curl
        self._count = 0

    def run(self, setting: Setting, repeat: int) -> RunResult:
        """One run of `setting`: upload, measure, check with HEAD, delete."""
        self._count += 1
        run = RunResult(setting, repeat)
        if setting.source == "files":
            run.bytes, run.files = self.data.small_bytes, len(self.data.small_files)
        elif setting.source in ITEM_SOURCES:
            run.bytes, run.items = self.data.items_bytes, self.data.items
        else:
            run.bytes = self.data.size
        if setting.client == "curl":
            many = setting.source == "files"
            urls = self._run_curl_many(run) if many else self._run_curl(run)
        else:
            urls = self._run_worker(run)
        self._check_and_delete(run, urls)
        return run

    # ---- a Python client in a fresh process ---------------------------------------------

    def _spec(self, setting: Setting) -> dict[str, Any]:
        """What the worker uploads: ``mode`` is many, items, bytes, generator, pipe or file."""
        mode, paths, size = "file", [str(self.data.big_file)], self.data.size
        if setting.source == "files":
            mode, paths = "many", [str(path) for path in self.data.small_files]
            size = self.data.small_bytes
        elif setting.source in ITEM_SOURCES:
            # The worker makes the items itself; no file is read.
            mode, paths, size = setting.source, [], self.data.items_bytes
        elif setting.source in ("generator", "pipe"):
            mode = setting.source
        if setting.client == "tuspipe":
            options = setting.tuspipe_options(self.data.size)
        elif setting.client == "tuspy":
            options = setting.tuspy_options()
        elif setting.client in ("httpx", "aiotus"):
            options = {"concurrency": setting.concurrency or 8}
        else:
            options = {}
        return {
            "client": setting.client,
            "mode": mode,
            "url": self.url,
            "paths": paths,
            "size": size,
            "items": self.data.items if setting.source in ITEM_SOURCES else 0,
            "options": options,
            "loop": setting.loop,
        }

    def _run_worker(self, run: RunResult) -> list[str]:
        setting = run.setting
        spec_path = self.scratch / "spec.json"
        result_path = self.scratch / "result.json"
        spec_path.write_text(json.dumps(self._spec(setting)), encoding="utf-8")
        result_path.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        # The bare "defaults" rows use tuspipe's journal; each run gets a fresh one, as a
        # first upload on a new machine would, and the user's own journal stays untouched.
        env["TUSPIPE_JOURNAL"] = str(self.scratch / "journals" / f"run-{self._count}")
        command = [sys.executable, "-m", "benchmarks._worker", str(spec_path), str(result_path)]
        feeder: threading.Thread | None = None
        stdin: int = subprocess.DEVNULL
        pipe_read = pipe_write = -1
        if setting.source == "pipe":
            pipe_read, pipe_write = os.pipe()
            stdin = pipe_read
        out_path, err_path = self.scratch / "worker.out", self.scratch / "worker.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                command, stdin=stdin, stdout=out, stderr=err, env=env, cwd=str(ROOT)
            )
            if setting.source == "pipe":
                os.close(pipe_read)  # the child holds it now; EOF must reach it via our close
                feeder = threading.Thread(
                    target=_feed_pipe, args=(self.data.big_file, pipe_write), daemon=True
                )
                feeder.start()
            code, usage, timed_out, _ = _wait_with_rusage(process, self.timeout)
            run.wall_seconds = time.perf_counter() - started
        if feeder is not None:
            feeder.join(timeout=30)
        run.ru_maxrss_kib = int(usage.ru_maxrss)  # KiB on Linux
        run.cpu_process = float(usage.ru_utime + usage.ru_stime)
        try:
            outcome: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            outcome = {}
        urls = [str(url) for url in outcome.get("urls", [])]
        stderr_tail = err_path.read_text(errors="replace").strip().splitlines()[-12:]
        if timed_out:
            run.error = f"killed after {self.timeout:.0f} s without finishing"
        elif "error" in outcome or code != 0 or "seconds" not in outcome:
            reason = str(outcome.get("error") or f"exit code {code}, no result")
            run.error = reason + "".join(f"\n      {line}" for line in stderr_tail)
        else:
            run.ok = True
            run.seconds = float(outcome["seconds"])
            run.cpu_upload = float(outcome["cpu_user"]) + float(outcome["cpu_system"])
            run.base_rss_kib = int(outcome["base_rss_kib"])
            run.peak_rss_kib = int(outcome["peak_rss_kib"])
            run.channels = tuple(ChannelFigures(**item) for item in outcome["channel_stats"])
            if len(urls) != run.files:
                run.ok = False
                run.error = f"the client reported {len(urls)} uploads for {run.files} files"
        return urls

    # ---- the curl ceilings (see benchmarks._curl) -------------------------------------

    def _run_curl_process(self, run: RunResult, command: Sequence[str]) -> tuple[int, str]:
        """Run curl, measured as the worker is (CPU from ``os.wait4``, peak RSS polled from
        /proc); its exit code and standard output. A timeout is the run's error."""
        out_path, err_path = self.scratch / "curl.out", self.scratch / "curl.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            code, usage, timed_out, peak = _wait_with_rusage(process, self.timeout, watch_rss=True)
            run.wall_seconds = time.perf_counter() - started
        run.ru_maxrss_kib = int(usage.ru_maxrss)
        run.peak_rss_kib = peak  # polled: a curl that ends within 10 ms has no figure
        run.cpu_process = float(usage.ru_utime + usage.ru_stime)
        # The process did nothing but these uploads, so its CPU time is theirs.
        run.cpu_upload = run.cpu_process
        if timed_out:
            run.error = f"curl killed after {self.timeout:.0f} s without finishing"
        elif code != 0:
            problem = err_path.read_text(errors="replace").strip().splitlines()[-3:]
            run.error = f"curl exit code {code}: {' '.join(problem)}".strip()
        return code, out_path.read_text(errors="replace")

    def _run_curl(self, run: RunResult) -> list[str]:
        """The big file in one PATCH to an upload made here first; curl's ``time_total``."""
        if self.curl is None:
            run.error = "curl is not installed (no curl on PATH; pass --curl PATH)"
            return []
        try:
            upload_url = create_upload(self.http, self.url, self.data.size)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            run.error = f"creating the upload for curl failed: {exc}"
            return []
        command = patch_command(self.curl, self.data.big_file, upload_url)
        _, said = self._run_curl_process(run, command)
        if run.error is None:
            try:
                run.seconds = parse_patch_output(said)
                run.ok = True
            except CurlOutputError as exc:
                run.error = str(exc)
        return [upload_url]

    def _run_curl_many(self, run: RunResult) -> list[str]:
        """Every small file in its own creation-with-upload POST, ``--parallel``; the time is
        the curl process's, spawn to end."""
        if self.curl is None:
            run.error = "curl is not installed (no curl on PATH; pass --curl PATH)"
            return []
        config = self.scratch / "curl-many.conf"
        write_many_config(config, self.url, self.data.small_files)
        parallel = run.setting.concurrency or 8
        _, said = self._run_curl_process(run, many_command(self.curl, config, parallel))
        # The uploads curl made are deleted afterwards even when some of its POSTs failed.
        urls, problem = read_many_output(said, self.url, len(self.data.small_files))
        if run.error is None and problem is not None:
            run.error = problem
        elif run.error is None:
            run.ok = True
            run.seconds = run.wall_seconds
        return urls

    # ---- afterwards ---------------------------------------------------------------------

    def _check_and_delete(self, run: RunResult, urls: Sequence[str]) -> None:
        """HEAD every upload the run made (it must be complete), then delete it."""
        if run.setting.source == "files":
            sizes = [path.stat().st_size for path in self.data.small_files]
        else:
            sizes = [run.bytes]
        for index, url in enumerate(urls):
            if run.ok:
                try:
                    problem = check_upload(self.http, url, sizes[min(index, len(sizes) - 1)])
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    problem = f"checking {url} failed: {exc}"
                if problem is not None:
                    run.ok, run.error = False, problem
            warning = delete_upload(self.http, url, with_parts=run.setting.parallel > 1)
            if warning is not None and len(run.warnings) < 3:
                run.warnings.append(warning)


def find_curl(explicit: str | None) -> str | None:
    """The curl executable to use: `explicit` if given and present, else curl on PATH."""
    if explicit:
        return explicit if shutil.which(explicit) or os.path.isfile(explicit) else None
    return shutil.which("curl")
