"""The stages alone on hand-made channels, then the pipeline and the api, all against FakeTusServer.

No network: every request goes to the in-memory server of ``fakes.py`` through
``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import pathlib
import random
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tests.fakes import FakeTusServer, SeenRequest, reference_digest
from tuspipe import (
    ChecksumMismatchError,
    OffsetMismatchError,
    ProtocolError,
    ResponseError,
    SourceChangedError,
    TusError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
)
from tuspipe._pipeline import PipelineSettings, run_pipeline
from tuspipe._protocol import CHECKSUM_ALGORITHMS
from tuspipe._source import Source, open_source
from tuspipe._stages import (
    MAX_CHECKSUM_RESENDS,
    MAX_PATCHES_WITHOUT_PROGRESS,
    Block,
    Chunk,
    _BlockCursor,
    checksummer,
    chunker,
    reader,
    reporter,
    sender,
)
from tuspipe._transport import Transport


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def spans(start: int, stop: int, size: int) -> Iterator[tuple[int, int]]:
    """The test's own cutting of [start, stop) into (offset, length) pieces of at most `size`."""
    offset = start
    while offset < stop:
        yield offset, min(size, stop - offset)
        offset += size


def expected_checksum(algorithm: str, data: bytes) -> str:
    digest = reference_digest(algorithm, data)
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


def patch_end(request: SeenRequest) -> int:
    return request.offset + len(request.body)


# --------------------------------------------------------------------------------------------
# chunker
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "stop", "chunk_size", "expected"),
    [
        (0, 12, 4, [(0, 4), (4, 4), (8, 4)]),
        (0, 10, 4, [(0, 4), (4, 4), (8, 2)]),
        (3, 10, 4, [(3, 4), (7, 3)]),
        (0, 5, 100, [(0, 5)]),
        (0, 5, 5, [(0, 5)]),
        (7, 8, 1, [(7, 1)]),
        (5, 5, 4, []),
    ],
    ids=["exact-multiple", "remainder", "start>0", "one-chunk", "one-exact", "one-byte", "empty"],
)
async def test_chunker(
    start: int, stop: int, chunk_size: int, expected: list[tuple[int, int]]
) -> None:
    outbound, inbound = trio.open_memory_channel[Chunk](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(chunker, outbound, start=start, stop=stop, chunk_size=chunk_size)
        )
        chunks = [chunk async for chunk in inbound]
    assert [(chunk.offset, chunk.length) for chunk in chunks] == expected
    assert all(chunk.checksum is None for chunk in chunks)


# --------------------------------------------------------------------------------------------
# checksummer
# --------------------------------------------------------------------------------------------


async def feed(outbound: trio.MemorySendChannel[Any], items: list[Any]) -> None:
    with outbound:
        for item in items:
            await outbound.send(item)


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
@pytest.mark.parametrize("read_size", [7, 100, 4096])
async def test_checksummer_attaches_digest_of_each_span(algorithm: str, read_size: int) -> None:
    data = random_bytes(400)
    source = open_source(data)
    chunks = [Chunk(0, 100), Chunk(100, 100), Chunk(200, 64), Chunk(264, 1), Chunk(265, 135)]
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](0)
    hashed_out, hashed_in = trio.open_memory_channel[Chunk](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, chunks_out, chunks)
        nursery.start_soon(
            partial(
                checksummer,
                chunks_in,
                hashed_out,
                source=source,
                algorithm=algorithm,
                read_size=read_size,
            )
        )
        hashed = [chunk async for chunk in hashed_in]
    assert [(c.offset, c.length) for c in hashed] == [(c.offset, c.length) for c in chunks]
    for chunk in hashed:
        assert chunk.checksum == expected_checksum(algorithm, data[chunk.offset : chunk.end])
    # Different spans, different digests: the header is not one value stamped on every chunk.
    assert len({chunk.checksum for chunk in hashed}) == len(hashed)


# --------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "chunk_size", "read_size"),
    [
        (0, 100, 30),
        (0, 100, 100),
        (0, 100, 500),
        (0, 64, 1),
        (17, 50, 7),
        (0, 1000, 64),
    ],
)
async def test_reader_blocks_cover_each_chunk_exactly(
    start: int, chunk_size: int, read_size: int
) -> None:
    data = random_bytes(333)
    chunks = [Chunk(offset, length) for offset, length in spans(start, len(data), chunk_size)]
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](0)
    blocks_out, blocks_in = trio.open_memory_channel[Block](2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, chunks_out, chunks)
        nursery.start_soon(
            partial(reader, chunks_in, blocks_out, source=open_source(data), read_size=read_size)
        )
        blocks = [block async for block in blocks_in]

    for block in blocks:
        assert block.chunk.offset <= block.offset
        assert block.end <= block.chunk.end  # never straddles into the next chunk
        assert 0 < len(block.data) <= read_size
        assert block.data == data[block.offset : block.end]
    # In order, each chunk covered by consecutive blocks, nothing missing or repeated.
    assert [block.offset for block in blocks] == sorted(block.offset for block in blocks)
    for chunk in chunks:
        mine = [block for block in blocks if block.chunk == chunk]
        assert mine, f"no blocks for {chunk}"
        assert mine[0].offset == chunk.offset
        assert all(a.end == b.offset for a, b in itertools.pairwise(mine))
        assert b"".join(block.data for block in mine) == data[chunk.offset : chunk.end]
    assert sum(len(block.data) for block in blocks) == len(data) - start


async def test_reader_passes_the_checksummed_chunk_along() -> None:
    chunk = Chunk(0, 10, checksum="sha1 abc=")
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](0)
    blocks_out, blocks_in = trio.open_memory_channel[Block](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, chunks_out, [chunk])
        nursery.start_soon(
            partial(reader, chunks_in, blocks_out, source=open_source(bytes(10)), read_size=4)
        )
        blocks = [block async for block in blocks_in]
    assert [block.chunk for block in blocks] == [chunk, chunk, chunk]


async def test_reader_failure_closes_its_outbound() -> None:
    # The chunk claims 100 bytes; the source has 50: the reader fails, and the channel
    # downstream ends instead of leaving its receiver waiting.
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](0)
    blocks_out, blocks_in = trio.open_memory_channel[Block](0)
    received: list[Block] = []
    with pytest.RaisesGroup(SourceChangedError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed, chunks_out, [Chunk(0, 100)])
            nursery.start_soon(
                partial(reader, chunks_in, blocks_out, source=open_source(bytes(50)), read_size=20)
            )
            async for block in blocks_in:
                received.append(block)
    assert [block.offset for block in received] == [0, 20]


# --------------------------------------------------------------------------------------------
# reporter
# --------------------------------------------------------------------------------------------


async def test_reporter_calls_back_in_order() -> None:
    offsets = [5, 10, 12, 40, 41]
    seen: list[int] = []
    acks_out, acks_in = trio.open_memory_channel[int](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(reporter, acks_in, on_acknowledged=seen.append))
        await feed(acks_out, offsets)
    assert seen == offsets


async def test_reporter_propagates_callback_error() -> None:
    def explode(offset: int) -> None:
        raise KeyError(offset)

    acks_out, acks_in = trio.open_memory_channel[int](0)
    with pytest.RaisesGroup(KeyError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(reporter, acks_in, on_acknowledged=explode))
            await feed(acks_out, [1])


# --------------------------------------------------------------------------------------------
# sender
# --------------------------------------------------------------------------------------------


async def cursor_bytes(data: bytes, chunk: Chunk, read_size: int, starts: list[int]) -> list[bytes]:
    """Feed `chunk`'s blocks to a _BlockCursor; collect ``iter_bytes(start, chunk)`` for each
    of `starts` in turn, as the sender does after each PATCH."""
    blocks_out, blocks_in = trio.open_memory_channel[Block](100)
    for offset, length in spans(chunk.offset, chunk.end, read_size):
        blocks_out.send_nowait(Block(chunk, offset, data[offset : offset + length]))
    blocks_out.close()
    cursor = _BlockCursor(blocks_in, open_source(data), read_size)
    results = []
    for start in starts:
        assert await cursor.chunk_at(start) == chunk
        results.append(b"".join([piece async for piece in cursor.iter_bytes(start, chunk)]))
    return results


async def test_cursor_rereads_bytes_it_already_streamed() -> None:
    # The server kept 0..45 and 45..70 of what was streamed: the rest is read again.
    data = random_bytes(100)
    chunk = Chunk(0, 100)
    results = await cursor_bytes(data, chunk, 30, [0, 45, 70])
    assert results == [data, data[45:], data[70:]]


async def test_cursor_skips_stream_bytes_the_server_holds() -> None:
    # Nothing streamed yet, and the server already holds 45 bytes of the chunk: the stream's
    # first block is skipped and the second one trimmed to start at 45.
    data = random_bytes(100)
    chunk = Chunk(0, 100)
    assert await cursor_bytes(data, chunk, 30, [45]) == [data[45:]]


async def run_sender(
    server: FakeTusServer,
    data: bytes,
    *,
    chunk_size: int,
    read_size: int,
    algorithm: str | None = None,
    start: int = 0,
    checksum_data: bytes | None = None,
) -> tuple[str, list[int]]:
    """Run the sender alone: a hand-made block feed in, acknowledged offsets out.

    The upload is created on `server` holding ``data[:start]``. Chunk checksums are digests of
    `checksum_data` (default: `data`), so a test can hand the sender wrong ones.
    """
    url = server.create(len(data), data[:start])
    source = open_source(data)
    hashed = data if checksum_data is None else checksum_data
    acknowledged: list[int] = []

    async def feed_blocks(outbound: trio.MemorySendChannel[Block]) -> None:
        with outbound:
            for offset, length in spans(start, len(data), chunk_size):
                checksum = None
                if algorithm is not None:
                    checksum = expected_checksum(algorithm, hashed[offset : offset + length])
                chunk = Chunk(offset, length, checksum)
                for block_offset, block_length in spans(offset, chunk.end, read_size):
                    block_data = data[block_offset : block_offset + block_length]
                    await outbound.send(Block(chunk, block_offset, block_data))

    async def collect(inbound: trio.MemoryReceiveChannel[int]) -> None:
        with inbound:
            async for offset in inbound:
                acknowledged.append(offset)

    blocks_out, blocks_in = trio.open_memory_channel[Block](2)
    acks_out, acks_in = trio.open_memory_channel[int](0)
    async with server.client() as client, trio.open_nursery() as nursery:
        nursery.start_soon(feed_blocks, blocks_out)
        nursery.start_soon(collect, acks_in)
        nursery.start_soon(
            partial(
                sender,
                blocks_in,
                acks_out,
                transport=Transport(client=client),
                url=url,
                headers=(("Authorization", "Bearer t"),),
                source=source,
                start=start,
                stop=len(data),
                algorithm=algorithm,
                read_size=read_size,
            )
        )
    return url, acknowledged


@pytest.mark.parametrize(
    ("size", "chunk_size", "read_size", "start"),
    [
        (1000, 100, 30, 0),
        (1000, 300, 1000, 0),
        (1000, 1000, 64, 0),
        (999, 100, 7, 0),
        (1000, 128, 128, 200),
        (1000, 128, 50, 333),
        (1, 100, 100, 0),
    ],
)
async def test_sender_patches_each_chunk_at_its_offset(
    size: int, chunk_size: int, read_size: int, start: int
) -> None:
    server = FakeTusServer()
    data = random_bytes(size)
    url, acknowledged = await run_sender(
        server, data, chunk_size=chunk_size, read_size=read_size, start=start
    )
    patches = server.seen("PATCH")
    expected = list(spans(start, size, chunk_size))
    assert [(p.offset, len(p.body)) for p in patches] == expected
    for patch in patches:
        assert patch.body == data[patch.offset : patch_end(patch)]
        assert patch.headers["content-length"] == str(len(patch.body))
        assert patch.headers["content-type"] == "application/offset+octet-stream"
        assert patch.headers["tus-resumable"] == "1.0.0"
        assert patch.headers["authorization"] == "Bearer t"
        assert "upload-checksum" not in patch.headers
        assert patch.url == url
    assert acknowledged == [offset + length for offset, length in expected]
    assert server.data_of(url) == data


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
async def test_sender_sends_chunk_checksums(algorithm: str) -> None:
    server = FakeTusServer()
    data = random_bytes(700, seed=1)
    url, _ = await run_sender(server, data, chunk_size=256, read_size=100, algorithm=algorithm)
    patches = server.seen("PATCH")
    assert len(patches) == 3
    for patch in patches:
        assert patch.headers["upload-checksum"].startswith(f"{algorithm} ")
        assert patch.checksum_ok is True
    assert server.data_of(url) == data


@pytest.mark.parametrize("algorithm", [None, "sha1", "sha256", "crc32"])
@pytest.mark.parametrize(
    ("chunk_size", "read_size"), [(100, 30), (100, 100), (256, 1000), (100, 1)]
)
async def test_sender_continues_from_servers_offset_after_short_patch(
    algorithm: str | None, chunk_size: int, read_size: int
) -> None:
    server = FakeTusServer(store_fraction=0.5)
    data = random_bytes(1000, seed=2)
    url, acknowledged = await run_sender(
        server, data, chunk_size=chunk_size, read_size=read_size, algorithm=algorithm
    )
    assert server.data_of(url) == data
    patches = server.seen("PATCH")
    assert len(patches) > math.ceil(len(data) / chunk_size)
    # Some PATCHes resend the unstored tail of a chunk, starting mid-chunk.
    assert any(patch.offset % chunk_size != 0 for patch in patches)
    assert acknowledged == sorted(set(acknowledged))
    assert acknowledged[-1] == len(data)
    assert [patch.offset for patch in patches] == [0, *acknowledged[:-1]]
    for patch in patches:
        # Each PATCH carries the source's bytes from the server's offset to its chunk's end.
        chunk_end = min((patch.offset // chunk_size + 1) * chunk_size, len(data))
        assert patch_end(patch) == chunk_end
        assert patch.body == data[patch.offset : chunk_end]
        if algorithm is None:
            assert "upload-checksum" not in patch.headers
        else:
            # The server verified a digest of exactly the bytes this PATCH carried.
            assert patch.headers["upload-checksum"] == expected_checksum(algorithm, patch.body)
            assert patch.checksum_ok is True


async def test_sender_gives_up_when_server_stores_nothing() -> None:
    server = FakeTusServer(store_fraction=0.0)
    data = random_bytes(300)
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, data, chunk_size=100, read_size=30, start=100)
    assert info.group_contains(ProtocolError, match="without storing a byte")
    patches = server.seen("PATCH")
    assert len(patches) == MAX_PATCHES_WITHOUT_PROGRESS == 3
    assert all(patch.offset == 100 for patch in patches)
    assert all(patch.body == data[100:200] for patch in patches)


async def test_sender_tolerates_a_patch_without_progress() -> None:
    server = FakeTusServer()
    data = random_bytes(300)
    server.script(204, {"Upload-Offset": "0"}, method="PATCH", times=2)
    url, acknowledged = await run_sender(server, data, chunk_size=100, read_size=40)
    assert acknowledged == [0, 0, 100, 200, 300]
    assert server.data_of(url) == data


@pytest.mark.parametrize(
    "headers",
    [{}, {"Upload-Offset": "1000"}, {"Upload-Offset": "101"}, {"Upload-Offset": "x"}],
    ids=["missing", "far-beyond", "beyond-by-one", "not-a-number"],
)
async def test_sender_refuses_impossible_patch_answer(headers: dict[str, str]) -> None:
    server = FakeTusServer()
    server.script(204, headers, method="PATCH")
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, random_bytes(300), chunk_size=100, read_size=30)
    assert info.group_contains(ProtocolError)
    assert len(server.seen("PATCH")) == 1


async def test_sender_refuses_offset_going_backwards() -> None:
    server = FakeTusServer()
    data = random_bytes(300)
    url = server.endpoint + "u1"

    async def rewind_second_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and len(server.seen("PATCH")) == 1:
            server.script(204, {"Upload-Offset": "50"}, method="PATCH")

    server.before_request = rewind_second_patch
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, data, chunk_size=100, read_size=30)
    assert info.group_contains(ProtocolError, match="must lie in that range")
    assert server.data_of(url) == data[:100]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (409, OffsetMismatchError),
        (404, UploadNotFoundError),
        (410, UploadNotFoundError),
        (413, UploadTooLargeError),
        (400, ResponseError),
        (500, ResponseError),
    ],
)
async def test_sender_raises_typed_error_for_status(status: int, error_type: type) -> None:
    server = FakeTusServer()
    server.script(status, {"Tus-Resumable": "1.0.0"}, b"no", method="PATCH")
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, random_bytes(300), chunk_size=100, read_size=30, algorithm="sha1")
    errors = [e for e in info.value.exceptions if isinstance(e, ResponseError)]
    assert len(errors) == 1
    assert type(errors[0]) is error_type
    assert errors[0].status_code == status
    assert errors[0].body == b"no"
    assert len(server.seen("PATCH")) == 1


async def test_sender_resends_the_same_bytes_after_460() -> None:
    server = FakeTusServer()
    data = random_bytes(300)
    server.script(460, {"Tus-Resumable": "1.0.0"}, method="PATCH", times=MAX_CHECKSUM_RESENDS)
    url, acknowledged = await run_sender(
        server, data, chunk_size=100, read_size=30, algorithm="sha1"
    )
    patches = server.seen("PATCH")
    assert len(patches) == MAX_CHECKSUM_RESENDS + 3
    first = patches[: MAX_CHECKSUM_RESENDS + 1]
    assert all(patch.offset == 0 and patch.body == data[:100] for patch in first)
    assert len({patch.headers["upload-checksum"] for patch in first}) == 1
    assert acknowledged == [100, 200, 300]
    assert server.data_of(url) == data


async def test_sender_gives_up_after_repeated_460() -> None:
    server = FakeTusServer()
    server.script(460, {"Tus-Resumable": "1.0.0"}, b"no", method="PATCH", times=10)
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, random_bytes(300), chunk_size=100, read_size=30, algorithm="sha1")
    assert info.group_contains(ChecksumMismatchError)
    assert len(server.seen("PATCH")) == MAX_CHECKSUM_RESENDS + 1


async def test_sender_wrong_checksum_is_rejected_by_the_server() -> None:
    server = FakeTusServer()
    data = random_bytes(300)
    corrupted = data[:150] + bytes([data[150] ^ 1]) + data[151:]
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(
            server, data, chunk_size=100, read_size=30, algorithm="md5", checksum_data=corrupted
        )
    assert info.group_contains(ChecksumMismatchError)
    patches = server.seen("PATCH")
    assert [patch.checksum_ok for patch in patches] == [True] + [False] * (MAX_CHECKSUM_RESENDS + 1)
    assert server.data_of(server.endpoint + "u1") == data[:100]


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------


class TaskTracker(trio.abc.Instrument):
    """Counts the tasks spawned while installed, and which of them have not exited."""

    def __init__(self) -> None:
        self.spawned = 0
        self.alive: set[trio.lowlevel.Task] = set()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1
        self.alive.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive.discard(task)


async def pipeline_upload(
    server: FakeTusServer,
    source: Source,
    *,
    chunk_size: int = 100,
    read_size: int = 30,
    read_ahead: int = 2,
    algorithm: str | None = None,
    on_acknowledged: Callable[[int], None] | None = None,
) -> tuple[str, int, list[int]]:
    url = server.create(source.size)
    acknowledged: list[int] = []

    def record(offset: int) -> None:
        acknowledged.append(offset)
        if on_acknowledged is not None:
            on_acknowledged(offset)

    async with server.client() as client:
        final = await run_pipeline(
            transport=Transport(client=client),
            url=url,
            headers=(),
            source=source,
            start=0,
            stop=source.size,
            algorithm=algorithm,
            settings=PipelineSettings(
                chunk_size=chunk_size, read_size=read_size, read_ahead=read_ahead
            ),
            on_acknowledged=record,
        )
    return url, final, acknowledged


@pytest.mark.parametrize("algorithm", [None, "sha1", "sha256", "crc32"])
@pytest.mark.parametrize("store_fraction", [1.0, 0.5])
@pytest.mark.parametrize(
    ("chunk_size", "read_size", "read_ahead"), [(100, 30, 2), (256, 1000, 1), (1000, 64, 4)]
)
async def test_pipeline_uploads_everything(
    algorithm: str | None, store_fraction: float, chunk_size: int, read_size: int, read_ahead: int
) -> None:
    server = FakeTusServer(store_fraction=store_fraction)
    data = random_bytes(1000, seed=3)
    url, final, acknowledged = await pipeline_upload(
        server,
        open_source(data),
        chunk_size=chunk_size,
        read_size=read_size,
        read_ahead=read_ahead,
        algorithm=algorithm,
    )
    assert final == len(data)
    assert server.data_of(url) == data
    assert acknowledged == sorted(set(acknowledged))
    assert acknowledged[-1] == len(data)
    for patch in server.seen("PATCH"):
        if algorithm is None:
            assert "upload-checksum" not in patch.headers
        else:
            assert patch.checksum_ok is True


async def test_pipeline_from_a_file(tmp_path: pathlib.Path) -> None:
    data = random_bytes(5000, seed=4)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    source = open_source(path)
    server = FakeTusServer()
    try:
        url, final, _ = await pipeline_upload(
            server, source, chunk_size=1024, read_size=100, algorithm="sha256"
        )
    finally:
        source.close()
    assert final == 5000
    assert server.data_of(url) == data


async def test_pipeline_failure_is_one_error_of_the_original_type() -> None:
    server = FakeTusServer()
    server.script(
        460,
        {"Tus-Resumable": "1.0.0"},
        b"checksum mismatch",
        method="PATCH",
        times=MAX_CHECKSUM_RESENDS + 1,
    )
    with pytest.raises(ChecksumMismatchError) as info:
        await pipeline_upload(server, open_source(random_bytes(500)), algorithm="sha1")
    error = info.value
    assert type(error) is ChecksumMismatchError
    assert error.status_code == 460
    assert error.body == b"checksum mismatch"
    assert error.method == "PATCH"
    cause = error.__cause__
    assert isinstance(cause, BaseExceptionGroup)
    matched, _ = cause.split(ChecksumMismatchError)
    assert matched is not None


async def test_pipeline_source_that_shrinks_is_source_changed(tmp_path: pathlib.Path) -> None:
    data = random_bytes(1000, seed=5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    source = open_source(path)

    async def truncate_on_first_patch(request: httpx.Request) -> None:
        if request.method == "PATCH":
            os.truncate(path, 150)

    server = FakeTusServer(before_request=truncate_on_first_patch)
    try:
        with pytest.raises(SourceChangedError) as info:
            await pipeline_upload(server, source, chunk_size=100, read_size=10, read_ahead=1)
    finally:
        source.close()
    assert isinstance(info.value.__cause__, BaseExceptionGroup)
    # What the server holds is still a prefix of the original source.
    stored = server.data_of(server.endpoint + "u1")
    assert stored == data[: len(stored)]


async def test_pipeline_foreign_error_becomes_tus_error() -> None:
    def explode(offset: int) -> None:
        raise ZeroDivisionError("callback bug")

    server = FakeTusServer()
    with pytest.raises(TusError, match="ZeroDivisionError") as info:
        await pipeline_upload(server, open_source(random_bytes(300)), on_acknowledged=explode)
    assert type(info.value) is TusError
    cause = info.value.__cause__
    assert isinstance(cause, BaseExceptionGroup)
    assert cause.split(ZeroDivisionError)[0] is not None


async def test_pipeline_cancelled_by_cancel_scope_returns_cleanly() -> None:
    data = random_bytes(1000, seed=6)
    scope = trio.CancelScope()
    patches = 0

    async def cancel_on_second_patch(request: httpx.Request) -> None:
        nonlocal patches
        if request.method == "PATCH":
            patches += 1
            if patches == 2:
                scope.cancel()
                await trio.lowlevel.checkpoint()  # raises Cancelled

    server = FakeTusServer(before_request=cancel_on_second_patch)
    tracker = TaskTracker()
    trio.lowlevel.add_instrument(tracker)
    acknowledged: list[int] = []
    try:
        with scope:
            await pipeline_upload(
                server, open_source(data), chunk_size=100, on_acknowledged=acknowledged.append
            )
    finally:
        trio.lowlevel.remove_instrument(tracker)
    assert scope.cancelled_caught
    assert tracker.spawned >= 4  # the stages ran as tasks ...
    assert tracker.alive == set()  # ... and none outlived the call
    assert acknowledged == [100]
    assert server.data_of(server.endpoint + "u1") == data[:100]


async def test_pipeline_cancelled_by_timeout_returns_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    data = random_bytes(1000, seed=7)
    scope = trio.CancelScope()
    hung_at: list[float] = []

    async def hang_on_second_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and len(server.seen("PATCH")) == 1:
            # The timeout starts here, so virtual time cannot run out while worker threads
            # hash or read (the autojump clock counts those as idle).
            hung_at.append(trio.current_time())
            scope.deadline = trio.current_time() + 30
            await trio.sleep_forever()

    server = FakeTusServer(before_request=hang_on_second_patch)
    tracker = TaskTracker()
    trio.lowlevel.add_instrument(tracker)
    try:
        with scope:
            await pipeline_upload(server, open_source(data), chunk_size=100, algorithm="sha1")
    finally:
        trio.lowlevel.remove_instrument(tracker)
    assert scope.cancelled_caught
    assert trio.current_time() - hung_at[0] == pytest.approx(30)
    assert tracker.alive == set()
    assert server.data_of(server.endpoint + "u1") == data[:100]


# --------------------------------------------------------------------------------------------
# the api
# --------------------------------------------------------------------------------------------

DATA = random_bytes(1000, seed=8)


async def test_upload_async_whole() -> None:
    server = FakeTusServer()
    urls: list[str] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=300,
            metadata={"filename": "a.txt"},
            headers={"Authorization": "Bearer t"},
            on_upload_url=urls.append,
            http_client=client,
        )
        assert not client.is_closed  # a shared client is the caller's to close
    assert result == tuspipe.UploadResult(
        url=result.url, size=1000, offset=1000, resumed_from=0, checksum=None
    )
    assert result.complete
    assert urls == [result.url]
    assert server.data_of(result.url) == DATA
    assert server.metadata_of(result.url) == "filename YS50eHQ="
    assert [r.method for r in server.requests] == ["POST", "PATCH", "PATCH", "PATCH", "PATCH"]
    assert server.requests[0].headers["upload-length"] == "1000"
    assert all(r.headers["authorization"] == "Bearer t" for r in server.requests)


async def test_upload_async_relative_location() -> None:
    server = FakeTusServer(relative_locations=True)
    async with server.client() as client:
        result = await tuspipe.upload_async(DATA, server.endpoint, http_client=client)
    assert result.url == server.endpoint + "u1"
    assert server.data_of(result.url) == DATA


@pytest.mark.parametrize("stop_at", [0, 1, 250, 300, 999, 1000])
async def test_upload_async_stop_at(stop_at: int) -> None:
    server = FakeTusServer()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA, server.endpoint, chunk_size=100, stop_at=stop_at, http_client=client
        )
    assert result.offset == stop_at
    assert result.complete is (stop_at == len(DATA))
    assert server.data_of(result.url) == DATA[:stop_at]
    patches = server.seen("PATCH")
    assert len(patches) == math.ceil(stop_at / 100)
    assert all(patch_end(patch) <= stop_at for patch in patches)
    assert len(server.seen("POST")) == 1


async def test_upload_async_progress() -> None:
    server = FakeTusServer(store_fraction=0.5)
    progress: list[tuple[int, int]] = []
    async with server.client() as client:
        await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=256,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    offsets = [done for done, _ in progress]
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(DATA)
    assert len(offsets) == len(server.seen("PATCH"))
    assert {total for _, total in progress} == {len(DATA)}


async def test_upload_async_empty_source() -> None:
    server = FakeTusServer()
    progress: list[tuple[int, int]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            b"",
            server.endpoint,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    assert [r.method for r in server.requests] == ["POST"]
    assert server.requests[0].headers["upload-length"] == "0"
    assert result.size == result.offset == 0
    assert result.complete
    assert progress == []


@pytest.mark.parametrize("already", [1, 300, 999])
async def test_upload_async_resumes_from_head_offset(already: int) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:already])
    progress: list[int] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            upload_url=url,
            chunk_size=256,
            on_progress=lambda done, total: progress.append(done),
            http_client=client,
        )
    assert result.resumed_from == already
    assert result.offset == len(DATA)
    assert result.url == url
    assert server.data_of(url) == DATA
    methods = [r.method for r in server.requests]
    assert methods[0] == "HEAD"
    assert "POST" not in methods
    patches = server.seen("PATCH")
    assert patches[0].offset == already
    assert sum(len(patch.body) for patch in patches) == len(DATA) - already
    assert progress[-1] == len(DATA)
    assert progress[0] > already


async def test_upload_async_resume_of_complete_upload_sends_nothing() -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA)
    async with server.client() as client:
        result = await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert [r.method for r in server.requests] == ["HEAD"]
    assert result.resumed_from == result.offset == len(DATA)


@pytest.mark.parametrize("length", [len(DATA) - 1, len(DATA) + 1, None])
async def test_upload_async_resume_of_a_different_upload(length: int | None) -> None:
    server = FakeTusServer()
    url = server.create(length)
    async with server.client() as client:
        with pytest.raises(ResponseError, match="not an upload of this source"):
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert [r.method for r in server.requests] == ["HEAD"]


async def test_upload_async_resume_of_a_missing_upload() -> None:
    server = FakeTusServer()
    async with server.client() as client:
        with pytest.raises(UploadNotFoundError):
            await tuspipe.upload_async(
                DATA, upload_url=server.endpoint + "gone", http_client=client
            )


async def test_upload_async_checksum_auto_uses_the_strongest_offered() -> None:
    server = FakeTusServer(checksum_algorithms=("sha1", "sha256", "md5"))
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA, server.endpoint, chunk_size=400, checksum="auto", http_client=client
        )
    assert result.checksum == "sha256"
    assert server.requests[0].method == "OPTIONS"
    assert "tus-resumable" not in server.requests[0].headers
    patches = server.seen("PATCH")
    assert len(patches) == 3
    assert all(patch.headers["upload-checksum"].startswith("sha256 ") for patch in patches)
    assert all(patch.checksum_ok for patch in patches)
    assert server.data_of(result.url) == DATA


async def test_upload_async_checksum_auto_without_checksum_extension() -> None:
    server = FakeTusServer(extensions=("creation",))
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA, server.endpoint, checksum="auto", http_client=client
        )
    assert result.checksum is None
    assert all("upload-checksum" not in patch.headers for patch in server.seen("PATCH"))
    assert server.data_of(result.url) == DATA


async def test_upload_async_explicit_checksum_not_offered() -> None:
    server = FakeTusServer(checksum_algorithms=("sha1",))
    async with server.client() as client:
        with pytest.raises(UnsupportedFeatureError):
            await tuspipe.upload_async(DATA, server.endpoint, checksum="sha512", http_client=client)
    assert [r.method for r in server.requests] == ["OPTIONS"]


async def test_upload_async_server_error_on_creation() -> None:
    server = FakeTusServer(max_size=10)
    async with server.client() as client:
        with pytest.raises(UploadTooLargeError) as info:
            await tuspipe.upload_async(DATA, server.endpoint, http_client=client)
    assert info.value.status_code == 413
    assert info.value.body == b"upload too large"


async def test_upload_blocking_call_inside_trio_is_usage_error() -> None:
    server = FakeTusServer()
    async with server.client() as client:
        with pytest.raises(UsageError, match="upload_async"):
            tuspipe.upload(DATA, server.endpoint, http_client=client)
    assert server.requests == []


def test_upload_blocking_outside_trio() -> None:
    server = FakeTusServer()
    client = server.client()
    try:
        result = tuspipe.upload(DATA, server.endpoint, chunk_size=512, http_client=client)
    finally:
        trio.run(client.aclose)
    assert result.complete
    assert server.data_of(result.url) == DATA
    assert len(server.seen("PATCH")) == 2


BAD_ARGUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("chunk_size=0", {"chunk_size": 0}),
    ("chunk_size=-1", {"chunk_size": -1}),
    ("chunk_size=True", {"chunk_size": True}),
    ("chunk_size=1.5", {"chunk_size": 1.5}),
    ("chunk_size='1'", {"chunk_size": "1"}),
    ("read_size=0", {"read_size": 0}),
    ("read_ahead=0", {"read_ahead": 0}),
    ("stop_at=-1", {"stop_at": -1}),
    ("stop_at>size", {"stop_at": len(DATA) + 1}),
    ("stop_at=1.0", {"stop_at": 1.0}),
    ("url=ftp", {"url": "ftp://x"}),
    ("url=relative", {"url": "files/"}),
    ("no-url", {"url": None}),
    ("upload_url=relative", {"url": None, "upload_url": "files/abc"}),
    ("checksum=nope", {"checksum": "nope"}),
    ("metadata-key-space", {"metadata": {"a b": "x"}}),
    ("metadata-value-int", {"metadata": {"a": 1}}),
    ("reserved-header", {"headers": {"Upload-Offset": "0"}}),
    ("header-newline", {"headers": {"X-A": "a\r\nb"}}),
    ("on_progress-not-callable", {"on_progress": "print"}),
    ("timeout=0", {"timeout": 0}),
    ("source=int", {"source": 12}),
]


@pytest.mark.parametrize(
    "kwargs", [kw for _, kw in BAD_ARGUMENTS], ids=[i for i, _ in BAD_ARGUMENTS]
)
async def test_upload_async_bad_arguments_fail_before_any_request(kwargs: dict[str, Any]) -> None:
    server = FakeTusServer()
    arguments: dict[str, Any] = {"source": DATA, "url": server.endpoint, **kwargs}
    async with server.client() as client:
        with pytest.raises(UsageError) as info:
            await tuspipe.upload_async(http_client=client, **arguments)
    assert isinstance(info.value, ValueError)
    assert server.requests == []


async def test_upload_async_missing_file_fails_before_any_request(tmp_path: pathlib.Path) -> None:
    server = FakeTusServer()
    async with server.client() as client:
        with pytest.raises(FileNotFoundError):
            await tuspipe.upload_async(tmp_path / "nope", server.endpoint, http_client=client)
    assert server.requests == []


async def test_upload_async_from_a_file_object(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    server = FakeTusServer()
    with path.open("rb") as stream:
        stream.seek(100)
        async with server.client() as client:
            result = await tuspipe.upload_async(
                stream, server.endpoint, chunk_size=256, http_client=client
            )
        assert not stream.closed
    assert result.size == len(DATA) - 100
    assert server.data_of(result.url) == DATA[100:]
