"""A token-checking HTTP proxy (trio) in front of a real tus server on loopback: an API gateway
whose bearer tokens expire, like JWTs, for the tests of ``auth=`` and ``on_request``::

    async with TokenProxy(upstream_port=1080, lifetime_requests=10) as proxy:
        token = proxy.issue()          # the newest token: the only one accepted
        ...                            # talk to proxy.url_for("/files/") with it
        assert proxy.refused()         # the requests answered 401

Rules, per request: the proxy accepts ``Authorization: Bearer <token>`` for the newest token
it issued (:meth:`TokenProxy.issue`) while that token is fresh: for `lifetime_requests`
accepted requests and `lifetime_seconds` seconds from its issue (either None: no limit). An
accepted request is forwarded to the upstream and its answer sent back; any other is answered
``401`` (``WWW-Authenticate: Bearer error="invalid_token"``) by the proxy itself, its body read
and dropped (the connection stays open), as a gateway does. ``POST /token`` (answered by the
proxy, never forwarded) issues a new token: ``{"access_token": "..."}``, what a token
endpoint does.

Every request is recorded (:meth:`TokenProxy.received`, :class:`~tests.tlsproxy.ReceivedRequest`
with the status it got), so a test sees the headers that arrived (``X-Request-ID``, say).

Bounded: loopback only, each request's upstream connection has a connect timeout, idle client
connections close after :data:`IDLE_TIMEOUT`, the log keeps the last :data:`HISTORY`
requests, and every task belongs to the proxy's nursery.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from urllib.parse import urlsplit, urlunsplit

import h11
import trio

from .threaded import NurseryServer, ThreadedServer, listen
from .tlsproxy import MAX_HEAD, ReceivedRequest, _Closed, _loopback_host, _next_event, _send

__all__ = ["ThreadedTokenProxy", "TokenProxy"]

#: Seconds allowed to connect to the upstream.
CONNECT_TIMEOUT = 5.0
#: Seconds a client connection may sit idle between requests before it is closed.
IDLE_TIMEOUT = 60.0
#: Requests kept in the log.
HISTORY = 10_000

_HOP_BY_HOP = frozenset({b"connection", b"keep-alive"})


class TokenProxy(NurseryServer):
    """A token-checking proxy from ``http://host:port`` to the upstream (see the module).

    Use it as ``async with TokenProxy(...) as proxy:``, or ``await nursery.start(proxy.run)``
    and :meth:`close`. `lifetime_requests` and `lifetime_seconds` may be changed while it runs.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        lifetime_requests: int | None = None,
        lifetime_seconds: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream_host = _loopback_host(upstream_host)
        self.upstream_port = int(upstream_port)
        self.host = _loopback_host(host)
        self.lifetime_requests = lifetime_requests
        self.lifetime_seconds = lifetime_seconds
        #: every token issued, oldest first (the last one is the only one accepted)
        self.tokens: list[str] = []
        self._issued_at = 0.0
        self._uses = 0
        self._port = int(port)
        self._requests: deque[ReceivedRequest] = deque(maxlen=HISTORY)
        self._connections = 0
        self._run_scope: trio.CancelScope | None = None

    # -- tokens --------------------------------------------------------------------------

    def issue(self) -> str:
        """A new token, the only one accepted from now on, fresh for its lifetime."""
        self.tokens.append(f"tok{len(self.tokens) + 1}.{secrets.token_urlsafe(16)}")
        self._issued_at = trio.current_time()
        self._uses = 0
        return self.tokens[-1]

    def _accepts(self, authorization: str | None) -> bool:
        if not self.tokens or authorization != f"Bearer {self.tokens[-1]}":
            return False
        if self.lifetime_requests is not None and self._uses >= self.lifetime_requests:
            return False
        age = trio.current_time() - self._issued_at
        return self.lifetime_seconds is None or age < self.lifetime_seconds

    # -- lifetime ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy is not running yet")
        return self._port

    def url_for(self, path_or_url: str) -> str:
        """The proxy's URL for a path (``/files/``) or another URL (its path kept)."""
        parts = urlsplit(path_or_url)
        return urlunsplit(("http", f"{self.host}:{self.port}", parts.path or "/", parts.query, ""))

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until :meth:`close` or cancellation; reports the port at start."""
        with trio.CancelScope() as run_scope:
            self._run_scope = run_scope
            listener = await listen(self.host, self._port)
            self._port = listener.socket.getsockname()[1]
            try:
                async with trio.open_nursery() as nursery:
                    task_status.started(self.port)
                    while True:
                        nursery.start_soon(self._serve, await listener.accept())
            finally:
                await trio.aclose_forcefully(listener)

    def close(self) -> None:
        if self._run_scope is not None:
            self._run_scope.cancel()

    # -- what arrived --------------------------------------------------------------------

    def received(self, method: str | None = None) -> list[ReceivedRequest]:
        """The requests that arrived (those with `method`), oldest first, with their status."""
        return [r for r in self._requests if method is None or r.method == method]

    def refused(self) -> list[ReceivedRequest]:
        """The requests answered 401."""
        return [r for r in self._requests if r.status == 401]

    # -- serving -------------------------------------------------------------------------

    async def _serve(self, stream: trio.SocketStream) -> None:
        self._connections += 1
        number = self._connections
        client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        async with stream:
            try:
                while await self._exchange(number, stream, client):
                    client.start_next_cycle()
            except* (_Closed, OSError, trio.TooSlowError):
                pass  # either side went away: so does the connection

    async def _exchange(
        self, number: int, stream: trio.SocketStream, client: h11.Connection
    ) -> bool:
        """Answer or forward one request; True when the connection may carry another."""
        event: h11.Event | None = None
        with trio.move_on_after(IDLE_TIMEOUT):
            event = await _next_event(client, stream)
        if not isinstance(event, h11.Request):
            return False
        record = ReceivedRequest.of(number, event)
        self._requests.append(record)
        if record.method == "POST" and urlsplit(record.target).path == "/token":
            await _drain(client, stream)
            body = json.dumps({"access_token": self.issue()}).encode()
            await self._answer(record, client, stream, 200, "application/json", body)
        elif not self._accepts(record.header("authorization")):
            await _drain(client, stream)
            await self._answer(record, client, stream, 401, "text/plain", b"invalid token\n")
        else:
            self._uses += 1
            await self._forward(record, event, client, stream)
        return client.our_state is h11.DONE and client.their_state is h11.DONE

    @staticmethod
    async def _answer(
        record: ReceivedRequest,
        client: h11.Connection,
        stream: trio.SocketStream,
        status: int,
        content_type: str,
        body: bytes,
    ) -> None:
        record.status = status
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
        await _send(client, stream, h11.Response(status_code=status, headers=headers))
        await _send(client, stream, h11.Data(data=body))
        await _send(client, stream, h11.EndOfMessage())

    async def _forward(
        self,
        record: ReceivedRequest,
        event: h11.Request,
        client: h11.Connection,
        stream: trio.SocketStream,
    ) -> None:
        with trio.fail_after(CONNECT_TIMEOUT):
            upstream_stream = await trio.open_tcp_stream(self.upstream_host, self.upstream_port)
        async with upstream_stream:
            upstream = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            headers = [(n, v) for n, v in event.headers.raw_items() if n.lower() not in _HOP_BY_HOP]
            await _send(
                upstream,
                upstream_stream,
                h11.Request(method=event.method, target=event.target, headers=headers),
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_relay, client, stream, upstream, upstream_stream)
                await _relay(upstream, upstream_stream, client, stream, record)


async def _drain(connection: h11.Connection, stream: trio.SocketStream) -> None:
    """Read and drop the body of the request `connection` is reading."""
    while not isinstance(await _next_event(connection, stream), h11.EndOfMessage):
        pass


async def _relay(
    source: h11.Connection,
    source_stream: trio.SocketStream,
    sink: h11.Connection,
    sink_stream: trio.SocketStream,
    record: ReceivedRequest | None = None,
) -> None:
    """Pass one message on: a request's body (`record` None) or an answer, head and body."""
    while True:
        event = await _next_event(source, source_stream)
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and friends concern the upstream hop only
        if isinstance(event, h11.Response):
            assert record is not None
            record.status = event.status_code
            headers = [(n, v) for n, v in event.headers.raw_items() if n.lower() not in _HOP_BY_HOP]
            event = h11.Response(status_code=event.status_code, headers=headers)
        elif isinstance(event, h11.Data):
            event = h11.Data(data=event.data)
        elif not isinstance(event, h11.EndOfMessage):
            raise _Closed(f"unexpected {type(event).__name__}")
        await _send(sink, sink_stream, event)
        if isinstance(event, h11.EndOfMessage):
            return


class ThreadedTokenProxy(ThreadedServer):
    """A :class:`TokenProxy` in a thread of its own, for blocking code (a CLI subprocess)."""

    def __init__(self, upstream_port: int, **options: object) -> None:
        self.proxy = TokenProxy(upstream_port, **options)  # type: ignore[arg-type]
        super().__init__(self.proxy, "tokenproxy")

    def url_for(self, path_or_url: str) -> str:
        return self.proxy.url_for(path_or_url)

    def issue(self) -> str:
        return self._call(self.proxy.issue)

    def received(self, method: str | None = None) -> list[ReceivedRequest]:
        return self._call(self.proxy.received, method)

    def refused(self) -> list[ReceivedRequest]:
        return self._call(self.proxy.refused)
