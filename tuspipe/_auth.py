"""Credentials made anew for every request: ``auth=``, ``on_request`` and ``X-Request-ID``.

Part of the transport layer (it imports httpx, to drive ``httpx.Auth`` flows). tuspipe sends
its requests past httpx's client layers, so that file spans go out with ``sendfile()``; this
module is httpx's auth step for them, run by :class:`~tuspipe._transport.Transport` before
every request. It never sees a body: a flow gets the request's method, URL and headers.

Theory of operation
-------------------
:meth:`Authenticator.send` prepares each request (:meth:`Authenticator.prepare`): a fresh
``X-Request-ID`` (``request_id=True``), the headers ``auth=`` returns (the function form), then
``on_request(request)`` with an :class:`~tuspipe._hooks.OutgoingRequest` it may change; last,
an ``httpx.Auth`` flow gets an ``httpx.Request`` with those headers and yields the request to
send. tus's own headers stay tuspipe's throughout (a hook or flow that changes one is a
UsageError). Credentials go only where :mod:`tuspipe._credentials` allows.

After the answer:

* A flow is sent the answer (an ``httpx.Response`` holding the status, headers and the first
  64 KiB of the body) and may yield again: a request of its own (a token refresh, say: sent as
  it is, through the same connection pool) or this request once more, with new credentials.
* Without a flow, a 401 asks ``auth=`` and ``on_request`` again and sends the request once
  more: the hook may hand out a fresh token by then (``on_response`` sees the 401 first).
* A request whose body went out already cannot be sent again here (a body is a stream of file
  spans, read once). Then :exc:`CredentialsRefreshed` is raised: the caller recovers as from
  any failed PATCH (it asks the server for its offset: the server is the authority on what it
  stored) and sends the request again, from there. That request runs the flow afresh, with
  what the flow learnt (a new token, a digest challenge) kept on the ``httpx.Auth`` object, as
  httpx's own auths and its documented refresh pattern keep it. (Resuming the old flow would
  send the credentials it made before the HEAD in between, stale by then when concurrent
  requests, the parts of a parallel upload, have refreshed them since.)

Everything is bounded: a flow may yield at most :data:`MAX_FLOW_REQUESTS` requests per
request of tuspipe's, and a hook is asked again once per request.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import replace

import httpx

from ._body import BodyPart
from ._credentials import CREDENTIAL_HEADERS, scoped_credentials_may_go
from ._errors import ResponseError, UsageError
from ._hooks import OutgoingRequest, call_hook
from ._protocol import (
    RESERVED_HEADERS,
    Request,
    Response,
    answer_error,
    error_for,
    origin,
    validate_headers,
)
from ._zerocopy import parsed_url

__all__ = [
    "MAX_FLOW_REQUESTS",
    "AuthTypes",
    "Authenticator",
    "CredentialsRefreshed",
    "HeadersFunction",
    "RequestHook",
    "check_auth",
]

logger = logging.getLogger("tuspipe")

HeadersFunction = Callable[[], Mapping[str, str] | Awaitable[Mapping[str, str]]]
"""``auth=``'s short form: a function, plain or async, returning the headers to add."""
AuthTypes = httpx.Auth | tuple[str, str] | HeadersFunction
"""What ``auth=`` takes: an ``httpx.Auth``, a (user, password) pair (Basic), or a function."""
RequestHook = Callable[[OutgoingRequest], object]
"""``on_request(request)``, plain or async: may change the headers of every request."""

# Requests one flow may yield for one request of tuspipe's (its own and the retries).
MAX_FLOW_REQUESTS = 4

REQUEST_ID = "X-Request-ID"

# The headers of a stored answer that would make httpx decode or frame its (cut) body again.
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})

Exchange = Callable[[Request, AsyncIterable[BodyPart] | None, str | None], Awaitable[Response]]
"""Send one prepared request (with its X-Request-ID, if any) and return the answer."""
ForeignExchange = Callable[[httpx.Request], Awaitable[httpx.Response]]
"""Send a request of a flow's own and return the answer, read."""


def check_auth(value: object) -> None:
    """Raise UsageError unless `value` is something ``auth=`` takes."""
    if value is None or isinstance(value, httpx.Auth):
        if isinstance(value, httpx.Auth) and value.requires_request_body:
            raise UsageError(
                f"auth={type(value).__name__}(...) needs the request body "
                "(requires_request_body), but tus bodies are spans of the file, sent without "
                "being read into memory: an auth flow sees the method, URL and headers only"
            )
        return
    if isinstance(value, tuple):
        if len(value) != 2 or not all(isinstance(part, (str, bytes)) for part in value):
            raise UsageError("auth= as a tuple must be (username, password)")
        return
    if isinstance(value, type) or not callable(value):
        raise UsageError(
            "auth must be an httpx.Auth instance, a (username, password) pair, or a function "
            f"returning headers, not {value!r}"
        )
    try:
        inspect.signature(value).bind()
    except TypeError:
        raise UsageError(
            "auth= as a function is called with no arguments and returns the headers to add "
            "(auth=lambda: {'Authorization': ...}); to change each request, use on_request= "
            "(or wrap a function of the request in httpx.FunctionAuth)"
        ) from None
    except ValueError:
        pass  # no signature to read (a builtin): it is tried as it is


class CredentialsRefreshed(ResponseError):
    """The server refused the credentials, fresh ones are ready, but the request's body has
    been sent and cannot be sent again from here: send the request again (for a PATCH, once
    the server has said its offset).

    The status and body are the refusal's (401, usually). Raised by the transport only for
    requests with a body; the PATCH link and the creation POST handle it.
    """

    def final(self) -> ResponseError:
        """The refusal as the plain ResponseError to raise when no more tries are allowed."""
        return self.recast(ResponseError, f"{self.args[0]} (refused again after fresh credentials)")


class Authenticator:
    """``auth=``, ``on_request`` and ``request_id=`` of one transport (see the module)."""

    def __init__(
        self,
        *,
        auth: AuthTypes | None = None,
        on_request: RequestHook | None = None,
        request_id: bool = False,
    ) -> None:
        check_auth(auth)
        if on_request is not None and not callable(on_request):
            raise UsageError("on_request must be callable")
        if isinstance(auth, tuple):
            auth = httpx.BasicAuth(*auth)
        self._flow_auth = auth if isinstance(auth, httpx.Auth) else None
        self._headers_function: HeadersFunction | None = (
            None if auth is None or isinstance(auth, httpx.Auth) else auth
        )
        self._on_request = on_request
        self._request_id = bool(request_id)
        self._withheld: set[tuple[str, str, int | None]] = set()  # origins warned about

    async def send(
        self,
        request: Request,
        body: AsyncIterable[BodyPart] | None,
        exchange: Exchange,
        foreign: ForeignExchange,
    ) -> Response:
        """Send `request` through `exchange` with fresh credentials (see the module).

        Raises CredentialsRefreshed when `request` has a body and must be sent again;
        UsageError when a hook or flow changes one of tus's own headers.
        """
        credentials = scoped_credentials_may_go(request.url)
        if not credentials:
            self._withhold(request.url)
        prepared, request_id = await self.prepare(request, credentials)
        if self._flow_auth is not None and credentials:
            return await self._send_with_flow(
                self._flow_auth, prepared, request_id, body, exchange, foreign
            )
        response = await exchange(prepared, body, request_id)
        if response.status_code != 401 or not credentials or not self._asks_again:
            return response
        if body is not None:
            raise _refreshed(prepared, response)
        logger.info("%s %s was answered 401; asking for credentials again", *_said(request))
        prepared, request_id = await self.prepare(request, credentials)
        return await exchange(prepared, None, request_id)

    @property
    def _asks_again(self) -> bool:
        return self._headers_function is not None or self._on_request is not None

    async def prepare(self, request: Request, credentials: bool) -> tuple[Request, str | None]:
        """`request` with its X-Request-ID, the headers of ``auth=``'s function and what
        ``on_request`` made of it; credential headers only if `credentials`."""
        headers = list(request.headers)
        if self._request_id:
            headers = [pair for pair in headers if pair[0].lower() != "x-request-id"]
            headers.append((REQUEST_ID, str(uuid.uuid4())))
        if self._headers_function is not None and credentials:
            given = await call_hook(self._headers_function)
            try:
                added = validate_headers(given)
            except UsageError as exc:
                raise UsageError(f"auth= returned headers tuspipe cannot send: {exc}") from None
            names = {name.lower() for name, _ in added}
            headers = [pair for pair in headers if pair[0].lower() not in names] + list(added)
        if self._on_request is not None:
            view = OutgoingRequest(request.method, request.url, headers)
            await call_hook(self._on_request, view)
            headers = list(view.headers.pairs())
            if not credentials:
                headers = [pair for pair in headers if pair[0].lower() not in CREDENTIAL_HEADERS]
        request_id = None
        if self._request_id:
            request_id = next((v for n, v in headers if n.lower() == "x-request-id"), None)
        return replace(request, headers=tuple(headers)), request_id

    def _withhold(self, url: str) -> None:
        where = origin(url)
        if where not in self._withheld and (self._flow_auth or self._asks_again):
            self._withheld.add(where)
            logger.warning(
                "%s is on another origin than the endpoint: auth= and the credential headers "
                "of on_request are not sent there (allow_cross_origin_credentials=True sends "
                "them)",
                url,
            )

    async def _send_with_flow(
        self,
        auth: httpx.Auth,
        prepared: Request,
        request_id: str | None,
        body: AsyncIterable[BodyPart] | None,
        exchange: Exchange,
        foreign: ForeignExchange,
    ) -> Response:
        given = httpx.Request(
            prepared.method, parsed_url(prepared.url), headers=list(prepared.headers)
        )
        original = tuple(given.headers.multi_items())
        flow = auth.async_auth_flow(given)
        last: Response | None = None
        try:
            next_request = await _first(flow)
            for _ in range(MAX_FLOW_REQUESTS):
                if next_request is None:  # the flow is done
                    break
                if next_request is given or _same_target(next_request, given):
                    if last is not None and body is not None:
                        raise _refreshed(prepared, last)
                    if last is not None:
                        logger.info("%s %s: sent again, as auth= asks", *_said(prepared))
                    headers = _as_flow_left_them(prepared.headers, original, next_request)
                    last = await exchange(replace(prepared, headers=headers), body, request_id)
                    answer = _as_httpx(last, next_request)
                else:
                    answer = await foreign(next_request)
                next_request = await _next(flow, answer)
            else:
                logger.warning("auth= asked for more than %d requests", MAX_FLOW_REQUESTS)
            if last is None:  # a flow that never let tuspipe's request go: sent as it is
                last = await exchange(prepared, body, request_id)
        finally:
            await flow.aclose()
        return last


async def _first(flow: AsyncGenerator[httpx.Request, httpx.Response]) -> httpx.Request | None:
    try:
        return await flow.__anext__()
    except StopAsyncIteration:
        return None


async def _next(
    flow: AsyncGenerator[httpx.Request, httpx.Response], answer: httpx.Response
) -> httpx.Request | None:
    try:
        return await flow.asend(answer)
    except StopAsyncIteration:
        return None


def _same_target(request: httpx.Request, given: httpx.Request) -> bool:
    return (request.method, request.url) == (given.method, given.url)


def _said(request: Request) -> tuple[str, str]:
    return request.method, request.url


def _refreshed(request: Request, response: Response) -> CredentialsRefreshed:
    words = error_for(request, response).args[0]  # what the status table says of it
    return answer_error(CredentialsRefreshed, request, response, words)


def _as_flow_left_them(
    headers: tuple[tuple[str, str], ...],
    original: tuple[tuple[str, str], ...],
    yielded: httpx.Request,
) -> tuple[tuple[str, str], ...]:
    """`headers` with the changes a flow made to the request it was given (`original`, as
    the flow got them; `yielded`, as it left them): headers it set, changed or removed.

    tus's own headers stay as in `headers`: a flow that changed one is a UsageError.
    """
    before: dict[str, list[str]] = {}
    for name, value in original:
        before.setdefault(name.lower(), []).append(value)
    after: dict[str, list[str]] = {}
    for name, value in yielded.headers.multi_items():
        after.setdefault(name.lower(), []).append(value)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    tampered = sorted(changed & RESERVED_HEADERS)
    if tampered:
        raise UsageError(
            f"the auth= flow changed {', '.join(tampered)}: tus's own headers are tuspipe's; "
            "an auth flow may set the others (Authorization, ...)"
        )
    kept = [pair for pair in headers if pair[0].lower() not in changed]
    return (*kept, *((name, value) for name in sorted(changed) for value in after.get(name, [])))


def _as_httpx(response: Response, request: httpx.Request) -> httpx.Response:
    """tuspipe's answer as the httpx.Response a flow expects (the body as far as read)."""
    headers = [(name, value) for name, value in response.headers.items() if name not in _FRAMING]
    return httpx.Response(
        response.status_code, headers=headers, content=response.body, request=request
    )
