"""What an answer means: tuspipe's status policy, as one table.

Part of the pure protocol layer (no I/O). :data:`ANSWERS` maps a request's method, the
answer's status and whether the answer shows tus headers to a :class:`Meaning`: what the
client does next (:class:`Action`, PROTOCOL.md's handling policy), which exception an
unwanted answer becomes, and the words it says. :func:`meaning` reads it, most specific key
first::

    (method, status, shows tus headers)  ->  (method, status)  ->  ("*", status, tus)
        ->  ("*", status)  ->  by class: 2xx success, 3xx fatal, 5xx retry, else fatal

"Shows tus headers" is True when the answer carries ``Tus-Resumable`` or ``Tus-Version``,
False when it carries neither (a plain web server, a proxy), None when the caller does not
say (then only the rows without that distinction apply).

The rows that name no tus endpoint exist so a wrong URL fails at once with a clear message
instead of being retried: a POST answered 404, 405 or 501 comes from something that has no tus
creation endpoint there, and a HEAD answered 400 without tus headers from something that is
no tus upload.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import (
    ChecksumMismatchError,
    OffsetMismatchError,
    ResponseError,
    UploadNotFoundError,
    UploadTooLargeError,
    VersionMismatchError,
)

__all__ = [
    "ANSWERS",
    "ANY",
    "Action",
    "Meaning",
    "classify_status",
    "meaning",
    "shows_tus",
]


class Action(enum.Enum):
    """What the client does after a status (the handling policy of PROTOCOL.md)."""

    SUCCESS = "success"
    RETRY = "retry"  # transient: wait, then try again (after HEAD where the offset may move)
    RESYNC = "resync"  # offsets disagree: HEAD, continue from the server's offset
    RESEND = "resend"  # the bytes arrived corrupted: send the same bytes again
    RECREATE = "recreate"  # the upload is gone: create a new one
    FATAL = "fatal"  # nothing the client can do changes the answer


@dataclass(frozen=True)
class Meaning:
    """What one kind of answer means: the next action, and the error an unwanted one is."""

    action: Action
    error: type[ResponseError] = ResponseError
    message: str = "the server answered with an unexpected status"


ANY = "*"
_SUCCESS = Meaning(Action.SUCCESS)
_FATAL = Meaning(Action.FATAL)
_NOT_A_CREATION_ENDPOINT = (
    "no tus creation endpoint here: the URL does not look like a tus endpoint, {method} "
    "was answered {status}{tus}; check `url`"
)
_NOT_AN_UPLOAD = (
    "the URL does not look like a tus upload: {method} was answered {status}{tus}; check "
    "the upload URL"
)

ANSWERS: Mapping[tuple[str, int] | tuple[str, int, bool], Meaning] = {
    (ANY, 200): _SUCCESS,
    (ANY, 201): _SUCCESS,
    (ANY, 204): _SUCCESS,
    (ANY, 400): Meaning(Action.FATAL, message="the server rejected the request as malformed"),
    ("HEAD", 400, False): Meaning(Action.FATAL, message=_NOT_AN_UPLOAD),
    # (Before a 401 is final, auth= and on_request are asked for fresh credentials: the
    # transport does that; a 401 that comes back anyway lands here.)
    (ANY, 401): Meaning(
        Action.FATAL,
        message="the server asks for authentication, or refused the credentials sent (an "
        "expired token?); pass auth= (an httpx.Auth, or a function returning headers) or "
        "on_request= to supply credentials that are refreshed before every request and "
        "after a 401 (headers= stay as they were given)",
    ),
    (ANY, 403): Meaning(
        Action.FATAL,
        message="the server refused the request (forbidden); if credentials expired, auth= "
        "or on_request= can refresh them",
    ),
    ("HEAD", 403): Meaning(
        Action.RECREATE, UploadNotFoundError, "the server refuses access to the upload"
    ),
    (ANY, 404): Meaning(
        Action.RECREATE, UploadNotFoundError, "the upload does not exist on the server"
    ),
    ("HEAD", 404, False): Meaning(
        Action.RECREATE,
        UploadNotFoundError,
        "the upload does not exist on the server, or the URL is no tus upload (the answer "
        "has no Tus-Resumable)",
    ),
    ("DELETE", 404): Meaning(
        Action.FATAL,
        UploadNotFoundError,
        "not found (already deleted?): the server has no such upload",
    ),
    ("POST", 404): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("OPTIONS", 404): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("OPTIONS", 405, False): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("OPTIONS", 501, False): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("POST", 405): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("PATCH", 405): Meaning(
        Action.FATAL,
        message="the server (or a proxy in front of it) does not allow PATCH; "
        "method_override=True sends it as POST with X-HTTP-Method-Override",
    ),
    ("DELETE", 405): Meaning(
        Action.FATAL,
        message="the server does not allow DELETE (no termination extension, or a proxy "
        "blocks it; method_override=True sends it as POST with X-HTTP-Method-Override)",
    ),
    (ANY, 408): Meaning(Action.RETRY, message="the server timed out waiting for the request"),
    (ANY, 409): Meaning(
        Action.RESYNC, OffsetMismatchError, "the server's offset differs from the client's"
    ),
    ("POST", 409): Meaning(
        Action.FATAL,
        message="the server refused to create the upload: it conflicts with one the server "
        "holds (a name or an id it already stores)",
    ),
    (ANY, 410): Meaning(
        Action.RECREATE, UploadNotFoundError, "the upload has expired or was deleted"
    ),
    ("DELETE", 410): Meaning(
        Action.FATAL, UploadNotFoundError, "not found (already deleted?): the upload is gone"
    ),
    ("POST", 410): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("OPTIONS", 410): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    (ANY, 412): Meaning(Action.FATAL, VersionMismatchError, "the server does not speak tus 1.0.0"),
    (ANY, 413): Meaning(
        Action.FATAL, UploadTooLargeError, "the upload is larger than the server accepts"
    ),
    ("PATCH", 413): Meaning(
        Action.FATAL,
        UploadTooLargeError,
        "the request body is larger than the server (or a proxy in front of it) accepts",
    ),
    ("POST", 413): Meaning(
        Action.FATAL,
        UploadTooLargeError,
        "the upload is larger than the server accepts (its Tus-Max-Size, or a proxy's limit "
        "on the creation request)",
    ),
    (ANY, 415): Meaning(Action.FATAL, message="the server rejected the content type"),
    (ANY, 423): Meaning(Action.RETRY, message="the upload is locked by another request"),
    (ANY, 429): Meaning(Action.RETRY, message="the server is rate-limiting this client"),
    (ANY, 460): Meaning(
        Action.RESEND,
        ChecksumMismatchError,
        "the server found a checksum mismatch; the chunk arrived corrupted",
    ),
    # Not implemented is never transient.
    (ANY, 501): Meaning(Action.FATAL, message="the server does not implement this request"),
    ("POST", 501, False): Meaning(Action.FATAL, message=_NOT_A_CREATION_ENDPOINT),
    ("POST", 501, True): Meaning(
        Action.FATAL,
        message="the tus server does not implement this creation request (an extension it "
        "lacks, such as concatenation)",
    ),
}

_REDIRECT = Meaning(
    Action.FATAL,
    message="the server answered with a redirect, which tuspipe does not follow; use the URL "
    "it names (Location) if you trust it",
)
_SERVER_ERROR = Meaning(Action.RETRY)


def shows_tus(headers: Mapping[str, str]) -> bool:
    """Whether an answer (headers with lower-case names) carries tus headers at all."""
    return "tus-resumable" in headers or "tus-version" in headers


def meaning(method: str, status: int, tus: bool | None = None) -> Meaning:
    """What an answer with `status` to a `method` request means (see the module docstring);
    `tus` says whether it shows tus headers (None: unknown)."""
    keys: list[tuple[str, int] | tuple[str, int, bool]] = [(method, status), (ANY, status)]
    if tus is not None:
        keys = [(method, status, tus), keys[0], (ANY, status, tus), keys[1]]
    for key in keys:
        found = ANSWERS.get(key)
        if found is not None:
            return found
    if 200 <= status < 300:
        return _SUCCESS
    if 300 <= status < 400:
        return _REDIRECT
    if status >= 500:
        return _SERVER_ERROR
    return _FATAL


def classify_status(method: str, status_code: int) -> Action:
    """Map an answer's status to what the client does next."""
    return meaning(method, status_code).action
