"""Request bodies too large for the server or a proxy in front of it (413), against the real
Node server: PATCHes shrink by halves until they fit, the size that fits is kept for the rest
of the upload and for later uploads through the same client, a creation POST whose body is
refused is sent again without it, and only a refusal at the floor (256 KiB) ends the upload.

The 413s come from tests.faults.FaultTransport (answering like a proxy with a body limit,
without forwarding); tests/test_node09.py checks the same through a TCP proxy with a real
nginx-like limit, on tuspipe's own zero-copy connections.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

import tuspipe
from tests.conftest import MakeFile, TusServer, sha256_file
from tests.faults import FaultTransport, Respond, Rule
from tuspipe._blocks import Block, BlockCursor, Chunk
from tuspipe._bodylimits import MIN_BODY_LIMIT
from tuspipe._source import open_source

MiB = 1 << 20

PROXY_413 = b"<html><head><title>413 Request Entity Too Large</title></head></html>"


def body_limit(limit: int, method: str = "PATCH") -> Rule:
    """Every `method` request whose body exceeds `limit` gets the 413 of a proxy."""

    def too_large(request: httpx.Request) -> bool:
        return int(request.headers.get("content-length", "0")) > limit

    return Rule(
        method,
        Respond(413, {"Content-Type": "text/html"}, body=PROXY_413),
        times=None,
        when=too_large,
    )


def patch_sizes(transport: FaultTransport) -> list[tuple[int, int | None]]:
    """(Content-Length, status) of every PATCH, in order."""
    return [
        (exchange.content_length or 0, exchange.status) for exchange in transport.exchanges("PATCH")
    ]


async def upload_through(
    transport: FaultTransport, *sources: object, url: str, **options: object
) -> list[tuspipe.UploadResult]:
    async with (
        httpx.AsyncClient(transport=transport) as http_client,
        tuspipe.Client(http_client=http_client, journal=None) as client,
    ):
        return [
            await client.upload(source, url, **options)  # type: ignore[arg-type]
            for source in sources
        ]


def test_patches_halve_until_they_fit_and_the_size_is_kept(
    node_server: TusServer, make_file: MakeFile, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = make_file(9 * MiB), make_file(3 * MiB)
    transport = FaultTransport(httpx.AsyncHTTPTransport(), [body_limit(MiB)])
    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        results = trio.run(
            lambda: upload_through(
                transport, first, second, url=node_server.url, chunk_size=8 * MiB
            )
        )
    for result, path in zip(results, (first, second), strict=True):
        assert result.complete
        assert node_server.stored_sha256(result.url) == sha256_file(path)
    sizes = patch_sizes(transport)
    refused = [size for size, status in sizes if status == 413]
    # 8 MiB, 4 MiB and 2 MiB are refused once each; then everything goes in 1 MiB pieces,
    # the second upload too (the client remembers the limit).
    assert refused == [sizes[0][0], sizes[0][0] // 2, sizes[0][0] // 4]
    assert sizes[0][0] == 8 * MiB
    accepted = [size for size, status in sizes if status == 204]
    assert accepted == [MiB] * 12
    warnings = [record.getMessage() for record in caplog.records if "413" in record.getMessage()]
    assert len(warnings) == 1
    assert f"chunk_size={MiB}" in warnings[0]
    assert "--chunk-size 1MiB" in warnings[0]


def test_a_refusal_at_the_floor_ends_the_upload_naming_the_limit(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(2 * MiB)
    transport = FaultTransport(httpx.AsyncHTTPTransport(), [body_limit(100 * 1024)])
    with pytest.raises(tuspipe.UploadTooLargeError) as caught:
        trio.run(lambda: upload_through(transport, path, url=node_server.url))
    assert f"below {MIN_BODY_LIMIT} bytes" in str(caught.value)
    assert caught.value.status_code == 413
    sizes = [size for size, _ in patch_sizes(transport)]
    assert sizes == [2 * MiB, MiB, MiB // 2, MIN_BODY_LIMIT]
    assert all(status == 413 for _, status in patch_sizes(transport))


def test_a_creation_body_that_is_refused_is_posted_again_without_it(
    node_server: TusServer, make_file: MakeFile
) -> None:
    paths = [make_file(size) for size in (600 * 1024, 20 * 1024)]
    transport = FaultTransport(httpx.AsyncHTTPTransport(), [body_limit(300 * 1024, "POST")])

    async def run() -> list[tuspipe.UploadOutcome]:
        async with httpx.AsyncClient(transport=transport) as http_client:
            return await tuspipe.upload_many_async(
                paths, node_server.url, concurrency=1, http_client=http_client, journal=None
            )

    outcomes = trio.run(run)
    for outcome, path in zip(outcomes, paths, strict=True):
        assert outcome.result is not None, outcome.error
        assert node_server.stored_sha256(outcome.result.url) == sha256_file(path)
    posts = [
        (exchange.content_length or 0, exchange.status) for exchange in transport.exchanges("POST")
    ]
    # The big file's POST with its body is refused, then made without one (a PATCH follows);
    # the small file travels whole in its POST.
    assert posts == [(600 * 1024, 413), (0, 201), (20 * 1024, 201)]
    assert patch_sizes(transport) == [(600 * 1024, 204)]


def test_a_stream_of_unknown_length_declares_it_on_its_last_piece(
    node_server: TusServer,
) -> None:
    pieces = [bytes([index]) * (700 * 1024) for index in range(5)]  # 3.4 MiB
    transport = FaultTransport(httpx.AsyncHTTPTransport(), [body_limit(MiB)])

    def stream() -> Iterator[bytes]:
        yield from pieces

    (result,) = trio.run(
        lambda: upload_through(transport, stream(), url=node_server.url, chunk_size=2 * MiB)
    )
    whole = b"".join(pieces)
    (creation,) = transport.exchanges("POST")
    assert creation.upload_length is None  # deferred: the stream is longer than a chunk
    assert result.size == len(whole)
    assert node_server.stored_path(result.url).read_bytes() == whole
    lengths = [
        exchange.upload_length
        for exchange in transport.exchanges("PATCH")
        if exchange.status == 204
    ]
    assert lengths == [None, None, None, len(whole)]


@pytest.mark.parametrize("kind", ["bytes", "file"])
async def test_the_cursor_ends_a_request_inside_a_block_and_keeps_the_rest(
    kind: str, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    if kind == "file":
        path = tmp_path / "data"
        path.write_bytes(data)
        source = open_source(path)
    else:
        source = open_source(data)
    chunk = Chunk(0, len(data))
    blocks_out, blocks_in = trio.open_memory_channel[Block](100)
    for offset in range(0, len(data), 3000):
        length = min(3000, len(data) - offset)
        part = source.span_at(offset, length) or source.read_at(offset, length)
        blocks_out.send_nowait(Block(chunk, offset, part))
    blocks_out.close()
    cursor = BlockCursor(blocks_in, source, 3000)
    got = []
    for start, end in [(0, 4000), (4000, 4100), (4100, 10240)]:
        assert await cursor.chunk_at(start) == chunk
        pieces = [piece async for piece in cursor.iter_bytes(start, end)]
        got.append(
            b"".join(piece if isinstance(piece, bytes) else piece.read() for piece in pieces)
        )
        assert cursor.position == end
    assert got == [data[:4000], data[4000:4100], data[4100:]]
    source.close()
