"""Zero-copy request bodies: ``sendfile()`` beneath httpx, for tuspipe's own connections.

Part of the transport layer (only :mod:`tuspipe._transport` imports it). httpx streams a
request body by passing each piece through h11 to the connection's network stream, so a file's
bytes would be read into memory only for the kernel to copy them out again. tuspipe's own
client therefore runs on a connection pool whose plain-TCP streams can send a
:class:`~tuspipe._body.FileSpan` with ``os.sendfile()``, page cache to socket:

1. :func:`body_route` gives each request a :class:`BodyRoute`, held in a context variable, so
   the network stream that writes the request (in the same task) can see it.
2. When one of our streams writes the request's headers, it enters itself in the route: the
   body may now use it. It keeps the headers back until the body's first write, so that a
   small request leaves in one send.
3. For each span, :func:`route_body` yields a stand-in, a zero-filled ``bytes`` of the span's
   length (h11 counts it against Content-Length and passes the very same object on), after
   noting the pair in the route.
4. The stream, handed exactly that object, sends the span with ``sendfile()`` instead.

The stand-in is recognised by identity alone. Should a layer in between ever copy it, the
stream raises :class:`ZeroCopyError` instead of sending zeros, so nothing wrong reaches the
server. Anything else (TLS, a proxy, a caller's own ``httpx.AsyncClient``) never enters a
route, and its spans are read into memory in a worker thread and sent as bytes. When the
environment names a proxy, tuspipe's client is httpx's plain one (httpx routes to the
environment's proxies only with its own transport).
"""

from __future__ import annotations

import contextvars
import functools
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
import trio

from ._body import BodyPart, FileSpan
from ._pool import ConnectionPool

__all__ = [
    "BareAnswer",
    "BodyRoute",
    "ZeroCopyError",
    "ZeroCopyTransport",
    "bare_path_allowed",
    "body_route",
    "parsed_url",
    "read_limited",
    "route_body",
]


class ZeroCopyError(RuntimeError):
    """A file span's stand-in reached the socket as something other than itself."""


class BodyRoute:
    """What one request's body and the stream writing it know of each other."""

    def __init__(self, has_body: bool = False) -> None:
        self.has_body = has_body
        self.stream: _SendfileStream | None = None  # set when one of ours writes the headers
        self.pending: tuple[bytes, FileSpan] | None = None  # stand-in awaiting its write
        # The request head, kept back to leave with the body's first bytes (one segment).
        self.held_head: bytes | None = None


_current_route: contextvars.ContextVar[BodyRoute | None] = contextvars.ContextVar(
    "tuspipe_body_route", default=None
)


class body_route:  # (named like the function it replaced: ``with body_route(...) as route``)
    """A fresh route for the request about to be sent in this task (a class rather than a
    generator-based context manager: it is entered once per request)."""

    __slots__ = ("_route", "_token")

    def __init__(self, has_body: bool) -> None:
        self._route = BodyRoute(has_body)

    def __enter__(self) -> BodyRoute:
        self._token = _current_route.set(self._route)
        return self._route

    def __exit__(self, *exc_info: object) -> None:
        _current_route.reset(self._token)


# Stand-ins are zero-filled, so the allocator hands out untouched pages: they cost address
# space, not memory. Spans mostly have one length (the read size), so a few are kept.
_STAND_INS: dict[int, bytes] = {}
_MAX_STAND_INS = 4


def _stand_in(length: int) -> bytes:
    stand_in = _STAND_INS.get(length)
    if stand_in is None:
        stand_in = bytes(length)
        if len(_STAND_INS) < _MAX_STAND_INS:
            _STAND_INS[length] = stand_in
    return stand_in


async def route_body(parts: AsyncIterable[BodyPart], route: BodyRoute) -> AsyncIterator[bytes]:
    """The body httpx sends: bytes as they are, file spans as stand-ins where the route has
    a sendfile stream, and as bytes read in a worker thread (a piece at a time) where it has
    not."""
    async for part in parts:
        if isinstance(part, bytes):
            yield part
        elif route.stream is None:
            for skip, length in part.pieces():
                yield await trio.to_thread.run_sync(part.read_piece, skip, length)
        else:
            stand_in = _stand_in(part.length)
            route.pending = (stand_in, part)
            yield stand_in
            if route.pending is not None:
                # The stand-in was not written: fail before the next part is.
                route.pending = None
                raise ZeroCopyError("a file span's stand-in was never written to the socket")


# Bodies up to this size are joined to the request head (a copy); larger ones follow it.
_JOIN_LIMIT = 256 * 1024


# Bytes of a span read to go out with the request head (up to the next page boundary past it).
_LEAD_IN = 64 * 1024
_PAGE = 4096
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def _lead_in(span: FileSpan) -> bytes:
    """The span's first bytes, read only if the page cache holds them (never waiting for a
    disk on the event loop); empty otherwise."""
    if _RWF_NOWAIT is None:
        return b""
    length = min(span.length, _LEAD_IN - span.file_offset % _PAGE)
    buffer = bytearray(length)
    try:
        got = os.preadv(span.fd, [buffer], span.file_offset, _RWF_NOWAIT)
    except OSError:
        return b""
    return bytes(buffer[:got])


class _SendfileStream(httpcore.AsyncNetworkStream):
    """A plain TCP stream that sends file spans with ``sendfile()``; all else goes to the
    trio stream it wraps."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: trio.socket.SocketType = inner.get_extra_info("socket")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        route = _current_route.get()
        if route is None:
            await self._inner.write(buffer, timeout)
            return
        if route.stream is None and route.has_body:
            # The request head: kept back, so that head and body leave in one send (for a
            # small upload that is one segment, and one wakeup of the server, instead of two).
            route.stream = self
            route.held_head = buffer
            return  # (no checkpoint: the body's write follows at once, and has them)
        route.stream = self
        head, route.held_head = route.held_head, None
        if route.pending is not None:
            stand_in, span = route.pending
            route.pending = None
            if buffer is not stand_in:
                raise ZeroCopyError(
                    "a file span's stand-in was copied on its way to the socket; "
                    "refusing to send it"
                )
            await self._send_span(span, timeout, head)
        elif head is None:
            await self._inner.write(buffer, timeout)
        elif len(buffer) <= _JOIN_LIMIT:
            await self._inner.write(head + buffer, timeout)
        else:
            await self._inner.write(head, timeout)
            await self._inner.write(buffer, timeout)

    async def _send_span(self, span: FileSpan, timeout: float | None, head: bytes | None) -> None:
        """Send `head` (if any), then the span with ``sendfile()``.

        `timeout` bounds each wait for room in the socket, not the whole span: a span may be
        large, and on a slow link it may take longer than `timeout` while its bytes keep
        moving. Only a socket that takes nothing for `timeout` seconds is a stall.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        out = self._socket.fileno()
        offset, remaining = span.file_offset, span.length
        stall = float("inf") if timeout is None else timeout
        try:
            if head is not None:
                # The head leaves with the span's first bytes, read here, in one send(): one
                # segment instead of a small one of its own (not corked with MSG_MORE, whose
                # tail can sit out the kernel's 200 ms cork timer). The rest of the span then
                # starts on a page boundary.
                lead = _lead_in(span)
                unsent = memoryview(head + lead)
                while unsent:
                    with trio.fail_after(stall):
                        unsent = unsent[await self._socket.send(unsent) :]
                offset += len(lead)
                remaining -= len(lead)
            while remaining:
                try:
                    sent = os.sendfile(out, span.fd, offset, remaining)
                except BlockingIOError:
                    with trio.fail_after(stall):
                        await trio.lowlevel.wait_writable(self._socket)
                    continue
                if sent == 0:  # the file ends before the span does
                    span.check_unchanged()
                    raise span.short_read(span.length - remaining)
                offset += sent
                remaining -= sent
        except trio.TooSlowError as exc:
            raise httpcore.WriteTimeout(f"sendfile stalled for {timeout} s") from exc
        except (OSError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        span.check_unchanged()
        # (No closing checkpoint: the sender's next receive from its channel is one, and under
        # asyncio every extra yield costs a turn of the host loop.)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # The TLS stream is not ours: TLS needs the bytes in user space anyway.
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _SendfileBackend(httpcore.AsyncNetworkBackend):
    """trio's network backend, with TCP streams that can send file spans."""

    def __init__(self) -> None:
        self._inner = httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _SendfileStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's exceptions and the httpx ones they become, most specific first (httpx's own
# transport does the same translation; its helper for it is private).
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        _raise_as_httpx_error(exc, request)
        raise


def _raise_as_httpx_error(exc: Exception, request: httpx.Request | None) -> None:
    """Raise the httpx exception that `exc` (one of httpcore's) becomes, if any."""
    for core_error, httpx_error in _HTTPX_ERRORS:
        if isinstance(exc, core_error):
            raise httpx_error(str(exc), request=request) from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class ZeroCopyTransport(httpx.AsyncBaseTransport):
    """An httpx transport on tuspipe's :class:`~tuspipe._pool.ConnectionPool`, whose plain TCP
    connections send file spans with ``sendfile()``. HTTP/1.1 only, like tuspipe's requests."""

    def __init__(self, ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext]) -> None:
        """`ssl_context`: the TLS context, or a function making it on first use."""
        #: The headers every request starts from (the client's, for send_bare), by lower-case
        #: name, in order.
        self.default_headers: dict[str, tuple[bytes, bytes]] = {}
        # The connection limits of httpx's own default transport.
        self._pool = ConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_SendfileBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, AsyncIterable):
            raise TypeError("ZeroCopyTransport needs an async request stream")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors(request):
            core_response = await self._pool.handle_async_request(core_request)
        assert isinstance(core_response.stream, AsyncIterable)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response.stream, request),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def send_bare(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        content: AsyncIterable[bytes] | None,
        extensions: dict[str, Any],
    ) -> BareAnswer:
        """Send a request without building httpx's Request and Response objects.

        The request leaves with the headers httpx would give it (those of `default_headers`,
        then Host and the framing headers, see :meth:`_head`); the answer's body is left for
        :meth:`BareAnswer.read`. Raises httpx's exceptions, as :meth:`handle_async_request`.
        """
        target = _target(url)
        core_request = httpcore.Request(
            method=method,
            url=target.core_url,
            headers=self._head(method, target.netloc, headers, content is not None),
            content=content,
            extensions=extensions,
        )
        try:
            core_response = await self._pool.handle_async_request(core_request)
        except Exception as exc:
            _raise_as_httpx_error(exc, None)
            raise
        return BareAnswer(core_response)

    def _head(
        self, method: str, netloc: bytes, headers: Sequence[tuple[str, str]], has_body: bool
    ) -> list[tuple[bytes, bytes]]:
        """The request's header lines as httpx writes them: ``Host`` (and ``Content-Length:
        0`` for a bodiless POST or PATCH) first, then the client's default headers but those
        `headers` replace, then `headers` (and ``Transfer-Encoding: chunked`` for a body of
        unannounced length)."""
        names = {name.lower() for name, _ in headers}
        framed = "content-length" in names or "transfer-encoding" in names
        lines = [(b"Host", netloc)]
        if not framed and not has_body and method in ("POST", "PUT", "PATCH"):
            lines.append((b"Content-Length", b"0"))
        lines.extend(line for key, line in self.default_headers.items() if key not in names)
        lines.extend((name.encode("ascii"), value.encode("ascii")) for name, value in headers)
        if has_body and not framed:
            lines.append((b"Transfer-Encoding", b"chunked"))
        return lines


class BareAnswer:
    """An answer to :meth:`ZeroCopyTransport.send_bare`: status and headers, body unread."""

    def __init__(self, response: httpcore.Response) -> None:
        self.status_code = response.status
        self.raw_headers: list[tuple[bytes, bytes]] = response.headers
        self._response = response

    def headers(self) -> dict[str, str]:
        """The headers with lower-case names, repeated ones joined with ", ", decoded as httpx
        decodes them (ASCII, else UTF-8, else ISO-8859-1, for all alike)."""
        encoding = _header_encoding(self.raw_headers)
        decoded: dict[str, str] = {}
        for name, value in self.raw_headers:
            key = name.decode(encoding).lower()
            text = value.decode(encoding)
            decoded[key] = f"{decoded[key]}, {text}" if key in decoded else text
        return decoded

    async def read(self, limit: int) -> bytes:
        """At most `limit` bytes of the body (the rest is read and dropped); then closes it."""
        stream = self._response.stream
        assert isinstance(stream, AsyncIterable)
        try:
            try:
                return await read_limited(stream, limit)
            finally:
                await self._response.aclose()
        except Exception as exc:
            _raise_as_httpx_error(exc, None)
            raise


async def read_limited(stream: AsyncIterable[bytes], limit: int) -> bytes:
    """At most `limit` bytes of an answer's body; the rest is read and dropped (so that the
    connection can carry the next request), never kept."""
    parts: list[bytes] = []
    kept = 0
    async for part in stream:
        if kept < limit:
            parts.append(part[: limit - kept])
            kept += len(parts[-1])
    return b"".join(parts)


def _header_encoding(headers: list[tuple[bytes, bytes]]) -> str:
    for encoding in ("ascii", "utf-8"):
        try:
            for name, value in headers:
                name.decode(encoding)
                value.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return "iso-8859-1"


class _Target:
    """What a URL string means for a request: httpcore's URL, the Host header, and whether
    it carries credentials (user:password@, which only httpx's client turns into auth)."""

    __slots__ = ("core_url", "has_userinfo", "netloc")

    def __init__(self, url: str) -> None:
        parsed = parsed_url(url)
        self.core_url = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        self.netloc = parsed.netloc
        self.has_userinfo = bool(parsed.userinfo)


# URLs are parsed once each: an upload sends many requests to few URLs (bounded caches).


@functools.lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """`url` as httpx parses it (an immutable value, so one object serves every request)."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    return _Target(url)


def bare_path_allowed(url: str) -> bool:
    """Whether a request to `url` may take :meth:`ZeroCopyTransport.send_bare`."""
    return not _target(url).has_userinfo
