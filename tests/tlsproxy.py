"""A TLS-terminating HTTP proxy (trio) in front of a plain-HTTP tus server on loopback.

It makes a real tus server (the Node one) reachable over https with certificates made for the
test (trustme), and lets a test see what the server received::

    pki = PKI()
    async with TLSProxy(pki, upstream_port=1080) as proxy:
        result = await tuspipe.upload_async(path, proxy.url_for("/files/"), verify=ca_path)
        [post] = proxy.received("POST")        # the request as the Node server got it

From blocking code (the CLI in a subprocess, the compat layer), the same proxy runs in a
thread of its own: ``with ThreadedTLSProxy(pki, upstream_port=1080) as proxy: ...``.

What it does, per client connection: the TLS handshake as a server (:class:`PKI`'s certificate
for ``127.0.0.1`` and ``localhost``; with ``require_client_cert=True`` the client must present
a certificate signed by the PKI's *client* CA), then one HTTP/1.1 exchange at a time, parsed
with h11: each request is recorded (method, target, headers), forwarded on a fresh plain TCP
connection to the upstream, and its answer sent back. The upstream names new uploads after the
``Host`` it was asked on and with its own scheme (``http://127.0.0.1:<proxy port>/files/<id>``),
so a ``Location`` on the proxy's own authority gets the https scheme back, as a real
TLS-terminating reverse proxy would do; then :attr:`TLSProxy.rewrite_location`, if set, may
point it anywhere (:meth:`TLSProxy.moved_to`: another proxy, an other origin;
:meth:`TLSProxy.to_upstream`: the plain-http server behind it; or any function of the URL).

Bounded: loopback only (listening and upstream), at most :data:`MAX_CONNECTIONS` client
connections at a time, handshakes and upstream connects time out, idle client connections
are closed after :data:`IDLE_TIMEOUT`, the request log keeps the last :data:`HISTORY`
requests, and every task belongs to the proxy's nursery, ending when the proxy closes.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import h11
import trio
import trustme

from .threaded import NurseryServer, ThreadedServer, listen

__all__ = [
    "PKI",
    "PKIFiles",
    "ReceivedRequest",
    "TLSProxy",
    "ThreadedTLSProxy",
]

#: Bytes read from a socket at a time.
READ_SIZE = 64 * 1024
#: Longest request or response head (request line and headers) the proxy parses.
MAX_HEAD = 64 * 1024
#: Seconds a client has to finish the TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds allowed to connect to the upstream.
CONNECT_TIMEOUT = 5.0
#: Seconds a client connection may sit idle between requests before it is closed.
IDLE_TIMEOUT = 60.0
#: Client connections served at once; more wait in the listen backlog.
MAX_CONNECTIONS = 64
#: Requests kept in the log, and handshake failures kept.
HISTORY = 1000


_HOP_BY_HOP = frozenset({b"connection", b"keep-alive"})


def _loopback_host(host: str) -> str:
    """`host` as an IP literal, refusing anything but a loopback address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (loopback only)") from None
    if not address.is_loopback:
        raise ValueError(f"{host} is not a loopback address; the proxy only works on loopback")
    return str(address)


# ---- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PKIFiles:
    """The PEM files of a :class:`PKI`, for ``verify=``, ``cert=`` and the command line."""

    ca: Path  # the CA that signed the server's certificate (verify="ca.pem", --cacert)
    client_combined: Path  # the client's key and certificate chain in one file (cert=path)
    client_cert: Path  # the client's certificate chain alone (cert=(cert, key), --cert)
    client_key: Path  # the client's private key alone (--key)
    client_ca: Path  # the CA that signed the client's certificate (what the proxy trusts)
    rogue_combined: Path  # a client key and certificate from a CA nobody trusts


class PKI:
    """Certificates made for the test with trustme.

    * :attr:`ca` signs :attr:`server`, the proxy's certificate, valid for `hosts`;
    * :attr:`client_ca` signs :attr:`client`, the certificate a client presents (mTLS);
    * :attr:`rogue` is a client certificate from a third CA, trusted by nobody.
    """

    def __init__(self, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        self.ca = trustme.CA(organization_name="tuspipe test server CA")
        self.server = self.ca.issue_cert(*hosts)
        self.client_ca = trustme.CA(organization_name="tuspipe test client CA")
        self.client = self.client_ca.issue_cert(
            "client@tuspipe.test", common_name="tuspipe test client"
        )
        self.rogue = trustme.CA(organization_name="rogue CA").issue_cert(
            "rogue@tuspipe.test", common_name="rogue client"
        )

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """The proxy's TLS context; with `require_client_cert`, only clients holding a
        certificate signed by :attr:`client_ca` complete the handshake."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        if require_client_cert:
            self.client_ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def write(self, directory: str | os.PathLike[str]) -> PKIFiles:
        """Write the PEM files a client needs into `directory`."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        files = PKIFiles(
            ca=folder / "ca.pem",
            client_combined=folder / "client.pem",
            client_cert=folder / "client-cert.pem",
            client_key=folder / "client-key.pem",
            client_ca=folder / "client-ca.pem",
            rogue_combined=folder / "rogue.pem",
        )
        self.ca.cert_pem.write_to_path(str(files.ca))
        self.client.private_key_and_cert_chain_pem.write_to_path(str(files.client_combined))
        files.client_cert.write_bytes(b"".join(pem.bytes() for pem in self.client.cert_chain_pems))
        self.client.private_key_pem.write_to_path(str(files.client_key))
        self.client_ca.cert_pem.write_to_path(str(files.client_ca))
        self.rogue.private_key_and_cert_chain_pem.write_to_path(str(files.rogue_combined))
        return files


# ---- what the upstream received ----------------------------------------------------------------


@dataclass
class ReceivedRequest:
    """One request as the proxy forwarded it to the upstream (header names lower-case)."""

    connection: int
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    status: int | None = None  # the upstream's answer, once known
    location: str | None = None  # the Location sent back to the client, if any

    @classmethod
    def of(cls, connection: int, event: h11.Request) -> ReceivedRequest:
        """The request h11 read on client connection number `connection`."""
        return cls(
            connection=connection,
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("ascii", "replace"),
            headers=tuple(
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in event.headers.raw_items()
            ),
        )

    def header(self, name: str) -> str | None:
        """The value of header `name` (the last one when repeated), or None."""
        wanted = name.lower()
        found = None
        for key, value in self.headers:
            if key == wanted:
                found = value
        return found


class _Closed(Exception):
    """The client or the upstream went away, or spoke something that is not HTTP/1.1."""


async def _next_event(connection: h11.Connection, stream: trio.abc.Stream) -> h11.Event:
    """The next h11 event of `connection`, reading `stream` as needed."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise _Closed(f"bad HTTP: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _Closed(str(exc)) from exc
            connection.receive_data(bytes(data))
            continue
        if event is h11.PAUSED:
            raise _Closed("paused")
        assert isinstance(event, h11.Event)
        return event


async def _send(connection: h11.Connection, stream: trio.abc.Stream, event: h11.Event) -> None:
    try:
        data = connection.send(event)
    except h11.LocalProtocolError as exc:
        raise _Closed(f"cannot forward: {exc}") from exc
    if data:
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _Closed(str(exc)) from exc


# ---- the proxy ---------------------------------------------------------------------------------


class TLSProxy(NurseryServer):
    """A TLS-terminating proxy from ``https://host:port`` to ``upstream_host:upstream_port``.

    Use it as ``async with TLSProxy(...) as proxy:`` (it runs in a nursery of its own until
    the block ends), or ``port = await nursery.start(proxy.run)`` and :meth:`close`.

    Args:
        pki: the certificates (:class:`PKI`).
        upstream_port, upstream_host: the plain-HTTP server behind the proxy (loopback).
        require_client_cert: refuse the handshake of a client without a certificate signed
            by the PKI's client CA.
        rewrite_location: ``f(location) -> location`` applied to every ``Location`` the
            upstream sends (after the http-to-https fix-up); may be set while running.
        host, port: where to listen (loopback; port 0 picks a free one).
    """

    def __init__(
        self,
        pki: PKI,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        require_client_cert: bool = False,
        rewrite_location: Callable[[str], str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.pki = pki
        self.upstream_host = _loopback_host(upstream_host)
        self.upstream_port = int(upstream_port)
        self.host = _loopback_host(host)
        self.require_client_cert = require_client_cert
        self.rewrite_location = rewrite_location
        self._context = pki.server_context(require_client_cert=require_client_cert)
        self._port = int(port)
        self._requests: deque[ReceivedRequest] = deque(maxlen=HISTORY)
        #: Why each failed handshake failed (the last HISTORY), e.g. "no client certificate".
        self.handshake_failures: deque[str] = deque(maxlen=HISTORY)
        #: The subject common names of the client certificates presented (mTLS), in order.
        self.client_subjects: deque[str] = deque(maxlen=HISTORY)
        self.connections = 0
        self._limiter = trio.Semaphore(MAX_CONNECTIONS)
        self._run_scope: trio.CancelScope | None = None
        self._started = False

    # -- lifetime ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once it runs)."""
        if not self._port:
            raise RuntimeError("the proxy is not running yet")
        return self._port

    @property
    def origin(self) -> str:
        """``https://host:port``."""
        return f"https://{self.host}:{self.port}"

    def url_for(self, path_or_url: str) -> str:
        """The proxy's https URL for a path (``/files/``) or another URL (its path kept)."""
        parts = urlsplit(path_or_url)
        return urlunsplit(("https", f"{self.host}:{self.port}", parts.path or "/", parts.query, ""))

    def to_upstream(self, url: str) -> str:
        """`url` on the plain-http upstream itself (same path): a rewrite_location target
        that sends an https client to plain http."""
        parts = urlsplit(url)
        netloc = f"{self.upstream_host}:{self.upstream_port}"
        return urlunsplit(("http", netloc, parts.path, parts.query, ""))

    def moved_to(self, other: TLSProxy | ThreadedTLSProxy) -> Callable[[str], str]:
        """A rewrite_location that moves uploads to `other` (another origin, same server)."""
        return other.url_for

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until :meth:`close` or cancellation; reports the port at start."""
        if self._started:
            raise RuntimeError("a TLSProxy runs once")
        self._started = True
        with trio.CancelScope() as run_scope:
            self._run_scope = run_scope
            listener = await self._listen()
            try:
                async with trio.open_nursery() as nursery:
                    task_status.started(self.port)
                    while True:
                        await self._limiter.acquire()
                        try:
                            stream = await listener.accept()
                        except BaseException:
                            self._limiter.release()
                            raise
                        nursery.start_soon(self._serve, stream)
            finally:
                await trio.aclose_forcefully(listener)

    def close(self) -> None:
        """Stop the proxy: close the listener and every connection."""
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def _listen(self) -> trio.SocketListener:
        listener = await listen(self.host, self._port)
        self._port = listener.socket.getsockname()[1]
        return listener

    # -- what was received ---------------------------------------------------------------

    def received(self, method: str | None = None) -> list[ReceivedRequest]:
        """The requests forwarded to the upstream (those with `method`), oldest first."""
        return [r for r in self._requests if method is None or r.method == method]

    def clear(self) -> None:
        """Forget the recorded requests, handshake failures and client subjects."""
        self._requests.clear()
        self.handshake_failures.clear()
        self.client_subjects.clear()

    # -- serving -------------------------------------------------------------------------

    async def _serve(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        secure = trio.SSLStream(tcp, self._context, server_side=True, https_compatible=True)
        try:
            if not await self._handshake(secure):
                return
            client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
            try:
                while await self._exchange(number, secure, client):
                    client.start_next_cycle()
            except* (_Closed, OSError, trio.TooSlowError):
                pass  # either side went away: so does the connection
        finally:
            self._limiter.release()
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await secure.aclose()
            await trio.aclose_forcefully(secure)

    async def _handshake(self, secure: trio.SSLStream[trio.SocketStream]) -> bool:
        reason = ""
        with trio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
            try:
                await secure.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                cause = exc.__cause__
                reason = str(cause) if cause is not None else (str(exc) or type(exc).__name__)
        if scope.cancelled_caught:
            reason = "handshake timed out"
        if reason:
            self.handshake_failures.append(reason)
            await self._send_alert(secure)
            return False
        peer = secure.getpeercert()
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        self.client_subjects.append(str(value))
        return True

    @staticmethod
    async def _send_alert(secure: trio.SSLStream[trio.SocketStream]) -> None:
        """Send the TLS alert of a failed handshake (``certificate required``, ...), as an
        OpenSSL server does; trio's SSLStream drops it when the handshake fails."""
        outgoing = getattr(secure, "_outgoing", None)  # trio's private BIO: best effort only
        if not isinstance(outgoing, ssl.MemoryBIO) or not outgoing.pending:
            return
        with trio.move_on_after(1), suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await secure.transport_stream.send_all(outgoing.read())

    async def _exchange(
        self, number: int, secure: trio.SSLStream[trio.SocketStream], client: h11.Connection
    ) -> bool:
        """Forward one request and its answer; True when the connection may carry another."""
        event: h11.Event | None = None
        with trio.move_on_after(IDLE_TIMEOUT):
            event = await _next_event(client, secure)
        if not isinstance(event, h11.Request):
            return False  # idle too long, closed (ConnectionClosed), or not a request
        record = ReceivedRequest.of(number, event)
        self._requests.append(record)
        host = record.header("host") or ""
        with trio.fail_after(CONNECT_TIMEOUT):
            upstream_stream = await trio.open_tcp_stream(self.upstream_host, self.upstream_port)
        async with upstream_stream:
            upstream = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            headers = [
                (name, value)
                for name, value in event.headers.raw_items()
                if name.lower() not in _HOP_BY_HOP
            ]
            await _send(
                upstream,
                upstream_stream,
                h11.Request(method=event.method, target=event.target, headers=headers),
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_body, client, secure, upstream, upstream_stream)
                await self._forward_answer(record, host, upstream, upstream_stream, client, secure)
        return client.our_state is h11.DONE and client.their_state is h11.DONE

    @staticmethod
    async def _forward_body(
        client: h11.Connection,
        secure: trio.abc.Stream,
        upstream: h11.Connection,
        upstream_stream: trio.abc.Stream,
    ) -> None:
        while True:
            event = await _next_event(client, secure)
            if isinstance(event, h11.Data):
                await _send(upstream, upstream_stream, h11.Data(data=event.data))
            elif isinstance(event, h11.EndOfMessage):
                await _send(upstream, upstream_stream, h11.EndOfMessage())
                return
            else:
                raise _Closed(f"unexpected {type(event).__name__} in a request body")

    async def _forward_answer(
        self,
        record: ReceivedRequest,
        host: str,
        upstream: h11.Connection,
        upstream_stream: trio.abc.Stream,
        client: h11.Connection,
        secure: trio.abc.Stream,
    ) -> None:
        while True:
            event = await _next_event(upstream, upstream_stream)
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue and friends concern the upstream hop only
            if not isinstance(event, h11.Response):
                raise _Closed(f"the upstream answered with {type(event).__name__}")
            break
        headers: list[tuple[bytes, bytes]] = []
        for name, value in event.headers.raw_items():
            if name.lower() in _HOP_BY_HOP:
                continue
            if name.lower() == b"location":
                location = self._location(value.decode("latin-1"), host)
                record.location = location
                value = location.encode("latin-1")
            headers.append((name, value))
        record.status = event.status_code
        await _send(
            client,
            secure,
            h11.Response(status_code=event.status_code, headers=headers, reason=event.reason),
        )
        while True:
            part = await _next_event(upstream, upstream_stream)
            if isinstance(part, h11.Data):
                await _send(client, secure, h11.Data(data=part.data))
            elif isinstance(part, h11.EndOfMessage):
                await _send(client, secure, h11.EndOfMessage())
                return
            else:
                raise _Closed(f"unexpected {type(part).__name__} in an answer body")

    def _location(self, location: str, host: str) -> str:
        parts = urlsplit(location)
        if parts.scheme == "http" and host and parts.netloc == host:
            location = urlunsplit(("https", *parts[1:]))
        if self.rewrite_location is not None:
            location = self.rewrite_location(location)
        return location


class ThreadedTLSProxy(ThreadedServer):
    """A :class:`TLSProxy` running in a thread of its own, for blocking code and subprocesses.

    ``with ThreadedTLSProxy(pki, upstream_port) as proxy:`` starts it (or :meth:`start` /
    :meth:`close`); arguments as for :class:`TLSProxy`. Its accessors are safe from any thread.
    """

    def __init__(
        self,
        pki: PKI,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        require_client_cert: bool = False,
        rewrite_location: Callable[[str], str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.proxy = TLSProxy(
            pki,
            upstream_port,
            upstream_host=upstream_host,
            require_client_cert=require_client_cert,
            rewrite_location=rewrite_location,
            host=host,
            port=port,
        )
        super().__init__(self.proxy, "tlsproxy")

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def origin(self) -> str:
        return self.proxy.origin

    def url_for(self, path_or_url: str) -> str:
        return self.proxy.url_for(path_or_url)

    def to_upstream(self, url: str) -> str:
        return self.proxy.to_upstream(url)

    def moved_to(self, other: TLSProxy | ThreadedTLSProxy) -> Callable[[str], str]:
        return self.proxy.moved_to(other)

    def set_rewrite_location(self, rewrite: Callable[[str], str] | None) -> None:
        """Set :attr:`TLSProxy.rewrite_location` (in the proxy's thread)."""

        def assign() -> None:
            self.proxy.rewrite_location = rewrite

        self._call(assign)

    def received(self, method: str | None = None) -> list[ReceivedRequest]:
        return self._call(self.proxy.received, method)

    def clear(self) -> None:
        self._call(self.proxy.clear)

    @property
    def handshake_failures(self) -> list[str]:
        return self._call(lambda: list(self.proxy.handshake_failures))

    @property
    def client_subjects(self) -> list[str]:
        return self._call(lambda: list(self.proxy.client_subjects))
