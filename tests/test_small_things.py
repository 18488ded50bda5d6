"""Small things fast (issue 15): a stream of many small items is gathered into blocks before
it enters the pipeline, so an item costs a list append, not a worker-thread trip and a trip
through the channels. Against the real Node server, stored bytes compared by sha256; the
speed itself is the benchmark harness's to measure (benchmarks/)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

import pytest

import tuspipe
from tests.conftest import TusServer

ITEMS = 20_000
LINE = b"x" * 32 + b"\n"  # 33 bytes, like a line of a log


def lines() -> Iterator[bytes]:
    for index in range(ITEMS):
        yield b"%032d\n" % index


async def async_lines() -> AsyncIterator[bytes]:
    for line in lines():
        yield line


def expected_sha256() -> str:
    return hashlib.sha256(b"".join(lines())).hexdigest()


@pytest.mark.parametrize("kind", ["iterator", "async iterator"])
async def test_a_stream_of_small_items_goes_in_blocks(
    kind: str, node_server: TusServer, thread_calls: list[object]
) -> None:
    read_size = 64 * 1024
    source = lines() if kind == "iterator" else async_lines()
    result = await tuspipe.upload_async(
        source, node_server.url, journal=None, read_size=read_size, chunk_size=256 * 1024
    )
    assert result.size == ITEMS * len(LINE)
    assert node_server.stored_sha256(result.url) == expected_sha256()
    pulls = [call for call in thread_calls if getattr(call, "__name__", "") == "next_batch"]
    if kind == "iterator":
        # One worker-thread trip per block of read_size bytes (plus the one that finds the
        # end), not one per item.
        assert 0 < len(pulls) <= result.size // read_size + 3
    else:
        assert pulls == []  # an async iterator is read on the loop


async def test_an_item_larger_than_a_block_arrives_whole(node_server: TusServer) -> None:
    items = [b"a" * 10, b"b" * 300_000, b"c" * 7]
    result = await tuspipe.upload_async(
        iter(items), node_server.url, journal=None, read_size=64 * 1024, chunk_size=128 * 1024
    )
    assert node_server.stored_path(result.url).read_bytes() == b"".join(items)


async def test_a_failing_generator_still_fails_the_upload(node_server: TusServer) -> None:
    def failing() -> Iterator[bytes]:
        yield from (LINE for _ in range(5000))
        raise OSError("the producer broke")

    with pytest.raises(OSError, match="the producer broke"):
        await tuspipe.upload_async(failing(), node_server.url, journal=None)
