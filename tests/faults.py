"""Fault injection at the HTTP level: an httpx transport that wraps another one.

:class:`FaultTransport` sits between an ``httpx.AsyncClient`` and a real transport (an
``httpx.AsyncHTTPTransport`` to a real tus server) or an in-memory one (``MockTransport``,
``tests.fakes.FakeTusServer``), and breaks chosen exchanges the way servers, proxies and
networks do::

    transport = FaultTransport(
        httpx.AsyncHTTPTransport(),
        [
            Rule("PATCH", Respond(503, retry_after=1)),          # the 1st PATCH: 503, not sent
            Rule("PATCH", Fail(httpx.ReadError, after=True), nth=2),  # stored, answer lost
            Rule("PATCH", ShortBody(64 * 1024), nth=3),           # reset after 64 KiB of body
        ],
    )
    async with httpx.AsyncClient(transport=transport) as client:
        ...
    assert [e.status for e in transport.log if e.method == "PATCH"] == [503, None, None, 204]

Rules: ``Rule(method, action, nth=1, times=1, delay=0.0, when=None)`` applies `action` to
requests of `method` (None: any) that `when` (a predicate on the ``httpx.Request``) accepts,
from the `nth` such request after the rule was added on, `times` times (None: every one).
Each request gets at most one action: that of the first rule in order that is due (every
matching rule counts the request all the same). `delay` seconds (``trio.sleep``: MockClock
friendly; ``math.inf`` hangs until cancelled) pass before the action.

Actions:

* :class:`Forward` - pass the exchange through (only `delay` applies).
* :class:`Respond` - answer `status` (with ``Tus-Resumable``, optional ``Retry-After``)
  without forwarding; the request body is read and dropped first, as a real client
  sends it whole before it reads an answer.
* :class:`Replace` - forward, then replace the server's answer: the server did the work.
* :class:`Fail` - raise `error` (``httpx.ConnectError``, ``ReadError``, ``WriteTimeout``...)
  before forwarding, or with ``after=True`` once the server has answered (the answer lost).
* :class:`ShortBody` - the server gets only the first `keep` bytes of the body, then the
  client gets `error`. ``mode="abort"`` (for real servers) aborts the upstream request after
  `keep` bytes: the connection is closed mid-body, with Content-Length unmet, exactly as a
  reset would leave it. ``mode="truncate"`` (for in-memory servers, which read whole bodies)
  sends a complete request of `keep` bytes with Content-Length fixed up, drops the answer
  and raises `error`.
* :class:`Corrupt` - flip a byte of the body on its way (at `at`, default the middle), so
  that a checksum no longer matches (460 from asgi-tus) or the stored bytes differ.
* :class:`Drift` - before forwarding a PATCH, PATCH `extra` bytes (the start of this very
  body, unless `data` is given) to the same URL at the same offset behind the client's back:
  the server's offset moves and the client's own PATCH gets 409.
* :class:`StallBody` - forward the body, but pause `seconds` after its first `after` bytes.

Every exchange is recorded in :attr:`FaultTransport.log` (:class:`Exchange`: method, URL,
``Upload-Offset`` sent and received, body bytes the server got, the server's status, the
status or error the client got, the fault applied); requests the transport makes itself
(drift) are recorded too, with ``injected=True``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx
import trio

__all__ = [
    "Action",
    "Corrupt",
    "Drift",
    "Exchange",
    "Fail",
    "FaultTransport",
    "Forward",
    "Replace",
    "Respond",
    "Rule",
    "ShortBody",
    "StallBody",
]

TUS_VERSION = "1.0.0"


@dataclass(frozen=True)
class Forward:
    """Pass the exchange through unchanged."""


@dataclass(frozen=True)
class Respond:
    """Answer without forwarding."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: adds ``Retry-After`` (seconds, or an HTTP date as a string)
    retry_after: float | str | None = None
    #: read and drop the request body before answering (what a real exchange does)
    drain: bool = True


@dataclass(frozen=True)
class Replace:
    """Forward, read the server's answer, and give the client this one instead."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    retry_after: float | str | None = None


@dataclass(frozen=True)
class Fail:
    """Raise `error` before forwarding, or (``after=True``) once the server has answered."""

    error: type[httpx.TransportError] = httpx.ConnectError
    after: bool = False


@dataclass(frozen=True)
class ShortBody:
    """Let only the first `keep` body bytes reach the server, then raise `error`."""

    keep: int
    error: type[httpx.TransportError] = httpx.WriteError
    mode: Literal["abort", "truncate"] = "abort"


@dataclass(frozen=True)
class Corrupt:
    """XOR the body byte at `at` (None: the middle of the body) with `mask`."""

    at: int | None = None
    mask: int = 0xFF


@dataclass(frozen=True)
class Drift:
    """PATCH `extra` bytes (this body's first ones, or `data`) behind the client's back."""

    extra: int = 1
    data: bytes | None = None


@dataclass(frozen=True)
class StallBody:
    """Pause the body for `seconds` after its first `after` bytes."""

    after: int
    seconds: float


Action = Forward | Respond | Replace | Fail | ShortBody | Corrupt | Drift | StallBody


@dataclass(eq=False)
class Rule:
    """Apply `action` to the `nth` (then following, `times` in all) request of `method`."""

    method: str | None
    action: Action
    nth: int = 1
    times: int | None = 1
    delay: float = 0.0
    when: Callable[[httpx.Request], bool] | None = None
    #: matching requests seen since the rule was added
    seen: int = 0
    #: times the rule was applied
    fired: int = 0

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise ValueError("nth counts from 1")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 or None")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")

    def matches(self, request: httpx.Request) -> bool:
        if self.method is not None and request.method != self.method.upper():
            return False
        return self.when is None or self.when(request)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


@dataclass(eq=False)
class Exchange:
    """One request through the transport and what became of it."""

    index: int
    method: str
    url: str
    #: ``Upload-Offset`` of the request
    offset: int | None
    #: ``Upload-Length`` of the request (a creation, or a deferred length declared)
    upload_length: int | None = None
    #: ``Content-Length`` of the request: the body the client meant to send
    content_length: int | None = None
    #: the applied action (``repr``), None when the exchange passed untouched
    fault: str | None = None
    #: body bytes that went to the server; None when nothing was forwarded
    body_sent: int | None = None
    #: the server's status; None when it was not asked or did not answer
    server_status: int | None = None
    #: the status the client got; None when it got an error
    status: int | None = None
    #: ``Upload-Offset`` of the answer the client got
    response_offset: int | None = None
    #: the exception the client got (its class name)
    error: str | None = None
    #: a request the transport made on its own (drift); it is logged right after the
    #: client's exchange it was made for, though it reached the server first
    injected: bool = False


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _scripted(
    status: int, headers: Mapping[str, str], body: bytes, retry_after: float | str | None
) -> httpx.Response:
    merged = {"Tus-Resumable": TUS_VERSION, **headers}
    if retry_after is not None:
        merged["Retry-After"] = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    return httpx.Response(status, headers=merged, content=body)


async def _chunks(stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    if isinstance(stream, httpx.AsyncByteStream):
        async for chunk in stream:
            yield chunk
    else:
        for chunk in stream:
            yield chunk


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk


def _has_body(request: httpx.Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


class FaultTransport(httpx.AsyncBaseTransport):
    """Wrap `inner`, applying the first due :class:`Rule` of `plan` to each request.

    `plan` can be changed at any time through :meth:`add` and :meth:`clear` (or the
    :attr:`rules` list). Closing this transport closes `inner`.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, plan: Iterable[Rule] = ()) -> None:
        self.inner = inner
        self.rules: list[Rule] = list(plan)
        self.log: list[Exchange] = []

    def add(self, *rules: Rule) -> None:
        self.rules.extend(rules)

    def clear(self) -> None:
        self.rules.clear()

    def exchanges(self, method: str | None = None, *, injected: bool = False) -> list[Exchange]:
        """The recorded exchanges of `method` (None: all), the client's own by default."""
        return [
            exchange
            for exchange in self.log
            if (method is None or exchange.method == method.upper())
            and exchange.injected == injected
        ]

    def statuses(self, method: str | None = None) -> list[int | None]:
        """The status the client got for each of its requests (None: it got an error)."""
        return [exchange.status for exchange in self.exchanges(method)]

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _select(self, request: httpx.Request) -> Rule | None:
        chosen: Rule | None = None
        for rule in self.rules:
            if not rule.matches(request):
                continue
            rule.seen += 1
            if chosen is None and rule.seen >= rule.nth and not rule.exhausted:
                chosen = rule
        if chosen is not None:
            chosen.fired += 1
        return chosen

    def _record(self, request: httpx.Request, *, injected: bool = False) -> Exchange:
        exchange = Exchange(
            index=len(self.log),
            method=request.method,
            url=str(request.url),
            offset=_int_header(request.headers, "upload-offset"),
            upload_length=_int_header(request.headers, "upload-length"),
            content_length=_int_header(request.headers, "content-length"),
            injected=injected,
        )
        self.log.append(exchange)
        return exchange

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rule = self._select(request)
        exchange = self._record(request)
        action: Action = Forward() if rule is None else rule.action
        if rule is not None:
            exchange.fault = repr(action)
        try:
            if rule is not None and rule.delay:
                await trio.sleep(rule.delay)
            response = await self._apply(action, request, exchange)
        except BaseException as exc:
            exchange.error = type(exc).__name__
            raise
        exchange.status = response.status_code
        exchange.response_offset = _int_header(response.headers, "upload-offset")
        return response

    async def _apply(
        self, action: Action, request: httpx.Request, exchange: Exchange
    ) -> httpx.Response:
        if isinstance(action, Forward):
            return await self._forward(request, exchange)
        if isinstance(action, Respond):
            if action.drain:
                async for _ in _chunks(request.stream):
                    pass
            return _scripted(action.status, action.headers, action.body, action.retry_after)
        if isinstance(action, Replace):
            await self._forward_and_drop(request, exchange)
            return _scripted(action.status, action.headers, action.body, action.retry_after)
        if isinstance(action, Fail):
            if action.after:
                await self._forward_and_drop(request, exchange)
                raise action.error(
                    f"injected {action.error.__name__} after the server answered",
                    request=request,
                )
            raise action.error(f"injected {action.error.__name__}", request=request)
        if isinstance(action, ShortBody):
            return await self._short_body(action, request, exchange)
        if isinstance(action, Corrupt):
            at = action.at
            if at is None:
                at = (_int_header(request.headers, "content-length") or 0) // 2
            return await self._forward(request, exchange, flip=at, mask=action.mask)
        if isinstance(action, Drift):
            return await self._drift(action, request, exchange)
        if isinstance(action, StallBody):
            return await self._forward(
                request, exchange, pause=action.after, seconds=action.seconds
            )
        raise TypeError(f"unknown action {action!r}")

    async def _body(
        self,
        source: AsyncIterator[bytes],
        exchange: Exchange,
        request: httpx.Request,
        *,
        keep: int | None = None,
        error: type[httpx.TransportError] | None = None,
        flip: int | None = None,
        mask: int = 0xFF,
        pause: int | None = None,
        seconds: float = 0.0,
    ) -> AsyncIterator[bytes]:
        """`source`, counted into `exchange`, with a byte flipped, a pause, or a cut."""
        exchange.body_sent = 0
        position = 0
        async for chunk in source:
            while chunk:
                if pause is not None and position >= pause:
                    await trio.sleep(seconds)
                    pause = None
                if keep is not None and position >= keep:
                    assert error is not None
                    raise error(
                        f"injected {error.__name__} after {keep} body bytes", request=request
                    )
                end = position + len(chunk)
                stops = [p for p in (pause, keep) if p is not None and position < p < end]
                split = min(stops, default=end) - position
                piece, chunk = chunk[:split], chunk[split:]
                if flip is not None and position <= flip < position + len(piece):
                    flipped = bytearray(piece)
                    flipped[flip - position] ^= mask
                    piece = bytes(flipped)
                position += len(piece)
                exchange.body_sent = position
                yield piece
        if pause is not None and position >= pause:
            await trio.sleep(seconds)
        if keep is not None and position >= keep:
            assert error is not None
            raise error(f"injected {error.__name__} after {keep} body bytes", request=request)

    async def _forward(
        self,
        request: httpx.Request,
        exchange: Exchange,
        *,
        source: AsyncIterator[bytes] | None = None,
        keep: int | None = None,
        error: type[httpx.TransportError] | None = None,
        flip: int | None = None,
        mask: int = 0xFF,
        pause: int | None = None,
        seconds: float = 0.0,
    ) -> httpx.Response:
        """Send `request` (its body from `source`, else its own stream) to the inner
        transport, counting, corrupting, pausing or cutting the body on the way."""
        if source is not None or _has_body(request):
            chunks = _chunks(request.stream) if source is None else source
            body = self._body(
                chunks,
                exchange,
                request,
                keep=keep,
                error=error,
                flip=flip,
                mask=mask,
                pause=pause,
                seconds=seconds,
            )
            # a new request, so that no copy of the body it may hold in memory (requests
            # built from bytes do) is read instead of the stream
            request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                stream=_Stream(body),
                extensions=request.extensions,
            )
        else:
            exchange.body_sent = 0
        response = await self.inner.handle_async_request(request)
        exchange.server_status = response.status_code
        return response

    async def _forward_and_drop(self, request: httpx.Request, exchange: Exchange) -> None:
        response = await self._forward(request, exchange)
        try:
            await response.aread()
        finally:
            await response.aclose()

    async def _short_body(
        self, action: ShortBody, request: httpx.Request, exchange: Exchange
    ) -> httpx.Response:
        if action.mode == "abort":
            return await self._forward(request, exchange, keep=action.keep, error=action.error)
        kept = bytearray()
        async for chunk in _chunks(request.stream):
            kept += chunk[: max(0, action.keep - len(kept))]
        headers = httpx.Headers(request.headers)
        headers["Content-Length"] = str(len(kept))
        truncated = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=bytes(kept),
            extensions=request.extensions,
        )
        await self._forward_and_drop(truncated, exchange)
        raise action.error(
            f"injected {action.error.__name__} after {len(kept)} body bytes", request=request
        )

    async def _drift(
        self, action: Drift, request: httpx.Request, exchange: Exchange
    ) -> httpx.Response:
        chunks = _chunks(request.stream)
        prefix = b""
        if action.data is None:
            async for chunk in chunks:
                prefix += chunk
                if len(prefix) >= action.extra:
                    break
        data = action.data if action.data is not None else prefix[: action.extra]
        headers = httpx.Headers(
            {
                name: value
                for name, value in request.headers.items()
                if name.lower()
                not in ("content-length", "transfer-encoding", "upload-checksum", "upload-length")
            }
        )
        headers["Content-Length"] = str(len(data))
        sneaky = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=data,
            extensions=request.extensions,
        )
        injected = self._record(sneaky, injected=True)
        injected.fault = f"drift: {len(data)} bytes"
        response = await self._forward(sneaky, injected)
        try:
            await response.aread()
        finally:
            await response.aclose()
        injected.status = response.status_code
        injected.response_offset = _int_header(response.headers, "upload-offset")

        async def replay() -> AsyncIterator[bytes]:
            if prefix:
                yield prefix
            async for chunk in chunks:
                yield chunk

        return await self._forward(request, exchange, source=replay())
