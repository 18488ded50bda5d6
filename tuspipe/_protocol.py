"""The tus 1.0.0 protocol, sans I/O.

Rules of this module: no sockets, no files, no trio, no httpx. It says *what to send* (requests
as frozen values) and *what an answer means* (typed results, or typed errors from
:mod:`tuspipe._errors`); the transport does the talking.

Theory of operation
-------------------
An upload is a resource on the server with a length and an offset (how many bytes it holds).
The client creates it (POST to the creation endpoint; the answer's ``Location`` names it),
asks for its offset (HEAD), and appends bytes at exactly that offset (PATCH). The server is the
authority on offsets: every PATCH answer carries the new ``Upload-Offset``, which may be less
than the client sent (the server stored a prefix), never more and never less than the offset
the request started from. :func:`parse_patch` enforces that.

What an answer means for the client (the next action, the exception and its words) is one
table, :data:`tuspipe._status.ANSWERS`, read by :func:`error_for` and
:func:`~tuspipe._status.classify_status`.
"""

from __future__ import annotations

import base64
import hashlib
import http
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

from ._errors import (
    ProtocolError,
    ResponseError,
    UnsupportedFeatureError,
    UsageError,
    VersionMismatchError,
)
from ._httpdate import parse_http_date
from ._status import Action, classify_status, meaning, shows_tus

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "OFFSET_CONTENT_TYPE",
    "RESERVED_HEADERS",
    "TUS_VERSION",
    "Action",
    "Hasher",
    "Request",
    "Response",
    "ServerCapabilities",
    "UploadStatus",
    "answer_error",
    "check_header",
    "checksum_header",
    "choose_checksum",
    "classify_status",
    "concatenation_request",
    "creation_request",
    "decode_metadata",
    "delete_request",
    "encode_metadata",
    "error_for",
    "head_request",
    "new_hasher",
    "options_request",
    "origin",
    "parse_capabilities",
    "parse_creation",
    "parse_creation_offset",
    "parse_head",
    "parse_patch",
    "parse_termination",
    "patch_request",
    "resolve_location",
    "shows_tus",
    "upload_expires",
    "validate_headers",
    "validate_url",
]

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

# Headers the protocol layer owns (lower-case): a caller may not set them through `headers=`,
# `on_request` or `auth=`, because a wrong value would corrupt the upload or the request framing.
RESERVED_HEADERS = frozenset(
    {
        "content-length",
        "content-type",
        "host",
        "transfer-encoding",
        "tus-resumable",
        "upload-checksum",
        "upload-concat",
        "upload-defer-length",
        "upload-length",
        "upload-metadata",
        "upload-offset",
        "x-http-method-override",
    }
)

# Longer is no URL a client should follow; it is refused rather than stored in the journal.
MAX_LOCATION_LENGTH = 8192

_METHODS = frozenset({"OPTIONS", "POST", "HEAD", "PATCH", "DELETE"})


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request to send: method, absolute URL and headers; the body is the transport's job.

    ``offset`` and ``content_length`` are the ``Upload-Offset`` and the number of body bytes a
    PATCH announces; other requests leave them None.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    offset: int | None = None
    content_length: int | None = None

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise UsageError(f"tus has no {self.method!r} request")
        validate_url(self.url)
        if self.content_length is not None and self.content_length < 0:
            raise UsageError(f"a request body cannot have {self.content_length} bytes")


@dataclass(frozen=True)
class Response:
    """A server's answer: status, headers with lower-case names, and (part of) the body.

    ``request_id`` is the ``X-Request-ID`` the request carried (``request_id=True``), so that
    an error can name it; None otherwise.
    """

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    request_id: str | None = None


@dataclass(frozen=True)
class UploadStatus:
    """What HEAD says about an upload.

    ``length`` is None while the length is deferred; ``metadata`` holds the decoded
    ``Upload-Metadata`` (empty when the server sends none or sends it malformed).
    """

    offset: int
    length: int | None
    expires: str | None = None
    metadata: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.length is not None and self.offset == self.length

    @property
    def expires_at(self) -> datetime | None:
        """`expires` as a moment; None when the server named no date it can be read as."""
        return parse_http_date(self.expires)


@dataclass(frozen=True)
class ServerCapabilities:
    """What OPTIONS says about a server."""

    versions: tuple[str, ...]
    extensions: frozenset[str]
    max_size: int | None
    checksum_algorithms: tuple[str, ...]

    def supports(self, extension: str) -> bool:
        return extension in self.extensions


def error_for(request: Request, response: Response, message: str | None = None) -> ResponseError:
    """The exception that an unwanted answer to `request` becomes (:data:`ANSWERS` says which,
    and in which words, unless `message` is given)."""
    status = response.status_code
    tus = shows_tus(response.headers)
    found = meaning(request.method, status, tus)
    if message is None:
        message = found.message.format(
            method=request.method,
            status=f"{status} {_reason(status)}".rstrip(),
            tus="" if tus else ", without Tus-Resumable",
        )
    if status == 412:
        offered = response.headers.get("tus-version", "")
        message = f"{message} (it offers: {offered or 'no version named'})"
    return answer_error(found.error, request, response, message)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


_AnswerError = TypeVar("_AnswerError", bound=ResponseError)


def answer_error(
    error_type: type[_AnswerError], request: Request, response: Response, message: str
) -> _AnswerError:
    """`error_type` with `message`, carrying the answer's status, body and headers and the
    request's method, URL and X-Request-ID."""
    return error_type(
        message,
        status_code=response.status_code,
        body=response.body,
        headers=response.headers,
        method=request.method,
        url=request.url,
        request_id=response.request_id,
    )


def _protocol_error(request: Request, response: Response, message: str) -> ProtocolError:
    return answer_error(ProtocolError, request, response, message)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def validate_url(url: str) -> str:
    """Return `url` if it is an absolute http(s) URL with a host; raise UsageError otherwise."""
    if not isinstance(url, str):
        raise UsageError(f"a URL must be a str, not {type(url).__name__}")
    return _validated_url(url)


# (Many uploads name one endpoint: it is parsed once. Only valid URLs are kept: an exception
# is not cached.)
@lru_cache(maxsize=1024)
def _validated_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise UsageError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise UsageError(f"{url!r} has no host")
    return url


@lru_cache(maxsize=1024)
def origin(url: str) -> tuple[str, str, int | None]:
    """The origin of `url`: (scheme, lower-case host, port), what credentials are bound to."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def check_header(name: object, value: object) -> None:
    """Raise UsageError unless `name` and `value` make a header a caller may set: a valid
    name that is not one of :data:`RESERVED_HEADERS`, an ASCII value on one line."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise UsageError(f"header {name!r}: names and values must be str")
    if not name or not name.isascii() or any(c in name for c in ' \t\r\n:()<>@,;\\"/[]?={}'):
        raise UsageError(f"{name!r} is not a valid header name")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"the value of header {name!r} contains a line break or NUL")
    if not value.isascii():
        raise UsageError(
            f"the value of header {name!r} is not ASCII; HTTP headers carry ASCII only, so "
            "encode it first (percent-encoding or base64, as the server expects)"
        )
    if name.lower() in RESERVED_HEADERS:
        raise UsageError(f"header {name!r} is set by tuspipe itself and cannot be overridden")


def validate_headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Check caller-supplied headers and return them as pairs.

    Names the protocol layer sets itself (``Upload-Offset``, ``Content-Length``, ...) are refused:
    overriding them would corrupt the upload.
    """
    if headers is None:
        return ()
    if not isinstance(headers, Mapping):
        raise UsageError(f"headers must be a mapping of str to str, not {type(headers).__name__}")
    for name, value in headers.items():
        check_header(name, value)
    return tuple(headers.items())


# --------------------------------------------------------------------------------------------
# Upload-Metadata
# --------------------------------------------------------------------------------------------


def encode_metadata(metadata: Mapping[str, str | bytes] | None) -> str | None:
    """Encode `metadata` as an ``Upload-Metadata`` value, or None when there is nothing to send.

    Keys must be non-empty ASCII without spaces or commas, unique once stripped of surrounding
    whitespace. str values are sent as UTF-8, bytes values as they are; an empty value sends
    the key alone.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise UsageError(f"metadata must be a mapping, not {type(metadata).__name__}")
    seen: set[str] = set()
    pairs: list[str] = []
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise UsageError(f"metadata key {key!r} must be a str")
        if not key:
            raise UsageError("metadata keys must not be empty")
        if not key.isascii() or not key.isprintable():
            raise UsageError(f"metadata key {key!r} must be printable ASCII")
        if any(c in key for c in " ,\t"):
            raise UsageError(f"metadata key {key!r} must not contain spaces or commas")
        if key in seen:
            raise UsageError(f"metadata key {key!r} appears twice")
        seen.add(key)
        if isinstance(value, str):
            raw = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        else:
            raise UsageError(
                f"metadata value for {key!r} must be str or bytes, not {type(value).__name__}"
            )
        pairs.append(f"{key} {base64.b64encode(raw).decode('ascii')}" if raw else key)
    return ",".join(pairs) if pairs else None


def decode_metadata(value: str) -> dict[str, bytes]:
    """Decode an ``Upload-Metadata`` value into raw bytes per key.

    Raises ValueError for a malformed value (bad base64, an empty or repeated key).
    """
    result: dict[str, bytes] = {}
    if not value.strip():
        return result
    for item in value.split(","):
        parts = item.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2:
            raise ValueError(f"malformed Upload-Metadata pair {item!r}")
        if key in result:
            raise ValueError(f"Upload-Metadata repeats the key {key!r}")
        try:
            result[key] = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
        except ValueError as exc:
            raise ValueError(f"Upload-Metadata value of {key!r} is not base64") from exc
    return result


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


class Hasher(Protocol):
    """The part of hashlib's interface the checksummer uses."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    """crc32 with hashlib's interface; its digest is the 4-byte big-endian value."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return (self._value & 0xFFFFFFFF).to_bytes(4, "big")


# Preference order for checksum="auto": the strongest first. On CPUs with SHA extensions
# sha256 hashes as fast as sha1, so strength costs nothing there.
CHECKSUM_ALGORITHMS: tuple[str, ...] = ("sha256", "sha512", "sha1", "md5", "crc32")


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for one of :data:`CHECKSUM_ALGORITHMS`."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in CHECKSUM_ALGORITHMS:
        return hashlib.new(algorithm)
    raise UsageError(
        f"unknown checksum algorithm {algorithm!r}; choose one of "
        f"{', '.join(CHECKSUM_ALGORITHMS)}, 'auto' or None"
    )


def checksum_header(algorithm: str, digest: bytes) -> str:
    """The ``Upload-Checksum`` value for a digest."""
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


def choose_checksum(requested: str | None, capabilities: ServerCapabilities | None) -> str | None:
    """The algorithm to use, given what the caller asked for and what the server offers.

    ``None`` means no checksum. ``"auto"`` takes the strongest algorithm the server lists, or
    none when it lists none. An explicit algorithm must be known, and must be offered by the
    server when the server said what it offers.
    """
    if requested is None:
        return None
    if not isinstance(requested, str):
        raise UsageError(f"checksum must be a str or None, not {type(requested).__name__}")
    requested = requested.lower()
    if requested == "auto":
        if capabilities is None or not capabilities.supports("checksum"):
            return None
        offered = set(capabilities.checksum_algorithms)
        return next((name for name in CHECKSUM_ALGORITHMS if name in offered), None)
    new_hasher(requested)  # raises UsageError for an unknown name
    if capabilities is not None:
        if not capabilities.supports("checksum"):
            raise UnsupportedFeatureError(
                f"checksum={requested!r} was asked for, but the server does not support the "
                "tus checksum extension; use checksum=None or 'auto'"
            )
        if requested not in capabilities.checksum_algorithms:
            raise UnsupportedFeatureError(
                f"the server does not offer the {requested!r} checksum; it offers "
                f"{', '.join(capabilities.checksum_algorithms) or 'none'}"
            )
    return requested


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def _tus_headers(
    extra: Iterable[tuple[str, str]], *own: tuple[str, str]
) -> tuple[tuple[str, str], ...]:
    return (*extra, ("Tus-Resumable", TUS_VERSION), *own)


def options_request(
    url: str, headers: Iterable[tuple[str, str]] = (), *, insist: bool = False
) -> Request:
    """OPTIONS: ask what the server supports. Without ``Tus-Resumable``, as the protocol says,
    unless `insist`: some servers show their tus headers only to a request that carries it."""
    if insist:
        return Request("OPTIONS", url, _tus_headers(headers))
    return Request("OPTIONS", url, tuple(headers))


def creation_request(
    url: str,
    length: int | None,
    metadata: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    *,
    partial: bool = False,
    body_length: int | None = None,
    checksum: str | None = None,
) -> Request:
    """POST to the creation endpoint; `length` None defers it (``Upload-Defer-Length: 1``).

    `partial` makes it a part of a later concatenation (``Upload-Concat: partial``).
    `body_length` bytes of the upload travel in the POST itself (creation-with-upload),
    with `checksum` as their ``Upload-Checksum``.
    """
    if length is None:
        own = [("Upload-Defer-Length", "1")]
    elif length < 0:
        raise UsageError(f"an upload cannot be {length} bytes long")
    else:
        own = [("Upload-Length", str(length))]
    if partial:
        own.append(("Upload-Concat", "partial"))
    if metadata:
        own.append(("Upload-Metadata", metadata))
    if body_length is None:
        return Request("POST", url, _tus_headers(headers, *own))
    if body_length <= 0 or (length is not None and body_length > length):
        raise UsageError(f"cannot send {body_length} bytes with the creation of {length}")
    own += [("Content-Type", OFFSET_CONTENT_TYPE), ("Content-Length", str(body_length))]
    if checksum is not None:
        own.append(("Upload-Checksum", checksum))
    return Request("POST", url, _tus_headers(headers, *own), offset=0, content_length=body_length)


def parse_creation_offset(request: Request, response: Response) -> int | None:
    """The offset a creation-with-upload answer reports (None when it reports none); it must
    lie within the bytes the POST carried."""
    offset = _parse_count(request, response, "upload-offset")
    sent = request.content_length or 0
    if offset is not None and offset > sent:
        raise _protocol_error(
            request, response, f"the server reports offset {offset} after receiving {sent} bytes"
        )
    return offset


def concatenation_request(
    url: str,
    part_urls: Sequence[str],
    metadata: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Request:
    """POST the final upload that joins finished partial uploads, in order (no length: the
    server sums the parts)."""
    if not part_urls:
        raise UsageError("a concatenation needs at least one partial upload")
    for part in part_urls:
        validate_url(part)
        if any(c in part for c in " ,\t"):
            raise UsageError(f"partial upload URL {part!r} cannot be listed in Upload-Concat")
    own = [("Upload-Concat", "final;" + " ".join(part_urls))]
    if metadata:
        own.append(("Upload-Metadata", metadata))
    return Request("POST", url, _tus_headers(headers, *own))


def head_request(url: str, headers: Iterable[tuple[str, str]] = ()) -> Request:
    """HEAD: ask for an upload's offset and length."""
    return Request("HEAD", url, _tus_headers(headers))


def patch_request(
    url: str,
    offset: int,
    length: int,
    checksum: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    upload_length: int | None = None,
) -> Request:
    """PATCH: append `length` bytes at `offset`; `checksum` is a ready ``Upload-Checksum``.

    `upload_length` declares the length of an upload created with a deferred length (sent
    with the PATCH that carries its last bytes, once the end of the source is known).
    """
    if offset < 0 or length < 0:
        raise UsageError(f"cannot send {length} bytes at offset {offset}")
    own = [
        ("Upload-Offset", str(offset)),
        ("Content-Type", OFFSET_CONTENT_TYPE),
        ("Content-Length", str(length)),
    ]
    if upload_length is not None:
        if upload_length < offset + length:
            raise UsageError(f"Upload-Length {upload_length} ends before the bytes sent")
        own.append(("Upload-Length", str(upload_length)))
    if checksum is not None:
        own.append(("Upload-Checksum", checksum))
    return Request("PATCH", url, _tus_headers(headers, *own), offset=offset, content_length=length)


def delete_request(url: str, headers: Iterable[tuple[str, str]] = ()) -> Request:
    """DELETE: terminate an upload."""
    return Request("DELETE", url, _tus_headers(headers))


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _parse_count(request: Request, response: Response, name: str) -> int | None:
    """A non-negative integer header, None when absent; ProtocolError when malformed."""
    raw = response.headers.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    # isdigit() alone accepts non-ASCII digits; int() would accept "+1", " 1" and "1_000".
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise _protocol_error(
            request, response, f"the server sent a malformed {name}: {raw[:40]!r}"
        )
    return int(raw)


def _expect_success(request: Request, response: Response, *accepted: int) -> None:
    if response.status_code not in accepted:
        raise error_for(request, response)


def parse_capabilities(request: Request, response: Response) -> ServerCapabilities:
    """Read an OPTIONS answer.

    Liberal in what it accepts: ``Tus-Version`` lists the versions; without it, a
    ``Tus-Resumable: 1.0.0`` says 1.0.0 (tus-node-server 0.9.0 answers so). A
    VersionMismatchError only when the server names versions and 1.0.0 is not among them; an
    answer with no tus header at all is one too, saying the URL does not look like a tus
    endpoint (callers that can do without capabilities check :func:`shows_tus` first).
    """
    _expect_success(request, response, 200, 204)
    listed = response.headers.get("tus-version")
    resumable = response.headers.get("tus-resumable")
    if listed is not None:
        versions = _split_list(listed)
    elif resumable is not None:
        versions = (resumable.strip(),)
    else:
        raise _not_tus(
            request, response, f"OPTIONS was answered {response.status_code}, with no Tus-Version,"
        )
    if TUS_VERSION not in versions:
        offered = ", ".join(versions) or "no tus version at all"
        raise answer_error(
            VersionMismatchError,
            request,
            response,
            f"the server does not speak tus {TUS_VERSION} (it offers: {offered})",
        )
    return ServerCapabilities(
        versions=versions,
        extensions=frozenset(_split_list(response.headers.get("tus-extension", ""))),
        max_size=_parse_count(request, response, "tus-max-size"),
        checksum_algorithms=tuple(
            name.lower() for name in _split_list(response.headers.get("tus-checksum-algorithm", ""))
        ),
    )


def resolve_location(request_url: str, location: str) -> str:
    """Resolve a (possibly relative) ``Location`` against the URL the request went to."""
    try:
        absolute = urljoin(request_url, location.strip())
    except ValueError as exc:  # urllib's own complaint ("Invalid IPv6 URL") names no header
        raise ValueError(f"Location {location!r} is not a valid URL: {exc}") from exc
    try:
        return validate_url(absolute)
    except UsageError as exc:
        raise ValueError(f"Location {location!r} does not lead to an http(s) URL") from exc


def _check_tus_answer(request: Request, response: Response) -> None:
    if response.status_code == 412:
        raise error_for(request, response)
    resumable = response.headers.get("tus-resumable")
    if resumable is not None and resumable.strip() != TUS_VERSION:
        raise answer_error(
            VersionMismatchError,
            request,
            response,
            f"the server answered with Tus-Resumable {resumable!r}, not {TUS_VERSION}",
        )


def _not_tus(request: Request, response: Response, what: str) -> VersionMismatchError:
    return answer_error(
        VersionMismatchError,
        request,
        response,
        f"{request.url} does not look like a tus server: {what} without Tus-Resumable",
    )


def parse_creation(
    request: Request, response: Response, *, allow_insecure_location: bool = False
) -> str:
    """Read a creation answer: the new upload's absolute URL.

    A ``Location`` that leads from an https endpoint to plain http is refused unless
    `allow_insecure_location`: the upload's bytes would travel unencrypted.
    """
    _check_tus_answer(request, response)
    if response.status_code != 201 and 200 <= response.status_code < 300:
        # tus creates with 201; another success is some other web application answering.
        if "tus-resumable" not in response.headers:
            raise _not_tus(request, response, f"the POST was answered {response.status_code}")
        raise _protocol_error(
            request,
            response,
            f"the server answered the creation POST with {response.status_code}, not 201",
        )
    _expect_success(request, response, 201)
    location = response.headers.get("location")
    if not location or not location.strip():
        raise _protocol_error(
            request, response, "the server created an upload but sent no Location"
        )
    if len(location) > MAX_LOCATION_LENGTH:
        raise _protocol_error(
            request, response, f"the server sent a Location of {len(location)} characters"
        )
    try:
        upload_url = resolve_location(request.url, location)
    except ValueError as exc:
        raise _protocol_error(request, response, str(exc)) from None
    if (
        urlsplit(request.url).scheme == "https"
        and urlsplit(upload_url).scheme == "http"
        and not allow_insecure_location
    ):
        raise _protocol_error(
            request,
            response,
            f"the https endpoint placed the upload at plain-http {upload_url}; refusing to send "
            "the bytes unencrypted (allow_insecure_location=True permits it)",
        )
    return upload_url


def parse_head(request: Request, response: Response) -> UploadStatus:
    """Read a HEAD answer: the upload's offset and declared length."""
    _check_tus_answer(request, response)
    _expect_success(request, response, 200, 204)
    offset = _parse_count(request, response, "upload-offset")
    if offset is None:
        if "tus-resumable" not in response.headers:
            raise _not_tus(request, response, "the HEAD answer has no Upload-Offset and is")
        raise _protocol_error(request, response, "the server's HEAD answer has no Upload-Offset")
    length = _parse_count(request, response, "upload-length")
    if length is not None and offset > length:
        raise _protocol_error(
            request, response, f"the server reports offset {offset} beyond the length {length}"
        )
    try:
        metadata = decode_metadata(response.headers.get("upload-metadata", ""))
    except ValueError:
        metadata = {}  # informative only: a malformed value must not fail the upload
    return UploadStatus(
        offset=offset, length=length, expires=upload_expires(response), metadata=metadata
    )


def upload_expires(response: Response) -> str | None:
    """The ``Upload-Expires`` date an answer carries (expiration extension), if any."""
    value = response.headers.get("upload-expires", "").strip()
    return value[:64] or None


def parse_patch(request: Request, response: Response) -> int:
    """Read a PATCH answer: the server's new offset.

    It must lie between the offset the request started at and that offset plus the bytes sent;
    anything else breaks the protocol.
    """
    _check_tus_answer(request, response)
    _expect_success(request, response, 200, 204)
    new_offset = _parse_count(request, response, "upload-offset")
    if new_offset is None:
        raise _protocol_error(request, response, "the server's PATCH answer has no Upload-Offset")
    sent_from = request.offset or 0
    sent_to = sent_from + (request.content_length or 0)
    if not sent_from <= new_offset <= sent_to:
        raise _protocol_error(
            request,
            response,
            f"the server reports offset {new_offset} after a PATCH of bytes "
            f"{sent_from}..{sent_to}; it must lie in that range",
        )
    return new_offset


def parse_termination(request: Request, response: Response) -> bool:
    """Read a DELETE answer: True when the server deleted the upload now (200, 204), False
    when it had no such upload (404, 410: already deleted, expired, or never there)."""
    _check_tus_answer(request, response)
    if response.status_code in (200, 204):
        return True
    if response.status_code in (404, 410):
        return False
    raise error_for(request, response)
