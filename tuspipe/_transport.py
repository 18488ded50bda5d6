"""The transport: the one place that talks HTTP (with :mod:`tuspipe._auth`,
:mod:`tuspipe._zerocopy` and :mod:`tuspipe._pool` beneath it, the only modules that import httpx
or httpcore).

It sends a :class:`~tuspipe._protocol.Request` on pooled connections (so every request of an
upload reuses the same connection): on tuspipe's own client straight to its
``ZeroCopyTransport`` (``send_bare``, past httpx's Request and Response objects), otherwise as
an httpx request on the ``httpx.AsyncClient``. It streams the body it is given and returns a
:class:`~tuspipe._protocol.Response`. httpx's exceptions are mapped into tuspipe's tree in one
place, :func:`_mapped_errors`; timeouts are always explicit.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterable, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Union

import httpx
import trio

from ._auth import Authenticator, AuthTypes, RequestHook, check_auth
from ._body import BodyPart
from ._errors import (
    NetworkError,
    NetworkTimeoutError,
    SchemeMismatchError,
    TLSVerificationError,
    UsageError,
)
from ._protocol import Request, Response, origin
from ._version import USER_AGENT
from ._zerocopy import (
    BareAnswer,
    ZeroCopyTransport,
    bare_path_allowed,
    body_route,
    read_limited,
    route_body,
)

__all__ = [
    "AuthTypes",
    "CertTypes",
    "HTTPClient",
    "RequestHook",
    "ResponseHook",
    "Transport",
    "VerifyTypes",
    "check_auth",
    "make_ssl_context",
]

logger = logging.getLogger("tuspipe")

VerifyTypes = Union[bool, str, "os.PathLike[str]", ssl.SSLContext]
HTTPClient = httpx.AsyncClient
"""The client a caller may share through ``http_client=`` (named here, so that httpx is
imported by this module only)."""
ResponseHook = Callable[[Request, Response], object]
"""Called as ``on_response(request, response)`` after every answer the transport receives."""
CertTypes = Union[str, "os.PathLike[str]", tuple[str, str], tuple[str, str, str]]

# tus answers carry their meaning in headers; a body is only kept to quote it in errors, so a
# hostile or broken server cannot make the client buffer an unbounded answer.
MAX_RESPONSE_BODY = 64 * 1024


def make_ssl_context(verify: VerifyTypes = True, cert: CertTypes | None = None) -> ssl.SSLContext:
    """Build the TLS context for `verify` and `cert`, with the meanings httpx gives them.

    `verify`: True (the certifi bundle), False (no verification), a CA bundle file or directory,
    or a ready ``ssl.SSLContext``. `cert`: a PEM file holding certificate and key, or a
    ``(cert, key)`` or ``(cert, key, password)`` tuple.
    """
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True or verify is False:
        if verify is False:
            logger.warning(
                "TLS certificate verification is off (verify=False): anyone on the path can "
                "read and change the upload"
            )
        if cert is None:
            # Loading the CA bundle takes tens of milliseconds: every call and Client without
            # certificate options of their own share one context per `verify`.
            # (Keyed by the variables httpx reads too, so that changing them takes effect.)
            cert_file, cert_dir = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
            return _shared_ssl_context(verify, cert_file, cert_dir)
        context = httpx.create_ssl_context(verify=verify)
    elif isinstance(verify, (str, os.PathLike)):
        location = os.fspath(verify)
        try:
            if os.path.isdir(location):
                context = ssl.create_default_context(capath=location)
            elif os.path.isfile(location):
                context = ssl.create_default_context(cafile=location)
            else:
                raise UsageError(f"verify={location!r}: no CA bundle file or directory there")
        except ssl.SSLError as exc:
            raise UsageError(f"verify={location!r} is not a PEM CA bundle: {exc}") from exc
    else:
        raise UsageError(f"verify must be a bool, a path or an ssl.SSLContext, not {verify!r}")
    if cert is not None:
        if isinstance(cert, (str, os.PathLike)):
            chain: tuple[str, ...] = (os.fspath(cert),)
        elif (
            isinstance(cert, tuple)
            and len(cert) in (2, 3)
            and all(isinstance(part, (str, os.PathLike)) for part in cert)
        ):
            chain = tuple(os.fspath(part) for part in cert)
        else:
            raise UsageError(
                f"cert must be a path or a (cert, key[, password]) tuple, not {cert!r}"
            )
        try:
            context.load_cert_chain(*chain)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"cannot load the client certificate {chain[:2]!r}: {exc.strerror or exc}"
            ) from exc
    return context


@functools.cache
def _shared_ssl_context(
    verify: bool, cert_file: str | None, cert_dir: str | None
) -> ssl.SSLContext:
    """httpx's context for `verify`, made once per value of SSL_CERT_FILE and SSL_CERT_DIR."""
    return httpx.create_ssl_context(verify=verify)


@contextmanager
def _mapped_errors(method: str, url: str, request_id: str | None = None) -> Iterator[None]:
    """Translate httpx's exceptions into tuspipe's tree; everything else passes untouched.

    The messages name the request (`method` and `url`, and its X-Request-ID if any)."""
    what = f"{method} {url}" + (f" (X-Request-ID {request_id})" if request_id else "")
    try:
        yield
    except _SchemeMismatchSuspected as suspected:
        raise SchemeMismatchError(
            f"{what} failed: {suspected.port} speaks TLS, so the URL does not look like a tus "
            f"endpoint; use {_with_scheme(url, 'https')}"
        ) from suspected.__cause__
    except httpx.TimeoutException as exc:
        raise NetworkTimeoutError(f"{what} timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        verification = _certificate_failure(exc)
        if verification is not None:
            raise TLSVerificationError(
                f"{what}: the server's TLS certificate could not be verified ({verification}); "
                "if it is signed by your own CA, pass verify='ca.pem' (tuspipe --cacert "
                "ca.pem), or verify=False to skip the check"
            ) from exc
        if _is_plain_port(exc):
            raise SchemeMismatchError(
                f"{what} failed: the server at {_authority(url)} does not speak TLS (it "
                "answered the handshake in plain text), so the URL does not look like a tus "
                f"endpoint; use {_with_scheme(url, 'http')}"
            ) from exc
        detail = _tls_failure(exc) or str(exc) or type(exc).__name__
        raise NetworkError(f"{what} failed: {detail}") from exc


# What OpenSSL says when the server answers a TLS handshake with something else (plain HTTP).
_PLAIN_TEXT_ANSWERS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def _is_plain_port(exc: BaseException) -> bool:
    """Whether `exc` is a TLS handshake answered in plain text (https:// to an http port)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and (seen.reason or "") in _PLAIN_TEXT_ANSWERS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _authority(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _with_scheme(url: str, scheme: str) -> str:
    return urllib.parse.urlsplit(url)._replace(scheme=scheme).geturl()


class _SchemeMismatchSuspected(Exception):
    """Raised inside :func:`_mapped_errors` once a probe found TLS behind an http:// URL."""

    def __init__(self, port: str) -> None:
        super().__init__(port)
        self.port = port


# Seconds the probe for TLS behind an http:// URL may take.
_TLS_PROBE_TIMEOUT = 2.0


async def _speaks_tls(url: str) -> bool:
    """Whether the server of the http:// `url` completes a TLS handshake (certificate not
    checked: only the scheme is in question). Asked only after a plain request got no answer
    at all, which is how TLS servers meet plain HTTP."""
    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with trio.move_on_after(_TLS_PROBE_TIMEOUT):
        try:
            stream = await trio.open_ssl_over_tcp_stream(
                parts.hostname or "", parts.port or 80, ssl_context=context
            )
            try:
                await stream.do_handshake()
                return True
            finally:
                await stream.aclose()
        except (OSError, trio.BrokenResourceError, ssl.SSLError):
            return False
    return False


# TLS alerts by which a server refuses the client's certificate, or its absence (TLS 1.2
# servers say only "handshake failure").
_CLIENT_CERTIFICATE_ALERTS = (
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_BAD_CERTIFICATE",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_HANDSHAKE_FAILURE",
)


def _tls_failure(exc: BaseException) -> str | None:
    """What TLS said when `exc` stems from a failed TLS exchange (httpx's own message is often
    empty then), with a hint when the server refused the client's certificate."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            detail = str(seen)
            if any(alert in (seen.reason or "") for alert in _CLIENT_CERTIFICATE_ALERTS):
                detail += (
                    "; the server refused the TLS client certificate, or wants one: pass "
                    "cert='client.pem' or cert=('cert.pem', 'key.pem') "
                    "(tuspipe --cert cert.pem --key key.pem)"
                )
            return detail
        seen = seen.__cause__ or seen.__context__
    return None


def _certificate_failure(exc: BaseException) -> str | None:
    """The verification message when `exc` stems from a refused server certificate."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "certificate verify failed"
    return None


def _environment_names_a_proxy() -> bool:
    """Whether HTTP_PROXY, HTTPS_PROXY or ALL_PROXY (any case) is set, as httpx reads them."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


class Transport:
    """A pooled HTTP client for tus requests; use it as an async context manager.

    Args:
        timeout: seconds allowed to connect, and to wait for a pooled connection.
        stall_timeout: seconds a request may go without moving a byte (no socket write
            progress while sending, no answer while waiting) before it is aborted.
        verify, cert: TLS settings, see :func:`make_ssl_context`.
        client: an ``httpx.AsyncClient`` to use instead of making one; it is not closed here.
        on_response: called as ``on_response(request, response)`` after every answer.
        method_override: send PATCH and DELETE as POST with ``X-HTTP-Method-Override``, for
            proxies that block those methods.
        auth, on_request, request_id: credentials and headers made for every request (see
            :mod:`tuspipe._auth`); with none of them, requests go out as they are given.
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        stall_timeout: float = 60.0,
        verify: VerifyTypes = True,
        cert: CertTypes | None = None,
        client: httpx.AsyncClient | None = None,
        on_response: ResponseHook | None = None,
        method_override: bool = False,
        auth: AuthTypes | None = None,
        on_request: RequestHook | None = None,
        request_id: bool = False,
    ) -> None:
        for name, value in (("timeout", timeout), ("stall_timeout", stall_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UsageError(f"{name} must be a positive number of seconds, not {value!r}")
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise UsageError(f"http_client must be an httpx.AsyncClient, not {client!r}")
        if client is not None and (verify is not True or cert is not None):
            raise UsageError(
                "verify= and cert= configure tuspipe's own HTTP client; with http_client=, "
                "set TLS options on that client instead"
            )
        # Set on every request, so they hold on a caller's client too.
        self._timeout = httpx.Timeout(
            connect=float(timeout),
            pool=float(timeout),
            read=float(stall_timeout),
            write=float(stall_timeout),
        )
        self._extensions = {"timeout": self._timeout.as_dict()}
        self._owns_client = client is None
        # tuspipe's own transport, when requests may go to it straight (see send()).
        self._direct: ZeroCopyTransport | None = None
        if client is None:
            if _environment_names_a_proxy():
                # httpx routes to the environment's proxies only with its own transport.
                client = httpx.AsyncClient(
                    verify=make_ssl_context(verify, cert), follow_redirects=False
                )
            else:
                # The default context is made when an https connection first needs it; any
                # other is made now, so that a bad CA path or certificate fails at once.
                self._direct = ZeroCopyTransport(
                    make_ssl_context
                    if verify is True and cert is None
                    else make_ssl_context(verify, cert)
                )
                client = httpx.AsyncClient(follow_redirects=False, transport=self._direct)
            # Only a User-Agent that names tuspipe: not httpx's Accept-Encoding (answers are
            # read as they arrive, never decompressed: an error body is quoted as sent) nor
            # its Accept and Connection: keep-alive (HTTP/1.1's defaults).
            client.headers = httpx.Headers({"User-Agent": USER_AGENT})
            if self._direct is not None:
                self._direct.default_headers = {
                    name.decode("ascii").lower(): (name, value)
                    for name, value in client.headers.raw
                }
        self._client = client
        if on_response is not None and not callable(on_response):
            raise UsageError("on_response must be callable")
        self._on_response = on_response
        self._method_override = bool(method_override)
        self._authenticator: Authenticator | None = None
        if auth is not None or on_request is not None or request_id:
            self._authenticator = Authenticator(
                auth=auth, on_request=on_request, request_id=request_id
            )
        # Origins that have answered through this transport (see send()).
        self._answered: set[tuple[str, str, int | None]] = set()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, request: Request, body: AsyncIterable[BodyPart] | None = None) -> Response:
        """Send `request` (streaming `body` if given) and return the server's answer.

        File spans in `body` go out with ``sendfile()`` where the connection allows (see
        :mod:`tuspipe._zerocopy`), and are read into memory where it does not. With ``auth=``,
        ``on_request`` or ``request_id=``, the request gets its credentials and headers first,
        and a 401 may be answered by sending it again (see :mod:`tuspipe._auth`).

        Raises NetworkError or NetworkTimeoutError when no answer arrives; CredentialsRefreshed
        when `request`, which has a body, must be sent again with fresh credentials.
        Exceptions raised by `body` itself (a failing local read, say) propagate unchanged.
        """
        if self._authenticator is None:
            return await self._send_prepared(request, body)
        return await self._authenticator.send(
            request, body, self._send_prepared, self._send_for_auth
        )

    async def _send_prepared(
        self,
        request: Request,
        body: AsyncIterable[BodyPart] | None,
        request_id: str | None = None,
    ) -> Response:
        """Send `request` as it is (see :meth:`send`)."""
        method, headers = request.method, list(request.headers)
        if self._method_override and method in ("PATCH", "DELETE"):
            method, headers = "POST", [*headers, ("X-HTTP-Method-Override", request.method)]
        tag = "" if request_id is None else f" (X-Request-ID {request_id})"
        logger.debug("%s %s%s", request.method, request.url, tag)
        with (
            body_route(body is not None) as route,
            _mapped_errors(request.method, request.url, request_id),
        ):
            content = None if body is None else route_body(body, route)
            bare = self._bare_path(request.url)
            try:
                if bare:
                    answer = await self._direct_transport().send_bare(
                        method, request.url, headers, content, self._extensions
                    )
                else:
                    http_request = self._client.build_request(
                        method, request.url, headers=headers, content=content, timeout=self._timeout
                    )
                    http_response = await self._exchange(http_request)
            except httpx.RemoteProtocolError as exc:
                # A TLS server meets plain HTTP by hanging up. Only asked while the origin has
                # never answered: a server that spoke plain HTTP before speaks it still.
                where = origin(request.url)
                if (
                    where[0] == "http"
                    and where not in self._answered
                    and await _speaks_tls(request.url)
                ):
                    raise _SchemeMismatchSuspected(_authority(request.url)) from exc
                raise
            self._answered.add(origin(request.url))
            if bare:
                status_code, answer_headers = answer.status_code, answer.headers()
                if "set-cookie" in answer_headers:
                    self._keep_cookies(method, request.url, answer)
                body_bytes = await answer.read(MAX_RESPONSE_BODY)
            else:
                status_code = http_response.status_code
                answer_headers = {
                    name.lower(): value for name, value in http_response.headers.items()
                }
                try:
                    if http_response.is_stream_consumed:
                        # Built in memory and already read (httpx.MockTransport, say).
                        body_bytes = http_response.content[:MAX_RESPONSE_BODY]
                    else:
                        body_bytes = await read_limited(
                            http_response.aiter_raw(), MAX_RESPONSE_BODY
                        )
                finally:
                    await http_response.aclose()
        response = Response(
            status_code=status_code,
            headers=answer_headers,
            body=body_bytes,
            request_id=request_id,
        )
        logger.debug("%s %s -> %d%s", request.method, request.url, response.status_code, tag)
        if self._on_response is not None:
            self._on_response(request, response)
        return response

    async def _send_for_auth(self, http_request: httpx.Request) -> httpx.Response:
        """Send a request an auth flow made itself (a token refresh, say) and read its
        answer. Logged without its query, which may hold secrets."""
        parts = urllib.parse.urlsplit(str(http_request.url))
        where = f"{parts.scheme}://{parts.netloc}{parts.path}"
        logger.debug("%s %s (a request of auth=)", http_request.method, where)
        http_request.extensions.setdefault("timeout", self._timeout.as_dict())
        with _mapped_errors(f"auth= {http_request.method}", where):
            response = await self._client.send(http_request)
        logger.debug("%s %s -> %d", http_request.method, where, response.status_code)
        return response

    def _bare_path(self, url: str) -> bool:
        """Whether a request to `url` goes straight to tuspipe's zero-copy transport, past
        httpx's client (its Request and Response objects, auth, redirect and event-hook
        machinery, which tuspipe does not use: a large share of a small request's cost).

        Only on tuspipe's own client (so never through a proxy), while no server has set a
        cookie (the client's cookie jar then takes the client's path, which sends cookies back),
        and for URLs without credentials (user:password@ becomes Basic auth in httpx's
        client)."""
        return self._direct is not None and not self._client.cookies and bare_path_allowed(url)

    def _direct_transport(self) -> ZeroCopyTransport:
        assert self._direct is not None
        return self._direct

    def _keep_cookies(self, method: str, url: str, answer: BareAnswer) -> None:
        """Keep the cookies a server set in an answer on the bare path (see _bare_path)."""
        stand_in = httpx.Response(
            answer.status_code, headers=answer.raw_headers, request=httpx.Request(method, url)
        )
        self._client.cookies.extract_cookies(stand_in)

    async def _exchange(self, http_request: httpx.Request) -> httpx.Response:
        """Send `http_request` through the client's layers; the answer, body still unread."""
        return await self._client.send(http_request, stream=True)
