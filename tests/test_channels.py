"""Metered channels: who waited on whom, as UploadResult.channel_stats reports it.

The channels time their waits with trio's clock: under the autojumping ``MockClock`` a pause
is virtual, so the waits are known exactly.
"""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

import tuspipe
from tests.conftest import MakeFile, TusServer
from tuspipe._channels import open_metered_channel

PAUSE = 1.0  # (virtual seconds: exact in binary, and free)


async def test_a_slow_consumer_shows_as_the_producers_send_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive, stats = open_metered_channel(int, "numbers", 0)
    received = []

    async def consume() -> None:
        with receive:
            async for value in receive:
                received.append(value)
                await trio.sleep(PAUSE)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        with send:
            for value in range(4):
                await send.send(value)
    assert received == [0, 1, 2, 3]
    assert stats.items == 4
    # The producer waited out three of the consumer's pauses (the first value was taken at
    # once); the consumer always found a value waiting.
    assert stats.send_wait == 3 * PAUSE
    assert stats.receive_wait == 0


async def test_a_slow_producer_shows_as_the_consumers_receive_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive, stats = open_metered_channel(str, "words", 4)

    async def produce() -> None:
        with send:
            for word in ("a", "b", "c"):
                await trio.sleep(PAUSE)
                await send.send(word)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        with receive:
            words = [word async for word in receive]
    assert words == ["a", "b", "c"]
    assert stats.receive_wait == 3 * PAUSE
    assert stats.send_wait == 0  # a roomy buffer never made it wait


async def test_closing_the_receiver_breaks_the_sender_as_trio_does() -> None:
    send, receive, _ = open_metered_channel(int, "numbers", 1)
    receive.close()
    with pytest.raises(trio.BrokenResourceError):
        await send.send(1)


async def test_a_cancelled_send_delivers_nothing() -> None:
    send, receive, stats = open_metered_channel(int, "numbers", 1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await send.send(1)
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()
    assert stats.items == 0


def test_an_upload_reports_its_channels(asgitus_server: TusServer, make_file: MakeFile) -> None:
    size = 5 * 1024 * 1024 + 3
    chunk_size, read_size = 2 * 1024 * 1024, 512 * 1024
    result = tuspipe.upload(
        make_file(size),
        asgitus_server.url,
        chunk_size=chunk_size,
        read_size=read_size,
        checksum="sha1",
        journal=None,
    )
    by_name = {stats.name: stats for stats in result.channel_stats}
    assert list(by_name) == ["chunks", "hashed", "blocks", "acks"]
    chunks = math.ceil(size / chunk_size)
    assert by_name["chunks"].items == by_name["hashed"].items == chunks
    blocks = sum(
        math.ceil(min(chunk_size, size - offset) / read_size)
        for offset in range(0, size, chunk_size)
    )
    assert by_name["blocks"].items == blocks
    assert by_name["blocks"].capacity == tuspipe.DEFAULT_READ_AHEAD
    assert by_name["acks"].items == chunks  # one acknowledged offset per PATCH


def test_a_parallel_upload_sums_its_parts_channels(
    tuspyserver_server: TusServer, make_file: MakeFile
) -> None:
    size = 4 * 1024 * 1024
    result = tuspipe.upload(
        make_file(size),
        tuspyserver_server.url,
        parallel=4,
        chunk_size=256 * 1024,
        journal=None,
    )
    by_name = {stats.name: stats for stats in result.channel_stats}
    assert list(by_name) == ["chunks", "blocks", "acks"]
    assert by_name["chunks"].items == size // (256 * 1024)  # each part's chunks, summed
