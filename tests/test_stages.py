"""The stages alone on hand-made channels, then the pipeline and the api, all against FakeTusServer.

No network: every request goes to the in-memory server of ``fakes.py`` through
``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import os
import pathlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
    Journal,
    JournalEntry,
    ProtocolError,
    ResponseError,
    SourceChangedError,
    TusError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
)
from tuspipe._body import BodyPart, FileSpan
from tuspipe._journal import decode_records
from tuspipe._pipeline import PipelineSettings, run_pipeline
from tuspipe._protocol import CHECKSUM_ALGORITHMS
from tuspipe._retry import RetryingLink
from tuspipe._source import Source, open_source
from tuspipe._stages import (
    MAX_CHECKSUM_RESENDS,
    MAX_PATCHES_WITHOUT_PROGRESS,
    Block,
    Chunk,
    _BlockCursor,
    checksummer,
    chunker,
    digest_range,
    reader,
    reporter,
    sender,
)
from tuspipe._transport import Transport
from tuspipe._types import JOURNAL_WRITE_INTERVAL


def as_bytes(part: BodyPart) -> bytes:
    """A body part's bytes: file spans are read."""
    return part.read() if isinstance(part, FileSpan) else part


def make_source(data: bytes, kind: str, tmp_path: pathlib.Path | None) -> Source:
    """`data` as a bytes source, or ("file") as a file holding it."""
    if kind == "bytes":
        return open_source(data)
    assert tmp_path is not None
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return open_source(path)


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
@pytest.mark.parametrize("beyond", [0, 3], ids=["to-the-end", "stop-before-the-end"])
async def test_chunker(
    start: int, stop: int, chunk_size: int, expected: list[tuple[int, int]], beyond: int
) -> None:
    # A source that holds everything; `stop` is its end, or lies `beyond` bytes before it.
    source = open_source(random_bytes(stop + beyond))
    outbound, inbound = trio.open_memory_channel[Chunk](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(chunker, outbound, source=source, start=start, stop=stop, chunk_size=chunk_size)
        )
        chunks = [chunk async for chunk in inbound]
    assert [(chunk.offset, chunk.length) for chunk in chunks] == expected
    assert all(chunk.checksum is None for chunk in chunks)
    assert all(chunk.declare_length is None for chunk in chunks)


async def _pieces(data: bytes, piece: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), piece):
        await trio.lowlevel.checkpoint()
        yield data[offset : offset + piece]


def one_pass(
    data: bytes, *, piece: int = 3, read_size: int = 2, retention: int = 1 << 20, kind: str = "iter"
) -> Source:
    """`data` as a one-pass source: an iterator (or async iterator) of `piece`-byte items."""
    if kind == "async":
        return open_source(_pieces(data, piece), read_size=read_size, retention=retention)
    items = (data[offset : offset + piece] for offset in range(0, len(data), piece))
    return open_source(items, read_size=read_size, retention=retention)


async def cut_one_pass(
    source: Source, chunk_size: int, *, declare_length: bool, release: bool = True
) -> list[Chunk]:
    """Run the chunker on a one-pass source to its end, releasing each chunk once received
    and checking its bytes are held (what the sender does once the server acknowledged it)."""
    outbound, inbound = trio.open_memory_channel[Chunk](0)
    chunks: list[Chunk] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(
                    chunker,
                    outbound,
                    source=source,
                    start=0,
                    stop=None,
                    chunk_size=chunk_size,
                    declare_length=declare_length,
                )
            )
            async for chunk in inbound:
                chunks.append(chunk)
                source.read_at(chunk.offset, chunk.length)  # held: no error
                if release:
                    source.release(chunk.end)
    return chunks


@pytest.mark.parametrize("kind", ["iter", "async"])
@pytest.mark.parametrize("declare_length", [True, False], ids=["declare", "no-declare"])
@pytest.mark.parametrize(
    ("size", "chunk_size", "expected"),
    [
        (12, 4, [(0, 4), (4, 4), (8, 4)]),
        (10, 4, [(0, 4), (4, 4), (8, 2)]),
        (3, 4, [(0, 3)]),
        (4, 4, [(0, 4)]),
        (1, 4, [(0, 1)]),
        (0, 4, []),
    ],
    ids=["exact-multiple", "odd-size", "ends-in-the-first-chunk", "one-exact", "one-byte", "empty"],
)
async def test_chunker_on_a_one_pass_source(
    size: int, chunk_size: int, expected: list[tuple[int, int]], declare_length: bool, kind: str
) -> None:
    data = random_bytes(size, seed=size)
    source = one_pass(data, kind=kind, retention=chunk_size + 2)
    assert source.size is None
    chunks = await cut_one_pass(source, chunk_size, declare_length=declare_length)
    assert [(chunk.offset, chunk.length) for chunk in chunks] == expected
    assert source.size == size  # the end was found
    # Only the chunk that ends the source declares the length, and only when asked to: even
    # when the source ends exactly on a chunk boundary (the chunker looked one byte ahead).
    declared = [chunk.declare_length for chunk in chunks]
    if declare_length and chunks:
        assert declared == [None] * (len(chunks) - 1) + [size]
    else:
        assert declared == [None] * len(chunks)


async def test_chunker_on_a_one_pass_source_from_a_start_offset() -> None:
    # The sender starts where the server stands; the chunker cuts from there on.
    data = random_bytes(10, seed=1)
    source = one_pass(data)
    await source.ensure(4)
    source.release(4)
    outbound, inbound = trio.open_memory_channel[Chunk](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                chunker,
                outbound,
                source=source,
                start=4,
                stop=None,
                chunk_size=4,
                declare_length=True,
            )
        )
        chunks = [chunk async for chunk in inbound]
    assert [(c.offset, c.length, c.declare_length) for c in chunks] == [(4, 4, None), (8, 2, 10)]


async def test_chunker_waits_for_release_before_reading_past_the_retention() -> None:
    # Retention of one chunk and one read: the chunker cannot cut the next chunk (it must read
    # one byte past it) until the previous one is released.
    data = random_bytes(40, seed=2)
    source = one_pass(data, piece=1, read_size=1, retention=10 + 1)
    outbound, inbound = trio.open_memory_channel[Chunk](1)  # room to cut ahead, if it could
    rest: list[Chunk] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(
                    chunker,
                    outbound,
                    source=source,
                    start=0,
                    stop=None,
                    chunk_size=10,
                    declare_length=True,
                )
            )
            first = await inbound.receive()
            assert (first.offset, first.length) == (0, 10)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.05)  # (time for a pull in a worker thread, were one running)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                inbound.receive_nowait()  # the second chunk waits for the release of the first
            with pytest.raises(RuntimeError, match="not held"):
                source.read_at(11, 1)  # nothing was read past the retention meanwhile
            source.release(first.end)
            second = await inbound.receive()
            assert (second.offset, second.length) == (10, 10)
            source.release(second.end)
            async for chunk in inbound:
                rest.append(chunk)
                source.release(chunk.end)
    assert [(c.offset, c.length, c.declare_length) for c in rest] == [(20, 10, None), (30, 10, 40)]
    assert source.size == 40


# --------------------------------------------------------------------------------------------
# checksummer
# --------------------------------------------------------------------------------------------


async def feed(outbound: trio.MemorySendChannel[Any], items: list[Any]) -> None:
    with outbound:
        for item in items:
            await outbound.send(item)


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
@pytest.mark.parametrize("read_size", [7, 100, 4096])
@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_checksummer_attaches_digest_of_each_span(
    algorithm: str, read_size: int, kind: str, tmp_path: pathlib.Path
) -> None:
    data = random_bytes(400)
    source = make_source(data, kind, tmp_path)
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
@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_reader_blocks_cover_each_chunk_exactly(
    start: int, chunk_size: int, read_size: int, kind: str, tmp_path: pathlib.Path
) -> None:
    data = random_bytes(333)
    source = make_source(data, kind, tmp_path)
    chunks = [Chunk(offset, length) for offset, length in spans(start, len(data), chunk_size)]
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](0)
    blocks_out, blocks_in = trio.open_memory_channel[Block](2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, chunks_out, chunks)
        nursery.start_soon(
            partial(reader, chunks_in, blocks_out, source=source, read_size=read_size)
        )
        blocks = [block async for block in blocks_in]

    for block in blocks:
        # A file's blocks are spans to send with sendfile(), except the one ending the file,
        # which is read (and change-checked) before the server can complete the upload.
        assert isinstance(block.data, FileSpan) == (kind == "file" and block.end != len(data))
        assert block.chunk.offset <= block.offset
        assert block.end <= block.chunk.end  # never straddles into the next chunk
        assert 0 < len(block.data) <= read_size
        assert as_bytes(block.data) == data[block.offset : block.end]
    # In order, each chunk covered by consecutive blocks, nothing missing or repeated.
    assert [block.offset for block in blocks] == sorted(block.offset for block in blocks)
    for chunk in chunks:
        mine = [block for block in blocks if block.chunk == chunk]
        assert mine, f"no blocks for {chunk}"
        assert mine[0].offset == chunk.offset
        assert all(a.end == b.offset for a, b in itertools.pairwise(mine))
        assert b"".join(as_bytes(block.data) for block in mine) == data[chunk.offset : chunk.end]
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
    # The feed hands over each offset only once the reporter has handled the previous one, so
    # nothing queues up and every offset is handed on, in order.
    offsets = [5, 10, 12, 40, 41]
    seen: list[int] = []

    async def record(offset: int) -> None:
        seen.append(offset)

    acks_out, acks_in = trio.open_memory_channel[int](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(reporter, acks_in, on_acknowledged=record))
        with acks_out:
            for offset in offsets:
                await acks_out.send(offset)
                await trio.testing.wait_all_tasks_blocked()
    assert seen == offsets


async def test_reporter_hands_on_only_the_newest_of_queued_offsets() -> None:
    # Five offsets queued before the reporter runs: only the newest is worth reporting.
    seen: list[int] = []

    async def record(offset: int) -> None:
        seen.append(offset)

    acks_out, acks_in = trio.open_memory_channel[int](10)
    with acks_out:
        for offset in [1, 2, 3, 4, 5]:
            acks_out.send_nowait(offset)
    await reporter(acks_in, on_acknowledged=record)
    assert seen == [5]


async def test_reporter_delivers_the_last_offset_queued_while_the_callback_was_busy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[int] = []

    async def slow_record(offset: int) -> None:
        await trio.sleep(1)
        seen.append(offset)

    acks_out, acks_in = trio.open_memory_channel[int](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(reporter, acks_in, on_acknowledged=slow_record))
        with acks_out:
            await acks_out.send(1)
            await trio.testing.wait_all_tasks_blocked()  # the callback is busy with 1 ...
            acks_out.send_nowait(2)
            acks_out.send_nowait(3)  # ... and the channel is closed behind the last offset
    assert seen == [1, 3]


async def test_reporter_coalesces_while_a_slow_callback_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    offsets = list(range(1, 21))
    seen: list[tuple[float, int]] = []
    fed_until: list[float] = []

    async def slow_record(offset: int) -> None:
        seen.append((trio.current_time(), offset))
        await trio.sleep(1)

    async def feed_every_quarter_second(outbound: trio.MemorySendChannel[int]) -> None:
        with outbound:
            for offset in offsets:
                await outbound.send(offset)
                await trio.sleep(0.25)
        fed_until.append(trio.current_time())

    start = trio.current_time()
    acks_out, acks_in = trio.open_memory_channel[int](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(reporter, acks_in, on_acknowledged=slow_record))
        nursery.start_soon(feed_every_quarter_second, acks_out)
    handed = [offset for _, offset in seen]
    assert handed[0] == 1
    assert handed[-1] == offsets[-1]
    assert handed == sorted(set(handed))  # strictly increasing
    # One call per second of callback time, not one per offset ...
    assert len(handed) <= 1 + math.ceil(len(offsets) * 0.25)
    assert all(b - a >= 1 for (a, _), (b, _) in itertools.pairwise(seen))
    # ... and the feed never waited for the callback.
    assert fed_until == [start + 0.25 * len(offsets)]


async def test_reporter_propagates_callback_error() -> None:
    async def explode(offset: int) -> None:
        raise KeyError(offset)

    acks_out, acks_in = trio.open_memory_channel[int](0)
    with pytest.RaisesGroup(KeyError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(reporter, acks_in, on_acknowledged=explode))
            await feed(acks_out, [1])


async def test_reporter_failure_closes_its_inbound() -> None:
    async def explode(offset: int) -> None:
        raise KeyError(offset)

    acks_out, acks_in = trio.open_memory_channel[int](10)
    acks_out.send_nowait(1)
    with pytest.raises(KeyError):
        await reporter(acks_in, on_acknowledged=explode)
    # The sender learns at once that nobody listens any more.
    with pytest.raises(trio.BrokenResourceError):
        acks_out.send_nowait(2)


# --------------------------------------------------------------------------------------------
# sender
# --------------------------------------------------------------------------------------------


async def cursor_pieces(
    source: Source, chunk: Chunk, read_size: int, starts: list[int]
) -> list[list[BodyPart]]:
    """Feed `chunk`'s blocks (spans where the source has them) to a _BlockCursor; collect
    ``iter_bytes(start, chunk)`` for each of `starts` in turn, as the sender does after each
    PATCH."""
    blocks_out, blocks_in = trio.open_memory_channel[Block](100)
    for offset, length in spans(chunk.offset, chunk.end, read_size):
        data = source.span_at(offset, length) or source.read_at(offset, length)
        blocks_out.send_nowait(Block(chunk, offset, data))
    blocks_out.close()
    cursor = _BlockCursor(blocks_in, source, read_size)
    results = []
    for start in starts:
        assert await cursor.chunk_at(start) == chunk
        results.append([piece async for piece in cursor.iter_bytes(start, chunk.end)])
    return results


async def cursor_bytes(
    data: bytes,
    chunk: Chunk,
    read_size: int,
    starts: list[int],
    kind: str = "bytes",
    tmp_path: pathlib.Path | None = None,
) -> list[bytes]:
    source = make_source(data, kind, tmp_path)
    results = await cursor_pieces(source, chunk, read_size, starts)
    return [b"".join(as_bytes(piece) for piece in pieces) for pieces in results]


@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_cursor_rereads_bytes_it_already_streamed(kind: str, tmp_path: pathlib.Path) -> None:
    # The server kept 0..45 and 45..70 of what was streamed: the rest is read again.
    data = random_bytes(100)
    chunk = Chunk(0, 100)
    results = await cursor_bytes(data, chunk, 30, [0, 45, 70], kind, tmp_path)
    assert results == [data, data[45:], data[70:]]


@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_cursor_skips_stream_bytes_the_server_holds(
    kind: str, tmp_path: pathlib.Path
) -> None:
    # Nothing streamed yet, and the server already holds 45 bytes of the chunk: the stream's
    # first block is skipped and the second one trimmed to start at 45.
    data = random_bytes(100)
    chunk = Chunk(0, 100)
    assert await cursor_bytes(data, chunk, 30, [45], kind, tmp_path) == [data[45:]]


async def test_cursor_trims_a_file_span_to_a_span(tmp_path: pathlib.Path) -> None:
    # The trimmed block of a file stays a span (no read), starting where the server's offset is.
    data = random_bytes(100)
    [pieces] = await cursor_pieces(make_source(data, "file", tmp_path), Chunk(0, 100), 30, [45])
    first = pieces[0]
    assert isinstance(first, FileSpan)
    assert (first.file_offset, first.length) == (45, 15)
    assert first.read() == data[45:60]


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
                link=RetryingLink(Transport(client=client), url, (("Authorization", "Bearer t"),)),
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
    # a PATCH that stored nothing is no progress, so nothing is acknowledged for it
    assert acknowledged == [100, 200, 300]
    assert len(server.seen("PATCH")) == 5
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
        (404, UploadNotFoundError),
        (410, UploadNotFoundError),
        (413, UploadTooLargeError),
        (400, ResponseError),
        (401, ResponseError),
        (403, ResponseError),
        (415, ResponseError),
    ],
)
async def test_sender_raises_typed_error_for_fatal_status(status: int, error_type: type) -> None:
    server = FakeTusServer()
    server.script(status, {"Tus-Resumable": "1.0.0"}, b"no", method="PATCH")
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, random_bytes(300), chunk_size=100, read_size=30, algorithm="sha1")
    errors = [e for e in info.value.exceptions if isinstance(e, ResponseError)]
    assert len(errors) == 1
    assert type(errors[0]) is error_type
    assert errors[0].status_code == status
    assert errors[0].body == b"no"
    assert len(server.seen("PATCH")) == 1  # fatal: never tried again
    assert server.seen("HEAD") == []


@pytest.mark.parametrize("status", [409, 423, 429, 500, 502, 503, 504])
async def test_sender_retries_transient_status_after_head(
    status: int, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    data = random_bytes(300)
    server.script(status, {"Tus-Resumable": "1.0.0"}, b"busy", method="PATCH", times=2)
    url, acknowledged = await run_sender(server, data, chunk_size=100, read_size=30)
    assert server.data_of(url) == data
    assert acknowledged == [100, 200, 300]
    # each failure is followed by a HEAD that asks the server for its offset
    assert len(server.seen("HEAD")) == 2
    assert len(server.seen("PATCH")) == 5


async def test_sender_gives_up_after_the_retries(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeTusServer()
    server.script(503, {"Tus-Resumable": "1.0.0"}, b"down", method="PATCH", times=100)
    with pytest.raises(ExceptionGroup) as info:
        await run_sender(server, random_bytes(300), chunk_size=100, read_size=30)
    assert info.group_contains(ResponseError)
    assert len(server.seen("PATCH")) == 1 + 5  # the first try and DEFAULT_RETRY_POLICY's 5


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
    on_acknowledged: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[str, int, list[int]]:
    url = server.create(source.size)
    acknowledged: list[int] = []

    async def record(offset: int) -> None:
        acknowledged.append(offset)
        if on_acknowledged is not None:
            await on_acknowledged(offset)

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


async def test_pipeline_sender_never_waits_for_a_slow_callback() -> None:
    # The callback's first call blocks until the last PATCH is on its way: the sender must
    # carry on meanwhile, and the offsets that queued up are handed on as the newest one.
    data = random_bytes(1000, seed=9)
    last_patch_sent = trio.Event()
    calls: list[int] = []

    async def note_last_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and request.headers["upload-offset"] == "900":
            last_patch_sent.set()

    async def blocked_at_first(offset: int) -> None:
        calls.append(offset)
        await last_patch_sent.wait()

    server = FakeTusServer(before_request=note_last_patch)
    with trio.fail_after(10):
        url, final, acknowledged = await pipeline_upload(
            server, open_source(data), chunk_size=100, on_acknowledged=blocked_at_first
        )
    assert final == len(data)
    assert server.data_of(url) == data
    assert len(server.seen("PATCH")) == 10
    assert acknowledged == calls
    assert calls[0] == 100
    assert calls[-1] == len(data)
    assert calls == sorted(set(calls))
    assert len(calls) <= 3  # 100, perhaps 900, then 1000: not one call per PATCH


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
    async def explode(offset: int) -> None:
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

    async def record(offset: int) -> None:
        acknowledged.append(offset)

    try:
        with scope:
            await pipeline_upload(server, open_source(data), chunk_size=100, on_acknowledged=record)
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
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=256,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    offsets = [done for done, _ in progress]
    # The starting offset first, then acknowledged offsets (at most one per PATCH, perhaps
    # coalesced), strictly increasing, ending at the size.
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(DATA)
    assert 2 <= len(offsets) <= 1 + len(server.seen("PATCH"))
    # Each acknowledged offset is where the server said to go on: the next PATCH's offset.
    patches = server.seen("PATCH")
    assert set(offsets[1:]) <= {patch.offset for patch in patches[1:]} | {len(DATA)}
    assert {total for _, total in progress} == {len(DATA)}


async def test_upload_async_progress_of_a_journaled_file(tmp_path: pathlib.Path) -> None:
    # A path source is journaled: each acknowledged offset is written to the journal from a
    # worker thread, during which newer offsets may be coalesced.
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            path,
            server.endpoint,
            chunk_size=10,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    assert result.complete
    offsets = [done for done, _ in progress]
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(DATA)
    assert len(offsets) <= 1 + len(server.seen("PATCH")) == 101
    assert all(offset % 10 == 0 for offset in offsets)
    assert {total for _, total in progress} == {len(DATA)}


async def test_upload_async_progress_is_strictly_increasing_after_a_patch_without_progress() -> (
    None
):
    # The server answers the first two PATCHes with its unchanged offset 0: that is no
    # progress, and the offset 0 was reported already.
    server = FakeTusServer()
    server.script(204, {"Tus-Resumable": "1.0.0", "Upload-Offset": "0"}, method="PATCH", times=2)
    progress: list[int] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=250,
            on_progress=lambda done, total: progress.append(done),
            http_client=client,
        )
    assert result.complete
    assert progress[0] == 0
    assert progress[-1] == len(DATA)
    assert progress == sorted(set(progress))


async def test_upload_async_empty_source() -> None:
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
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
    assert progress == [(0, 0)]  # the starting offset, which is also the end


# ---- one-pass sources (deferred length) ----------------------------------------------------


def odd_pieces(data: bytes, sizes: tuple[int, ...] = (1, 7, 64, 3, 250)) -> Iterator[bytes]:
    """`data` in pieces of varying, odd sizes (cycling through `sizes`)."""
    offset = 0
    for size in itertools.cycle(sizes):
        if offset >= len(data):
            return
        yield data[offset : offset + size]
        offset += size


async def odd_pieces_async(data: bytes) -> AsyncIterator[bytes]:
    for piece in odd_pieces(data):
        await trio.lowlevel.checkpoint()
        yield piece


def check_deferred(server: FakeTusServer, url: str, data: bytes) -> None:
    """The upload was created with a deferred length, which only its last PATCH declared."""
    [post] = server.seen("POST")
    assert post.headers["upload-defer-length"] == "1"
    assert "upload-length" not in post.headers
    patches = server.seen("PATCH")
    assert patches, "a deferred upload needs PATCHes"
    assert patches[-1].headers["upload-length"] == str(len(data))
    assert patch_end(patches[-1]) == len(data)
    # Exactly the PATCHes carrying the last bytes declare it (a resend of them too).
    for patch in patches:
        if patch_end(patch) == len(data):
            assert patch.headers["upload-length"] == str(len(data))
        else:
            assert "upload-length" not in patch.headers
    assert server.length_of(url) == len(data)
    assert server.data_of(url) == data
    for patch in patches:
        assert patch.body == data[patch.offset : patch_end(patch)]


@pytest.mark.parametrize("size", [1000, 1007, 101], ids=["exact-multiple", "odd", "just-over"])
@pytest.mark.parametrize("kind", ["iterator", "async-iterator", "stream"])
async def test_upload_async_one_pass_source_defers_its_length(size: int, kind: str) -> None:
    data = random_bytes(size, seed=size)
    source: Any
    if kind == "iterator":
        source = odd_pieces(data)
    elif kind == "async-iterator":
        source = odd_pieces_async(data)
    else:
        source = _UnseekableStream(data)
    server = FakeTusServer()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            source, server.endpoint, chunk_size=100, http_client=client
        )
    assert result == tuspipe.UploadResult(
        url=result.url, size=size, offset=size, resumed_from=0, checksum=None
    )
    # OPTIONS first: an upload of deferred length needs the server to offer it.
    assert [r.method for r in server.requests][:2] == ["OPTIONS", "POST"]
    assert len(server.seen("PATCH")) == math.ceil(size / 100)
    check_deferred(server, result.url, data)


class _UnseekableStream(io.RawIOBase):
    """A binary stream that cannot seek (like a pipe), returning at most 37 bytes a read."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._position : self._position + min(len(buffer), 37)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)


@pytest.mark.parametrize("size", [0, 1, 99, 100], ids=["empty", "one-byte", "odd", "one-chunk"])
async def test_upload_async_one_pass_source_ending_in_the_first_chunk_has_a_known_length(
    size: int,
) -> None:
    data = random_bytes(size, seed=5)
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=100,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    # An ordinary upload: no OPTIONS, a POST with the length, nothing declared later.
    assert [r.method for r in server.requests] == ["POST"] + ["PATCH"] * (size > 0)
    assert server.requests[0].headers["upload-length"] == str(size)
    assert "upload-defer-length" not in server.requests[0].headers
    assert all("upload-length" not in patch.headers for patch in server.seen("PATCH"))
    assert server.data_of(result.url) == data
    assert (result.size, result.offset) == (size, size)
    assert {total for _, total in progress} == {size}


@pytest.mark.parametrize("algorithm", [None, "sha256"])
async def test_upload_async_one_pass_source_resends_from_the_retained_bytes(
    algorithm: str | None,
) -> None:
    # The server keeps half of each PATCH: every chunk is continued from the middle, from the
    # bytes the source still holds (a partial resend needs a fresh digest of them).
    data = random_bytes(2345, seed=6)
    server = FakeTusServer(store_fraction=0.5)
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=256,
            read_size=50,
            checksum=algorithm,
            http_client=client,
        )
    assert result.complete
    assert result.checksum == algorithm
    check_deferred(server, result.url, data)
    if algorithm is not None:
        assert all(patch.checksum_ok for patch in server.seen("PATCH"))


async def test_upload_async_one_pass_source_progress_has_no_total_until_the_end() -> None:
    data = random_bytes(1000, seed=7)
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=100,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    offsets = [done for done, _ in progress]
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert progress[0] == (0, None)  # the size is not known when the upload begins
    assert progress[-1] == (1000, 1000)  # ... and it is at the end
    totals = [total for _, total in progress]
    # once known, it stays known
    first_known = next(index for index, total in enumerate(totals) if total is not None)
    assert set(totals[first_known:]) == {1000}
    assert set(totals[:first_known]) == {None}


async def test_upload_async_one_pass_source_is_not_journaled(
    private_journal: pathlib.Path,
) -> None:
    server = FakeTusServer()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(random_bytes(500)), server.endpoint, chunk_size=100, http_client=client
        )
    assert result.complete
    assert Journal(private_journal).unfinished() == []
    assert not private_journal.exists() or decode_records(private_journal.read_bytes())[0] == []


async def test_upload_async_one_pass_source_holds_at_most_a_chunk_and_a_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At each PATCH, once everything else waits, the test looks at what the source holds.
    chunk_size, read_size = 100, 10
    data = random_bytes(3000, seed=8)
    opened: list[Source] = []
    held: list[int] = []

    def spy(source: Any, **options: Any) -> Source:
        opened.append(open_source(source, **options))
        return opened[-1]

    async def measure(request: httpx.Request) -> None:
        if request.method == "PATCH":
            await trio.testing.wait_all_tasks_blocked()
            [source] = opened
            held.append(vars(source)["_filled"] - vars(source)["_floor"])

    monkeypatch.setattr("tuspipe._upload.open_source", spy)
    server = FakeTusServer(before_request=measure)
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data, (1, 3, 5)),
            server.endpoint,
            chunk_size=chunk_size,
            read_size=read_size,
            http_client=client,
        )
    assert result.complete
    assert len(held) == 30
    # One chunk and one read, and an item may overshoot a read (by 4 bytes at most here).
    assert max(held) <= chunk_size + read_size + 4
    assert max(held) > chunk_size  # it does read ahead of the chunk being sent
    check_deferred(server, result.url, data)


@pytest.mark.parametrize("piece", [str, list])
async def test_upload_async_iterator_of_non_bytes_is_usage_error(piece: type) -> None:
    server = FakeTusServer()
    items = [b"ok", piece("not bytes")]
    async with server.client() as client:
        with pytest.raises(UsageError, match=f"yielded a {piece.__name__}; it must yield bytes"):
            await tuspipe.upload_async(iter(items), server.endpoint, http_client=client)
    assert server.requests == []


@pytest.mark.parametrize(
    "options",
    [{"stop_at": 100}, {"upload_url": "http://tus.test/files/u9"}, {"resume_key": "k"}],
    ids=["stop_at", "upload_url", "resume_key"],
)
async def test_upload_async_one_pass_source_refuses_what_needs_a_second_reading(
    options: dict[str, Any],
) -> None:
    server = FakeTusServer()
    given: dict[str, Any] = {"url": server.endpoint, **options}
    if "upload_url" in options:
        given["url"] = None
    async with server.client() as client:
        with pytest.raises(UsageError, match=r"stop_at=|upload_url=|resume_key="):
            await tuspipe.upload_async(
                odd_pieces(random_bytes(500)), chunk_size=100, http_client=client, **given
            )
    assert server.requests == []


async def test_upload_async_one_pass_source_needs_creation_defer_length() -> None:
    server = FakeTusServer(extensions=("creation", "termination"))
    async with server.client() as client:
        with pytest.raises(UnsupportedFeatureError, match="creation-defer-length"):
            await tuspipe.upload_async(
                odd_pieces(random_bytes(500)), server.endpoint, chunk_size=100, http_client=client
            )
    assert [r.method for r in server.requests] == ["OPTIONS"]


@pytest.mark.parametrize("algorithm", ["sha1", "auto"])
async def test_upload_async_one_pass_source_with_checksums(algorithm: str) -> None:
    # The checksum's OPTIONS answers the deferred-length question too: it is asked once.
    data = random_bytes(777, seed=9)
    server = FakeTusServer(checksum_algorithms=("sha1",))
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=100,
            checksum=algorithm,
            http_client=client,
        )
    assert result.checksum == "sha1"
    assert [r.method for r in server.requests].count("OPTIONS") == 1
    assert all(patch.checksum_ok for patch in server.seen("PATCH"))
    check_deferred(server, result.url, data)


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
    assert progress[0] == already  # the starting offset, before any PATCH
    assert progress[1] > already
    assert progress == sorted(set(progress))
    assert progress[-1] == len(DATA)


async def test_upload_async_resume_of_complete_upload_sends_nothing() -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA)
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            upload_url=url,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    assert [r.method for r in server.requests] == ["HEAD"]
    assert result.resumed_from == result.offset == len(DATA)
    assert result.complete
    assert progress == [(len(DATA), len(DATA))]


@pytest.mark.parametrize("length", [len(DATA) - 1, len(DATA) + 1, None])
async def test_upload_async_resume_of_a_different_upload(length: int | None) -> None:
    server = FakeTusServer()
    url = server.create(length)
    progress: list[int] = []
    async with server.client() as client:
        with pytest.raises(UsageError, match="not an upload of this source") as info:
            await tuspipe.upload_async(
                DATA,
                upload_url=url,
                on_progress=lambda done, total: progress.append(done),
                http_client=client,
            )
    assert not isinstance(info.value, ResponseError)
    assert str(length) in str(info.value)
    assert [r.method for r in server.requests] == ["HEAD"]
    assert progress == []
    assert server.data_of(url) == b""


@pytest.mark.parametrize("status", [404, 410, 403])
async def test_upload_async_resume_of_a_missing_upload(
    status: int, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.endpoint + "gone"
    if status != 404:
        server.script(status, {"Tus-Resumable": "1.0.0"}, method="HEAD")
    start = trio.current_time()
    async with server.client() as client:
        with pytest.raises(UploadNotFoundError) as info:
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert info.value.status_code == status
    # Not worth another try: one HEAD, no waiting, nothing else.
    assert [r.method for r in server.requests] == ["HEAD"]
    assert trio.current_time() == start


def head_is_transient(status: int | None) -> Callable[[FakeTusServer], None]:
    """Make the server's next two HEADs fail: with `status`, or as network errors (None)."""

    def arrange(server: FakeTusServer) -> None:
        if status is not None:
            server.script(status, {"Tus-Resumable": "1.0.0"}, b"busy", method="HEAD", times=2)
            return
        failures = 0

        async def refuse_two_heads(request: httpx.Request) -> None:
            nonlocal failures
            if request.method == "HEAD" and failures < 2:
                failures += 1
                raise httpx.ConnectError("connection refused", request=request)

        server.before_request = refuse_two_heads

    return arrange


@pytest.mark.parametrize("status", [503, 500, 502, 504, 408, 423, 429, None])
async def test_upload_async_head_is_retried_on_transient_failures(
    status: int | None, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    head_is_transient(status)(server)
    progress: list[int] = []
    start = trio.current_time()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            upload_url=url,
            chunk_size=400,
            on_progress=lambda done, total: progress.append(done),
            http_client=client,
        )
    elapsed = trio.current_time() - start
    assert result.resumed_from == 300
    assert result.complete
    assert server.data_of(url) == DATA
    methods = [r.method for r in server.requests]
    assert "POST" not in methods
    if status is not None:
        assert methods[:3] == ["HEAD", "HEAD", "HEAD"]
    assert methods[-2:] == ["PATCH", "PATCH"]
    assert progress == [300, 700, 1000]
    # Two waits of the default policy: [0.25, 0.5] then [0.5, 1] seconds, in virtual time.
    assert 0.75 <= elapsed <= 1.5


async def test_upload_async_head_honours_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    server.script(429, {"Tus-Resumable": "1.0.0", "Retry-After": "7"}, method="HEAD")
    start = trio.current_time()
    async with server.client() as client:
        result = await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert trio.current_time() - start == pytest.approx(7)
    assert result.resumed_from == 300
    assert server.data_of(url) == DATA


async def test_upload_async_head_gives_up_after_the_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    server.script(503, {"Tus-Resumable": "1.0.0"}, b"down", method="HEAD", times=10)
    start = trio.current_time()
    async with server.client() as client:
        with pytest.raises(ResponseError) as info:
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    elapsed = trio.current_time() - start
    assert info.value.status_code == 503
    assert info.value.body == b"down"
    # The default policy: 5 retries after the first try, waits of [0.5, 1] x 0.5 * 2**n.
    assert [r.method for r in server.requests] == ["HEAD"] * 6
    assert sum(0.25 * 2**n for n in range(5)) <= elapsed <= sum(0.5 * 2**n for n in range(5))
    assert server.data_of(url) == DATA[:300]


@pytest.mark.parametrize("status", [400, 401])
async def test_upload_async_head_refusal_is_not_retried(
    status: int, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    server.script(status, {"Tus-Resumable": "1.0.0"}, method="HEAD", times=2)
    start = trio.current_time()
    async with server.client() as client:
        with pytest.raises(ResponseError) as info:
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert info.value.status_code == status
    assert [r.method for r in server.requests] == ["HEAD"]
    assert trio.current_time() == start


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
    ("on_upload_url-not-callable", {"on_upload_url": "print"}),
    ("journal=3", {"journal": 3}),
    ("journal=bytes", {"journal": b"/tmp/journal"}),
    ("resume_key=''", {"resume_key": ""}),
    ("resume_key=5", {"resume_key": 5}),
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


# --------------------------------------------------------------------------------------------
# the journal, through the api (each test journals into its own file: conftest's
# `private_journal` sets TUSPIPE_JOURNAL)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


async def upload_to(server: FakeTusServer, source: Any, **kwargs: Any) -> tuspipe.UploadResult:
    """``upload_async(source, server.endpoint, chunk_size=100, **kwargs)`` through `server`."""
    arguments: dict[str, Any] = {"chunk_size": 100, **kwargs}
    async with server.client() as client:
        return await tuspipe.upload_async(source, server.endpoint, http_client=client, **arguments)


def methods_since(server: FakeTusServer, start: int) -> list[str]:
    return [request.method for request in server.requests[start:]]


def unfinished(path: pathlib.Path) -> list[JournalEntry]:
    return Journal(path).unfinished()


async def test_journal_resumes_a_file_upload_to_the_same_endpoint(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(
        server, data_file, stop_at=300, headers={"Authorization": "Bearer s3cret"}
    )
    assert (first.offset, first.resumed_from) == (300, 0)
    [entry] = unfinished(private_journal)
    assert (entry.url, entry.size) == (first.url, len(DATA))
    assert entry.offset in {0, 100, 200, 300}  # a hint: the server is asked before resuming
    assert entry.endpoint == server.endpoint
    assert entry.source == str(data_file)
    assert b"s3cret" not in private_journal.read_bytes()  # headers are never journaled

    before = len(server.requests)
    progress: list[int] = []
    urls: list[str] = []
    second = await upload_to(
        server,
        data_file,
        on_progress=lambda done, total: progress.append(done),
        on_upload_url=urls.append,
    )
    assert second.url == first.url
    assert second.resumed_from == 300
    assert second.complete
    assert server.data_of(second.url) == DATA
    # The server is asked where the upload stands; nothing is created.
    assert methods_since(server, before) == ["HEAD"] + ["PATCH"] * 7
    assert [patch.offset for patch in server.seen("PATCH")[3:]] == list(range(300, 1000, 100))
    assert urls == [first.url]
    assert progress[0] == 300
    assert progress[-1] == len(DATA)
    assert unfinished(private_journal) == []  # finished: never to be resumed

    before = len(server.requests)
    third = await upload_to(server, data_file)
    assert third.url != first.url
    assert third.resumed_from == 0
    assert third.complete
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert len(server.seen("POST")) == 2
    assert server.data_of(third.url) == DATA


async def test_journal_resumes_a_cancelled_upload(data_file: pathlib.Path) -> None:
    scope = trio.CancelScope()

    async def cancel_on_third_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and len(server.seen("PATCH")) == 2:
            scope.cancel()
            await trio.lowlevel.checkpoint()

    server = FakeTusServer(before_request=cancel_on_third_patch)
    with scope:
        await upload_to(server, data_file)
    assert scope.cancelled_caught
    url = server.endpoint + "u1"
    assert server.data_of(url) == DATA[:200]

    server.before_request = None
    before = len(server.requests)
    result = await upload_to(server, data_file)
    assert result.url == url
    assert result.resumed_from == 200
    assert methods_since(server, before) == ["HEAD"] + ["PATCH"] * 8
    assert server.data_of(url) == DATA


async def test_journal_resume_false_makes_a_new_upload(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    before = len(server.requests)
    second = await upload_to(server, data_file, resume=False)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert second.complete
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert server.data_of(first.url) == DATA[:300]  # left alone
    assert server.data_of(second.url) == DATA
    assert unfinished(private_journal) == []


async def test_journal_follows_the_servers_offset_not_its_own(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    # The journal may be ahead of the server or behind it; the server's offset is what counts.
    Journal(private_journal).record_offset(unfinished(private_journal)[0].key, 300)
    server.set_data(first.url, DATA[:50])  # the server lost what it had not made durable
    result = await upload_to(server, data_file)
    assert result.url == first.url
    assert result.resumed_from == 50
    assert server.seen("PATCH")[3].offset == 50
    assert server.data_of(first.url) == DATA


async def test_journaled_upload_the_server_completed_is_finished_without_patches(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    # The last PATCH arrived but the process died before journaling it.
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    server.set_data(first.url, DATA)
    before = len(server.requests)
    progress: list[tuple[int, int | None]] = []
    result = await upload_to(
        server, data_file, on_progress=lambda done, total: progress.append((done, total))
    )
    assert methods_since(server, before) == ["HEAD"]
    assert result.url == first.url
    assert result.resumed_from == result.offset == len(DATA)
    assert progress == [(len(DATA), len(DATA))]
    assert unfinished(private_journal) == []


async def test_journal_records_acknowledged_offsets_a_few_times_a_second(
    data_file: pathlib.Path, private_journal: pathlib.Path, mock_clock: trio.testing.MockClock
) -> None:
    # Virtual time stands still unless the test moves it: with no time passing, only the
    # first acknowledged offset is journaled ...
    server = FakeTusServer()
    await upload_to(server, data_file, stop_at=500)
    acks = [r for r in decode_records(private_journal.read_bytes())[0] if r["op"] == "ack"]
    assert len(acks) == 1
    assert 100 <= acks[0]["offset"] <= 500
    assert unfinished(private_journal)[0].offset == acks[0]["offset"]

    # ... and with JOURNAL_WRITE_INTERVAL passing before each, every offset handed on is,
    # the last one included.
    progress: list[int] = []

    def time_passes(done: int, total: int) -> None:
        progress.append(done)
        mock_clock.jump(JOURNAL_WRITE_INTERVAL)

    await upload_to(server, data_file, stop_at=800, on_progress=time_passes)
    acks = [r for r in decode_records(private_journal.read_bytes())[0] if r["op"] == "ack"]
    assert [ack["offset"] for ack in acks[1:]] == progress[1:]  # not the starting offset
    assert progress[0] == 500
    assert progress[-1] == 800
    assert unfinished(private_journal)[0].offset == 800


def _vanish(server: FakeTusServer, url: str) -> None:
    del server.uploads[url.rsplit("/", 1)[1]]


@pytest.mark.parametrize("answer", ["deleted", 410, 403])
async def test_journaled_upload_the_server_no_longer_has_is_dropped(
    answer: str | int, data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    if answer == "deleted":
        _vanish(server, first.url)
    else:
        server.script(int(answer), {"Tus-Resumable": "1.0.0"}, method="HEAD")
    before = len(server.requests)
    second = await upload_to(server, data_file, stop_at=500)
    assert methods_since(server, before) == ["HEAD", "POST"] + ["PATCH"] * 5
    assert server.requests[before].url == first.url
    assert second.url != first.url
    assert second.resumed_from == 0
    # The journal now remembers the new upload, and only it.
    assert [e.url for e in unfinished(private_journal)] == [second.url]


@pytest.mark.parametrize("length", [len(DATA) + 1, len(DATA) - 1, None])
async def test_journaled_upload_of_another_length_is_not_resumed(
    length: int | None, data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    server.set_length(first.url, length)
    before = len(server.requests)
    second = await upload_to(server, data_file)
    assert methods_since(server, before) == ["HEAD", "POST"] + ["PATCH"] * 10
    assert second.url != first.url
    assert second.resumed_from == 0
    assert server.data_of(second.url) == DATA
    assert server.data_of(first.url) == DATA[:300]  # nothing was sent to the other upload
    assert all(patch.url != first.url for patch in server.seen("PATCH")[3:])
    assert unfinished(private_journal) == []


async def test_journaled_upload_of_a_file_changed_since_is_not_resumed(
    data_file: pathlib.Path,
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    changed = DATA[:-1] + bytes([DATA[-1] ^ 0xFF])
    info = data_file.stat()
    data_file.write_bytes(changed)  # same size, same inode
    os.utime(data_file, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    before = len(server.requests)
    second = await upload_to(server, data_file)
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert second.url != first.url
    assert server.data_of(second.url) == changed


async def test_journaled_upload_is_not_resumed_on_another_endpoint(
    data_file: pathlib.Path,
) -> None:
    here = FakeTusServer()
    there = FakeTusServer(endpoint="http://elsewhere.test/files/")
    first = await upload_to(here, data_file, stop_at=300)
    other = await upload_to(there, data_file)
    assert other.resumed_from == 0
    assert [r.method for r in there.requests][:1] == ["POST"]
    assert len(here.requests) == 4  # the first endpoint was not asked
    again = await upload_to(here, data_file)
    assert again.url == first.url
    assert again.resumed_from == 300


async def test_expired_journaled_upload_is_not_asked_about(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer(upload_expires="Mon, 01 Jan 2001 00:00:00 GMT")
    first = await upload_to(server, data_file, stop_at=300)
    assert unfinished(private_journal)[0].expires == "Mon, 01 Jan 2001 00:00:00 GMT"
    before = len(server.requests)
    second = await upload_to(server, data_file)
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert second.url != first.url


async def test_unexpired_journaled_upload_is_resumed(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer(upload_expires="Fri, 01 Jan 2100 00:00:00 GMT")
    first = await upload_to(server, data_file, stop_at=300)
    assert unfinished(private_journal)[0].expires == "Fri, 01 Jan 2100 00:00:00 GMT"
    second = await upload_to(server, data_file)
    assert second.url == first.url
    assert second.resumed_from == 300


@pytest.mark.parametrize("status", [503, 423, None])
async def test_journaled_upload_head_is_retried(
    status: int | None, data_file: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    head_is_transient(status)(server)
    start = trio.current_time()
    second = await upload_to(server, data_file)
    assert 0.75 <= trio.current_time() - start <= 1.5
    assert second.url == first.url
    assert second.resumed_from == 300
    assert len(server.seen("POST")) == 1
    assert server.data_of(first.url) == DATA


async def test_journaled_upload_resumes_with_a_checksum(data_file: pathlib.Path) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300, checksum="sha256")
    before = len(server.requests)
    second = await upload_to(server, data_file, checksum="sha256")
    assert methods_since(server, before) == ["OPTIONS", "HEAD"] + ["PATCH"] * 7
    assert second.url == first.url
    assert second.checksum == "sha256"
    assert all(patch.checksum_ok for patch in server.seen("PATCH"))
    assert server.data_of(first.url) == DATA


async def test_upload_url_does_not_consult_the_journal(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    journaled = await upload_to(server, data_file, stop_at=300)
    other = server.create(len(DATA), DATA[:500])
    before = len(server.requests)
    journal_before = private_journal.read_bytes()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            data_file, upload_url=other, chunk_size=100, http_client=client
        )
    assert result.url == other
    assert result.resumed_from == 500
    assert [r.url for r in server.requests[before:]] == [other] * 6
    # The journal was neither asked nor changed: its upload is still there to be resumed.
    assert private_journal.read_bytes() == journal_before
    assert [e.url for e in unfinished(private_journal)] == [journaled.url]


async def test_bytes_are_not_journaled_without_a_resume_key(
    private_journal: pathlib.Path,
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, DATA, stop_at=300)
    second = await upload_to(server, DATA)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert len(server.seen("POST")) == 2
    assert "HEAD" not in [r.method for r in server.requests]
    assert not private_journal.exists()


async def test_bytes_with_a_resume_key_are_resumed(private_journal: pathlib.Path) -> None:
    server = FakeTusServer()
    first = await upload_to(server, DATA, stop_at=300, resume_key="backup-42")
    [entry] = unfinished(private_journal)
    assert (entry.url, entry.source) == (first.url, "<bytes>")

    # Another key is another source.
    before = len(server.requests)
    other = await upload_to(server, DATA, stop_at=100, resume_key="backup-43")
    assert methods_since(server, before) == ["POST", "PATCH"]
    # The same key over other bytes (of the same size) is not the same source either.
    changed = DATA[:-1] + bytes([DATA[-1] ^ 1])
    before = len(server.requests)
    third = await upload_to(server, changed, stop_at=100, resume_key="backup-42")
    assert methods_since(server, before) == ["POST", "PATCH"]
    assert len({first.url, other.url, third.url}) == 3

    before = len(server.requests)
    again = await upload_to(server, DATA, resume_key="backup-42")
    assert methods_since(server, before) == ["HEAD"] + ["PATCH"] * 7
    assert again.url == first.url
    assert again.resumed_from == 300
    assert server.data_of(first.url) == DATA


async def test_stream_with_a_resume_key_is_resumed() -> None:
    server = FakeTusServer()
    first = await upload_to(server, io.BytesIO(DATA), stop_at=300)
    second = await upload_to(server, io.BytesIO(DATA), stop_at=300)
    assert second.url != first.url  # a stream has no name of its own
    third = await upload_to(server, io.BytesIO(DATA), stop_at=300, resume_key="s")
    fourth = await upload_to(server, io.BytesIO(DATA), resume_key="s")
    assert fourth.url == third.url
    assert fourth.resumed_from == 300
    assert server.data_of(third.url) == DATA


@pytest.mark.parametrize("journal", [None, False])
async def test_journal_off_writes_nothing(
    journal: bool | None, data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300, journal=journal)
    second = await upload_to(server, data_file, journal=journal)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert len(server.seen("POST")) == 2
    assert not private_journal.exists()
    assert not private_journal.with_name("journal.lock").exists()


@pytest.mark.parametrize("as_object", [False, True], ids=["path", "Journal"])
async def test_journal_at_a_path_of_ones_own(
    as_object: bool,
    data_file: pathlib.Path,
    private_journal: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    mine = tmp_path / "state" / "uploads.journal"
    option: str | Journal = Journal(mine) if as_object else str(mine)
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300, journal=option)
    assert [entry.url for entry in unfinished(mine)] == [first.url]
    assert not private_journal.exists()
    # The default journal knows nothing of it ...
    other = await upload_to(server, data_file, stop_at=100)
    assert other.url != first.url
    # ... and the same journal resumes it.
    again = await upload_to(server, data_file, journal=option)
    assert again.url == first.url
    assert again.resumed_from == 300


def test_upload_blocking_resumes_from_the_journal(data_file: pathlib.Path) -> None:
    server = FakeTusServer()

    def blocking_upload(**kwargs: Any) -> tuspipe.UploadResult:
        client = server.client()
        try:
            return tuspipe.upload(
                data_file, server.endpoint, chunk_size=100, http_client=client, **kwargs
            )
        finally:
            trio.run(client.aclose)

    first = blocking_upload(stop_at=300)
    second = blocking_upload()
    assert second.url == first.url
    assert second.resumed_from == 300
    assert server.data_of(first.url) == DATA


async def test_checksummer_notices_a_file_that_shrank(tmp_path: pathlib.Path) -> None:
    source = make_source(random_bytes(400), "file", tmp_path)
    os.truncate(tmp_path / "source.bin", 150)
    with pytest.raises(tuspipe.SourceChangedError):
        await digest_range(source, 100, 100, "sha1", 30)


async def test_checksummer_hashes_waiting_chunks_in_one_thread_trip(
    thread_calls: list[object],
) -> None:
    data = random_bytes(4000)
    chunks = [Chunk(offset, 100) for offset in range(0, 4000, 100)]
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](len(chunks))
    for chunk in chunks:
        chunks_out.send_nowait(chunk)  # all waiting before the checksummer starts
    chunks_out.close()
    trips = thread_calls
    hashed_out, hashed_in = trio.open_memory_channel[Chunk](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                checksummer,
                chunks_in,
                hashed_out,
                source=open_source(data),
                algorithm="sha1",
                read_size=64,
            )
        )
        hashed = [chunk async for chunk in hashed_in]
    # In order, each with its own digest, in far fewer worker-thread trips than chunks.
    assert [chunk.offset for chunk in hashed] == [chunk.offset for chunk in chunks]
    for chunk in hashed:
        assert chunk.checksum == expected_checksum("sha1", data[chunk.offset : chunk.end])
    assert 1 <= len(trips) <= 2
