"""Soak test: many uploads to the real Node tus server through a fault-injecting proxy.

    python -m tests.soak [--uploads 50] [--size-mib 8] [--url http://127.0.0.1:1080/files/]
                         [--data-dir DIR] [--seed N]

Each upload sends a freshly generated file (``--size-mib`` MiB plus a random tail, so the last
chunk is short) with tuspipe through a :class:`tests.faultproxy.ThreadedFaultProxy` in front of
the server, with one to three faults drawn at random from the proxy's repertoire:

* ``reset``: the connection is reset (TCP RST) at a random byte of the PATCH stream;
* ``lost-answer``: the connection is cut in the middle of one of the server's PATCH answers
  (the server stored the bytes, the client never hears so);
* ``stall-up`` / ``stall-down``: the connection goes silent for 1.5 to 3 s, mid-PATCH body or
  mid-answer, longer than tuspipe's ``stall_timeout`` (1 s);
* ``slow``: from a random byte of the PATCH stream, the request runs at 2 to 10 MB/s for a
  spell of 0.3 to 1 s;
* ``refuse``: a reset at a random byte, and from that moment new connections are refused for
  0.2 to 1 s (reset, closed, or not listened for at all).

A fault is armed before the upload and fires when the upload reaches its byte; a fault armed
behind an earlier one may never be reached (it is counted as armed, not as injected). After
each upload the stored bytes are compared with the file by sha256: the server's file in
``--data-dir`` (default: the test servers' Node data directory), or, when that directory does
not exist, a GET of the finished upload (the test launcher serves it). Then the upload is
deleted (``--keep`` keeps it).

Figures, per upload and in total: uploads completed with identical bytes; faults injected
(connections the proxy hit, by kind); retries (tuspipe's retry warnings on the ``tuspipe``
logger, by method); bytes sent in PATCH bodies against the file size (bytes re-sent); time.

The exit status is 0 only if every upload completed with identical bytes. Everything runs on
loopback; each upload is bounded by ``--upload-timeout`` and the whole run by ``--time-limit``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import logging
import random
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

import tuspipe

from .faultproxy import Fault, RefuseMode, ThreadedFaultProxy
from .faults import FaultTransport

__all__ = ["RunResult", "main"]

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "http://127.0.0.1:1080/files/"
DEFAULT_DATA_DIR = ROOT / "tests" / "servers" / ".tus-servers" / "data" / "node"
TUS = {"Tus-Resumable": "1.0.0"}

#: tuspipe settings for every upload: a short stall timeout, so stalls are noticed quickly,
#: and a retry budget that outlasts Node's ~3 s lock drain after a stalled PATCH.
STALL_TIMEOUT = 1.0
CONNECT_TIMEOUT = 5.0
RETRIES = 10
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0)

FAULT_KINDS = ("reset", "lost-answer", "stall-up", "stall-down", "slow", "refuse")
#: Roughly the size of one of Node's PATCH answers, to aim a cut inside one of the next few.
ANSWER_BYTES = 450


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


class Controller:
    """Runs follow-up actions (end a slow spell, open a refusal window) when their condition
    holds, polling every few milliseconds in a thread of its own during one upload."""

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[], bool], Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-controller", daemon=True)
        self.errors: list[str] = []

    def when(self, condition: Callable[[], bool], action: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append((condition, action))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with self._lock:
                due = [item for item in self._pending if item[0]()]
                self._pending = [item for item in self._pending if item not in due]
            for _, action in due:
                try:
                    action()
                except Exception as exc:  # reported, never fatal to the soak
                    self.errors.append(f"{type(exc).__name__}: {exc}")


@dataclass
class Armed:
    """One fault set for an upload: what it is, and the proxy faults that carry it out."""

    kind: str
    description: str
    faults: list[Fault] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        """Whether the upload got as far as the fault (its first proxy fault hit)."""
        return self.faults[0].hits > 0


def arm(
    kind: str,
    proxy: ThreadedFaultProxy,
    controller: Controller,
    rng: random.Random,
    size: int,
) -> Armed:
    """Set a fault of `kind` on `proxy` at a random point of an upload of `size` bytes."""
    at = rng.randrange(1, size)  # a byte of the PATCH stream (counted from the first PATCH)
    where = f"@{at / MiB:.2f}MiB"
    if kind == "reset":
        fault = proxy.cut("up", trigger=b"PATCH ", after=at, once=True)
        return Armed(kind, f"reset{where}", [fault])
    if kind == "lost-answer":
        into = rng.randrange(0, 3 * ANSWER_BYTES)
        fault = proxy.cut("down", trigger=b"HTTP/1.1 204", after=into, once=True)
        return Armed(kind, f"lost-answer@+{into}B", [fault])
    if kind in ("stall-up", "stall-down"):
        seconds = rng.uniform(1.5, 3.0)
        if kind == "stall-up":
            fault = proxy.stall("up", trigger=b"PATCH ", after=at, once=True, seconds=seconds)
        else:
            into = rng.randrange(0, 3 * ANSWER_BYTES)
            where = f"@+{into}B"
            fault = proxy.stall(
                "down", trigger=b"HTTP/1.1 204", after=into, once=True, seconds=seconds
            )
        return Armed(kind, f"{kind}{where}/{seconds:.1f}s", [fault])
    if kind == "slow":
        rate = rng.choice((2e6, 5e6, 10e6))
        spell = rng.uniform(0.3, 1.0)
        fault = proxy.slow(rate, "up", trigger=b"PATCH ", after=at, once=True)
        ends: list[float] = []

        def started() -> bool:
            if fault.hits and not ends:
                ends.append(time.monotonic() + spell)
            return bool(ends) and time.monotonic() >= ends[0]

        controller.when(started, lambda: proxy.remove(fault))
        return Armed(kind, f"slow{where}/{rate / 1e6:.0f}MB/s/{spell:.1f}s", [fault])
    if kind == "refuse":
        modes: tuple[RefuseMode, ...] = ("reset", "close", "unlisten")
        mode = rng.choice(modes)
        seconds = rng.uniform(0.2, 1.0)
        cut = proxy.cut("up", trigger=b"PATCH ", after=at, once=True)
        armed = Armed(kind, f"refuse{where}/{mode}/{seconds:.1f}s", [cut])

        def refuse() -> None:
            armed.faults.append(proxy.refuse(mode=mode, seconds=seconds))

        controller.when(lambda: cut.hits > 0, refuse)
        return armed
    raise ValueError(f"unknown fault kind {kind!r}")


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


class RetryCounter(logging.Handler):
    """Counts tuspipe's retry warnings ("... failed (...); try n of m ..." and 460 resends),
    by the method of the request retried."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "; try " in message:
            method = message.split(maxsplit=1)[0]
            self.counts[method if method in ("PATCH", "HEAD", "POST", "OPTIONS") else "?"] += 1
        elif "sending it again" in message:
            self.counts["PATCH"] += 1
        else:
            return
        self.messages.append(message)


@dataclass
class RunResult:
    number: int
    size: int
    seconds: float = 0.0
    ok: bool = False
    url: str | None = None
    error: str | None = None
    armed: list[Armed] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    patch_bytes: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def resent(self) -> int:
        return self.patch_bytes - self.size


# --------------------------------------------------------------------------------------------
# One upload
# --------------------------------------------------------------------------------------------


def _direct(url: str, upstream: str) -> str:
    """`url` (through the proxy) with the server's own host and port."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, upstream, parts.path, parts.query, ""))


def _upload_id(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def _stored_sha256(url: str, upstream: str, data_dir: Path | None) -> str:
    digest = hashlib.sha256()
    if data_dir is not None:
        with (data_dir / _upload_id(url)).open("rb") as stream:
            while block := stream.read(MiB):
                digest.update(block)
        return digest.hexdigest()
    with httpx.stream("GET", _direct(url, upstream), timeout=30) as answer:
        answer.raise_for_status()
        for block in answer.iter_bytes():
            digest.update(block)
    return digest.hexdigest()


async def _upload(
    path: Path, endpoint: str, recorder: FaultTransport, chunk_size: int, limit: float
) -> tuspipe.UploadResult:
    with trio.fail_after(limit):
        async with httpx.AsyncClient(transport=recorder) as client:
            return await tuspipe.upload_async(
                path,
                endpoint,
                chunk_size=chunk_size,
                journal=None,
                retries=RETRIES,
                retry_delays=RETRY_DELAYS,
                stall_timeout=STALL_TIMEOUT,
                timeout=CONNECT_TIMEOUT,
                http_client=client,
            )


def run_one(
    number: int,
    args: argparse.Namespace,
    proxy: ThreadedFaultProxy,
    rng: random.Random,
    scratch: Path,
    counter: RetryCounter,
    upstream: str,
    data_dir: Path | None,
) -> RunResult:
    size = args.size_mib * MiB + rng.randrange(1, 64 * 1024)
    result = RunResult(number, size)
    path = scratch / f"soak-{number}.bin"
    path.write_bytes(rng.randbytes(size))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()

    proxy.clear()
    proxy.close_connections()
    before = proxy.stats.faults
    controller = Controller()
    kinds = rng.sample(FAULT_KINDS, rng.randint(1, 3))
    result.armed = [arm(kind, proxy, controller, rng, size) for kind in kinds]
    counter.counts.clear()
    recorder = FaultTransport(httpx.AsyncHTTPTransport(), [])
    controller.start()
    started = time.monotonic()
    try:
        upload = trio.run(
            _upload,
            path,
            proxy.url_for(args.url),
            recorder,
            args.chunk_mib * MiB,
            args.upload_timeout,
        )
        result.seconds = time.monotonic() - started
        result.url = upload.url
        if not upload.complete:
            result.error = f"stopped at {upload.offset} of {upload.size}"
        else:
            stored = _stored_sha256(upload.url, upstream, data_dir)
            result.ok = stored == expected
            if not result.ok:
                result.error = f"stored sha256 {stored[:16]}... differs from {expected[:16]}..."
    except trio.TooSlowError:
        result.seconds = time.monotonic() - started
        result.error = f"did not finish within {args.upload_timeout:.0f} s"
    except Exception as exc:
        result.seconds = time.monotonic() - started
        result.error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, tuspipe.TusError):
            result.error += "\n" + traceback.format_exc()
    finally:
        controller.stop()
        proxy.clear()
        path.unlink()
    after = proxy.stats.faults
    result.injected = Counter({kind: after[kind] - before.get(kind, 0) for kind in after})
    result.injected = +result.injected  # drop zeros
    result.retries = Counter(counter.counts)
    patches = recorder.exchanges("PATCH")
    result.patch_bytes = sum(exchange.body_sent or 0 for exchange in patches)
    result.requests = Counter(exchange.method for exchange in recorder.exchanges())
    if controller.errors:
        result.error = (result.error or "") + f" (controller: {'; '.join(controller.errors)})"
    if result.ok and result.url and not args.keep:
        with contextlib.suppress(httpx.HTTPError):  # only housekeeping
            httpx.delete(_direct(result.url, upstream), headers=TUS, timeout=10)
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _mib(count: int) -> str:
    return f"{count / MiB:.2f} MiB"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "none"


def _say(text: str = "") -> None:
    print(text, flush=True)


def describe(run: RunResult, total: int) -> str:
    status = "ok  " if run.ok else "FAIL"
    armed = " ".join(
        armed.description + ("" if armed.reached else "(not reached)") for armed in run.armed
    )
    line = (
        f"[{run.number:>{len(str(total))}}/{total}] {status} {run.seconds:6.2f} s  "
        f"faults {sum(run.injected.values())} ({_counts(run.injected)})  "
        f"retries {sum(run.retries.values())} ({_counts(run.retries)})  "
        f"PATCH bytes {_mib(run.patch_bytes)} for {_mib(run.size)} "
        f"(re-sent {_mib(run.resent)})\n      armed: {armed}"
    )
    if run.error:
        line += f"\n      error: {run.error}"
    return line


def report(results: list[RunResult], planned: int, began: float, seed: int) -> int:
    ok = [run for run in results if run.ok]
    injected: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for run in results:
        injected.update(run.injected)
        retries.update(run.retries)
        requests.update(run.requests)
    armed = [armed for run in results for armed in run.armed]
    armed_kinds = Counter(armed.kind for armed in armed)
    reached_kinds = Counter(armed.kind for armed in armed if armed.reached)
    size = sum(run.size for run in results)
    sent = sum(run.patch_bytes for run in results)
    upload_seconds = sum(run.seconds for run in results)
    _say()
    _say("Totals")
    _say(f"  uploads completed with identical bytes: {len(ok)}/{planned}")
    if len(results) < planned:
        _say(f"  uploads not run (time limit): {planned - len(results)}")
    _say(
        f"  faults armed: {len(armed)}, reached: {sum(reached_kinds.values())} "
        f"(by kind, reached/armed: "
        + ", ".join(f"{kind} {reached_kinds[kind]}/{armed_kinds[kind]}" for kind in FAULT_KINDS)
        + ")"
    )
    _say(f"  faults injected (proxy hits): {sum(injected.values())} ({_counts(injected)})")
    _say(f"  retries: {sum(retries.values())} ({_counts(retries)})")
    _say(f"  requests: {sum(requests.values())} ({_counts(requests)})")
    if size:
        _say(
            f"  PATCH body bytes: {_mib(sent)} for {_mib(size)} of files; "
            f"re-sent {_mib(sent - size)} ({100 * (sent - size) / size:.1f}% of the file bytes)"
        )
    if results:
        slowest = max(results, key=lambda run: run.seconds)
        _say(
            f"  upload time: {upload_seconds:.1f} s in all, {upload_seconds / len(results):.2f} s "
            f"mean, {slowest.seconds:.2f} s the slowest (#{slowest.number})"
        )
    failed = [run for run in results if not run.ok]
    if failed:
        _say(f"  FAILED: {', '.join(f'#{run.number}' for run in failed)} (seed {seed})")
    _say(f"  total time: {time.monotonic() - began:.1f} s")
    return 0 if len(ok) == planned else 1


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _loopback_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise argparse.ArgumentTypeError(f"{url!r}: give http://127.0.0.1:PORT/path/")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(f"{url!r} is not on a loopback address")
    return url


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="Many uploads with tuspipe to the real Node tus server through a "
        "fault-injecting proxy; exit 0 only if all of them stored identical bytes.",
    )
    parser.add_argument("--uploads", type=int, default=50, help="how many uploads (50)")
    parser.add_argument("--size-mib", type=int, default=8, help="file size in MiB (8)")
    parser.add_argument("--chunk-mib", type=int, default=2, help="PATCH size in MiB (2)")
    parser.add_argument(
        "--url", type=_loopback_url, default=DEFAULT_URL, help=f"the tus endpoint ({DEFAULT_URL})"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the server stores uploads, to hash them (default: the test servers' Node "
        "data directory; if it does not exist, finished uploads are fetched with GET)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--upload-timeout", type=float, default=120.0, help="seconds allowed per upload (120)"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=900.0,
        help="seconds after which no new upload starts (900)",
    )
    parser.add_argument("--keep", action="store_true", help="do not delete finished uploads")
    parser.add_argument("--verbose", action="store_true", help="print each retry warning")
    args = parser.parse_args(argv)
    if args.uploads < 1 or args.size_mib < 1 or args.chunk_mib < 1:
        parser.error("--uploads, --size-mib and --chunk-mib must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    parts = urlsplit(args.url)
    assert parts.hostname is not None
    assert parts.port is not None
    upstream = parts.netloc
    data_dir: Path | None = args.data_dir if args.data_dir.is_dir() else None
    try:
        answer = httpx.options(args.url, timeout=5)
    except httpx.HTTPError as exc:
        _say(f"the tus server at {args.url} does not answer: {exc}")
        return 1
    if "tus-version" not in answer.headers:
        _say(f"{args.url} is not a tus server (no Tus-Version in its OPTIONS answer)")
        return 1

    counter = RetryCounter()
    tus_logger = logging.getLogger("tuspipe")
    tus_logger.addHandler(counter)
    tus_logger.propagate = False  # counted (and printed with --verbose), not logged

    began = time.monotonic()
    results: list[RunResult] = []
    _say(
        f"tuspipe soak: {args.uploads} uploads of {args.size_mib} MiB (+ <64 KiB) in "
        f"{args.chunk_mib} MiB chunks, seed {seed}"
    )
    _say(
        f"  server {args.url}; stored bytes checked "
        + (f"in {data_dir}" if data_dir is not None else "by GET")
    )
    _say(
        f"  tuspipe {tuspipe.__version__}: "
        f"stall_timeout={STALL_TIMEOUT:g} s, retries={RETRIES}, retry_delays={list(RETRY_DELAYS)}"
    )
    with (
        ThreadedFaultProxy(parts.hostname, parts.port) as proxy,
        tempfile.TemporaryDirectory(prefix="tuspipe-soak-") as scratch,
    ):
        _say(f"  proxy {proxy.url_for(args.url)}")
        _say()
        for number in range(1, args.uploads + 1):
            if time.monotonic() - began > args.time_limit:
                _say(f"time limit of {args.time_limit:.0f} s reached; stopping")
                break
            run = run_one(number, args, proxy, rng, Path(scratch), counter, upstream, data_dir)
            results.append(run)
            _say(describe(run, args.uploads))
            if args.verbose:
                for message in counter.messages:
                    _say(f"      retry: {message}")
            counter.messages.clear()
        stats = proxy.stats
    status = report(results, args.uploads, began, seed)
    _say(
        f"  proxy: {stats.connections} connections, {stats.refused} refused, "
        f"{_mib(stats.bytes_up)} up, {_mib(stats.bytes_down)} down"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
