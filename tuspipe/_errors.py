"""The exception tree of tuspipe.

Every failure tuspipe reports is a :class:`TusError`, except mistakes with local files, which
surface as the standard :class:`OSError` family (``FileNotFoundError``, ``IsADirectoryError``,
``PermissionError``) exactly as ``open()`` would raise them. Errors are blamed by side: the
caller's misuse, the local source, the network, and the server's answer are separate branches::

    TusError
    ├── UsageError                the caller's mistake; also a ValueError; raised before any traffic
    │   └── UnsupportedFeatureError   the server does not offer what was asked (e.g. a checksum)
    ├── SourceChangedError        the local source changed size or vanished during the upload
    ├── NetworkError              no usable answer: connect, read or write failed
    │   ├── NetworkTimeoutError   ... because an operation took longer than `timeout`
    │   └── SchemeMismatchError   ... because https:// met a plain-HTTP port, or http:// a TLS
    │                             one: the URL's scheme is wrong (not retried)
    ├── TLSVerificationError      the server's certificate could not be verified (not retried)
    └── ResponseError             the server answered, and the answer ends the upload
        │                         (.status_code, .body, .headers, .method, .url, .request_id)
        ├── VersionMismatchError  412: the server does not speak tus 1.0.0
        ├── UploadNotFoundError   404 / 410 (and 403 on HEAD): the upload is gone
        ├── OffsetMismatchError   409: the server's offset differs from ours
        ├── ChecksumMismatchError 460: the chunk arrived corrupted; nothing was stored
        ├── UploadTooLargeError   413: the upload or the request is larger than allowed
        └── ProtocolError         the answer breaks the tus protocol (e.g. no Upload-Offset)

``ResponseError`` itself is raised for any other status that ends the upload (400, 401, 5xx
once retries are exhausted, ...). Every ``ResponseError`` carries the status code and the
response body, so a user can act on what the server said.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self, TypeVar

__all__ = [
    "ChecksumMismatchError",
    "NetworkError",
    "NetworkTimeoutError",
    "OffsetMismatchError",
    "ProtocolError",
    "ResponseError",
    "SchemeMismatchError",
    "SourceChangedError",
    "TLSVerificationError",
    "TusError",
    "UnsupportedFeatureError",
    "UploadNotFoundError",
    "UploadTooLargeError",
    "UsageError",
    "VersionMismatchError",
]

# How much of a response body an error message quotes; the full body stays in `.body`.
_QUOTED_BODY_CHARS = 200


class TusError(Exception):
    """Base class of every error tuspipe raises on its own account."""


class UsageError(TusError, ValueError):
    """The caller asked for something impossible: a bad option, URL, metadata key or header.

    Raised before any request is sent whenever the mistake can be known in advance.
    """


class UnsupportedFeatureError(UsageError):
    """The server does not offer a feature the caller asked for explicitly."""


class SourceChangedError(TusError):
    """The local source changed during the upload (it shrank, grew, or could not be re-read).

    The bytes already on the server are a prefix of the source as it was; the upload should be
    restarted once the source is stable.
    """


class NetworkError(TusError):
    """No usable answer arrived: the connection could not be made, or broke mid-request."""


class NetworkTimeoutError(NetworkError):
    """A connect, read, write or pool wait took longer than the configured timeout."""


class SchemeMismatchError(NetworkError):
    """The URL's scheme does not fit the port: https:// spoken to a plain-HTTP server, or
    http:// to one that speaks TLS. Never retried: another try meets the same port."""


class TLSVerificationError(TusError):
    """The server's TLS certificate could not be verified against the trusted CAs.

    Never retried: another try meets the same certificate. Pass the CA bundle that signed it
    with ``verify="ca.pem"`` (``--cacert`` on the command line), or, knowingly, turn
    verification off with ``verify=False`` (``--insecure``).
    """


_AnswerError = TypeVar("_AnswerError", bound="ResponseError")


class ResponseError(TusError):
    """The server answered with a status that ends the upload.

    Attributes:
        status_code: the HTTP status of the answer.
        body: the answer's body (possibly truncated by the transport).
        headers: the answer's headers, with lower-case names.
        method: the request's method ("POST", "PATCH", ...).
        url: the request's URL.
        request_id: the request's ``X-Request-ID`` (with ``request_id=True``), else None;
            the server's logs can be searched for it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 0,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        method: str = "",
        url: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})
        self.method = method
        self.url = url
        self.request_id = request_id

    def __str__(self) -> str:
        text = super().__str__()
        named = f", X-Request-ID {self.request_id}" if self.request_id else ""
        if self.status_code:
            text = f"{text} ({self.method} {self.url} answered {self.status_code}{named})"
        elif named:
            text = f"{text} ({named[2:]})"
        # One line, whatever the body's layout (an HTML error page, say): errors are lines.
        quoted = " ".join(self.body[:_QUOTED_BODY_CHARS].decode("utf-8", "replace").split())
        if quoted:
            text = f"{text}: {quoted!r}"
        return text

    def reworded(self, message: str) -> Self:
        """The same error (type, answer and request) with another `message`."""
        return self.recast(type(self), message)

    def recast(self, error_type: type[_AnswerError], message: str) -> _AnswerError:
        """An error of `error_type` with `message`, carrying this one's answer and request."""
        return error_type(
            message,
            status_code=self.status_code,
            body=self.body,
            headers=self.headers,
            method=self.method,
            url=self.url,
            request_id=self.request_id,
        )


class VersionMismatchError(ResponseError):
    """The server does not speak tus 1.0.0 (412, or no ``Tus-Resumable`` in the answer)."""


class UploadNotFoundError(ResponseError):
    """The upload URL no longer exists on the server (404, 410, or 403 on HEAD)."""


class OffsetMismatchError(ResponseError):
    """The server's offset differs from the one the request carried (409)."""


class ChecksumMismatchError(ResponseError):
    """The server computed a different checksum for the chunk (460); it stored nothing."""


class UploadTooLargeError(ResponseError):
    """The upload exceeds the server's maximum size, or the request was too large (413)."""


class ProtocolError(ResponseError):
    """The server's answer breaks the tus protocol (a missing or impossible header)."""
