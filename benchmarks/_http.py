"""The harness's own HTTP: loopback checks, server discovery, and checking and deleting uploads.

The parent process of the harness never uploads; it asks the server what it supports
(OPTIONS), creates the upload the curl ceiling sends to (POST), checks every finished upload
(HEAD: ``Upload-Offset`` must equal the size) and deletes it (DELETE). It does this with the
standard library over kept-alive connections, so checking the 1000 uploads of the many-files
workload costs a few hundred milliseconds, not 2000 TCP handshakes.

Every URL is checked by :func:`require_loopback` before a connection is opened: the harness
only ever talks to 127.0.0.0/8, ::1 and ``localhost``.
"""

from __future__ import annotations

import http.client
import ipaddress
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urljoin, urlsplit

__all__ = [
    "TUS_HEADERS",
    "Answer",
    "LoopbackHttp",
    "NotLoopbackError",
    "ServerInfo",
    "check_upload",
    "create_upload",
    "delete_upload",
    "probe_server",
    "require_loopback",
]

TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
#: Seconds to connect or to wait for an answer from the server.
HTTP_TIMEOUT = 60.0
_BODY_LIMIT = 64 * 1024


class NotLoopbackError(ValueError):
    """A URL that points anywhere but this machine's loopback interface."""


def require_loopback(url: str) -> str:
    """Return `url` when it is http(s) to a loopback host; raise NotLoopbackError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotLoopbackError(f"{url!r} is not an http:// or https:// URL with a host")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name: resolving it could lead anywhere, so it is refused
            loopback = False
        if not loopback:
            raise NotLoopbackError(
                f"refusing {url}: {host} is not a loopback address; the benchmark harness "
                "only talks to 127.0.0.0/8, [::1] and localhost"
            )
    return url


@dataclass(frozen=True)
class Answer:
    """Status, lower-cased headers and (the start of) the body of one answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class LoopbackHttp:
    """Keep-alive HTTP/1.1 connections to loopback servers, one per origin; a context manager."""

    def __init__(self, timeout: float = HTTP_TIMEOUT) -> None:
        self.timeout = timeout
        self._connections: dict[tuple[str, str, int | None], http.client.HTTPConnection] = {}

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """Send one request and read its answer (OSError, HTTPException when that fails)."""
        parts = urlsplit(require_loopback(url))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = (parts.scheme, parts.hostname or "", parts.port)
        # A kept-alive connection the server has closed in the meantime fails on first use;
        # one fresh connection is then tried. A fresh connection failing is a real failure.
        for attempt in range(2):
            connection = self._connection(origin)
            try:
                connection.request(method, target, body=body, headers=headers or {})
                response = connection.getresponse()
                # Read even for HEAD and 204: that is what marks the answer finished, so the
                # connection can carry the next request.
                content = response.read(_BODY_LIMIT)
                if response.will_close or not response.isclosed():
                    self._drop(origin)  # unread body or "Connection: close": do not reuse
                return Answer(
                    response.status, {k.lower(): v for k, v in response.getheaders()}, content
                )
            except (OSError, http.client.HTTPException):
                self._drop(origin)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _connection(self, origin: tuple[str, str, int | None]) -> http.client.HTTPConnection:
        connection = self._connections.get(origin)
        if connection is None:
            scheme, host, port = origin
            factory = (
                http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            )
            connection = factory(host, port, timeout=self.timeout)
            self._connections[origin] = connection
        return connection

    def _drop(self, origin: tuple[str, str, int | None]) -> None:
        connection = self._connections.pop(origin, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close every connection."""
        for origin in list(self._connections):
            self._drop(origin)

    def __enter__(self) -> LoopbackHttp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class ServerInfo:
    """What a tus server said to OPTIONS."""

    url: str
    extensions: frozenset[str]
    checksum_algorithms: tuple[str, ...]
    max_size: int | None

    def supports(self, extension: str) -> bool:
        return extension in self.extensions

    def offers_checksum(self, algorithm: str) -> bool:
        return self.supports("checksum") and algorithm in self.checksum_algorithms

    def describe(self) -> str:
        """``extensions: a, b; checksums: sha1, crc32`` for the report header."""
        extensions = ", ".join(sorted(self.extensions)) or "none"
        checksums = ", ".join(self.checksum_algorithms) if self.supports("checksum") else "none"
        return f"extensions: {extensions}; checksums: {checksums}"


def probe_server(session: LoopbackHttp, url: str) -> ServerInfo:
    """Ask the tus server at `url` what it supports (ConnectionError when it does not answer
    as a tus 1.0.0 server; OSError when it cannot be reached)."""
    answer = session.request("OPTIONS", url)
    if answer.status not in (200, 204):
        raise ConnectionError(f"OPTIONS {url} answered {answer.status}, not 200/204")
    versions = {v.strip() for v in answer.headers.get("tus-version", "").split(",")}
    if "1.0.0" not in versions:
        raise ConnectionError(f"{url} does not speak tus 1.0.0 (Tus-Version: {versions})")
    extensions = frozenset(
        e.strip().lower() for e in answer.headers.get("tus-extension", "").split(",") if e.strip()
    )
    algorithms = tuple(
        a.strip().lower()
        for a in answer.headers.get("tus-checksum-algorithm", "").split(",")
        if a.strip()
    )
    raw_max = answer.headers.get("tus-max-size", "").strip()
    return ServerInfo(url, extensions, algorithms, int(raw_max) if raw_max.isdigit() else None)


def create_upload(session: LoopbackHttp, url: str, length: int) -> str:
    """Create an upload of `length` bytes (POST); return its absolute, loopback URL."""
    answer = session.request("POST", url, {**TUS_HEADERS, "Upload-Length": str(length)})
    location = answer.headers.get("location")
    if answer.status != 201 or not location:
        raise ConnectionError(f"POST {url} answered {answer.status} without a Location")
    return require_loopback(urljoin(url, location))


def check_upload(session: LoopbackHttp, upload_url: str, size: int) -> str | None:
    """HEAD the upload: None when the server holds all `size` bytes, else what is wrong.

    A finished concatenation ("final") upload may leave out ``Upload-Offset`` (tus lets the
    server omit it there); its ``Upload-Length`` must then equal the size.
    """
    answer = session.request("HEAD", upload_url, TUS_HEADERS)
    if answer.status not in (200, 204):
        return f"HEAD {upload_url} answered {answer.status}"
    offset = answer.headers.get("upload-offset")
    length = answer.headers.get("upload-length")
    final = answer.headers.get("upload-concat", "").strip().lower().startswith("final")
    if offset is None and final and length == str(size):
        return None
    if offset != str(size) or length not in (None, str(size)):
        return f"HEAD {upload_url}: Upload-Offset {offset}, Upload-Length {length}, not {size}"
    return None


def _concat_parts(session: LoopbackHttp, upload_url: str) -> list[str]:
    """The part URLs a final concatenation upload names (none for an ordinary upload)."""
    answer = session.request("HEAD", upload_url, TUS_HEADERS)
    concat = answer.headers.get("upload-concat", "").strip()
    if not concat.lower().startswith("final;"):
        return []
    return [urljoin(upload_url, part) for part in concat[len("final;") :].split() if part]


def delete_upload(
    session: LoopbackHttp, upload_url: str, *, with_parts: bool = False
) -> str | None:
    """DELETE the upload (and, `with_parts`, the parts a final upload was joined from).

    Returns None, or a warning when something may remain on the server; never raises for
    network errors, since a leftover upload is not a failed benchmark run.
    """
    try:
        urls = [upload_url]
        if with_parts:
            urls += [require_loopback(part) for part in _concat_parts(session, upload_url)]
        left = []
        for url in urls:
            answer = session.request("DELETE", url, TUS_HEADERS)
            if answer.status not in (200, 204, 404, 410):
                left.append(f"DELETE {url} answered {answer.status}")
        return "; ".join(left) or None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"deleting {upload_url} failed ({exc}); it may remain on the server"
