"""tuspipe's connection pool: a stack of idle connections per origin, O(1) per request.

Part of the transport layer (only :mod:`tuspipe._zerocopy` uses it). httpcore's own pool
re-examines every connection it holds for every request, several times (which may serve it,
which have expired, which to close): with eight uploads at a time that is hundreds of checks
per request, a large share of a small upload's cost. tuspipe sends HTTP/1.1 only, one request
per connection at a time, so a simpler pool does: a request takes the most recently returned
idle connection to its origin (or opens one), and gives it back when its answer has been read
and closed. An upload that sends request after request therefore keeps finding its own
connection, as if each task owned one.

Limits as in httpx's default transport: at most ``max_connections`` requests at once (a
request waits for a free place up to the pool timeout, then raises ``httpcore.PoolTimeout``),
at most ``max_keepalive_connections`` idle connections kept, each for ``keepalive_expiry``
seconds; a connection the server closed while it was idle is dropped when it is next taken.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from functools import partial

import httpcore
import trio

__all__ = ["ConnectionPool"]

Connection = httpcore.AsyncHTTP11Connection
# An origin as a dictionary key (httpcore.Origin is not hashable): scheme, host, port.
_Key = tuple[bytes, bytes, int]
# Called when an answer's body is closed: ``await release(keep)``.
_Release = Callable[[bool], Awaitable[None]]


class ConnectionPool:
    """HTTP/1.1 connections over `network_backend`, kept per origin (see the module)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext],
        network_backend: httpcore.AsyncNetworkBackend,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 5.0,
    ) -> None:
        # A context, or what makes it when the first https connection needs it (loading a
        # CA bundle takes tens of milliseconds that plain-http uploads need not pay).
        self._ssl_source = ssl_context
        self._network_backend = network_backend
        self._places = trio.Semaphore(max_connections)
        self._max_idle = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[_Key, list[Connection]] = {}
        self._idle_count = 0
        self._busy: set[Connection] = set()
        self._closed = False

    @property
    def connections(self) -> list[Connection]:
        """Every open connection, idle ones first (for tests and debugging)."""
        idle = [connection for stack in self._idle.values() for connection in stack]
        return [*idle, *self._busy]

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send `request` on a connection of the pool; the answer's body still to be read.
        The connection returns to the pool when the answer's stream is closed."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        try:
            # (No checkpoint when a place is free: a request has plenty of its own.)
            self._places.acquire_nowait()
        except trio.WouldBlock:
            pool_timeout = request.extensions.get("timeout", {}).get("pool")
            with trio.move_on_after(math.inf if pool_timeout is None else pool_timeout) as wait:
                await self._places.acquire()
            if wait.cancelled_caught:
                raise httpcore.PoolTimeout(f"no connection free within {pool_timeout} s") from None
        origin = request.url.origin
        key = (origin.scheme, origin.host, origin.port)
        while True:
            try:
                connection = await self._idle_connection(key) or await self._connect(
                    origin, request
                )
            except BaseException:
                self._places.release()
                raise
            self._busy.add(connection)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                # (Not expected for an idle HTTP/1.1 connection; httpcore's pool tries another.)
                await self._drop(connection)
                continue
            except BaseException:
                await self._drop(connection)
                self._places.release()
                raise
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_ReturningStream(response, partial(self._release, key, connection)),
                extensions=response.extensions,
            )

    def _ssl_context(self) -> ssl.SSLContext:
        if not isinstance(self._ssl_source, ssl.SSLContext):
            self._ssl_source = self._ssl_source()
        return self._ssl_source

    async def _connect(self, origin: httpcore.Origin, request: httpcore.Request) -> Connection:
        """A new connection to `origin` (TLS for https), as httpcore's own connections open
        theirs: connect timeout from the request, ALPN http/1.1, SNI from the request's
        ``sni_hostname`` extension or the host."""
        timeout = request.extensions.get("timeout", {}).get("connect")
        host = origin.host.decode("ascii")
        stream = await self._network_backend.connect_tcp(host, origin.port, timeout=timeout)
        try:
            if origin.scheme == b"https":
                context = self._ssl_context()
                context.set_alpn_protocols(["http/1.1"])
                stream = await stream.start_tls(
                    context,
                    server_hostname=request.extensions.get("sni_hostname") or host,
                    timeout=timeout,
                )
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        return Connection(origin=origin, stream=stream, keepalive_expiry=self._keepalive_expiry)

    async def _idle_connection(self, key: _Key) -> Connection | None:
        """The most recently returned idle connection to `key`'s origin still usable, if any."""
        stack = self._idle.get(key)
        while stack:
            connection = stack.pop()
            self._idle_count -= 1
            if connection.is_idle() and not connection.has_expired():
                return connection
            with trio.CancelScope(shield=True):
                await connection.aclose()
        return None

    async def _drop(self, connection: Connection) -> None:
        self._busy.discard(connection)
        with trio.CancelScope(shield=True):
            await connection.aclose()

    async def _release(self, key: _Key, connection: Connection, keep: bool) -> None:
        """Give `connection` back (or close it), and the request's place."""
        try:
            reusable = keep and not self._closed and connection.is_idle()
            if reusable and self._idle_count < self._max_idle:
                self._busy.discard(connection)
                self._idle.setdefault(key, []).append(connection)
                self._idle_count += 1
            else:
                await self._drop(connection)
        finally:
            self._places.release()

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail on their closed connections."""
        self._closed = True
        connections = self.connections
        self._idle.clear()
        self._idle_count = 0
        with trio.CancelScope(shield=True):
            for connection in connections:
                await connection.aclose()


class _ReturningStream:
    """An answer's body that gives its connection back to the pool when closed."""

    def __init__(self, response: httpcore.Response, release: _Release) -> None:
        self._response = response
        self._release: _Release | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        assert isinstance(stream, AsyncIterable)
        return stream.__aiter__()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            await self._response.aclose()
        except BaseException:
            await release(False)
            raise
        await release(True)
