"""The public upload calls: :func:`upload_async` (trio-native) and :func:`upload` (blocking).

Each is a temporary :class:`~tuspipe.Client` around one :meth:`~tuspipe.Client.upload`, and
``upload`` is ``trio.run`` over ``upload_async`` and nothing more, so there is one
implementation. Everything the caller passes is checked before the first request is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from ._client import Client
from ._errors import TusError
from ._source import SourceLike
from ._sync import blocking
from ._transport import CertTypes, HTTPClient, ResponseHook, VerifyTypes
from ._types import (
    DEFAULT_READ_AHEAD,
    DEFAULT_READ_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_TIMEOUT,
    JournalOption,
    ProgressCallback,
    UploadOutcome,
    UploadResult,
)

__all__ = ["upload", "upload_async", "upload_many", "upload_many_async"]


async def upload_async(
    source: SourceLike,
    url: str | None = None,
    *,
    upload_url: str | None = None,
    chunk_size: int | None = None,
    metadata: Mapping[str, str | bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    checksum: str | None = None,
    stop_at: int | None = None,
    journal: JournalOption = True,
    resume: bool = True,
    resume_key: str | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delays: Sequence[float] | None = None,
    should_retry: Callable[[TusError, int], bool] | None = None,
    on_retry: Callable[[TusError, int, float], object] | None = None,
    on_progress: ProgressCallback | None = None,
    on_upload_url: Callable[[str], object] | None = None,
    on_response: ResponseHook | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    read_size: int = DEFAULT_READ_SIZE,
    read_ahead: int = DEFAULT_READ_AHEAD,
    parallel: int = 1,
    http_client: HTTPClient | None = None,
    allow_insecure_location: bool = False,
    allow_cross_origin_credentials: bool = False,
    method_override: bool = False,
    terminate_on_cancel: bool = False,
) -> UploadResult:
    """Upload `source` with the tus protocol and return what the server holds.

    Args:
        source: a path, bytes, or a seekable binary file object (read from its position).
        url: the creation endpoint (``https://host/files/``). An unfinished upload of the same
            source to it that the journal remembers is continued; otherwise a new upload is
            made there.
        upload_url: an existing upload to continue instead: its offset is asked for (HEAD)
            and the upload goes on from there. The journal is not consulted.
        chunk_size: bytes per PATCH request. None (the default): 64 MiB for files and other
            re-readable sources (``DEFAULT_CHUNK_SIZE``; memory use does not grow with it),
            8 MiB for one-pass streams (``DEFAULT_STREAM_CHUNK_SIZE``; a stream's unacknowledged
            chunk is held in memory).
        metadata: ``Upload-Metadata`` pairs; str values are sent as UTF-8, bytes as they are.
        headers: extra headers for every request (authentication, say). Never journaled.
        checksum: None, an algorithm ("sha1", "sha256", "sha512", "md5", "crc32") or "auto"
            (the strongest the server lists; none if it lists none). An explicit algorithm
            the server does not offer is an UnsupportedFeatureError, before any byte is sent.
        stop_at: upload only up to this offset (the upload stays open for a later call).
        journal: where unfinished uploads are remembered so a later call resumes them: True
            for the default file (``$TUSPIPE_JOURNAL``, else the user's cache directory), a
            path, a :class:`Journal`, or None / False to remember nothing.
        resume: False always makes a new upload, even if the journal knows an unfinished one.
        resume_key: names a stream or bytes source across processes, so that its upload can
            be resumed too (paths need none: their path and modification time name them).
        retries: how many times a failed request is tried again before the upload fails;
            the count starts afresh whenever the server's offset advances. Retried: network
            errors, timeouts, 5xx, 409 (the offset is asked for again), 423, 429 (honouring
            ``Retry-After``); a 460 resends the same bytes up to 3 times. The creation POST
            is retried on network errors, 429 and 5xx only.
        retry_delays: seconds to wait before the 1st, 2nd, ... retry (the last repeats);
            default: exponential backoff from 0.5 s up to 30 s, with jitter.
        should_retry: ``should_retry(error, attempt) -> bool`` decides instead of the
            default rule which failures are retried (within `retries`).
        on_retry: called as ``on_retry(error, attempt, wait_seconds)`` before each retry.
        on_progress: called as ``on_progress(acknowledged, total)`` once the starting offset
            is known, then as the server acknowledges bytes.
        on_upload_url: called with the upload's URL as soon as it is known.
        on_response: called as ``on_response(request, response)`` after every answer from
            the server (:class:`tuspipe.Request` and :class:`tuspipe.Response` values).
        verify, cert: TLS verification and client certificate, as in httpx.
        timeout: seconds allowed to connect (and to wait for a pooled connection).
        stall_timeout: seconds a request may go without moving a byte before it is aborted
            and retried.
        read_size, read_ahead: bytes per block (2 MiB) and blocks held ahead of the sender
            (4). A file's blocks are spans sent with ``sendfile()``, so they cost no memory;
            a stream's are bytes.
        parallel: upload the source as this many parts at once and join them on the server
            (the concatenation extension); a server without it gets one upload and a
            warning. The journal remembers every part, so an interrupted parallel upload
            resumes them all.
        http_client: an ``httpx.AsyncClient`` to share; it is not closed.
        allow_insecure_location: follow an https endpoint's ``Location`` to plain http
            (refused by default).
        allow_cross_origin_credentials: send credential headers (``Authorization``,
            ``Cookie``, ``Proxy-Authorization``) to an upload URL on another origin than `url`
            (by default they are only sent to the endpoint's origin).
        method_override: send PATCH and DELETE as POST with ``X-HTTP-Method-Override``, for
            proxies that block those methods.
        terminate_on_cancel: when the call is cancelled (a trio cancel scope, Ctrl-C),
            delete the upload on the server instead of leaving it to be resumed.

    Raises:
        UsageError: bad arguments (before any request).
        OSError: the file cannot be opened or read.
        ResponseError and its subclasses: the server refused (status and body attached).
        NetworkError, NetworkTimeoutError: the server could not be reached or stopped
            answering, and the retries ran out.
        SourceChangedError: the file changed during the upload.

    Cancelling the call (a trio cancel scope, Ctrl-C) stops it at once; the bytes the server
    acknowledged stay there, and the next call for the same source and endpoint continues.
    """
    client = Client(
        headers=headers,
        journal=journal,
        retries=retries,
        retry_delays=retry_delays,
        should_retry=should_retry,
        on_retry=on_retry,
        on_response=on_response,
        verify=verify,
        cert=cert,
        timeout=timeout,
        stall_timeout=stall_timeout,
        http_client=http_client,
        allow_insecure_location=allow_insecure_location,
        allow_cross_origin_credentials=allow_cross_origin_credentials,
        method_override=method_override,
    )
    async with client:
        return await client.upload(
            source,
            url,
            upload_url=upload_url,
            chunk_size=chunk_size,
            metadata=metadata,
            checksum=checksum,
            stop_at=stop_at,
            resume=resume,
            resume_key=resume_key,
            on_progress=on_progress,
            on_upload_url=on_upload_url,
            read_size=read_size,
            read_ahead=read_ahead,
            parallel=parallel,
            terminate_on_cancel=terminate_on_cancel,
        )


upload = blocking(upload_async, "upload")


async def upload_many_async(
    sources: Iterable[SourceLike],
    url: str,
    *,
    concurrency: int = 4,
    fail_fast: bool = False,
    metadata: Mapping[str, str | bytes]
    | Callable[[SourceLike], Mapping[str, str | bytes] | None]
    | None = None,
    on_progress: Callable[[int, int, int | None], object] | None = None,
    on_total_progress: Callable[[int, int | None], object] | None = None,
    chunk_size: int | None = None,
    checksum: str | None = None,
    resume: bool = True,
    headers: Mapping[str, str] | None = None,
    journal: JournalOption = True,
    retries: int = DEFAULT_RETRIES,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    read_size: int = DEFAULT_READ_SIZE,
    read_ahead: int = DEFAULT_READ_AHEAD,
    http_client: HTTPClient | None = None,
) -> list[UploadOutcome]:
    """Upload many sources to the creation endpoint `url`, `concurrency` at a time.

    All uploads share one connection pool, and the server is asked what it supports once, so
    a small file takes a single request when the server supports creation-with-upload. Each
    source gets its own :class:`UploadOutcome` (a result or the error), in the order given;
    one failure does not stop the others unless `fail_fast`, which raises the first error.

    Args:
        metadata: a mapping for every upload, or a function of the source returning one.
        on_progress: called as ``on_progress(index, acknowledged, total)`` per source.
        on_total_progress: called as ``on_total_progress(acknowledged, total)`` over all
            sources (`total` None while some size is unknown).
        The other arguments mean what they mean for :func:`upload_async`.
    """
    client = Client(
        headers=headers,
        journal=journal,
        retries=retries,
        retry_delays=retry_delays,
        verify=verify,
        cert=cert,
        timeout=timeout,
        stall_timeout=stall_timeout,
        http_client=http_client,
    )
    async with client:
        return await client.upload_many(
            sources,
            url,
            concurrency=concurrency,
            fail_fast=fail_fast,
            metadata=metadata,
            on_progress=on_progress,
            on_total_progress=on_total_progress,
            chunk_size=chunk_size,
            checksum=checksum,
            resume=resume,
            read_size=read_size,
            read_ahead=read_ahead,
        )


upload_many = blocking(upload_many_async, "upload_many")
