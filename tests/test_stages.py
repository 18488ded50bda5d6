"""Each stage alone (chunker, checksummer, reader, reporter, sender), on hand-made channels.

The sender talks to the in-memory server of ``fakes.py`` through ``httpx.MockTransport``; no
network. The stages wired together are ``test_pipeline.py``'s subject.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import pathlib
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tests.fakes import FakeTusServer, reference_digest
from tests.helpers import patch_end, random_bytes
from tuspipe import (
    ChecksumMismatchError,
    ProtocolError,
    ResponseError,
    SourceChangedError,
    UploadNotFoundError,
    UploadTooLargeError,
)
from tuspipe._blocks import Block, BlockCursor, Chunk, block_spans
from tuspipe._body import BodyPart, FileSpan
from tuspipe._protocol import CHECKSUM_ALGORITHMS
from tuspipe._retry import RetryingLink
from tuspipe._source import Source, open_source
from tuspipe._stages import (
    MAX_CHECKSUM_RESENDS,
    MAX_PATCHES_WITHOUT_PROGRESS,
    checksummer,
    chunker,
    digest_range,
    reader,
    reporter,
    sender,
)
from tuspipe._transport import Transport


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


def spans(start: int, stop: int, size: int) -> Iterator[tuple[int, int]]:
    """The test's own cutting of [start, stop) into (offset, length) pieces of at most `size`."""
    offset = start
    while offset < stop:
        yield offset, min(size, stop - offset)
        offset += size


def expected_checksum(algorithm: str, data: bytes) -> str:
    digest = reference_digest(algorithm, data)
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


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


async def wait_until_quiet() -> None:
    """Return once every task waits and no worker thread runs: nothing more happens until
    the test acts. (A one-pass iterator is pulled in a worker thread, which
    ``wait_all_tasks_blocked`` alone does not wait for: a task waiting on a thread counts as
    blocked.)"""
    threads = trio.to_thread.current_default_thread_limiter()
    await trio.testing.wait_all_tasks_blocked()
    while threads.borrowed_tokens:
        # A thread's result reaches trio with its token handed back, in one step of the
        # trio thread: no token out and no task to run means no pull is under way.
        await trio.sleep(0.001)
        await trio.testing.wait_all_tasks_blocked()


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
            await wait_until_quiet()
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
@pytest.mark.parametrize("span_size", [None, 100])
async def test_reader_blocks_cover_each_chunk_exactly(
    start: int,
    chunk_size: int,
    read_size: int,
    kind: str,
    span_size: int | None,
    tmp_path: pathlib.Path,
) -> None:
    data = random_bytes(333)
    source = make_source(data, kind, tmp_path)
    chunks = [Chunk(offset, length) for offset, length in spans(start, len(data), chunk_size)]
    chunks_out, chunks_in = trio.open_memory_channel[Chunk](0)
    blocks_out, blocks_in = trio.open_memory_channel[Block](2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, chunks_out, chunks)
        nursery.start_soon(
            partial(
                reader,
                chunks_in,
                blocks_out,
                source=source,
                read_size=read_size,
                span_size=span_size,
            )
        )
        blocks = [block async for block in blocks_in]

    for block in blocks:
        # A file's blocks are spans to send with sendfile(), except the one ending the file,
        # which is read (and change-checked) before the server can complete the upload.
        assert isinstance(block.data, FileSpan) == (kind == "file" and block.end != len(data))
        assert block.chunk.offset <= block.offset
        assert block.end <= block.chunk.end  # never straddles into the next chunk
        # Bytes read into memory stay within read_size; spans (no memory) within span_size.
        largest = read_size
        if isinstance(block.data, FileSpan) and span_size is not None:
            largest = max(read_size, span_size)
        assert 0 < len(block.data) <= largest
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
    if kind == "file" and span_size is not None and span_size > read_size:
        # As few blocks as those bounds allow: each chunk's spans are full but its last.
        for chunk in chunks:
            mine = [block for block in blocks if block.chunk == chunk]
            spans_of_chunk = [b for b in mine if isinstance(b.data, FileSpan)]
            assert all(len(b.data) == span_size for b in spans_of_chunk[:-1])
            if chunk.end == len(data) and chunk.length > read_size:
                assert len(mine[-1].data) == read_size  # the read that ends the file


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
    """Feed `chunk`'s blocks (spans where the source has them) to a BlockCursor; collect
    ``iter_bytes(start, chunk)`` for each of `starts` in turn, as the sender does after each
    PATCH."""
    blocks_out, blocks_in = trio.open_memory_channel[Block](100)
    for offset, length in spans(chunk.offset, chunk.end, read_size):
        data = source.span_at(offset, length) or source.read_at(offset, length)
        blocks_out.send_nowait(Block(chunk, offset, data))
    blocks_out.close()
    cursor = BlockCursor(blocks_in, source, read_size)
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


async def test_cursor_rereads_a_file_in_spans_of_span_size(tmp_path: pathlib.Path) -> None:
    # A file streamed in spans of 40 (read_size 10) and partly stored: the rest goes again in
    # spans of 40 too, and the file's last 10 bytes are read, as the reader does it.
    data = random_bytes(100)
    source = make_source(data, "file", tmp_path)
    chunk = Chunk(0, 100)
    blocks_out, blocks_in = trio.open_memory_channel[Block](100)
    for offset, length in block_spans(source, 0, 100, 10, 40):
        part = source.span_at(offset, length) if offset + length < 100 else b""
        blocks_out.send_nowait(Block(chunk, offset, part or source.read_at(offset, length)))
    blocks_out.close()
    cursor = BlockCursor(blocks_in, source, 10, 40)
    assert await cursor.chunk_at(0) == chunk
    first = [piece async for piece in cursor.iter_bytes(0, 100)]
    again = [piece async for piece in cursor.iter_bytes(20, 100)]
    assert [len(piece) for piece in first] == [40, 40, 10, 10]
    assert [len(piece) for piece in again] == [40, 30, 10]
    for pieces in (first, again):
        assert [isinstance(piece, FileSpan) for piece in pieces[-2:]] == [True, False]
    assert b"".join(map(as_bytes, first)) == data
    assert b"".join(map(as_bytes, again)) == data[20:]


def test_block_spans_are_read_size_for_what_is_read() -> None:
    # Bytes in memory (not a file), a span size no larger than read_size, or a range that fits
    # one read: blocks of read_size, as before spans existed.
    source = open_source(bytes(100))
    assert list(block_spans(source, 0, 100, 30, 60)) == list(spans(0, 100, 30))
    assert list(block_spans(source, 5, 100, 30, None)) == list(spans(5, 100, 30))


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
