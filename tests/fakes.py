"""An in-memory tus 1.0.0 server for unit tests, plugged into httpx with ``MockTransport``.

No sockets and no threads: :class:`FakeTusServer` answers ``httpx.Request`` objects directly,
so a test can drive tuspipe's transport, stages, pipeline and api without a real server::

    from tests.fakes import FakeTusServer

    server = FakeTusServer()
    async with server.client() as http_client:
        result = await tuspipe.upload_async(data, server.endpoint, http_client=http_client)
    assert server.data_of(result.url) == data

The server follows the tus checklist (PROTOCOL.md): ``Tus-Resumable`` on every request but
OPTIONS (412 otherwise), creation with ``Upload-Length`` or ``Upload-Defer-Length``, HEAD with
``Upload-Offset``/``Upload-Length`` (or ``Upload-Defer-Length: 1``), PATCH with offset and
content-type checks (409/415), ``Upload-Length`` on a PATCH declaring a deferred length once
(400 when it would change or end before the bytes sent), and
the checksum extension (400 for an unknown algorithm, 460 for a mismatch, verified with
hashlib/zlib independently of tuspipe), DELETE for termination.

Knobs for fault injection:

* ``store_fraction`` - the share of each PATCH body the server keeps (0.5 keeps half, at least
  one byte while it is above 0; 0 keeps nothing), so the client must continue from the
  server's offset.
* :meth:`FakeTusServer.script` - queue literal answers (status, headers, body) that replace
  the next matching requests' normal handling, e.g. a 460, a 423, or a 204 without
  ``Upload-Offset``.
* ``extensions`` / ``checksum_algorithms`` / ``max_size`` - what OPTIONS advertises;
  ``verify_checksums`` - whether ``Upload-Checksum`` is checked at all.
* ``before_request`` - an async hook awaited before each request is handled (to block or
  cancel at a precise point, or to raise an ``httpx`` transport error as a network failure).
* ``upload_expires`` - an ``Upload-Expires`` date sent with every creation, HEAD and PATCH
  answer (the expiration extension).
* :meth:`FakeTusServer.set_length` and :meth:`FakeTusServer.set_data` - change what the
  server holds for an upload behind the client's back (another client, a server-side bug).

Every request is recorded in :attr:`FakeTusServer.requests` with its headers and body.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

__all__ = ["FakeTusServer", "ScriptedAnswer", "SeenRequest", "reference_digest"]

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
ALL_CHECKSUM_ALGORITHMS = ("sha1", "sha256", "sha512", "md5", "crc32")
DEFAULT_EXTENSIONS = ("creation", "creation-defer-length", "termination", "checksum")


def reference_digest(algorithm: str, data: bytes) -> bytes:
    """The digest of `data`, computed with hashlib/zlib (crc32: 4 bytes, big-endian)."""
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    return hashlib.new(algorithm, data).digest()


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it; header names are lower-case."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    checksum_ok: bool | None = None  # None: no Upload-Checksum was sent (or not verified)

    @property
    def offset(self) -> int:
        """The request's ``Upload-Offset`` (KeyError if it has none)."""
        return int(self.headers["upload-offset"])


@dataclass(frozen=True)
class ScriptedAnswer:
    """A literal answer for the next request with `method` (any method when None)."""

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    method: str | None = None


@dataclass
class _Upload:
    length: int | None
    data: bytearray = field(default_factory=bytearray)
    metadata: str | None = None


class FakeTusServer:
    """An in-memory tus server; see the module docstring for its knobs.

    Uploads live at ``<endpoint><id>`` (``http://tus.test/files/u1``, ...).
    """

    def __init__(
        self,
        *,
        endpoint: str = "http://tus.test/files/",
        extensions: Iterable[str] = DEFAULT_EXTENSIONS,
        checksum_algorithms: Iterable[str] = ALL_CHECKSUM_ALGORITHMS,
        max_size: int | None = None,
        store_fraction: float = 1.0,
        verify_checksums: bool = True,
        relative_locations: bool = False,
        before_request: Callable[[httpx.Request], Awaitable[None]] | None = None,
        upload_expires: str | None = None,
    ) -> None:
        if not 0.0 <= store_fraction <= 1.0:
            raise ValueError(f"store_fraction must lie in [0, 1], not {store_fraction}")
        self.endpoint = endpoint
        self.extensions = tuple(extensions)
        self.checksum_algorithms = tuple(checksum_algorithms)
        self.max_size = max_size
        self.store_fraction = store_fraction
        self.verify_checksums = verify_checksums
        self.relative_locations = relative_locations
        self.before_request = before_request
        self.upload_expires = upload_expires
        self.uploads: dict[str, _Upload] = {}
        self.requests: list[SeenRequest] = []
        self.scripted: deque[ScriptedAnswer] = deque()
        self._next_id = 1

    # ---- helpers for tests ------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        """A fresh ``httpx.AsyncClient`` whose every request goes to this server."""
        return httpx.AsyncClient(transport=self.transport())

    def create(self, length: int | None, data: bytes = b"") -> str:
        """Make an upload directly (as if an earlier run had created it); return its URL."""
        upload_id = f"u{self._next_id}"
        self._next_id += 1
        self.uploads[upload_id] = _Upload(length=length, data=bytearray(data))
        return self.endpoint + upload_id

    def data_of(self, url: str) -> bytes:
        """The bytes the server holds for the upload at `url`."""
        return bytes(self.uploads[self._upload_id(url)].data)

    def length_of(self, url: str) -> int | None:
        """The ``Upload-Length`` the server holds for the upload at `url` (None: deferred)."""
        return self.uploads[self._upload_id(url)].length

    def metadata_of(self, url: str) -> str | None:
        return self.uploads[self._upload_id(url)].metadata

    def set_length(self, url: str, length: int | None) -> None:
        """Change the ``Upload-Length`` the server holds for the upload at `url`."""
        self.uploads[self._upload_id(url)].length = length

    def set_data(self, url: str, data: bytes) -> None:
        """Replace the bytes the server holds for the upload at `url` (its offset follows)."""
        self.uploads[self._upload_id(url)].data = bytearray(data)

    def script(
        self,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests with `method` literally, skipping normal handling."""
        for _ in range(times):
            self.scripted.append(ScriptedAnswer(status_code, dict(headers or {}), body, method))

    def seen(self, method: str) -> list[SeenRequest]:
        """The recorded requests with `method`, in order."""
        return [request for request in self.requests if request.method == method]

    # ---- the server ---------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """The ``MockTransport`` handler."""
        if self.before_request is not None:
            await self.before_request(request)
        body = await request.aread()
        headers = {name.lower(): value for name, value in request.headers.items()}
        scripted = self._take_scripted(request.method)
        checksum_ok: bool | None = None
        if scripted is not None:
            response = httpx.Response(
                scripted.status_code, headers=dict(scripted.headers), content=scripted.body
            )
        elif request.method != "OPTIONS" and headers.get("tus-resumable") != TUS_VERSION:
            response = self._answer(412, {"Tus-Version": TUS_VERSION})
        elif request.method == "OPTIONS":
            response = self._options()
        elif request.method == "POST":
            response = self._post(request, headers)
        elif request.method == "HEAD":
            response = self._head(request)
        elif request.method == "PATCH":
            response, checksum_ok = self._patch(request, headers, body)
        elif request.method == "DELETE":
            response = self._delete(request)
        else:
            response = self._answer(405)
        self.requests.append(
            SeenRequest(request.method, str(request.url), headers, body, checksum_ok)
        )
        return response

    def _take_scripted(self, method: str) -> ScriptedAnswer | None:
        if self.scripted and self.scripted[0].method in (None, method):
            return self.scripted.popleft()
        return None

    @staticmethod
    def _answer(
        status_code: int, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> httpx.Response:
        all_headers = {"Tus-Resumable": TUS_VERSION, **(headers or {})}
        return httpx.Response(status_code, headers=all_headers, content=body)

    def _expiring(self, headers: dict[str, str]) -> dict[str, str]:
        if self.upload_expires is not None:
            headers["Upload-Expires"] = self.upload_expires
        return headers

    def _upload_id(self, url: str) -> str:
        if not url.startswith(self.endpoint):
            raise KeyError(url)
        return url[len(self.endpoint) :]

    def _find(self, request: httpx.Request) -> _Upload | None:
        url = str(request.url)
        if not url.startswith(self.endpoint):
            return None
        return self.uploads.get(url[len(self.endpoint) :])

    def _options(self) -> httpx.Response:
        headers = {"Tus-Version": TUS_VERSION, "Tus-Extension": ",".join(self.extensions)}
        if "checksum" in self.extensions:
            headers["Tus-Checksum-Algorithm"] = ",".join(self.checksum_algorithms)
        if self.max_size is not None:
            headers["Tus-Max-Size"] = str(self.max_size)
        return self._answer(204, headers)

    def _post(self, request: httpx.Request, headers: Mapping[str, str]) -> httpx.Response:
        if str(request.url) != self.endpoint:
            return self._answer(404, body=b"no creation endpoint here")
        length: int | None
        if "upload-length" in headers:
            raw = headers["upload-length"]
            if not raw.isdigit():
                return self._answer(400, body=b"bad Upload-Length")
            length = int(raw)
            if self.max_size is not None and length > self.max_size:
                return self._answer(413, body=b"upload too large")
        elif headers.get("upload-defer-length") == "1":
            if "creation-defer-length" not in self.extensions:
                return self._answer(400, body=b"Upload-Length required (no deferred length)")
            length = None
        else:
            return self._answer(400, body=b"Upload-Length or Upload-Defer-Length required")
        url = self.create(length)
        self.uploads[self._upload_id(url)].metadata = headers.get("upload-metadata")
        location = urlsplit(url).path if self.relative_locations else url
        return self._answer(201, self._expiring({"Location": location}))

    def _head(self, request: httpx.Request) -> httpx.Response:
        upload = self._find(request)
        if upload is None:
            return self._answer(404)
        headers = {"Upload-Offset": str(len(upload.data)), "Cache-Control": "no-store"}
        if upload.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(upload.length)
        return self._answer(200, self._expiring(headers))

    def _patch(
        self, request: httpx.Request, headers: Mapping[str, str], body: bytes
    ) -> tuple[httpx.Response, bool | None]:
        upload = self._find(request)
        if upload is None:
            return self._answer(404), None
        if headers.get("content-type") != OFFSET_CONTENT_TYPE:
            return self._answer(415), None
        if headers.get("upload-offset") != str(len(upload.data)):
            return self._answer(409, body=b"offset mismatch"), None
        if "upload-length" in headers:
            # creation-defer-length: the length is declared once, by a PATCH, and never changed
            raw = headers["upload-length"]
            if not raw.isdigit():
                return self._answer(400, body=b"bad Upload-Length"), None
            declared = int(raw)
            if upload.length is not None and declared != upload.length:
                return self._answer(400, body=b"Upload-Length cannot change"), None
            if declared < len(upload.data) + len(body):
                return self._answer(400, body=b"Upload-Length ends before the body"), None
            if self.max_size is not None and declared > self.max_size:
                return self._answer(413, body=b"upload too large"), None
            upload.length = declared
        if upload.length is not None and len(upload.data) + len(body) > upload.length:
            return self._answer(400, body=b"the body goes beyond Upload-Length"), None
        checksum_ok: bool | None = None
        checksum = headers.get("upload-checksum")
        if checksum is not None and self.verify_checksums:
            algorithm, _, encoded = checksum.partition(" ")
            if algorithm not in self.checksum_algorithms:
                return self._answer(400, body=b"unsupported checksum algorithm"), None
            checksum_ok = base64.b64decode(encoded) == reference_digest(algorithm, body)
            if not checksum_ok:
                return self._answer(460, body=b"checksum mismatch"), False
        keep = int(len(body) * self.store_fraction)
        if self.store_fraction > 0 and body and keep == 0:
            keep = 1
        upload.data += body[:keep]
        answer = self._answer(204, self._expiring({"Upload-Offset": str(len(upload.data))}))
        return answer, checksum_ok

    def _delete(self, request: httpx.Request) -> httpx.Response:
        if self._find(request) is None:
            return self._answer(404)
        del self.uploads[self._upload_id(str(request.url))]
        return self._answer(204)
