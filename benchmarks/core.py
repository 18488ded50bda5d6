"""Throughput and peak memory of tuspipe next to tuspy 1.1.0, uploading the same file.

Run ``python -m benchmarks.core [--size 1GiB] [--repeat N] [--csv out.csv]``. It writes a
random test file to a temporary directory (deleted afterwards) and uploads it with every
client configuration, each run in its own fresh Python subprocess so that the peak resident
memory (``ru_maxrss`` from ``os.wait4``) belongs to that one upload:

* clients: tuspipe and tuspy 1.1.0 (``tusclient``), interleaved run by run;
* chunk size: 8 MiB, or the whole file in one PATCH (tuspipe ``chunk_size=<file size>``,
  tuspy its default ``sys.maxsize``);
* checksum: off, or sha1 on every PATCH;
* targets: the discard sink of :mod:`benchmarks.sink`, started here (or ``--url``), which
  measures the clients; and the real Node server ``@tus/server`` (``--node-url``), which shows
  what a real server allows. Checksum rows run only where the server offers sha1 (Node does
  not). An unreachable Node server is reported and its section skipped.

After each run the upload is checked with HEAD (offset and length must equal the file size),
bytes stored by the Node server are compared with the file by sha256 (GET, unless
``--no-verify-bytes``), and the upload is deleted (tus termination) so the disk does not fill.
The speed is the file size over the time the client's upload call took inside the subprocess
(interpreter start and imports excluded), in decimal MB/s. All traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import ipaddress
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Config", "RunResult", "main", "parse_size"]

MiB = 1024 * 1024
#: tuspipe's peak RSS for the single-PATCH upload of a 1 GiB file must stay below this.
RSS_TARGET_MIB = 100
DEFAULT_NODE_URL = "http://127.0.0.1:1080/files/"
CHUNK_8MIB = 8 * MiB
CLIENTS = ("tuspipe", "tuspy")
HTTP_TIMEOUT = 30.0
_WORKER = "_worker"
_URL_LINE = "UPLOAD_URL "
_RESULT_LINE = "RESULT "
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": MiB,
    "mib": MiB,
    "g": 1024 * MiB,
    "gib": 1024 * MiB,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}


def parse_size(text: str) -> int:
    """Bytes in ``"1GiB"``, ``"256MiB"``, ``"100MB"``, ``"64k"`` or ``"12345"`` (K/M/G binary)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 256MiB, 100MB)")
    size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise argparse.ArgumentTypeError("the size must be at least one byte")
    return size


def format_size(size: int) -> str:
    """``1 GiB``, ``8 MiB`` or ``12345 B``: binary units when exact, bytes otherwise."""
    for unit, factor in (("GiB", 1024 * MiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def require_loopback(url: str) -> str:
    """Return `url` if it is http(s) to a loopback address; raise ValueError otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http(s) URL")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{url!r} is not on 127.0.0.1; this benchmark only talks to loopback")
    return url


@dataclass(frozen=True)
class HttpAnswer:
    """Status, lower-cased headers and body of one answer."""

    status: int
    headers: dict[str, str]
    body: bytes


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(require_loopback(url))
    factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return factory(parts.hostname or "", parts.port, timeout=HTTP_TIMEOUT), target


def http_request(method: str, url: str, headers: dict[str, str] | None = None) -> HttpAnswer:
    """One request on its own connection (stdlib only)."""
    connection, target = _connect(url)
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        body = response.read(64 * 1024) if method != "HEAD" else b""
        return HttpAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def http_get_sha256(url: str) -> tuple[int, str]:
    """GET `url` and return its status and the sha256 of its body, streamed."""
    connection, target = _connect(url)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        digest = hashlib.sha256()
        while piece := response.read(4 * MiB):
            digest.update(piece)
        return response.status, digest.hexdigest()
    finally:
        connection.close()


TUS_HEADERS = {"Tus-Resumable": "1.0.0"}


# --------------------------------------------------------------------------------------------
# The worker: one upload in a fresh process
# --------------------------------------------------------------------------------------------


def _vm_kib(field_name: str) -> int:
    """A ``/proc/self/status`` value in KiB (VmRSS, VmHWM), 0 where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _emit(prefix: str, payload: Any) -> None:
    print(prefix + (payload if isinstance(payload, str) else json.dumps(payload)), flush=True)


def _metadata(path: str) -> dict[str, str]:
    """The same Upload-Metadata for both clients (tuspy sends an empty header without any,
    which @tus/server refuses with 400)."""
    return {"filename": os.path.basename(path), "filetype": "application/octet-stream"}


def _upload_tuspipe(path: str, url: str, chunk_size: int | None, checksum: str | None) -> str:
    import tuspipe

    size = os.path.getsize(path)
    result = tuspipe.upload(
        path,
        url,
        chunk_size=chunk_size if chunk_size is not None else size,
        checksum=checksum,
        metadata=_metadata(path),
        on_upload_url=lambda upload_url: _emit(_URL_LINE, upload_url),
        # the journal stays on, as by default, but beside the test file, not in ~/.cache
        journal=os.path.join(os.path.dirname(path), "tuspipe-journal"),
    )
    if result.offset != size:
        raise RuntimeError(f"tuspipe returned offset {result.offset} of {size}")
    return result.url


def _upload_tuspy(path: str, url: str, chunk_size: int | None, checksum: str | None) -> str:
    from tusclient import client

    if checksum not in (None, "sha1"):
        raise ValueError("tuspy 1.1.0 only knows sha1")
    options: dict[str, Any] = {"upload_checksum": checksum == "sha1", "metadata": _metadata(path)}
    if chunk_size is not None:
        options["chunk_size"] = chunk_size  # else its default, sys.maxsize: the whole file
    uploader = client.TusClient(url).uploader(path, **options)
    # What upload() would do first, done here so the URL is known even if the upload fails.
    uploader.set_url(uploader.create_url())
    uploader.offset = 0
    _emit(_URL_LINE, str(uploader.url))
    uploader.upload()
    if uploader.offset != os.path.getsize(path):
        raise RuntimeError(f"tuspy ended at offset {uploader.offset}")
    return str(uploader.url)


def _import_client(client_name: str) -> Callable[[str, str, int | None, str | None], str]:
    """Import the client library now (so its import is part of the baseline, not the run)."""
    if client_name == "tuspipe":
        import tuspipe  # noqa: F401

        return _upload_tuspipe
    from tusclient import client  # noqa: F401

    return _upload_tuspy


def worker_main(argv: Sequence[str]) -> int:
    """Subprocess entry point: one upload, then a ``RESULT {json}`` line on stdout."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.core _worker")
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--chunk-size", type=int, default=None, help="omit: whole file")
    parser.add_argument("--checksum", default=None)
    args = parser.parse_args(argv)
    require_loopback(args.url)
    upload = _import_client(args.client)
    base_rss_kib = _vm_kib("VmRSS")
    started = time.perf_counter()
    try:
        upload_url = upload(args.path, args.url, args.chunk_size, args.checksum)
    except BaseException as exc:
        traceback.print_exc()
        _emit(_RESULT_LINE, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    seconds = time.perf_counter() - started
    _emit(
        _RESULT_LINE,
        {
            "url": upload_url,
            "seconds": seconds,
            "base_rss_kib": base_rss_kib,
            "hwm_kib": _vm_kib("VmHWM"),
        },
    )
    return 0


# --------------------------------------------------------------------------------------------
# The parent: configurations, runs, checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One row of the table: where, with what, how."""

    server: str  # "sink" or "node"
    client: str  # "tuspipe" or "tuspy"
    whole: bool  # the whole file in one PATCH (else 8 MiB chunks)
    checksum: str | None  # None or "sha1"

    @property
    def chunk_label(self) -> str:
        return "whole file" if self.whole else format_size(CHUNK_8MIB)

    @property
    def checksum_label(self) -> str:
        return self.checksum or "off"

    @property
    def key(self) -> tuple[str, bool, str | None]:
        """What the two clients' rows share (used to pair them for the ratio)."""
        return (self.server, self.whole, self.checksum)


@dataclass
class RunResult:
    """One upload in one subprocess, and what the checks found."""

    config: Config
    repeat: int
    ok: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float | None = None
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_kib: int = 0
    base_rss_kib: int = 0
    upload_url: str | None = None
    sink_bytes: int | None = None

    def mb_per_s(self, size: int) -> float | None:
        if not self.ok or not self.seconds:
            return None
        return size / self.seconds / 1e6


@dataclass(frozen=True)
class Target:
    """A server section: name, creation URL, and whether it offers sha1 checksums."""

    name: str
    url: str
    sha1: bool
    bytes_received: Callable[[], int] | None = None  # the in-process sink's byte counter
    verify_bytes: bool = False  # GET the stored bytes back and compare


def probe(url: str) -> tuple[bool, str]:
    """Ask a tus server (OPTIONS) whether it is there and offers sha1; (sha1, description)."""
    answer = http_request("OPTIONS", url)
    if answer.status not in (200, 204):
        raise ConnectionError(f"OPTIONS {url} answered {answer.status}")
    versions = [v.strip() for v in answer.headers.get("tus-version", "").split(",")]
    if "1.0.0" not in versions:
        raise ConnectionError(f"{url} does not speak tus 1.0.0 (Tus-Version: {versions})")
    extensions = [e.strip() for e in answer.headers.get("tus-extension", "").split(",")]
    algorithms = [
        a.strip().lower() for a in answer.headers.get("tus-checksum-algorithm", "").split(",")
    ]
    sha1 = "checksum" in extensions and "sha1" in algorithms
    return sha1, f"extensions: {', '.join(e for e in extensions if e) or 'none'}"


def _wait_with_rusage(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any, bool]:
    """Wait for `process` with ``os.wait4``: (exit code, its rusage, timed out?).

    On timeout the process is killed by its id first.
    """
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            code = os.waitstatus_to_exitcode(status)
            process.returncode = code
            return code, usage, timed_out
        if not timed_out and time.monotonic() > deadline:
            timed_out = True
            os.kill(process.pid, signal.SIGKILL)
        time.sleep(0.02)


def _parse_worker_output(text: str) -> tuple[str | None, dict[str, Any] | None]:
    upload_url: str | None = None
    result: dict[str, Any] | None = None
    for line in text.splitlines():
        if line.startswith(_URL_LINE):
            upload_url = line[len(_URL_LINE) :].strip()
        elif line.startswith(_RESULT_LINE):
            result = json.loads(line[len(_RESULT_LINE) :])
    return upload_url, result


def run_one(
    config: Config,
    repeat: int,
    target: Target,
    path: Path,
    size: int,
    digest: str,
    timeout: float,
    scratch: Path,
) -> RunResult:
    """Upload `path` once in a subprocess, then check, verify and delete the upload."""
    run = RunResult(config, repeat)
    command = [
        sys.executable,
        "-m",
        "benchmarks.core",
        _WORKER,
        "--client",
        config.client,
        "--url",
        target.url,
        "--path",
        str(path),
    ]
    if not config.whole:
        command += ["--chunk-size", str(CHUNK_8MIB)]
    if config.checksum:
        command += ["--checksum", config.checksum]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    before = target.bytes_received() if target.bytes_received else 0
    out_path, err_path = scratch / "worker.out", scratch / "worker.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=str(ROOT))
        code, usage, timed_out = _wait_with_rusage(process, timeout)
        run.wall_seconds = time.perf_counter() - started
    run.peak_rss_kib = int(usage.ru_maxrss)  # KiB on Linux
    run.cpu_seconds = float(usage.ru_utime + usage.ru_stime)
    if target.bytes_received:
        run.sink_bytes = target.bytes_received() - before
    run.upload_url, result = _parse_worker_output(out_path.read_text(errors="replace"))
    stderr_tail = err_path.read_text(errors="replace").strip().splitlines()[-15:]
    if timed_out:
        run.error = f"killed after {timeout:.0f} s without finishing"
    elif result is None or "error" in result or code != 0:
        reason = (result or {}).get("error") or f"exit code {code}, no result"
        run.error = reason + ("\n      " + "\n      ".join(stderr_tail) if stderr_tail else "")
    else:
        run.seconds = float(result["seconds"])
        run.base_rss_kib = int(result["base_rss_kib"])
        run.upload_url = str(result["url"])
        run.ok = True
    if run.upload_url:
        _check_and_delete(run, target, size, digest)
    elif run.ok:
        run.ok, run.error = False, "the client reported no upload URL"
    if run.ok and run.sink_bytes is not None and run.sink_bytes != size:
        run.warnings.append(f"the sink received {run.sink_bytes} body bytes for {size}")
    return run


def _check_and_delete(run: RunResult, target: Target, size: int, digest: str) -> None:
    """HEAD the upload (offset == length == size), compare stored bytes, then DELETE it."""
    assert run.upload_url is not None
    url = run.upload_url
    try:
        require_loopback(url)
    except ValueError as exc:
        run.ok, run.error = False, f"refusing to check the upload: {exc}"
        return
    try:
        if run.ok:
            head = http_request("HEAD", url, TUS_HEADERS)
            offset = head.headers.get("upload-offset")
            length = head.headers.get("upload-length")
            if head.status not in (200, 204):
                run.ok, run.error = False, f"HEAD {url} answered {head.status}"
            elif offset != str(size) or length not in (None, str(size)):
                run.ok = False
                run.error = f"HEAD says Upload-Offset {offset}, Upload-Length {length}, not {size}"
        if run.ok and target.verify_bytes:
            status, stored = http_get_sha256(url)
            if status != 200:
                run.warnings.append(f"could not read the stored bytes back (GET {status})")
            elif stored != digest:
                run.ok, run.error = False, "the stored bytes differ from the file (sha256)"
    except (OSError, http.client.HTTPException) as exc:
        run.ok, run.error = False, f"checking {url} failed: {exc}"
    try:
        deleted = http_request("DELETE", url, TUS_HEADERS)
        if deleted.status not in (200, 204, 404, 410):
            run.warnings.append(f"DELETE {url} answered {deleted.status}; it may remain")
    except (OSError, http.client.HTTPException) as exc:
        run.warnings.append(f"DELETE {url} failed ({exc}); it may remain on the server")


def make_test_file(directory: Path, size: int) -> tuple[Path, str]:
    """Write `size` random bytes to a file in `directory`; return its path and sha256."""
    path = directory / f"tuspipe-bench-{size}.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            piece = os.urandom(min(remaining, 8 * MiB))
            digest.update(piece)
            out.write(piece)
            remaining -= len(piece)
    return path, digest.hexdigest()


def configs_for(target: Target) -> list[tuple[bool, str | None]]:
    """The (whole file?, checksum) pairs to run against `target`."""
    checksums: list[str | None] = [None, "sha1"] if target.sha1 else [None]
    return [(whole, checksum) for whole in (False, True) for checksum in checksums]


def schedule(targets: Sequence[Target], repeats: int) -> Iterator[tuple[Target, int, Config]]:
    """Every run in order: per target, per repeat, per configuration, both clients in turn.

    Clients alternate (tuspipe, tuspy, tuspipe, tuspy, ...); on odd repeats each pair starts
    with tuspy, so neither client always runs right after the same neighbour.
    """
    for target in targets:
        for repeat in range(repeats):
            order = CLIENTS if repeat % 2 == 0 else CLIENTS[::-1]
            for whole, checksum in configs_for(target):
                for client in order:
                    yield target, repeat, Config(target.name, client, whole, checksum)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """A configuration's runs reduced to one table row."""

    config: Config
    runs: int
    failures: int
    mb_per_s: float | None  # median of successful runs
    peak_rss_mib: float | None  # the largest over successful runs
    base_rss_mib: float | None
    cpu_seconds: float | None  # median


def summarize(results: Sequence[RunResult], size: int) -> list[Summary]:
    """One Summary per configuration, in the order they first ran."""
    grouped: dict[Config, list[RunResult]] = {}
    for run in results:
        grouped.setdefault(run.config, []).append(run)
    rows = []
    for config, runs in grouped.items():
        good = [r for r in runs if r.ok]
        speeds = [s for r in good if (s := r.mb_per_s(size)) is not None]
        rows.append(
            Summary(
                config=config,
                runs=len(runs),
                failures=len(runs) - len(good),
                mb_per_s=statistics.median(speeds) if speeds else None,
                peak_rss_mib=max(r.peak_rss_kib for r in good) / 1024 if good else None,
                base_rss_mib=max(r.base_rss_kib for r in good) / 1024 if good else None,
                cpu_seconds=statistics.median(r.cpu_seconds for r in good) if good else None,
            )
        )
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "FAILED" if value is None else format(value, spec)


def render_table(rows: Sequence[Summary], size: int, repeats: int) -> str:
    """The results table, each tuspipe/tuspy pair followed by their ratio line."""
    header = ["server", "client", "chunk", "checksum", "MB/s", "CPU s", "base MiB", "peak RSS MiB"]
    pairs: dict[tuple[str, bool, str | None], dict[str, Summary]] = {}
    for row in rows:
        pairs.setdefault(row.config.key, {})[row.config.client] = row
    body: list[list[str] | str] = []  # a list is a row of cells, a str a ratio line
    for pair in pairs.values():
        for client in CLIENTS:
            if client not in pair:
                continue
            item = pair[client]
            peak = _fmt(item.peak_rss_mib, ".1f")
            if item.failures:
                peak += f"  ({item.failures}/{item.runs} runs failed)"
            if item.config.whole and not item.config.checksum:
                peak += "   <== whole file in 1 PATCH"
            body.append(
                [
                    item.config.server,
                    client,
                    item.config.chunk_label,
                    item.config.checksum_label,
                    _fmt(item.mb_per_s, ".0f"),
                    _fmt(item.cpu_seconds, ".2f"),
                    _fmt(item.base_rss_mib, ".1f"),
                    peak,
                ]
            )
        body.append(_ratio_line(pair))
    cell_rows = [header] + [line for line in body if isinstance(line, list)]
    widths = [max(len(cells[i]) for cells in cell_rows) for i in range(len(header) - 1)]
    right = {4, 5, 6}  # numeric columns

    def render(cells: list[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells[:-1])
        ]
        return "  ".join([*parts, cells[-1]]).rstrip()

    indent = " " * (widths[0] + widths[1] + 4)
    out = [render(header), "-" * (sum(widths) + 2 * len(widths) + len(header[-1]))]
    for line in body:
        out.append(render(line) if isinstance(line, list) else indent + line)
    out.append(
        f"MB/s: {format_size(size)} / upload time (10^6 B/s, median of {repeats} run(s)). "
        "CPU s: user+system time of the run's process (median). base: RSS after importing "
        "the client, before uploading. peak RSS: ru_maxrss of the run's process (max of the "
        "runs)."
    )
    return "\n".join(out)


def _ratio_line(pair: dict[str, Summary]) -> str:
    mine, theirs = pair.get("tuspipe"), pair.get("tuspy")
    if mine is None or theirs is None:
        return "tuspipe/tuspy: n/a"
    speed = (
        f"{mine.mb_per_s / theirs.mb_per_s:.2f}x" if mine.mb_per_s and theirs.mb_per_s else "n/a"
    )
    rss = (
        f"{mine.peak_rss_mib / theirs.peak_rss_mib:.2f}x"
        if mine.peak_rss_mib and theirs.peak_rss_mib
        else "n/a"
    )
    return f"tuspipe/tuspy: speed {speed}, peak RSS {rss}"


def render_headline(rows: Sequence[Summary], size: int) -> str:
    """The figure the project cares about: peak RSS of the single-PATCH upload."""
    out = [
        f"Peak RSS, the whole {format_size(size)} file in one PATCH "
        f"(tuspipe's target: under {RSS_TARGET_MIB} MiB):"
    ]
    for row in rows:
        if not row.config.whole:
            continue
        config = row.config
        label = f"{config.server:<5} {config.client:<8} checksum {config.checksum_label:<4}"
        if row.peak_rss_mib is None:
            out.append(f"  {label}  FAILED")
            continue
        verdict = ""
        if row.config.client == "tuspipe":
            ok = row.peak_rss_mib < RSS_TARGET_MIB
            verdict = "  PASS" if ok else "  OVER TARGET"
        else:
            verdict = f"  ({row.peak_rss_mib * MiB / size:.2f}x the file size)"
        out.append(f"  {label}  {row.peak_rss_mib:8.1f} MiB{verdict}")
    return "\n".join(out)


def write_csv(path: Path, results: Sequence[RunResult], size: int) -> None:
    """One line per run (not per configuration), for later analysis."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "server",
                "client",
                "chunk",
                "checksum",
                "repeat",
                "ok",
                "size_bytes",
                "seconds",
                "mb_per_s",
                "peak_rss_mib",
                "base_rss_mib",
                "cpu_seconds",
                "wall_seconds",
                "sink_bytes_received",
                "error",
            ]
        )
        for run in results:
            speed = run.mb_per_s(size)
            writer.writerow(
                [
                    run.config.server,
                    run.config.client,
                    "whole" if run.config.whole else CHUNK_8MIB,
                    run.config.checksum_label,
                    run.repeat,
                    int(run.ok),
                    size,
                    f"{run.seconds:.4f}" if run.seconds else "",
                    f"{speed:.1f}" if speed else "",
                    f"{run.peak_rss_kib / 1024:.1f}",
                    f"{run.base_rss_kib / 1024:.1f}" if run.base_rss_kib else "",
                    f"{run.cpu_seconds:.3f}",
                    f"{run.wall_seconds:.3f}",
                    "" if run.sink_bytes is None else run.sink_bytes,
                    (run.error or "").splitlines()[0] if run.error else "",
                ]
            )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.core",
        description="Upload one random file with tuspipe and tuspy 1.1.0, each run in its own "
        "process, against a local discard sink and the real Node tus server; print speed and "
        "peak memory side by side.",
    )
    parser.add_argument("--size", type=parse_size, default=1024 * MiB, help="default 1GiB")
    parser.add_argument(
        "--url",
        default=None,
        help="a tus creation URL to use as the 'sink' target instead of starting the local "
        "discard sink (loopback only)",
    )
    parser.add_argument("--node-url", default=DEFAULT_NODE_URL, help="the @tus/server endpoint")
    parser.add_argument("--no-node", action="store_true", help="skip the Node server section")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--csv", type=Path, default=None, help="write every run to this CSV")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the test file goes")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds before a run is killed"
    )
    parser.add_argument(
        "--verify-checksums",
        action="store_true",
        help="make the local sink check every Upload-Checksum (adds server work to the runs)",
    )
    parser.add_argument(
        "--no-verify-bytes",
        action="store_true",
        help="do not read the Node server's stored bytes back to compare them",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for name in ("url", "node_url"):
        value = getattr(args, name)
        if value is not None:
            try:
                require_loopback(value)
            except ValueError as exc:
                parser.error(str(exc))
    return args


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("tuspipe", "tuspy", "httpx", "trio", "requests"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} missing")
    return ", ".join(found)


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_benchmark(args: argparse.Namespace) -> int:
    """Run every configuration, print the report; 0 when every run passed its checks."""
    from benchmarks.sink import TusSink

    began = time.monotonic()
    size: int = args.size
    _say(f"tuspipe benchmark: {format_size(size)} file, {args.repeat} repeat(s)")
    _say(f"  {platform.python_implementation()} {platform.python_version()}, {_versions()}")
    _say(f"  {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sink: TusSink | None = None
    targets: list[Target] = []
    notes: list[str] = []
    try:
        if args.url:
            sha1, description = probe(args.url)
            targets.append(Target("sink", args.url, sha1))
            _say(f"  sink: {args.url} (given; {description})")
        else:
            sink = TusSink(verify_checksums=args.verify_checksums).start()
            stats = sink.stats
            targets.append(Target("sink", sink.url, True, lambda: stats.bytes_received))
            checking = "verifies" if args.verify_checksums else "does not verify"
            _say(f"  sink: {sink.url} (local discard sink, {checking} checksums)")
        if args.no_node:
            notes.append("Node server section skipped (--no-node).")
        else:
            try:
                sha1, description = probe(args.node_url)
            except (OSError, http.client.HTTPException) as exc:
                notes.append(
                    f"Node server at {args.node_url} is not reachable ({exc}); "
                    "its section is skipped."
                )
            else:
                targets.append(
                    Target("node", args.node_url, sha1, verify_bytes=not args.no_verify_bytes)
                )
                if not sha1:
                    description += "; no sha1 checksum, so checksum-off rows only"
                _say(f"  node: {args.node_url} ({description})")
        for note in notes:
            _say(f"  NOTE: {note}")

        with tempfile.TemporaryDirectory(prefix="tuspipe-bench-", dir=args.tmpdir) as tmp:
            scratch = Path(tmp)
            t0 = time.monotonic()
            path, digest = make_test_file(scratch, size)
            _say(f"  test file: {path} ({time.monotonic() - t0:.1f} s to write)")
            _say()
            planned = list(schedule(targets, args.repeat))
            results: list[RunResult] = []
            for number, (target, repeat, config) in enumerate(planned, 1):
                run = run_one(config, repeat, target, path, size, digest, args.timeout, scratch)
                results.append(run)
                speed = run.mb_per_s(size)
                status = (
                    f"{speed:7.0f} MB/s  {run.peak_rss_kib / 1024:7.1f} MiB"
                    if speed is not None
                    else "FAILED"
                )
                _say(
                    f"  [{number:>2}/{len(planned)}] {config.server:<4} {config.client:<7} "
                    f"{config.chunk_label:<10} {config.checksum_label:<4} {status}"
                )
                for warning in run.warnings:
                    _say(f"        warning: {warning}")
    finally:
        if sink is not None:
            sink.stop()

    rows = summarize(results, size)
    _say()
    _say(render_table(rows, size, args.repeat))
    for note in notes:
        _say(f"NOTE: {note}")
    _say()
    _say(render_headline(rows, size))
    failures = [run for run in results if not run.ok]
    if failures:
        _say()
        _say(f"FAILURES ({len(failures)}):")
        for run in failures:
            config = run.config
            _say(
                f"  {config.server} {config.client} {config.chunk_label} "
                f"checksum {config.checksum_label} (repeat {run.repeat + 1}): {run.error}"
            )
    if args.csv:
        write_csv(args.csv, results, size)
        _say(f"\nCSV: {args.csv}")
    _say(f"\nTotal time: {time.monotonic() - began:.1f} s")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.core``; a leading ``_worker`` runs one upload (internal)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [_WORKER]:
        return worker_main(arguments[1:])
    return run_benchmark(_parse_args(arguments))


if __name__ == "__main__":
    sys.exit(main())
