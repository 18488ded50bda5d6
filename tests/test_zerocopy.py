"""The zero-copy path: file spans leave with sendfile() on tuspipe's own connections, as bytes
elsewhere, and a stand-in that lost its identity is never sent."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import trio

import tuspipe
from benchmarks.sink import TusSink
from tests.conftest import MakeFile, TusServer
from tuspipe._body import READ_PIECE, BodyPart, FileSpan
from tuspipe._source import open_source
from tuspipe._zerocopy import (
    BodyRoute,
    ZeroCopyError,
    _SendfileStream,
    body_route,
    route_body,
)


class SendfileCounter:
    """Counts the bytes os.sendfile() moves while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.bytes = 0
        real = os.sendfile

        def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
            sent = real(out_fd, in_fd, offset, count)
            self.calls += 1
            self.bytes += sent
            return sent

        monkeypatch.setattr(os, "sendfile", counting)


def test_a_file_goes_out_with_sendfile_and_arrives_whole(
    node_server: TusServer, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 20 * 1024 * 1024 + 12345
    path = make_file(size)
    counter = SendfileCounter(monkeypatch)
    result = tuspipe.upload(
        path, node_server.url, chunk_size=4 * 1024 * 1024, read_size=1024 * 1024, journal=None
    )
    assert result.complete
    assert node_server.stored_sha256(result.url) == hashlib.sha256(path.read_bytes()).hexdigest()
    # Every byte but the last block (read, to check the file before the upload completes)
    # and the first 64 KiB of each PATCH (read to leave with the request head).
    last_block = size % (1024 * 1024)
    patches = -(-size // (4 * 1024 * 1024))
    assert counter.bytes == size - last_block - 64 * 1024 * (patches - 1)
    assert counter.calls >= (size - last_block) // (1024 * 1024) - patches


def test_a_callers_http_client_gets_bytes_not_sendfile(
    node_server: TusServer, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 3 * 1024 * 1024 + 7
    path = make_file(size)
    counter = SendfileCounter(monkeypatch)

    async def main() -> tuspipe.UploadResult:
        async with httpx.AsyncClient() as client:
            return await tuspipe.upload_async(
                path, node_server.url, chunk_size=1024 * 1024, http_client=client, journal=None
            )

    result = trio.run(main)
    assert result.complete
    assert node_server.stored_sha256(result.url) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert counter.calls == 0


async def _spans(path: Path, size: int, piece: int) -> AsyncIterator[BodyPart]:
    source = open_source(path)
    for offset in range(0, size, piece):
        span = source.span_at(offset, min(piece, size - offset))
        assert span is not None
        yield span


class RecordingStream:
    """Stands in for httpcore's trio stream: records writes, has a real (unused) socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.socket = trio.socket.socket()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(buffer)

    def get_extra_info(self, info: str) -> Any:
        return self.socket if info == "socket" else None


async def test_a_copied_stand_in_is_refused_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(1000))
    inner = RecordingStream()
    stream = _SendfileStream(inner)  # type: ignore[arg-type]
    with body_route(has_body=True) as route:
        await stream.write(b"PATCH / HTTP/1.1\r\n\r\n")  # the headers: the route learns of it
        assert route.stream is stream
        body = route_body(_spans(path, 1000, 400), route)
        stand_in = await body.__anext__()
        assert len(stand_in) == 400
        with pytest.raises(ZeroCopyError, match="copied"):
            await stream.write(bytes(bytearray(stand_in)))  # an equal copy, not the object
    assert inner.writes == []  # neither the zeros nor the head went out
    inner.socket.close()


async def test_the_head_leaves_with_a_small_body_in_one_write() -> None:
    inner = RecordingStream()
    stream = _SendfileStream(inner)  # type: ignore[arg-type]
    head, body = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", b"hello"
    with body_route(has_body=True):
        await stream.write(head)
        assert inner.writes == []  # kept back for the body
        await stream.write(body)
        await stream.write(b"")  # h11's end of message
    assert inner.writes == [head + body, b""]
    with body_route(has_body=False):
        await stream.write(b"HEAD / HTTP/1.1\r\n\r\n")  # no body to wait for
    assert inner.writes[-1] == b"HEAD / HTTP/1.1\r\n\r\n"
    inner.socket.close()


async def test_a_held_head_goes_out_even_when_the_body_is_empty() -> None:
    inner = RecordingStream()
    stream = _SendfileStream(inner)  # type: ignore[arg-type]
    with body_route(has_body=True):
        await stream.write(b"PATCH / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        await stream.write(b"")
    assert inner.writes == [b"PATCH / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"]
    inner.socket.close()


async def test_a_stand_in_that_is_never_written_stops_the_body(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(1000))
    route = BodyRoute()
    route.stream = _SendfileStream(RecordingStream())  # type: ignore[arg-type]
    body = route_body(_spans(path, 1000, 400), route)
    await body.__anext__()
    with pytest.raises(ZeroCopyError, match="never written"):
        await body.__anext__()


async def test_without_a_sendfile_stream_spans_are_read(tmp_path: Path) -> None:
    data = os.urandom(1000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    pieces = [piece async for piece in route_body(_spans(path, 1000, 300), BodyRoute())]
    assert all(isinstance(piece, bytes) for piece in pieces)
    assert b"".join(pieces) == data


async def test_without_a_sendfile_stream_a_large_span_is_read_a_piece_at_a_time(
    tmp_path: Path,
) -> None:
    # A file's spans are large (they cost nothing on the sendfile path); over TLS or a
    # proxy they are read, and memory must hold one piece, not the whole span.
    data = os.urandom(2 * READ_PIECE + 5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    pieces = [piece async for piece in route_body(_spans(path, len(data), len(data)), BodyRoute())]
    assert [len(piece) for piece in pieces] == [READ_PIECE, READ_PIECE, 5]
    assert b"".join(pieces) == data


def test_a_file_goes_in_spans_of_span_size_by_default(
    node_server: TusServer, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 5 * tuspipe.DEFAULT_SPAN_SIZE + 12345
    path = make_file(size)
    counter = SendfileCounter(monkeypatch)
    result = tuspipe.upload(path, node_server.url, journal=None)
    assert node_server.stored_sha256(result.url) == hashlib.sha256(path.read_bytes()).hexdigest()
    blocks = {stats.name: stats for stats in result.channel_stats}["blocks"]
    # One chunk: spans of DEFAULT_SPAN_SIZE up to the file's last DEFAULT_READ_SIZE bytes,
    # which are read (the change check before the server can complete the upload).
    spanned = size - tuspipe.DEFAULT_READ_SIZE
    assert blocks.items == -(-spanned // tuspipe.DEFAULT_SPAN_SIZE) + 1
    assert counter.bytes == spanned - 64 * 1024  # (the first 64 KiB leave with the PATCH head)

    # A read_size given sets the spans too, as it always did.
    explicit = tuspipe.upload(path, node_server.url, journal=None, read_size=1024 * 1024)
    blocks = {stats.name: stats for stats in explicit.channel_stats}["blocks"]
    assert blocks.items == -(-size // (1024 * 1024))


async def test_a_span_past_the_end_of_a_shrunk_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(1000))
    source = open_source(path)
    span = source.span_at(0, 1000)
    assert isinstance(span, FileSpan)
    os.truncate(path, 600)
    left, right = trio.socket.socketpair()
    stream = _SendfileStream(RecordingStream())  # type: ignore[arg-type]
    stream._socket = left
    with pytest.raises(tuspipe.SourceChangedError):
        await stream._send_span(span, timeout=5, head=None)
    left.close()
    right.close()
    source.close()


def _small_socketpair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """A connected pair whose buffers hold little, so a sender soon waits for its reader."""
    left, right = trio.socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    return left, right


async def test_a_span_that_keeps_moving_outlasts_the_stall_timeout(tmp_path: Path) -> None:
    # The stall timeout bounds a time without progress, not a whole span: a slow reader that
    # keeps taking bytes lets a 512 KiB span take 0.6 s or more against a 0.2 s timeout.
    data = os.urandom(512 * 1024)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    source = open_source(path)
    span = source.span_at(0, len(data))
    assert isinstance(span, FileSpan)
    left, right = _small_socketpair()
    stream = _SendfileStream(RecordingStream())  # type: ignore[arg-type]
    stream._socket = left
    received = bytearray()

    async def slow_reader() -> None:
        while len(received) < len(data):
            await trio.sleep(0.02)
            received.extend(await right.recv(16 * 1024))

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        await stream._send_span(span, timeout=0.2, head=None)
    assert trio.current_time() - started > 0.2 * 2
    assert bytes(received) == data
    for end in (left, right):
        end.close()
    source.close()


async def test_a_socket_that_takes_nothing_is_a_stall(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(512 * 1024))
    source = open_source(path)
    span = source.span_at(0, 512 * 1024)
    assert isinstance(span, FileSpan)
    left, right = _small_socketpair()
    stream = _SendfileStream(RecordingStream())  # type: ignore[arg-type]
    stream._socket = left
    started = trio.current_time()
    with pytest.raises(httpcore.WriteTimeout, match=r"stalled for 0\.2 s"):
        await stream._send_span(span, timeout=0.2, head=None)
    assert 0.2 <= trio.current_time() - started < 2
    for end in (left, right):
        end.close()
    source.close()


# --------------------------------------------------------------------------------------------
# Requests that go straight to tuspipe's transport keep the client's cookies and proxies
# --------------------------------------------------------------------------------------------


class CookieSink(TusSink):
    """A sink behind a "load balancer" that pins clients with cookies: the POST answer sets
    one, every PATCH answer sets a counter; it records the Cookie header of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.cookies_seen: list[tuple[str, str | None]] = []
        self._patches = 0

    def _handle(self, conn: Any, request: Any) -> bool:
        self.cookies_seen.append((request.method, request.header("cookie")))
        return super()._handle(conn, request)

    def _reply(
        self,
        conn: Any,
        request: Any,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        message: str = "",
        *,
        skip_body: bool = True,
    ) -> bool:
        if request.method == "POST":
            headers = [*headers, ("Set-Cookie", "node=7; Path=/")]
        elif request.method == "PATCH":
            self._patches += 1
            headers = [*headers, ("Set-Cookie", f"seen={self._patches}; Path=/")]
        return super()._reply(conn, request, status, headers, message, skip_body=skip_body)


def test_cookies_a_server_sets_are_sent_back(make_file: MakeFile) -> None:
    sink = CookieSink()
    with sink:
        result = tuspipe.upload(
            make_file(3 * 1024 * 1024), sink.url, chunk_size=1024 * 1024, journal=None
        )
        assert result.offset == 3 * 1024 * 1024
        patches = [cookie for method, cookie in sink.cookies_seen if method == "PATCH"]
        assert sink.cookies_seen[0] == ("POST", None)
    assert patches == ["node=7", "node=7; seen=1", "node=7; seen=2"]


def test_a_proxy_named_in_the_environment_is_used(
    node_server: TusServer, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 9 of loopback: an upload that honours the proxy fails there.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(tuspipe.NetworkError):
        tuspipe.upload(make_file(1000), node_server.url, journal=None, retries=0)
    monkeypatch.delenv("HTTP_PROXY")
    assert tuspipe.upload(make_file(1000), node_server.url, journal=None).offset == 1000


def test_prefetch_hints_only_spans_the_page_cache_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(100_000))
    source = open_source(path)
    span = source.span_at(0, 100_000)
    assert span is not None
    hints: list[tuple[int, int]] = []
    monkeypatch.setattr(
        os, "posix_fadvise", lambda fd, offset, length, advice: hints.append((offset, length))
    )
    span.prefetch()  # just written: cached, so no hint (it would walk every page)
    assert hints == []

    def not_cached(*args: object) -> int:
        raise BlockingIOError(11, "would block")

    monkeypatch.setattr(os, "preadv", not_cached)
    span.prefetch()
    assert hints == [(0, 100_000)]
    source.close()


def test_the_parts_of_a_parallel_upload_go_out_with_sendfile(
    make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 8 * 1024 * 1024
    counter = SendfileCounter(monkeypatch)
    with TusSink() as sink:
        result = tuspipe.upload(
            make_file(size), sink.url, parallel=4, read_size=512 * 1024, journal=None
        )
        assert result.offset == size
        assert sink.stats.concatenations == 1
    # Each part's last block is read (and change-checked), each PATCH starts with 64 KiB
    # read to go with its head; the rest of every part went by sendfile().
    assert counter.bytes == size - 4 * 512 * 1024 - 4 * 64 * 1024
