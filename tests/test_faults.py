"""The fault matrix: tuspipe against real tus servers through the fault-injection harness.

Every case uploads a generated file of a few MiB in several chunks to a real server (the
Node @tus/server, or asgi-tus for checksums), breaks the exchange mid-upload with the TCP
proxy (:mod:`tests.faultproxy`) or the httpx fault transport (:mod:`tests.faults`), and then
checks three things:

* the fault really happened (the proxy's counters, or the transport's log);
* tuspipe recovered as PROTOCOL.md's handling policy says (a HEAD after a failed PATCH and a
  PATCH from the offset it reported, no HEAD but the same bytes after a 460, ``Retry-After``
  waited for, ...);
* the server's stored bytes equal the source (sha256).

Every upload's requests go through a :class:`Recorder` (a fault transport that also keeps each
request's headers and times), so the sequence of requests tuspipe made can be asserted even
when the fault is injected by the proxy underneath. Retry delays are small, so the matrix runs
on the real clock in a few seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

import tuspipe
from tuspipe._journal import Journal

from .conftest import MakeFile, TusServer, sha256_file
from .faultproxy import FaultProxy
from .faults import (
    Corrupt,
    Drift,
    Exchange,
    Fail,
    FaultTransport,
    Respond,
    Rule,
    ShortBody,
    StallBody,
)

KiB = 1024
MiB = 1024 * KiB
#: Bytes per PATCH: small enough that every file here takes several.
CHUNK = 1 * MiB
#: The file size: four whole chunks and a short fifth one.
SIZE = 4 * MiB + 12_345
#: Retry waits short enough for the real clock.
DELAYS = (0.05, 0.2, 0.5)

ROOT = Path(__file__).resolve().parent.parent
SERVERS_HOME = Path(os.environ.get("TUS_SERVERS_HOME", ROOT / "tests" / "servers" / ".tus-servers"))


# -- helpers ------------------------------------------------------------------------------


class Recorder(FaultTransport):
    """A fault transport to the real network that also keeps, for each exchange (by its index
    in :attr:`log`), the request's headers and when the request started and ended."""

    def __init__(self, *rules: Rule) -> None:
        super().__init__(httpx.AsyncHTTPTransport(), rules)
        self.headers: dict[int, httpx.Headers] = {}
        self.started: dict[int, float] = {}
        self.ended: dict[int, float] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = len(self.log)  # the index the base class gives this exchange
        self.headers[index] = request.headers
        self.started[index] = time.monotonic()
        try:
            return await super().handle_async_request(request)
        finally:
            self.ended[index] = time.monotonic()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self)

    def own(self) -> list[Exchange]:
        """The client's exchanges (not those the transport injected), in order."""
        return self.exchanges()

    def methods(self) -> list[str]:
        return [exchange.method for exchange in self.own()]

    def patches(self) -> list[Exchange]:
        return self.exchanges("PATCH")

    def failures(self) -> list[Exchange]:
        """Exchanges that ended in an error or a status that is not a success."""
        return [
            exchange
            for exchange in self.own()
            if exchange.status is None or not 200 <= exchange.status < 300
        ]

    def trail(self) -> str:
        """The exchanges, one per line: for assertion messages."""
        return "\n".join(
            f"  {e.index:3} {e.method:5} offset={e.offset} sent={e.body_sent} "
            f"-> {e.status if e.status is not None else e.error} "
            f"offset={e.response_offset}{' [' + e.fault + ']' if e.fault else ''}"
            f"{' (injected)' if e.injected else ''}"
            for e in self.log
        )

    def after(self, exchange: Exchange) -> list[Exchange]:
        """The client's exchanges that came after `exchange`."""
        return [other for other in self.own() if other.index > exchange.index]


async def _upload(
    source: Path,
    url: str | None,
    recorder: Recorder,
    **options: Any,
) -> tuspipe.UploadResult:
    """Upload `source` with small chunks and retry delays, through `recorder`."""
    options.setdefault("chunk_size", CHUNK)
    options.setdefault("retry_delays", DELAYS)
    async with recorder.client() as client:
        return await tuspipe.upload_async(source, url, http_client=client, **options)


def _upstream(server: TusServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _assert_stored(server: TusServer, result: tuspipe.UploadResult, path: Path) -> None:
    size = path.stat().st_size
    assert (result.offset, result.size) == (size, size)
    assert server.stored_sha256(result.url) == sha256_file(path)


def _assert_resumed_after(recorder: Recorder, failed: Exchange) -> Exchange:
    """After the failed PATCH `failed` (the fault): a HEAD, answered with an offset, and the
    next PATCH starting at that offset. Returns the successful HEAD."""
    trail = recorder.trail()
    following = recorder.after(failed)
    assert following, f"nothing followed the failed PATCH:\n{trail}"
    assert following[0].method == "HEAD", f"no HEAD right after the failed PATCH:\n{trail}"
    heads = []
    for exchange in following:
        if exchange.method != "HEAD":
            break
        heads.append(exchange)
    answered = heads[-1]
    assert answered.status in (200, 204), trail
    assert answered.response_offset is not None
    assert failed.offset is not None
    assert failed.offset <= answered.response_offset <= failed.offset + CHUNK, trail
    resumed = following[len(heads)]
    assert resumed.method == "PATCH", trail
    assert resumed.offset == answered.response_offset, trail
    return answered


def _patch_bytes(recorder: Recorder) -> int:
    """Body bytes the client handed to the connection in its PATCHes (a broken connection may
    have lost some of them)."""
    return sum(exchange.body_sent or 0 for exchange in recorder.patches())


# -- connection resets ----------------------------------------------------------------------


async def test_reset_mid_patch(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(SIZE)
    async with FaultProxy(*_upstream(node_server)) as proxy:
        # counted from the start of the first PATCH: half-way through the second one's body
        fault = proxy.cut("up", trigger=b"PATCH ", after=CHUNK + CHUNK // 2, once=True)
        recorder = Recorder()
        result = await _upload(path, proxy.url_for(node_server.url), recorder)
        assert fault.hits == 1
        assert proxy.stats.faults == {"cut_up": 1}
    trail = recorder.trail()
    (failed,) = recorder.failures()
    assert (failed.method, failed.offset, failed.status) == ("PATCH", CHUNK, None), trail
    head = _assert_resumed_after(recorder, failed)
    # the server kept the part of the body that reached it (Node stores partial bodies)
    assert head.response_offset is not None
    assert CHUNK < head.response_offset < 2 * CHUNK, trail
    # only the lost part was sent again
    assert failed.body_sent is not None
    assert SIZE < _patch_bytes(recorder) <= SIZE + failed.body_sent, trail
    _assert_stored(node_server, result, path)


@pytest.mark.parametrize("part", ["request", "answer"])
async def test_reset_during_post(node_server: TusServer, make_file: MakeFile, part: str) -> None:
    path = make_file(SIZE)
    async with FaultProxy(*_upstream(node_server)) as proxy:
        if part == "request":
            # the server gets half a request line and nothing is created
            fault = proxy.cut("up", trigger=b"POST ", after=10, once=True)
        else:
            # the server creates the upload, the client never hears of it (an orphan)
            fault = proxy.cut("down", trigger=b"HTTP/1.1 201", once=True)
        recorder = Recorder()
        result = await _upload(path, proxy.url_for(node_server.url), recorder)
        assert fault.hits == 1
        assert proxy.stats.faults == {f"cut_{'up' if part == 'request' else 'down'}": 1}
    trail = recorder.trail()
    # the POST was tried again, then the upload ran through undisturbed
    assert recorder.methods()[:2] == ["POST", "POST"], trail
    assert [e.status for e in recorder.own()[:2]] == [None, 201], trail
    assert recorder.failures() == recorder.own()[:1], trail
    assert _patch_bytes(recorder) == SIZE
    _assert_stored(node_server, result, path)


@pytest.mark.parametrize("how", ["after-failed-patch", "upload_url", "journal"])
async def test_reset_during_head(
    node_server: TusServer, make_file: MakeFile, private_journal: Path, how: str
) -> None:
    path = make_file(SIZE)
    async with FaultProxy(*_upstream(node_server)) as proxy:
        endpoint = proxy.url_for(node_server.url)
        first: tuspipe.UploadResult | None = None
        if how == "after-failed-patch":
            proxy.cut("up", trigger=b"PATCH ", after=CHUNK + CHUNK // 2, once=True)
        else:
            # an earlier call uploaded two chunks
            journal = private_journal if how == "journal" else None
            first = await _upload(path, endpoint, Recorder(), stop_at=2 * CHUNK, journal=journal)
            assert first.offset == 2 * CHUNK
        head_cut = proxy.cut("up", trigger=b"HEAD ", after=20, once=True)
        recorder = Recorder()
        if how == "upload_url":
            assert first is not None
            result = await _upload(path, None, recorder, upload_url=first.url)
        else:
            result = await _upload(path, endpoint, recorder, journal=private_journal)
        assert head_cut.hits == 1
        expected_cuts = 2 if how == "after-failed-patch" else 1
        assert proxy.stats.faults == {"cut_up": expected_cuts}
    trail = recorder.trail()
    heads = recorder.exchanges("HEAD")
    # the cut HEAD was asked again at once, and the upload went on from its answer
    assert [e.status for e in heads[:2]] == [None, 200], trail
    resumed = recorder.after(heads[1])[0]
    assert resumed.method == "PATCH", trail
    assert resumed.offset == heads[1].response_offset, trail
    if first is not None:
        assert (result.url, result.resumed_from) == (first.url, 2 * CHUNK)
        assert recorder.methods()[:3] == ["HEAD", "HEAD", "PATCH"], trail
        assert _patch_bytes(recorder) == SIZE - 2 * CHUNK
    else:
        assert recorder.methods()[:5] == ["POST", "PATCH", "PATCH", "HEAD", "HEAD"], trail
        assert len(recorder.failures()) == 2, trail
    _assert_stored(node_server, result, path)
    assert Journal(private_journal).unfinished() == []


# -- lost answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["transport", "proxy"])
async def test_answer_lost_after_the_server_stored_the_patch(
    node_server: TusServer, make_file: MakeFile, layer: str
) -> None:
    path = make_file(SIZE)
    async with FaultProxy(*_upstream(node_server)) as proxy:
        if layer == "transport":
            recorder = Recorder(Rule("PATCH", Fail(httpx.ReadError, after=True), nth=2))
        else:
            recorder = Recorder()
            # Node's answer to the second PATCH is cut in its headers
            proxy.cut("down", trigger=f"upload-offset: {2 * CHUNK}\r\n".encode(), once=True)
        result = await _upload(path, proxy.url_for(node_server.url), recorder)
        if layer == "proxy":
            assert proxy.stats.faults == {"cut_down": 1}
    trail = recorder.trail()
    (failed,) = recorder.failures()
    assert (failed.method, failed.offset, failed.body_sent) == ("PATCH", CHUNK, CHUNK), trail
    if layer == "transport":
        assert (failed.server_status, failed.error) == (204, "ReadError"), trail
    head = _assert_resumed_after(recorder, failed)
    # the server had stored the whole chunk: nothing is sent twice
    assert head.response_offset == 2 * CHUNK, trail
    assert _patch_bytes(recorder) == SIZE
    _assert_stored(node_server, result, path)


# -- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_burst_of_server_errors(
    node_server: TusServer, make_file: MakeFile, status: int
) -> None:
    path = make_file(SIZE)
    burst = 3
    recorder = Recorder(Rule("PATCH", Respond(status, body=b"busy"), nth=2, times=burst))
    result = await _upload(path, node_server.url, recorder, retries=burst)
    trail = recorder.trail()
    statuses = [204, *[status] * burst, 204, 204, 204, 204]
    assert [e.status for e in recorder.patches()] == statuses, trail
    offsets = [0, *[CHUNK] * (burst + 1), 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]
    assert [e.offset for e in recorder.patches()] == offsets, trail
    # each failure: a HEAD, then the PATCH again
    assert recorder.methods() == [
        "POST",
        "PATCH",
        *["PATCH", "HEAD"] * burst,
        "PATCH",
        "PATCH",
        "PATCH",
        "PATCH",
    ], trail
    for failed in recorder.failures():
        _assert_resumed_after(recorder, failed)
    _assert_stored(node_server, result, path)


async def test_retry_budget_starts_afresh_after_progress(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(SIZE)
    # two bursts that each use the whole budget; together they exceed it
    recorder = Recorder(
        Rule("PATCH", Respond(503), nth=2, times=3),
        Rule("PATCH", Respond(502), nth=7, times=3),
    )
    result = await _upload(path, node_server.url, recorder, retries=3)
    statuses = [e.status for e in recorder.patches()]
    assert statuses == [204, 503, 503, 503, 204, 204, 502, 502, 502, 204, 204], recorder.trail()
    _assert_stored(node_server, result, path)


async def test_locked(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(SIZE)
    recorder = Recorder(Rule("PATCH", Respond(423, body=b"locked"), nth=3, times=2))
    result = await _upload(path, node_server.url, recorder)
    trail = recorder.trail()
    failures = recorder.failures()
    assert [(e.method, e.offset, e.status) for e in failures] == [("PATCH", 2 * CHUNK, 423)] * 2
    for failed in failures:
        _assert_resumed_after(recorder, failed)
    assert _patch_bytes(recorder) == SIZE, trail
    _assert_stored(node_server, result, path)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    node_server: TusServer, make_file: MakeFile, status: int
) -> None:
    path = make_file(SIZE)
    recorder = Recorder(Rule("PATCH", Respond(status, retry_after=1), nth=2))
    started = time.monotonic()
    result = await _upload(path, node_server.url, recorder)
    elapsed = time.monotonic() - started
    trail = recorder.trail()
    (failed,) = recorder.failures()
    assert (failed.method, failed.status, failed.offset) == ("PATCH", status, CHUNK), trail
    head = _assert_resumed_after(recorder, failed)
    # the retry_delays say 0.05 s; the server said 1 s, and that is what tuspipe waited
    waited = recorder.started[head.index] - recorder.ended[failed.index]
    assert 1.0 <= waited < 2.0, f"waited {waited:.3f} s\n{trail}"
    assert elapsed >= 1.0
    _assert_stored(node_server, result, path)


async def test_offset_drift_gives_409_then_resync(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(SIZE)
    extra = 1000
    recorder = Recorder(Rule("PATCH", Drift(extra=extra), nth=3))
    # a long retry delay, to show that the 409 does not wait for it
    result = await _upload(path, node_server.url, recorder, retry_delays=[1.0])
    trail = recorder.trail()
    (drift,) = recorder.exchanges("PATCH", injected=True)
    assert (drift.offset, drift.body_sent, drift.status) == (2 * CHUNK, extra, 204), trail
    (failed,) = recorder.failures()
    assert (failed.method, failed.offset, failed.status) == ("PATCH", 2 * CHUNK, 409), trail
    head = _assert_resumed_after(recorder, failed)
    assert head.response_offset == 2 * CHUNK + extra, trail
    # a 409 needs no wait: the HEAD went out at once
    assert recorder.started[head.index] - recorder.ended[failed.index] < 0.5, trail
    _assert_stored(node_server, result, path)


async def test_corrupted_chunk_is_resent_after_460(
    asgitus_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(SIZE)
    recorder = Recorder(Rule("PATCH", Corrupt(), nth=2, times=2))
    result = await _upload(path, asgitus_server.url, recorder, checksum="sha1")
    assert result.checksum == "sha1"
    trail = recorder.trail()
    patches = recorder.patches()
    assert [e.status for e in patches] == [204, 460, 460, 204, 204, 204, 204], trail
    assert [e.fault is not None for e in patches] == [False, True, True, *[False] * 4]
    # the same bytes again, straight away: no HEAD (a 460 means nothing was stored)
    assert "HEAD" not in recorder.methods(), trail
    resent = patches[1:4]
    described = {
        (
            e.offset,
            recorder.headers[e.index]["content-length"],
            recorder.headers[e.index]["upload-checksum"],
        )
        for e in resent
    }
    assert len(described) == 1, described
    assert all(e.body_sent == CHUNK for e in resent)
    _assert_stored(asgitus_server, result, path)


async def test_chunk_corrupted_every_time_gives_up_then_resumes(
    asgitus_server: TusServer, make_file: MakeFile, private_journal: Path
) -> None:
    path = make_file(SIZE)
    recorder = Recorder(Rule("PATCH", Corrupt(), nth=2, times=None))
    with pytest.raises(tuspipe.ChecksumMismatchError) as caught:
        await _upload(path, asgitus_server.url, recorder, checksum="sha1", journal=private_journal)
    assert caught.value.status_code == 460
    # the first try and three resends, no more
    assert [e.status for e in recorder.patches()] == [204, 460, 460, 460, 460], recorder.trail()
    (entry,) = Journal(private_journal).unfinished()
    result = await _upload(
        path, asgitus_server.url, Recorder(), checksum="sha1", journal=private_journal
    )
    assert (result.url, result.resumed_from) == (entry.url, CHUNK)
    _assert_stored(asgitus_server, result, path)


# -- partial bodies, stalls, slowness ---------------------------------------------------------


async def test_server_stores_part_of_a_patch(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(SIZE)
    keep = 300_000
    recorder = Recorder(Rule("PATCH", ShortBody(keep), nth=2))
    result = await _upload(path, node_server.url, recorder)
    trail = recorder.trail()
    (failed,) = recorder.failures()
    assert (failed.method, failed.offset, failed.body_sent) == ("PATCH", CHUNK, keep), trail
    head = _assert_resumed_after(recorder, failed)
    assert head.response_offset is not None
    assert CHUNK < head.response_offset <= CHUNK + keep, trail
    # the resumed PATCH starts mid-chunk and carries the rest of that chunk
    resumed = recorder.after(head)[0]
    assert resumed.body_sent == 2 * CHUNK - head.response_offset, trail
    _assert_stored(node_server, result, path)


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_stalled_connection(
    node_server: TusServer, make_file: MakeFile, direction: str
) -> None:
    path = make_file(SIZE)
    stall_timeout = 1.0
    async with FaultProxy(*_upstream(node_server)) as proxy:
        if direction == "up":
            # a black hole half-way into the second PATCH's body, until the proxy closes
            fault = proxy.stall("up", trigger=b"PATCH ", after=CHUNK + CHUNK // 2, once=True)
        else:
            # the second PATCH reaches the server, whose answer never comes back
            trigger = f"upload-offset: {2 * CHUNK}\r\n".encode()
            fault = proxy.stall("down", trigger=trigger, once=True)
        recorder = Recorder()
        started = time.monotonic()
        # Node waits ~3 s (its lockDrainTimeout) after a stalled PATCH before it answers a
        # HEAD on the upload, so HEADs may time out too: allow more tries than that takes
        result = await _upload(
            path,
            proxy.url_for(node_server.url),
            recorder,
            stall_timeout=stall_timeout,
            retries=8,
        )
        elapsed = time.monotonic() - started
        assert fault.hits == 1
        assert proxy.stats.faults == {f"stall_{direction}": 1}
    trail = recorder.trail()
    failed = recorder.failures()[0]
    # Where the stall is noticed depends on the kernel's socket buffers: a write that cannot
    # go on (the buffers filled) or an answer that does not come (the body fit in them).
    assert (failed.method, failed.offset) == ("PATCH", CHUNK), trail
    assert failed.error in ("ReadTimeout", "WriteTimeout"), trail
    # the stall was noticed after stall_timeout, not later
    noticed = recorder.ended[failed.index] - recorder.started[failed.index]
    assert stall_timeout <= noticed < stall_timeout + 1.5, trail
    # every later failure is a HEAD timing out while Node drains the stalled PATCH
    assert all(e.method == "HEAD" for e in recorder.failures()[1:]), trail
    head = _assert_resumed_after(recorder, failed)
    if direction == "down":
        assert head.response_offset == 2 * CHUNK, trail
    assert elapsed < 15
    _assert_stored(node_server, result, path)


async def test_slow_server_completes(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(SIZE)
    rate = 4_000_000  # bytes per second: about a second for the file
    async with FaultProxy(*_upstream(node_server)) as proxy:
        proxy.slow(rate, "up")
        recorder = Recorder()
        started = time.monotonic()
        result = await _upload(path, proxy.url_for(node_server.url), recorder, stall_timeout=1.0)
        elapsed = time.monotonic() - started
        stats = proxy.stats
    trail = recorder.trail()
    assert stats.faults.get("slow_up", 0) >= 1
    assert elapsed >= 0.9 * SIZE / rate, f"{elapsed:.2f} s"
    # slow is not stalled: no request failed, each byte was sent once
    assert recorder.failures() == [], trail
    assert _patch_bytes(recorder) == SIZE
    _assert_stored(node_server, result, path)


# -- a server that restarts -----------------------------------------------------------------


class PrivateNodeServer:
    """A Node @tus/server of this test's own, on a free port with its own data directory,
    that can be killed and started again on the same port."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.launcher = SERVERS_HOME / "tus-node-server.mjs"
        if not (SERVERS_HOME / "node_modules").is_dir():
            pytest.fail(f"no node_modules in {SERVERS_HOME}; run `bash tests/run.sh setup`")
        if not self.launcher.exists():
            # start-servers.sh runs the launcher from a copy next to node_modules, too
            shutil.copy(ROOT / "tests" / "servers" / "tus-node-server.mjs", self.launcher)
        self.data_dir = data_dir
        self.log = log
        self.port = 0
        self.url = ""
        self.starts = 0
        self.process: trio.Process | None = None

    async def start(self) -> None:
        assert self.process is None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            process = await trio.lowlevel.open_process(
                ["node", str(self.launcher), str(self.port), str(self.data_dir)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        self.process = process
        assert process.stdout is not None
        line = b""
        with trio.fail_after(15):
            while not line.endswith(b"\n"):
                piece = await process.stdout.receive_some(1024)
                if not piece:
                    pytest.fail(f"the Node server ended at start: {self.log.read_text()[-2000:]}")
                line += piece
        fields = line.decode().split()
        assert fields[0] == "READY", line
        self.url = fields[1]
        port = urlsplit(self.url).port
        assert port is not None
        self.port = port
        self.starts += 1

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()
                if process.stdout is not None:
                    await process.stdout.aclose()

    async def restart(self, pause: float) -> None:
        """Wait until the killed server is gone, `pause` seconds more, and start it again."""
        assert self.process is not None
        await self.process.wait()
        await self.stop()
        await trio.sleep(pause)
        await self.start()

    def as_tus_server(self) -> TusServer:
        return TusServer(name="private-node", url=self.url, data_dir=self.data_dir)


@asynccontextmanager
async def _private_node_server(tmp_path: Path) -> AsyncIterator[PrivateNodeServer]:
    server = PrivateNodeServer(tmp_path / "node-data", tmp_path / "node.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_server_restarts_mid_upload(make_file: MakeFile, tmp_path: Path) -> None:
    path = make_file(SIZE)
    pause = 1.0  # longer than the body's pause below, so that HEADs find the server away
    # the second PATCH pauses half-way through its body, so that the kill lands mid-PATCH
    hold = Rule("PATCH", StallBody(after=CHUNK // 2, seconds=0.5), nth=2)
    recorder = Recorder(hold)
    upload_urls: list[str] = []
    killed_at: list[int] = []
    async with _private_node_server(tmp_path) as server, trio.open_nursery() as nursery:

        async def kill_mid_patch() -> None:
            """SIGKILL the server once it has stored part of the second chunk; start it
            again on the same port and data directory."""
            while True:
                await trio.sleep(0.005)
                if upload_urls:
                    stored = server.as_tus_server().stored_path(upload_urls[0])
                    if stored.exists() and stored.stat().st_size > CHUNK + CHUNK // 4:
                        break
            killed_at.append(stored.stat().st_size)
            server.kill()
            await server.restart(pause)

        nursery.start_soon(kill_mid_patch)
        # the server is away for `pause` plus its start-up; 8 tries allow about 3 s
        result = await _upload(
            path, server.url, recorder, on_upload_url=upload_urls.append, retries=8
        )
    trail = recorder.trail()
    assert server.starts == 2
    assert hold.fired == 1
    (killed_at_size,) = killed_at
    failures = recorder.failures()
    assert failures, trail
    first = failures[0]
    # the PATCH under way when the server died failed, after part of its body
    assert (first.method, first.offset) == ("PATCH", CHUNK), trail
    assert first.error is not None
    assert first.body_sent is not None
    assert CHUNK // 2 <= first.body_sent <= CHUNK, trail
    # then HEADs that found nobody listening, until one found the server back
    assert len(failures) >= 2, trail
    assert all(e.method == "HEAD" and e.error == "ConnectError" for e in failures[1:]), trail
    head = _assert_resumed_after(recorder, first)
    # the restarted server kept what the killed one had written
    assert head.response_offset is not None
    assert killed_at_size <= head.response_offset < 2 * CHUNK, trail
    _assert_stored(server.as_tus_server(), result, path)


# -- retries exhausted ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["503-forever", "resets-forever"])
async def test_retries_exhausted_then_a_later_call_resumes(
    node_server: TusServer, make_file: MakeFile, private_journal: Path, fault: str
) -> None:
    path = make_file(SIZE)
    retries = 3
    async with FaultProxy(*_upstream(node_server)) as proxy:
        endpoint = proxy.url_for(node_server.url)
        if fault == "503-forever":
            recorder = Recorder(
                Rule(
                    "PATCH",
                    Respond(503, body=b"down for maintenance"),
                    nth=2,
                    times=None,
                )
            )
        else:
            recorder = Recorder()

        def progress(acknowledged: int, total: int) -> None:
            if fault == "resets-forever" and acknowledged == CHUNK:
                # from now on every connection is reset, the live one too
                proxy.refuse(mode="reset")
                proxy.close_connections()

        with pytest.raises(tuspipe.TusError) as caught:
            await _upload(
                path,
                endpoint,
                recorder,
                retries=retries,
                journal=private_journal,
                on_progress=progress,
            )
        error = caught.value
        trail = recorder.trail()
        if fault == "503-forever":
            assert type(error) is tuspipe.ResponseError, repr(error)
            assert (error.status_code, error.body, error.method) == (
                503,
                b"down for maintenance",
                "PATCH",
            )
            assert "503" in str(error)
            assert "down for maintenance" in str(error)
            # the first try and `retries` more, each failure followed by a HEAD
            assert [e.status for e in recorder.patches()] == [204, *[503] * (retries + 1)], trail
            assert recorder.methods().count("HEAD") == retries, trail
        else:
            assert isinstance(error, tuspipe.NetworkError), repr(error)
            assert proxy.stats.refused >= retries
            assert all(e.error is not None for e in recorder.failures()), trail
        # the journal still holds the upload, and the server the first chunk
        (entry,) = Journal(private_journal).unfinished()
        assert entry.url.startswith(endpoint.rstrip("/"))
        assert entry.size == SIZE
        proxy.clear()
        later = Recorder()
        result = await _upload(path, endpoint, later, journal=private_journal)
    assert (result.url, result.resumed_from) == (entry.url, CHUNK)
    assert later.methods()[0] == "HEAD"
    assert _patch_bytes(later) == SIZE - CHUNK
    _assert_stored(node_server, result, path)
    assert Journal(private_journal).unfinished() == []
