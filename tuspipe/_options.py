"""Every option of tuspipe's calls, declared once.

Each option is one key of a TypedDict below: its type, its default and its meaning, written
as ``Annotated[type, Option(default, "meaning", check)]``. From that one declaration:

* the keyword signatures of :func:`tuspipe.upload`, :func:`tuspipe.upload_many`,
  :class:`tuspipe.Client` and the single operations are ``**options: Unpack[...]`` over these
  TypedDicts, so mypy (and editors that implement PEP 692) check every option's name and type;
* :func:`tuspipe._schemas.resolve` fills in the defaults and validates every value, in one
  place, before any traffic, naming the option in its :class:`~tuspipe.UsageError`;
* :func:`tuspipe._schemas.documented` gives each call a runtime signature with one keyword
  parameter per option (``inspect.signature``, ``help()`` and IPython's completion show them,
  defaults included) and appends the options' meanings to its docstring.

The trade, chosen on purpose: the source shows ``**options`` rather than one parameter per
option, so a reader of ``_api.py`` looks here for the list; in exchange the lists can no longer
drift apart (they had: ``upload_many`` lacked five of ``upload``'s options).

The families, and who takes them::

    ConnectionOptions   how requests are made            every call, Client
    ClientOptions       + on_retry(error, attempt, wait)  Client, upload, the single operations
    TransferOptions     how bytes are sent                upload, upload_many
    UploadOptions       + one source's own options        upload, Client.upload
    ManyOptions         + many sources' own options       upload_many, Client.upload_many
"""

from __future__ import annotations

import os  # noqa: F401 - get_type_hints() evaluates the "os.PathLike[str]" inside SourceLike
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, TypedDict

from ._checks import (
    Option,
    auth_check,
    callable_check,
    checksum_check,
    headers_check,
    http_client_check,
    journal_check,
    key_or_none_check,
    metadata_check,
    metadata_or_function_check,
    offset_or_none_check,
    positive_int_check,
    positive_int_or_none_check,
    retries_check,
    retry_delays_check,
    seconds_check,
    url_or_none_check,
)
from ._errors import TusError
from ._source import SourceLike
from ._transport import AuthTypes, CertTypes, HTTPClient, RequestHook, ResponseHook, VerifyTypes
from ._types import (
    DEFAULT_READ_AHEAD,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_TIMEOUT,
    JournalOption,
    ProgressCallback,
    UploadOutcome,
)

__all__ = [
    "ClientOptions",
    "ConnectionOptions",
    "ManyCallOptions",
    "ManyOptions",
    "TransferOptions",
    "UploadCallOptions",
    "UploadOptions",
]


class ConnectionOptions(TypedDict, total=False):
    """How requests are made: taken by every call and by :class:`tuspipe.Client`."""

    headers: Annotated[
        Mapping[str, str] | None,
        Option(
            None,
            "extra headers for every request, the same throughout the call (for credentials "
            "that expire, see auth= and on_request). Never journaled; credential headers "
            "(Authorization, Cookie, Proxy-Authorization) go only to the endpoint's origin.",
            headers_check,
        ),
    ]
    auth: Annotated[
        AuthTypes | None,
        Option(
            None,
            "credentials made for every request, as in httpx: an httpx.Auth (BasicAuth, "
            "DigestAuth, or a subclass whose auth_flow refreshes a token on 401; the flow sees "
            "method, URL and headers, never the body), a (user, password) pair, or a function "
            "(plain or async) returning the headers to add, e.g. lambda: {'Authorization': "
            "f'Bearer {token()}'}, asked again after a 401. Never journaled or logged; sent to "
            "the endpoint's origin only.",
            auth_check,
        ),
    ]
    on_request: Annotated[
        RequestHook | None,
        Option(
            None,
            "called as on_request(request) (plain or async) before every request, with a "
            "tuspipe.OutgoingRequest: its method and url, and headers it may change (not tus's "
            "own, such as Upload-Offset: trying is a UsageError); asked again after a 401. "
            "Credential headers it sets go to the endpoint's origin only.",
            callable_check,
        ),
    ]
    request_id: Annotated[
        bool,
        Option(
            False,
            "send an X-Request-ID (a new UUID) with every request, and name it in errors and "
            "debug logs, so that a failure can be found in the server's logs.",
        ),
    ]
    journal: Annotated[
        JournalOption,
        Option(
            True,
            "where unfinished uploads are remembered so a later call resumes them: True for "
            "the default file ($TUSPIPE_JOURNAL, else $XDG_CACHE_HOME/tuspipe/journal, else "
            "~/.cache/tuspipe/journal), a path, a tuspipe.Journal, or None / False for none.",
            journal_check,
        ),
    ]
    retries: Annotated[
        int,
        Option(
            DEFAULT_RETRIES,
            "how many times a failed request is tried again before the call fails; for "
            "uploads the count starts afresh whenever the server's offset advances. Retried: "
            "network errors, timeouts, 5xx, 409 (the offset is asked for again), 423, 429 "
            "(honouring Retry-After); a 460 resends the same bytes up to 3 times. The "
            "creation POST is retried on network errors, 429 and 5xx only.",
            retries_check,
        ),
    ]
    retry_delays: Annotated[
        Sequence[float] | None,
        Option(
            None,
            "seconds to wait before the 1st, 2nd, ... retry (the last repeats); default: "
            "exponential backoff from 0.5 s up to 30 s, with jitter.",
            retry_delays_check,
        ),
    ]
    should_retry: Annotated[
        Callable[[TusError, int], bool] | None,
        Option(
            None,
            "should_retry(error, attempt) -> bool decides instead of the default rule "
            "which failures are retried (within `retries`).",
            callable_check,
        ),
    ]
    on_response: Annotated[
        ResponseHook | None,
        Option(
            None,
            "called as on_response(request, response) after every answer from the server "
            "(tuspipe.Request, as sent, and tuspipe.Response values).",
            callable_check,
        ),
    ]
    verify: Annotated[
        VerifyTypes,
        Option(
            True,
            "TLS verification, as in httpx: True (the certifi bundle), False (off, with a "
            "warning), a CA bundle file or directory, or an ssl.SSLContext.",
        ),
    ]
    cert: Annotated[
        CertTypes | None,
        Option(
            None,
            "a TLS client certificate, as in httpx: a PEM file holding certificate and key, "
            "or a (cert, key) or (cert, key, password) tuple.",
        ),
    ]
    timeout: Annotated[
        float,
        Option(
            DEFAULT_TIMEOUT,
            "seconds allowed to connect (and to wait for a pooled connection).",
            seconds_check,
        ),
    ]
    stall_timeout: Annotated[
        float,
        Option(
            DEFAULT_STALL_TIMEOUT,
            "seconds a request may go without moving a byte before it is aborted and retried.",
            seconds_check,
        ),
    ]
    http_client: Annotated[
        HTTPClient | None,
        Option(
            None,
            "an httpx.AsyncClient to share; it is not closed (set TLS options on it, not "
            "through verify= and cert=).",
            http_client_check,
        ),
    ]
    allow_insecure_location: Annotated[
        bool,
        Option(
            False,
            "follow an https endpoint's Location to plain http (refused by default: the "
            "bytes would travel unencrypted).",
        ),
    ]
    allow_cross_origin_credentials: Annotated[
        bool,
        Option(
            False,
            "send Authorization, Cookie and Proxy-Authorization (from headers=, auth= and "
            "on_request) to upload URLs on another origin than the endpoint (by default they "
            "stay with the endpoint's origin).",
        ),
    ]
    method_override: Annotated[
        bool,
        Option(
            False,
            "send PATCH and DELETE as POST with X-HTTP-Method-Override, for proxies that "
            "block those methods (the server must honour the header).",
        ),
    ]


class ClientOptions(ConnectionOptions, total=False):
    """:class:`tuspipe.Client`'s options: the connection's, and its retry hook."""

    on_retry: Annotated[
        Callable[[TusError, int, float], object] | None,
        Option(
            None,
            "called as on_retry(error, attempt, wait_seconds) before each retry.",
            callable_check,
        ),
    ]


class TransferOptions(TypedDict, total=False):
    """How one source's bytes are sent: taken by upload and upload_many."""

    chunk_size: Annotated[
        int | None,
        Option(
            None,
            "bytes per PATCH request. None: 64 MiB for files and other re-readable sources "
            "(DEFAULT_CHUNK_SIZE; memory use does not grow with it), 8 MiB for one-pass "
            "streams (DEFAULT_STREAM_CHUNK_SIZE; a stream's unacknowledged chunk is held in "
            "memory).",
            positive_int_or_none_check,
        ),
    ]
    checksum: Annotated[
        str | None,
        Option(
            None,
            'None, an algorithm ("sha1", "sha256", "sha512", "md5", "crc32") or "auto" (the '
            "strongest the server lists; none if it lists none). An explicit algorithm the "
            "server does not offer is an UnsupportedFeatureError, before any byte is sent.",
            checksum_check,
        ),
    ]
    resume: Annotated[
        bool,
        Option(True, "False always makes a new upload, even if the journal knows one."),
    ]
    read_size: Annotated[
        int | None,
        Option(
            None,
            "bytes per block. None: 2 MiB blocks where bytes are read into memory (a "
            "stream's blocks, checksums; DEFAULT_READ_SIZE) and 8 MiB spans of a file sent "
            "with sendfile(), which cost no memory (DEFAULT_SPAN_SIZE). A number sets both.",
            positive_int_or_none_check,
        ),
    ]
    read_ahead: Annotated[
        int,
        Option(DEFAULT_READ_AHEAD, "blocks held ahead of the sender.", positive_int_check),
    ]
    parallel: Annotated[
        int,
        Option(
            1,
            "upload the source as this many parts at once and join them on the server (the "
            "concatenation extension); a server without it gets one upload and a warning. "
            "The journal remembers every part, so an interrupted parallel upload resumes "
            "them all.",
            positive_int_check,
        ),
    ]
    terminate_on_cancel: Annotated[
        bool,
        Option(
            False,
            "when the call is cancelled (a cancel scope, Ctrl-C), delete the upload on the "
            "server instead of leaving it to be resumed.",
        ),
    ]


class UploadOptions(TransferOptions, total=False):
    """One source's upload: :func:`tuspipe.upload` and :meth:`tuspipe.Client.upload`."""

    upload_url: Annotated[
        str | None,
        Option(
            None,
            "an existing upload to continue: its offset is asked for (HEAD) and the upload "
            "goes on from there. The journal is not consulted.",
            url_or_none_check,
        ),
    ]
    metadata: Annotated[
        Mapping[str, str | bytes] | None,
        Option(
            None,
            "Upload-Metadata pairs; str values are sent as UTF-8, bytes as they are.",
            metadata_check,
        ),
    ]
    stop_at: Annotated[
        int | None,
        Option(
            None,
            "upload only up to this offset (the upload stays open for a later call).",
            offset_or_none_check,
        ),
    ]
    resume_key: Annotated[
        str | None,
        Option(
            None,
            "names a stream or bytes source across processes, so that its upload can be "
            "resumed too (paths need none: their path and modification time name them).",
            key_or_none_check,
        ),
    ]
    on_progress: Annotated[
        ProgressCallback | None,
        Option(
            None,
            "called as on_progress(acknowledged, total) once the starting offset is known, "
            "then as the server acknowledges bytes.",
            callable_check,
        ),
    ]
    on_upload_url: Annotated[
        Callable[[str], object] | None,
        Option(None, "called with the upload's URL as soon as it is known.", callable_check),
    ]


class ManyOptions(TransferOptions, total=False):
    """Many sources' uploads: :func:`tuspipe.upload_many` and
    :meth:`tuspipe.Client.upload_many`. Every per-source hook is told the source's index."""

    concurrency: Annotated[int, Option(4, "how many sources upload at once.", positive_int_check)]
    fail_fast: Annotated[
        bool,
        Option(
            False,
            "raise the first failure (cancelling the other uploads) instead of reporting "
            "each source's error in its outcome.",
        ),
    ]
    metadata: Annotated[
        Mapping[str, str | bytes] | Callable[[SourceLike], Mapping[str, str | bytes] | None] | None,
        Option(
            None,
            "Upload-Metadata for every upload: a mapping, or a function of the source "
            "returning one.",
            metadata_or_function_check,
        ),
    ]
    on_start: Annotated[
        Callable[[int], object] | None,
        Option(
            None,
            "called as on_start(index) when a source's upload begins, in the task that "
            "uploads it (context variables set there apply to that upload).",
            callable_check,
        ),
    ]
    on_progress: Annotated[
        Callable[[int, int, int | None], object] | None,
        Option(
            None, "called as on_progress(index, acknowledged, total) per source.", callable_check
        ),
    ]
    on_total_progress: Annotated[
        Callable[[int, int | None], object] | None,
        Option(
            None,
            "called as on_total_progress(acknowledged, total) over all sources (total None "
            "while some size is unknown).",
            callable_check,
        ),
    ]
    on_upload_url: Annotated[
        Callable[[int, str], object] | None,
        Option(
            None,
            "called as on_upload_url(index, url) once a source's upload exists.",
            callable_check,
        ),
    ]
    on_retry: Annotated[
        Callable[[int, TusError, int, float], object] | None,
        Option(
            None,
            "called as on_retry(index, error, attempt, wait_seconds) before each retry of a "
            "source's requests.",
            callable_check,
        ),
    ]
    on_outcome: Annotated[
        Callable[[UploadOutcome], object] | None,
        Option(
            None,
            "called with each source's UploadOutcome as soon as that source is done (in "
            "the order they finish).",
            callable_check,
        ),
    ]


class UploadCallOptions(ClientOptions, UploadOptions, total=False):
    """Every option of :func:`tuspipe.upload`: the client's and the upload's."""


class ManyCallOptions(ConnectionOptions, ManyOptions, total=False):
    """Every option of :func:`tuspipe.upload_many`: the connection's and the sources'."""
