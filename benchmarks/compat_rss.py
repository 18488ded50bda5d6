"""Peak memory of a tuspy-style upload: tuspipe.compat next to tuspy 1.1.0 itself.

Run ``python -m benchmarks.compat_rss [--size-mib 1024] [--url URL]``. It writes a random
file (1 GiB by default) and uploads it with the code a tuspy user writes, unchanged but for
the import::

    TusClient(url).uploader(path, metadata=...).upload()

once with ``tuspipe.compat`` and once with tuspy's own ``tusclient``, each in a fresh Python
subprocess, with the DEFAULT chunk size (``sys.maxsize``: the whole file in one PATCH). The
peak resident memory of each subprocess is ``ru_maxrss`` from ``os.wait4``. Targets: the
local discard sink of :mod:`benchmarks.sink` (always), and the server at ``--url`` (a real
tus server on loopback, e.g. the Node server at ``http://127.0.0.1:1080/files/``), whose
stored bytes are compared with the file by sha256 (GET) unless ``--no-verify-bytes``.

After each run the upload is checked with ``tuspipe.upload_status`` (offset and length equal
to the file size) and deleted with ``tuspipe.terminate``. The exit status is 1 when a run
failed or tuspipe.compat peaked at or above the target (100 MiB).

The metadata (a file name) is there because tuspy sends an empty ``Upload-Metadata`` header
without any, which @tus/server refuses.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks._http import require_loopback
from benchmarks._runs import format_size
from benchmarks.sink import SinkProcess

__all__ = ["RSS_TARGET_MIB", "main"]

MiB = 1024 * 1024
#: tuspipe.compat's peak RSS for the default-chunk upload must stay below this.
RSS_TARGET_MIB = 100
CLIENTS = ("tuspipe.compat", "tuspy")
_WORKER = "_worker"
_RESULT = "RESULT "
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# The worker: one upload in a fresh process
# --------------------------------------------------------------------------------------------


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


def http_get_sha256(url: str) -> tuple[int, str]:
    """GET `url` (loopback only) and return its status and the sha256 of its body, streamed."""
    parts = urlsplit(require_loopback(url))
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        digest = hashlib.sha256()
        while piece := response.read(4 * MiB):
            digest.update(piece)
        return response.status, digest.hexdigest()
    finally:
        connection.close()


def _worker(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.compat_rss {_WORKER}")
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", required=True)
    args = parser.parse_args(argv)
    require_loopback(args.url)
    # The import is part of the baseline, not of the upload.
    if args.client == "tuspipe.compat":
        from tuspipe.compat import client
    else:
        from tusclient import client  # type: ignore[no-redef]
    uploader = client.TusClient(args.url).uploader(
        args.path, metadata={"filename": os.path.basename(args.path)}
    )
    started = time.perf_counter()
    try:
        uploader.upload()
    except BaseException as exc:
        traceback.print_exc()
        print(_RESULT + json.dumps({"error": f"{type(exc).__name__}: {exc}", "url": uploader.url}))
        return 1
    seconds = time.perf_counter() - started
    print(
        _RESULT + json.dumps({"url": uploader.url, "offset": uploader.offset, "seconds": seconds})
    )
    return 0


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One client's upload to one target, and what the checks found."""

    target: str
    client: str
    peak_rss_kib: int = 0
    seconds: float | None = None
    url: str | None = None
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _wait_with_rusage(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any, bool]:
    """Wait for `process` with ``os.wait4``; kill it (by its id) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage, timed_out
        if not timed_out and time.monotonic() > deadline:
            timed_out = True
            os.kill(process.pid, signal.SIGKILL)
        time.sleep(0.02)


def run_one(
    target: str, url: str, client: str, path: Path, digest: str, verify_bytes: bool, timeout: float
) -> Run:
    """Upload `path` with `client` in a fresh subprocess; check the upload, then delete it."""
    run = Run(target, client)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "benchmarks.compat_rss", _WORKER]
    command += ["--client", client, "--url", url, "--path", str(path)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=str(ROOT))
        code, usage, timed_out = _wait_with_rusage(process, timeout)
        run.peak_rss_kib = int(usage.ru_maxrss)  # KiB on Linux
        out.seek(0)
        err.seek(0)
        output = out.read().decode(errors="replace")
        stderr_tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
    result: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith(_RESULT):
            result = json.loads(line[len(_RESULT) :])
    run.url = result.get("url")
    if timed_out:
        run.error = f"killed after {timeout:.0f} s"
    elif code != 0 or "error" in result:
        run.error = str(result.get("error") or f"exit code {code}") + "".join(
            "\n      " + line for line in stderr_tail
        )
    else:
        run.seconds = float(result["seconds"])
    if run.url:
        _check_and_delete(run, path.stat().st_size, digest, verify_bytes)
    elif run.ok:
        run.error = "the client reported no upload URL"
    return run


def _check_and_delete(run: Run, size: int, digest: str, verify_bytes: bool) -> None:
    # Imported here, not at the top: the tuspy worker must not carry tuspipe in its RSS.
    import tuspipe

    assert run.url is not None
    try:
        require_loopback(run.url)
        if run.ok:
            status = tuspipe.upload_status(run.url, retries=0)
            if (status.offset, status.length) != (size, size):
                run.error = f"the server holds {status.offset} of {status.length}, not {size}"
            elif verify_bytes:
                code, stored = http_get_sha256(run.url)
                if code != 200:
                    run.warning = f"could not read the stored bytes back (GET answered {code})"
                elif stored != digest:
                    run.error = "the stored bytes differ from the file (sha256)"
    except (tuspipe.TusError, OSError, ValueError) as exc:
        run.error = f"checking {run.url} failed: {exc}"
    try:
        tuspipe.terminate(run.url, retries=1)
    except (tuspipe.TusError, OSError) as exc:
        run.warning = f"DELETE {run.url} failed ({exc}); it may remain on the server"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compat_rss",
        description="Peak RSS of TusClient(url).uploader(path).upload() with the default "
        "chunk size: tuspipe.compat next to tuspy 1.1.0.",
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument(
        "--url", help="also upload to this loopback tus server (e.g. http://127.0.0.1:1080/files/)"
    )
    parser.add_argument("--no-verify-bytes", action="store_true", help="skip the sha256 GET")
    parser.add_argument("--tmpdir", help="where to write the test file (default: system temp)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per upload")
    args = parser.parse_args(argv)
    if args.size_mib <= 0:
        parser.error("--size-mib must be positive")
    if args.url:
        try:
            require_loopback(args.url)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def _report(runs: Sequence[Run], size: int) -> int:
    print()
    print(f"Peak RSS, {format_size(size)} file, default chunk size (sys.maxsize), ru_maxrss:")
    print(f"  {'target':<8} {'client':<15} {'peak RSS':>12} {'time':>9}  result")
    failed = False
    for run in runs:
        rss = f"{run.peak_rss_kib / 1024:.1f} MiB"
        took = f"{run.seconds:.1f} s" if run.seconds is not None else "-"
        verdict = "ok" if run.ok else f"FAILED: {run.error}"
        print(f"  {run.target:<8} {run.client:<15} {rss:>12} {took:>9}  {verdict}")
        if run.warning:
            print(f"  {'':<8} {'':<15} {'':>12} {'':>9}  warning: {run.warning}")
        failed = failed or not run.ok
    compat_peaks = [run.peak_rss_kib / 1024 for run in runs if run.client == "tuspipe.compat"]
    worst = max(compat_peaks, default=0.0)
    met = worst < RSS_TARGET_MIB
    print(
        f"\ntuspipe.compat peak: {worst:.1f} MiB (target: under {RSS_TARGET_MIB} MiB) -> "
        + ("met" if met else "MISSED")
    )
    return 0 if met and not failed else 1


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [_WORKER]:
        return _worker(arguments[1:])
    args = _parse_args(arguments)
    size = args.size_mib * MiB
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="tuspipe-compat-rss-", dir=args.tmpdir) as folder:
        print(f"writing a {format_size(size)} test file ...", flush=True)
        path, digest = make_test_file(Path(folder), size)
        with SinkProcess() as sink:
            targets = [("sink", sink.url, False)]
            if args.url:
                targets.append(("server", args.url, not args.no_verify_bytes))
            for target, url, verify in targets:
                for client in CLIENTS:
                    print(f"  {target}: {client} -> {url}", flush=True)
                    runs.append(run_one(target, url, client, path, digest, verify, args.timeout))
    return _report(runs, size)


if __name__ == "__main__":
    sys.exit(main())
