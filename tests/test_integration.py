"""Uploads to real tus servers, with the stored bytes compared to the source by sha256.

The Node server (@tus/server) covers core and creation; asgi-tus covers checksums (it answers
460 to a wrong digest); tuspyserver is a third, independent implementation. The tests marked
``both_loops`` run under trio and under asyncio (tests/loops.py).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

import tuspipe
from tuspipe._protocol import decode_metadata

from .conftest import MakeFile, TusServer, sha256_file
from .loops import both_loops

CHUNK = 256 * 1024
MiB = 1024 * 1024

SMALL_SIZES = {
    "empty": 0,
    "one-byte": 1,
    "exactly-one-chunk": CHUNK,
    "one-chunk-plus-one-byte": CHUNK + 1,
}
# (file size, chunk size): 64 MiB in 5 MiB chunks, and 64 MiB in a single PATCH.
LARGE_CASES = {
    "64MiB-in-5MiB-chunks": (64 * MiB, 5 * MiB),
    "64MiB-in-one-patch": (64 * MiB, 64 * MiB),
}


async def _upload_and_compare(
    server: TusServer, path: Path, *, chunk_size: int, checksum: str | None
) -> tuspipe.UploadResult:
    progress: list[tuple[int, int | None]] = []
    result = await tuspipe.upload_async(
        path,
        server.url,
        chunk_size=chunk_size,
        checksum=checksum,
        # tuspyserver answers HEAD with 400 unless both keys are present
        metadata={"filename": path.name, "filetype": "application/octet-stream"},
        on_progress=lambda acknowledged, total: progress.append((acknowledged, total)),
    )
    size = path.stat().st_size
    assert (result.size, result.offset, result.resumed_from) == (size, size, 0)
    assert result.complete
    assert server.stored_sha256(result.url) == sha256_file(path)
    # a report of the starting offset, then at most one per PATCH, strictly increasing,
    # ending at the size
    offsets = [acknowledged for acknowledged, _ in progress]
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert len(offsets) <= 1 + -(-size // chunk_size)
    assert progress[-1] == (size, size)
    return result


@both_loops
@pytest.mark.parametrize("checksum", [None, "auto"])
@pytest.mark.parametrize("size", SMALL_SIZES.values(), ids=SMALL_SIZES.keys())
async def test_node_small(
    node_server: TusServer, make_file: MakeFile, size: int, checksum: str | None
) -> None:
    result = await _upload_and_compare(
        node_server, make_file(size), chunk_size=CHUNK, checksum=checksum
    )
    # The Node server offers no checksum algorithm, so "auto" falls back to none.
    assert result.checksum is None


@both_loops
@pytest.mark.parametrize("checksum", [None, "sha1", "auto"])
@pytest.mark.parametrize("size", SMALL_SIZES.values(), ids=SMALL_SIZES.keys())
async def test_asgitus_small(
    asgitus_server: TusServer, make_file: MakeFile, size: int, checksum: str | None
) -> None:
    result = await _upload_and_compare(
        asgitus_server, make_file(size), chunk_size=CHUNK, checksum=checksum
    )
    # asgi-tus offers crc32, md5, sha1, sha256 and sha512; "auto" takes the strongest.
    assert result.checksum == {"auto": "sha256"}.get(checksum or "", checksum)


@both_loops
@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha512", "crc32"])
async def test_asgitus_every_algorithm(
    asgitus_server: TusServer, make_file: MakeFile, algorithm: str
) -> None:
    result = await _upload_and_compare(
        asgitus_server, make_file(3 * CHUNK + 7), chunk_size=CHUNK, checksum=algorithm
    )
    assert result.checksum == algorithm


@both_loops
async def test_tuspyserver_small(tuspyserver_server: TusServer, make_file: MakeFile) -> None:
    await _upload_and_compare(
        tuspyserver_server, make_file(2 * CHUNK + 3), chunk_size=CHUNK, checksum=None
    )


@both_loops
@pytest.mark.slow
@pytest.mark.parametrize("checksum", [None, "auto"])
@pytest.mark.parametrize(("size", "chunk_size"), LARGE_CASES.values(), ids=LARGE_CASES.keys())
async def test_node_large(
    node_server: TusServer,
    make_file: MakeFile,
    size: int,
    chunk_size: int,
    checksum: str | None,
) -> None:
    await _upload_and_compare(
        node_server, make_file(size), chunk_size=chunk_size, checksum=checksum
    )


@both_loops
@pytest.mark.slow
@pytest.mark.parametrize("checksum", [None, "sha1"])
@pytest.mark.parametrize(("size", "chunk_size"), LARGE_CASES.values(), ids=LARGE_CASES.keys())
async def test_asgitus_large(
    asgitus_server: TusServer,
    make_file: MakeFile,
    size: int,
    chunk_size: int,
    checksum: str | None,
) -> None:
    await _upload_and_compare(
        asgitus_server, make_file(size), chunk_size=chunk_size, checksum=checksum
    )


class _CorruptingTransport(httpx.AsyncBaseTransport):
    """Flips one bit in the body of the first `corrupt` PATCHes, as a bad link would."""

    def __init__(self, corrupt: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._left = corrupt
        self.patch_statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and self._left > 0:
            self._left -= 1
            request.stream = _FlipFirstBit(request.stream)
        response = await self._inner.handle_async_request(request)
        if request.method == "PATCH":
            self.patch_statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _FlipFirstBit(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        flipped = False
        async for piece in self._inner:
            if not flipped and piece:
                piece = bytes([piece[0] ^ 0x01]) + piece[1:]
                flipped = True
            yield piece


async def test_corrupted_chunk_is_detected_and_resent(
    asgitus_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * CHUNK)
    transport = _CorruptingTransport(corrupt=2)
    async with httpx.AsyncClient(transport=transport) as client:
        result = await tuspipe.upload_async(
            path, asgitus_server.url, chunk_size=CHUNK, checksum="sha1", http_client=client
        )
    # both corrupted PATCHes were refused (460) and sent again; the three chunks then landed
    assert transport.patch_statuses == [460, 460, 204, 204, 204]
    assert asgitus_server.stored_sha256(result.url) == sha256_file(path)


async def test_without_checksum_corruption_goes_unnoticed(
    asgitus_server: TusServer, make_file: MakeFile
) -> None:
    """The control for the test above: the corruption is real, and only a checksum sees it."""
    path = make_file(CHUNK)
    transport = _CorruptingTransport(corrupt=1)
    async with httpx.AsyncClient(transport=transport) as client:
        result = await tuspipe.upload_async(
            path, asgitus_server.url, chunk_size=CHUNK, checksum=None, http_client=client
        )
    assert transport.patch_statuses == [204]
    assert asgitus_server.stored_sha256(result.url) != sha256_file(path)


async def test_persistent_corruption_gives_up(
    asgitus_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(CHUNK)
    transport = _CorruptingTransport(corrupt=100)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(tuspipe.ChecksumMismatchError) as caught:
            await tuspipe.upload_async(
                path, asgitus_server.url, chunk_size=CHUNK, checksum="sha1", http_client=client
            )
    assert caught.value.status_code == 460
    assert transport.patch_statuses == [460] * 4  # the first try and three resends


@both_loops
async def test_explicit_checksum_the_server_lacks_fails_before_creating(
    node_server: TusServer, make_file: MakeFile
) -> None:
    before = node_server.upload_count()
    with pytest.raises(tuspipe.UnsupportedFeatureError, match="checksum"):
        await tuspipe.upload_async(make_file(10), node_server.url, checksum="sha1")
    assert node_server.upload_count() == before


@both_loops
async def test_stop_at_then_resume_with_upload_url(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(5 * CHUNK + 11)
    first = await tuspipe.upload_async(
        path, node_server.url, chunk_size=CHUNK, stop_at=2 * CHUNK + 5
    )
    assert (first.offset, first.complete) == (2 * CHUNK + 5, False)
    assert node_server.stored_path(first.url).stat().st_size == 2 * CHUNK + 5
    second = await tuspipe.upload_async(path, upload_url=first.url, chunk_size=CHUNK)
    assert (second.url, second.resumed_from, second.offset) == (
        first.url,
        2 * CHUNK + 5,
        5 * CHUNK + 11,
    )
    assert node_server.stored_sha256(first.url) == sha256_file(path)


async def test_cancelled_upload_resumes_where_the_server_stopped(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(40 * CHUNK)
    urls: list[str] = []
    with trio.CancelScope() as scope:

        def cancel_after_a_few_chunks(acknowledged: int, total: int | None) -> None:
            if acknowledged >= 5 * CHUNK:
                scope.cancel()

        await tuspipe.upload_async(
            path,
            node_server.url,
            chunk_size=CHUNK,
            on_progress=cancel_after_a_few_chunks,
            on_upload_url=urls.append,
        )
    assert scope.cancelled_caught
    (url,) = urls
    result = await tuspipe.upload_async(path, upload_url=url, chunk_size=CHUNK)
    assert 5 * CHUNK <= result.resumed_from < 40 * CHUNK
    assert result.offset == 40 * CHUNK
    assert node_server.stored_sha256(url) == sha256_file(path)


@both_loops
async def test_metadata_reaches_the_server(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(100)
    metadata: dict[str, str | bytes] = {
        "filename": "résumé.pdf",
        "raw": "é".encode() + b"\x00bytes",
        "empty": "",
    }
    result = await tuspipe.upload_async(path, node_server.url, metadata=metadata)
    async with httpx.AsyncClient() as client:
        answer = await client.head(result.url, headers={"Tus-Resumable": "1.0.0"})
    assert decode_metadata(answer.headers["upload-metadata"]) == {
        "filename": "résumé.pdf".encode(),
        "raw": "é".encode() + b"\x00bytes",
        "empty": b"",
    }


async def test_bytes_metadata_is_sent_unchanged(
    node_server: TusServer, make_file: MakeFile
) -> None:
    # The Node server re-encodes values as UTF-8 text, so check what went over the wire.
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            sent.append(request.headers["upload-metadata"])

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        await tuspipe.upload_async(
            make_file(5), node_server.url, metadata={"raw": b"\x00\xff\xfe"}, http_client=client
        )
    assert sent == ["raw AP/+"]
    assert decode_metadata(sent[0]) == {"raw": b"\x00\xff\xfe"}


@both_loops
async def test_file_object_and_bytes_sources(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(3 * CHUNK + 1)
    with path.open("rb") as stream:
        from_stream = await tuspipe.upload_async(stream, node_server.url, chunk_size=CHUNK)
        assert not stream.closed  # the caller's stream is left open
    from_bytes = await tuspipe.upload_async(path.read_bytes(), node_server.url, chunk_size=CHUNK)
    for result in (from_stream, from_bytes):
        assert node_server.stored_sha256(result.url) == sha256_file(path)


def test_blocking_upload(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(CHUNK + 1)
    result = tuspipe.upload(str(path), node_server.url, chunk_size=CHUNK)
    assert result.complete
    assert node_server.stored_sha256(result.url) == sha256_file(path)


@both_loops
async def test_upload_url_of_another_size_is_refused(
    node_server: TusServer, make_file: MakeFile
) -> None:
    first = await tuspipe.upload_async(make_file(100), node_server.url, stop_at=10)
    other = make_file(200)
    with pytest.raises(tuspipe.UsageError, match="not an upload of this source"):
        await tuspipe.upload_async(other, upload_url=first.url)
    assert node_server.stored_path(first.url).stat().st_size == 10  # nothing was appended


async def test_unreachable_server_is_a_network_error(make_file: MakeFile) -> None:
    # port 9 (discard) is closed on loopback: the connection is refused at once
    with pytest.raises(tuspipe.NetworkError, match=re.escape("POST http://127.0.0.1:9/files/")):
        await tuspipe.upload_async(make_file(10), "http://127.0.0.1:9/files/", timeout=5)
