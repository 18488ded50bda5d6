"""Streams of unknown size (tus creation-defer-length) against the real tus servers.

A pipe, standard input, a generator or an async generator is read once, as it is uploaded:
the upload is created with ``Upload-Defer-Length: 1`` and the PATCH carrying the last bytes
declares ``Upload-Length``. A stream that ends within the first chunk is an ordinary upload
of known length. Every upload's stored bytes are compared with the source by sha256; the
requests are seen through ``on_response`` (the transport's one chokepoint), or through the
fault transport of :mod:`tests.faults` when exchanges are broken on purpose.

The memory test runs each upload in a fork of a fresh interpreter, which reaps it with
``os.wait4`` and reports its ``ru_maxrss`` (a process the test spawns directly would report
at least the test process's own RSS: Linux keeps the high-water mark of the image an exec
replaces). A 256 MiB generator costs about a chunk and a read; 256 MiB of bytes cost their
size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import tuspipe

from .conftest import MakeFile, TusServer, sha256_file
from .faults import Fail, FaultTransport, Rule, ShortBody
from .uploads import Seen

KiB = 1024
MiB = 1024 * KiB
TIMEOUT = 120
#: Retry waits short enough for the real clock.
DELAYS = (0.05, 0.2, 0.5)
#: tuspyserver answers HEAD with 400 unless both keys are present.
METADATA = {"filename": "stream.bin", "filetype": "application/octet-stream"}


# ---- helpers ---------------------------------------------------------------------------------


def check_deferred(posts: list[dict[str, str]], patches: list[dict[str, str]], size: int) -> None:
    """The upload was created with a deferred length, declared by the PATCH of the last bytes
    (and by no other PATCH; a resend of the last bytes declares it too)."""
    [post] = posts
    assert post["upload-defer-length"] == "1"
    assert "upload-length" not in post
    assert patches[-1]["upload-length"] == str(size)
    assert int(patches[-1]["upload-offset"]) + int(patches[-1]["content-length"]) == size
    for patch in patches:
        end = int(patch["upload-offset"]) + int(patch["content-length"])
        if end == size:
            assert patch["upload-length"] == str(size)
        else:
            assert "upload-length" not in patch, patch


def check_known_length(seen: Seen, size: int) -> None:
    """An ordinary upload: the POST says the length, nothing defers or declares it."""
    [post] = seen.of("POST")
    assert post["upload-length"] == str(size)
    assert "upload-defer-length" not in post
    assert all("upload-length" not in patch for patch in seen.of("PATCH"))
    assert "OPTIONS" not in seen.methods()  # nothing to ask the server about


class HeaderLog(FaultTransport):
    """A fault transport to the real network that also keeps each request's headers."""

    def __init__(self, *rules: Rule) -> None:
        super().__init__(httpx.AsyncHTTPTransport(), rules)
        self.headers: dict[int, dict[str, str]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.headers[len(self.log)] = headers
        return await super().handle_async_request(request)

    def of(self, method: str) -> list[dict[str, str]]:
        """The headers of the client's requests of `method`, in order."""
        return [self.headers[exchange.index] for exchange in self.exchanges(method)]

    def trail(self) -> str:
        """The exchanges, one per line: for assertion messages."""
        return "\n".join(
            f"  {e.method:5} offset={e.offset} sent={e.body_sent} -> "
            f"{e.status if e.status is not None else e.error} [{e.fault or ''}]"
            for e in self.log
        )


def pieces(data: bytes, sizes: tuple[int, ...] = (1, 4093, 65537, 7, 300_001)) -> Iterator[bytes]:
    """`data` in pieces of odd sizes, cycling through `sizes`."""
    offset = 0
    index = 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        index += 1


async def pieces_async(data: bytes) -> AsyncIterator[bytes]:
    for piece in pieces(data):
        await trio.sleep(0)
        yield piece


class Counted:
    """An iterator of `data`'s pieces that counts the items taken (a stream is read once)."""

    def __init__(self, data: bytes) -> None:
        self._pieces = list(pieces(data))
        self._iterator = iter(self._pieces)
        self.taken = 0

    @property
    def total(self) -> int:
        return len(self._pieces)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        item = next(self._iterator)
        self.taken += 1
        return item


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cat(path: Path) -> subprocess.Popen[bytes]:
    """`path` through a pipe: ``cat``'s standard output, of unknown size."""
    return subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)


def delete(url: str) -> None:
    """Free the server's disk after the large uploads."""
    tuspipe.terminate(url)


async def delete_async(url: str) -> None:
    await tuspipe.terminate_async(url)


# ---- pipes -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "size", [64 * MiB, 64 * MiB + 12_345], ids=["exact-multiple-of-the-chunk", "odd-size"]
)
async def test_pipe_of_64_mib_to_node(
    node_server: TusServer, make_file: MakeFile, size: int
) -> None:
    path = make_file(size)
    seen = Seen()
    progress: list[tuple[int, int | None]] = []
    process = cat(path)
    assert process.stdout is not None
    try:
        assert not process.stdout.seekable()
        result = await tuspipe.upload_async(
            process.stdout,
            node_server.url,
            chunk_size=8 * MiB,
            on_response=seen,
            on_progress=lambda done, total: progress.append((done, total)),
        )
    finally:
        process.stdout.close()
        assert process.wait(timeout=TIMEOUT) == 0
    assert (result.size, result.offset, result.resumed_from) == (size, size, 0)
    assert result.complete
    assert node_server.stored_sha256(result.url) == sha256_file(path)
    check_deferred(seen.of("POST"), seen.of("PATCH"), size)
    # OPTIONS (is deferred length supported?), POST, then one PATCH per chunk
    assert seen.methods() == ["OPTIONS", "POST"] + ["PATCH"] * -(-size // (8 * MiB))
    assert progress[0] == (0, None)
    assert progress[-1] == (size, size)
    await delete_async(result.url)


def test_standard_input(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(20 * MiB + 1)  # the default chunk is 8 MiB: the length is deferred
    script = (
        "import sys, tuspipe; "
        "print(tuspipe.upload(sys.stdin.buffer, sys.argv[1], journal=None).url)"
    )
    feeder = cat(path)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, node_server.url],
            stdin=feeder.stdout,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        assert feeder.stdout is not None
        feeder.stdout.close()
        feeder.wait(timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(node_server.url)
    assert node_server.stored_sha256(url) == sha256_file(path)
    status = tuspipe.upload_status(url)
    assert (status.offset, status.length) == (20 * MiB + 1, 20 * MiB + 1)


# ---- generators ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["generator", "async-generator"])
async def test_generator_of_odd_pieces_to_node(node_server: TusServer, kind: str) -> None:
    data = os.urandom(10 * MiB + 12_345)
    source = pieces(data) if kind == "generator" else pieces_async(data)
    seen = Seen()
    result = await tuspipe.upload_async(source, node_server.url, chunk_size=MiB, on_response=seen)
    assert (result.size, result.offset) == (len(data), len(data))
    assert node_server.stored_sha256(result.url) == sha256(data)
    check_deferred(seen.of("POST"), seen.of("PATCH"), len(data))
    assert len(seen.of("PATCH")) == 11


@pytest.mark.parametrize(
    "size", [0, 1, MiB - 1, MiB], ids=["empty", "one-byte", "odd", "exactly-one-chunk"]
)
async def test_stream_ending_in_the_first_chunk_has_a_known_length(
    node_server: TusServer, size: int
) -> None:
    data = os.urandom(size)
    seen = Seen()
    result = await tuspipe.upload_async(
        pieces(data), node_server.url, chunk_size=MiB, on_response=seen
    )
    assert (result.size, result.offset) == (size, size)
    assert node_server.stored_sha256(result.url) == sha256(data)
    check_known_length(seen, size)
    assert seen.methods() == ["POST"] + ["PATCH"] * (size > 0)


async def test_deferred_upload_to_tuspyserver(tuspyserver_server: TusServer) -> None:
    data = os.urandom(5 * MiB + 777)
    seen = Seen()
    result = await tuspipe.upload_async(
        pieces_async(data),
        tuspyserver_server.url,
        chunk_size=MiB,
        metadata=METADATA,
        on_response=seen,
    )
    assert result.complete
    assert tuspyserver_server.stored_sha256(result.url) == sha256(data)
    check_deferred(seen.of("POST"), seen.of("PATCH"), len(data))
    status = await tuspipe.upload_status_async(result.url)
    assert (status.offset, status.length) == (len(data), len(data))


async def test_deferred_upload_with_checksums_to_asgitus(asgitus_server: TusServer) -> None:
    data = os.urandom(4 * MiB + 4321)
    seen = Seen()
    result = await tuspipe.upload_async(
        pieces(data), asgitus_server.url, chunk_size=MiB, checksum="sha1", on_response=seen
    )
    assert result.checksum == "sha1"
    assert asgitus_server.stored_sha256(result.url) == sha256(data)
    check_deferred(seen.of("POST"), seen.of("PATCH"), len(data))
    # one OPTIONS answers both questions (checksums, deferred length)
    assert seen.methods().count("OPTIONS") == 1
    patches = seen.of("PATCH")
    assert len(patches) == 5
    assert all(patch["upload-checksum"].startswith("sha1 ") for patch in patches)


# ---- faults: the resend comes from the bytes the stream still holds ---------------------------


@pytest.mark.parametrize(
    ("server_name", "checksum"), [("node", None), ("asgitus", "sha1")], ids=["node", "asgitus-sha1"]
)
async def test_faults_in_the_middle_of_a_deferred_upload(
    request: pytest.FixtureRequest, server_name: str, checksum: str | None
) -> None:
    server: TusServer = request.getfixturevalue(f"{server_name}_server")
    data = os.urandom(8 * MiB + 999)  # nine PATCHes of a MiB or less
    source = Counted(data)
    transport = HeaderLog(
        # the 3rd PATCH is stored, but its answer is lost
        Rule("PATCH", Fail(httpx.ReadError, after=True), nth=3),
        # the 5th PATCH (at 4 MiB: the lost one is not sent again) is cut 300 kB into its body
        Rule("PATCH", ShortBody(300_000), nth=5),
    )
    async with httpx.AsyncClient(transport=transport) as client:
        result = await tuspipe.upload_async(
            source,
            server.url,
            chunk_size=MiB,
            checksum=checksum,
            retry_delays=DELAYS,
            http_client=client,
        )
    trail = transport.trail()
    assert result.complete, trail
    assert server.stored_sha256(result.url) == sha256(data), trail
    # both faults happened, each followed by a HEAD and a PATCH from the server's offset
    faulted = [exchange for exchange in transport.exchanges() if exchange.fault]
    assert len(faulted) == 2, trail
    for exchange in faulted:
        following = [e for e in transport.exchanges() if e.index > exchange.index][:2]
        assert [e.method for e in following] == ["HEAD", "PATCH"], trail
        assert following[1].offset == following[0].response_offset, trail
    lost, cut = faulted
    assert lost.server_status == 204  # stored: the upload goes on after it
    assert transport.log[lost.index + 2].offset == 3 * MiB
    assert cut.body_sent == 300_000
    # the cut chunk was sent again from what the server held (Node keeps the bytes of a cut
    # body, asgi-tus with a checksum none: they cannot be verified), from memory: the stream
    # was read once, front to back
    resend = transport.log[cut.index + 2]
    assert resend.offset is not None
    assert cut.offset == 4 * MiB
    if server_name == "node":
        assert cut.offset < resend.offset < cut.offset + MiB
    else:
        assert resend.offset == cut.offset
    assert source.taken == source.total
    check_deferred(transport.of("POST"), transport.of("PATCH"), len(data))


@pytest.mark.parametrize(
    "server_name",
    [
        "node",
        "tuspyserver",
        "asgitus",
    ],
)
def test_fault_in_the_patch_that_declares_the_length(
    request: pytest.FixtureRequest, server_name: str
) -> None:
    # (Not a trio test: run here, a failure is the library's exception itself, not a group.)
    server: TusServer = request.getfixturevalue(f"{server_name}_server")
    data = os.urandom(3 * MiB + 5000)
    transport = HeaderLog(Rule("PATCH", ShortBody(2000), nth=4))  # the last PATCH, cut

    async def upload() -> tuspipe.UploadResult:
        async with httpx.AsyncClient(transport=transport) as client:
            return await tuspipe.upload_async(
                pieces(data),
                server.url,
                chunk_size=MiB,
                metadata=METADATA,
                retry_delays=DELAYS,
                http_client=client,
            )

    result = trio.run(upload)
    trail = transport.trail()
    assert result.complete, trail
    assert server.stored_sha256(result.url) == sha256(data), trail
    [cut] = [exchange for exchange in transport.exchanges() if exchange.fault]
    assert cut.offset == 3 * MiB
    assert transport.headers[cut.index]["upload-length"] == str(len(data))


# ---- memory: bounded by the chunk, not the stream ---------------------------------------------

_CHILD = textwrap.dedent(
    """
    import hashlib, json, os, random, sys, tracemalloc
    import tuspipe

    url, kind, size, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    BLOCK = 1 << 20
    buffer = random.Random(7).randbytes(BLOCK + 4093)  # the only bytes the generator holds
    digest = hashlib.sha256()

    def generate():
        sent = 0
        index = 0
        while sent < size:
            skew = (index * 1021) % 4093  # pieces of the buffer at moving offsets
            piece = buffer[skew : skew + min(BLOCK - skew % 7, size - sent)]
            digest.update(piece)
            sent += len(piece)
            index += 1
            yield piece

    def peak_rss_of_this_image():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    # The upload runs in a fork, and this process reaps it with os.wait4: its ru_maxrss is
    # then that of an interpreter which imported tuspipe and nothing more, whereas a process
    # spawned by the test inherits the RSS of the test process as its floor (Linux keeps the
    # high-water mark of the image an exec replaces).
    pid = os.fork()
    if pid == 0:
        tracemalloc.start()  # the peak of what Python allocated, apart from the allocator
        if kind == "generator":
            source = generate()
        else:  # the same bytes, whole in memory (once: no list of pieces, no joined copy)
            source = bytearray(size)
            position = 0
            for piece in generate():
                source[position : position + len(piece)] = piece
                position += len(piece)
        result = tuspipe.upload(source, url, chunk_size=chunk, journal=None)
        report = {
            "url": result.url,
            "size": result.size,
            "sha256": digest.hexdigest(),
            "python_peak": tracemalloc.get_traced_memory()[1],
            "vmhwm": peak_rss_of_this_image(),
        }
        print(json.dumps(report), flush=True)
        os._exit(0)
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    print(json.dumps({"ru_maxrss": usage.ru_maxrss * 1024}))  # Linux: ru_maxrss is in KiB
    """
)


def _upload_in_a_child(url: str, kind: str, size: int, chunk: int) -> tuple[dict[str, Any], int]:
    """Upload in a fresh interpreter; return what it reported and its peak RSS in bytes."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, kind, str(size), str(chunk)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report, usage = map(json.loads, done.stdout.splitlines())
    return report, usage["ru_maxrss"]


@pytest.mark.slow
def test_memory_of_a_256_mib_generator_is_bounded_by_the_chunk(node_server: TusServer) -> None:
    size, chunk = 256 * MiB, 4 * MiB
    streamed, streamed_rss = _upload_in_a_child(node_server.url, "generator", size, chunk)
    whole, whole_rss = _upload_in_a_child(node_server.url, "bytes", size, chunk)
    for result in (streamed, whole):
        assert result["size"] == size
        assert node_server.stored_sha256(result["url"]) == result["sha256"]
        delete(result["url"])
    assert streamed["sha256"] == whole["sha256"]  # the same bytes, both ways
    print(
        f"peak RSS: generator {streamed_rss / MiB:.1f} MiB, bytes {whole_rss / MiB:.1f} MiB; "
        f"peak Python allocations: generator {streamed['python_peak'] / MiB:.1f} MiB, "
        f"bytes {whole['python_peak'] / MiB:.1f} MiB"
    )
    assert streamed_rss < 100 * MiB
    # (the kernel's high-water mark of the upload's own image agrees)
    assert streamed["vmhwm"] <= streamed_rss
    assert whole["vmhwm"] > size
    assert whole_rss > size  # the bytes object alone is 256 MiB
    assert whole_rss - streamed_rss > 150 * MiB
    # What the upload held, without the interpreter and the allocator's leftovers: the chunk
    # and one read the stream retains, blocks the reader has read ahead, a piece or two.
    assert streamed["python_peak"] < 5 * chunk
    assert whole["python_peak"] > size
