"""The public upload calls: :func:`upload_async` (trio-native) and :func:`upload` (blocking).

``upload`` is ``trio.run`` over ``upload_async`` and nothing more, so there is one
implementation. Everything the caller passes is checked before the first request is sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Union

import httpx
import trio

from ._errors import (
    SourceChangedError,
    TusError,
    UploadNotFoundError,
    UsageError,
)
from ._fingerprint import fingerprint
from ._journal import Journal, JournalEntry, has_expired, public_endpoint
from ._pipeline import PipelineSettings, run_pipeline
from ._protocol import (
    Request,
    Response,
    ServerCapabilities,
    choose_checksum,
    creation_request,
    encode_metadata,
    options_request,
    parse_capabilities,
    upload_expires,
    validate_headers,
    validate_url,
)
from ._retry import RetryPolicy, create_with_retries, head_upload, retrying
from ._source import Source, SourceLike, open_source
from ._sync import blocking
from ._transport import CertTypes, ResponseHook, Transport, VerifyTypes

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_READ_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_STALL_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "JournalOption",
    "ProgressCallback",
    "UploadResult",
    "upload",
    "upload_async",
]

logger = logging.getLogger("tuspipe")

#: Bytes per PATCH. Memory does not depend on it (chunks are re-read, never buffered); larger
#: chunks mean fewer round trips, smaller ones less to resend after a failure.
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
#: Bytes per read from the source and per write to the socket.
DEFAULT_READ_SIZE = 1024 * 1024
#: Blocks the reader may read ahead of the sender.
DEFAULT_READ_AHEAD = 4
#: Seconds allowed to connect, or to wait for a pooled connection.
DEFAULT_TIMEOUT = 30.0
#: Seconds a request may go without moving a byte before it is aborted and retried.
DEFAULT_STALL_TIMEOUT = 60.0
#: Retries of a failing request, counted afresh whenever the upload makes progress.
DEFAULT_RETRIES = 5

#: Seconds between journal records of the acknowledged offset during one upload.
JOURNAL_WRITE_INTERVAL = 0.5

ProgressCallback = Callable[[int, int], object]
"""Called as ``on_progress(acknowledged, total)`` after each offset the server confirms."""


@dataclass(frozen=True)
class UploadResult:
    """What an upload achieved.

    Attributes:
        url: the upload's URL on the server (keep it to resume or delete the upload).
        size: the source's size in bytes.
        offset: the server's offset when the call ended (``size`` unless ``stop_at`` was used).
        resumed_from: bytes that were already on the server when the call began.
        checksum: the checksum algorithm used, or None.
    """

    url: str
    size: int
    offset: int
    resumed_from: int
    checksum: str | None = None

    @property
    def complete(self) -> bool:
        """True when the server holds every byte of the source."""
        return self.offset == self.size


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name} must be a positive int, not {value!r}")
    return value


def _stop_offset(stop_at: int | None, size: int) -> int:
    if stop_at is None:
        return size
    if isinstance(stop_at, bool) or not isinstance(stop_at, int):
        raise UsageError(f"stop_at must be an int or None, not {stop_at!r}")
    if not 0 <= stop_at <= size:
        raise UsageError(f"stop_at={stop_at} lies outside the source's {size} bytes")
    return stop_at


async def _exchange(transport: Transport, request: Request) -> tuple[Request, Response]:
    return request, await transport.send(request)


async def _discover(
    transport: Transport, url: str, headers: tuple[tuple[str, str], ...], retry: RetryPolicy
) -> ServerCapabilities | None:
    """OPTIONS `url`; None when the server does not answer OPTIONS (it is optional to ask)."""
    request, response = await retrying(
        partial(_exchange, transport, options_request(url, headers)), retry, what=f"OPTIONS {url}"
    )
    if response.status_code in (404, 405):
        logger.info("%s does not answer OPTIONS (%d)", url, response.status_code)
        return None
    return parse_capabilities(request, response)


JournalOption = Union[bool, str, "os.PathLike[str]", Journal, None]


async def upload_async(
    source: SourceLike,
    url: str | None = None,
    *,
    upload_url: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
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
    http_client: httpx.AsyncClient | None = None,
) -> UploadResult:
    """Upload `source` with the tus protocol and return what the server holds.

    Args:
        source: a path, bytes, or a seekable binary file object (read from its position).
        url: the creation endpoint (``https://host/files/``). An unfinished upload of the same
            source to it that the journal remembers is continued; otherwise a new upload is
            made there.
        upload_url: an existing upload to continue instead: its offset is asked for (HEAD)
            and the upload goes on from there. The journal is not consulted.
        chunk_size: bytes per PATCH request. Memory use does not grow with it.
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
        read_size, read_ahead: bytes per read and reads held ahead of the sender.
        http_client: an ``httpx.AsyncClient`` to share; it is not closed.

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
    if url is None and upload_url is None:
        raise UsageError("give the creation endpoint `url`, or `upload_url` to resume")
    if url is not None:
        validate_url(url)
    if upload_url is not None:
        validate_url(upload_url)
    if resume_key is not None and (not isinstance(resume_key, str) or not resume_key):
        raise UsageError("resume_key must be a non-empty str")
    settings = PipelineSettings(
        chunk_size=_positive_int("chunk_size", chunk_size),
        read_size=_positive_int("read_size", read_size),
        read_ahead=_positive_int("read_ahead", read_ahead),
    )
    plan = _Plan(
        url=url,
        upload_url=upload_url,
        metadata=encode_metadata(metadata),
        headers=validate_headers(headers),
        checksum=checksum,
        journal=_journal_from(journal),
        resume=bool(resume),
        resume_key=resume_key,
        settings=settings,
        retry=RetryPolicy(
            retries=retries, delays=retry_delays, should_retry=should_retry, on_retry=on_retry
        ),
        on_progress=on_progress,
        on_upload_url=on_upload_url,
    )
    choose_checksum(checksum, None)  # an unknown algorithm fails here, before any traffic
    for name, callback in (
        ("on_progress", on_progress),
        ("on_upload_url", on_upload_url),
    ):
        if callback is not None and not callable(callback):
            raise UsageError(f"{name} must be callable")
    opened: Source = open_source(source)
    try:
        stop = _stop_offset(stop_at, opened.size)
        async with Transport(
            timeout=timeout,
            stall_timeout=stall_timeout,
            verify=verify,
            cert=cert,
            client=http_client,
            on_response=on_response,
        ) as transport:
            return await _upload(transport, opened, plan, stop)
    finally:
        opened.close()


def _journal_from(option: JournalOption) -> Journal | None:
    if option is None or option is False:
        return None
    if option is True:
        return Journal()
    if isinstance(option, Journal):
        journal = option
    elif isinstance(option, (str, os.PathLike)):
        journal = Journal(option)
    else:
        raise UsageError(f"journal must be True, False, None, a path or a Journal, not {option!r}")
    if journal.path.is_dir():
        raise UsageError(f"journal={str(journal.path)!r} is a directory; name a file in it")
    return journal


@dataclass(frozen=True)
class _Plan:
    """The validated request of one upload call."""

    url: str | None
    upload_url: str | None
    metadata: str | None
    headers: tuple[tuple[str, str], ...]
    checksum: str | None
    journal: Journal | None
    resume: bool
    resume_key: str | None
    settings: PipelineSettings
    retry: RetryPolicy
    on_progress: ProgressCallback | None
    on_upload_url: Callable[[str], object] | None


async def _journal_key(source: Source, plan: _Plan) -> str | None:
    """The source's fingerprint for the journal, or None when this upload is not journaled."""
    if plan.journal is None or plan.url is None or plan.upload_url is not None:
        return None
    identity = f"key:{plan.resume_key}" if plan.resume_key is not None else source.identity
    if identity is None:
        logger.debug("%s has no stable identity; pass resume_key= to journal it", source.name)
        return None
    return await trio.to_thread.run_sync(
        partial(fingerprint, source, endpoint=plan.url, identity=identity)
    )


async def _resume_from_journal(
    transport: Transport, source: Source, plan: _Plan, journal: Journal, key: str
) -> tuple[str, int] | None:
    """The (url, offset) of this source's unfinished upload, if the server still has it."""
    entry = await trio.to_thread.run_sync(journal.get, key)
    if entry is None:
        return None
    if has_expired(entry):
        logger.info("the journaled upload %s has expired; starting a new one", entry.url)
    else:
        try:
            _, _, status = await head_upload(transport, entry.url, plan.headers, plan.retry)
        except UploadNotFoundError:
            logger.info("the journaled upload %s is gone; starting a new one", entry.url)
        else:
            if status.length == source.size and status.offset <= source.size:
                return entry.url, status.offset
            logger.warning(
                "the journaled upload %s holds %s of %s bytes, but %s has %d; "
                "it is not this source's upload, so a new one is made",
                entry.url,
                status.offset,
                status.length,
                source.name,
                source.size,
            )
    await trio.to_thread.run_sync(journal.forget, key)
    return None


async def _upload(transport: Transport, source: Source, plan: _Plan, stop: int) -> UploadResult:
    capabilities = None
    if plan.checksum is not None:
        capabilities = await _discover(
            transport, plan.url or plan.upload_url or "", plan.headers, plan.retry
        )
    algorithm = choose_checksum(plan.checksum, capabilities)
    if plan.checksum == "auto" and algorithm is None:
        logger.info("the server offers no checksum algorithm; uploading without checksums")

    journal = plan.journal
    key = await _journal_key(source, plan)
    found = None
    if key is not None and journal is not None and plan.resume:
        found = await _resume_from_journal(transport, source, plan, journal, key)

    if plan.upload_url is not None:
        _, _, status = await head_upload(transport, plan.upload_url, plan.headers, plan.retry)
        if status.length != source.size:
            raise UsageError(
                f"the upload at {plan.upload_url} is {status.length} bytes long but "
                f"{source.name} has {source.size}; it is not an upload of this source"
            )
        target, offset = plan.upload_url, status.offset
        logger.info("resuming %s at offset %d of %d", target, offset, source.size)
    elif found is not None:
        target, offset = found
        logger.info("resuming %s at offset %d of %d (journal)", target, offset, source.size)
    else:
        assert plan.url is not None
        target, response = await create_with_retries(
            transport,
            creation_request(plan.url, source.size, plan.metadata, plan.headers),
            plan.retry,
        )
        offset = 0
        logger.info("created %s for %d bytes of %s", target, source.size, source.name)
        if key is not None and journal is not None:
            entry = JournalEntry(
                key=key,
                url=target,
                endpoint=public_endpoint(plan.url),
                source=source.name,
                size=source.size,
                expires=upload_expires(response),
            )
            await trio.to_thread.run_sync(journal.record_created, entry)
    if plan.on_upload_url is not None:
        plan.on_upload_url(target)
    if plan.on_progress is not None:
        plan.on_progress(offset, source.size)

    next_journal_write = trio.current_time()

    async def acknowledged(new_offset: int) -> None:
        nonlocal next_journal_write
        if plan.on_progress is not None:
            plan.on_progress(new_offset, source.size)
        # The journaled offset only says how far an upload got (the server is asked again
        # before resuming), so a few writes a second are plenty and cost nothing measurable.
        if key is not None and journal is not None and trio.current_time() >= next_journal_write:
            next_journal_write = trio.current_time() + JOURNAL_WRITE_INTERVAL
            await trio.to_thread.run_sync(journal.record_offset, key, new_offset)

    final = offset
    if offset < stop:
        try:
            final = await run_pipeline(
                transport=transport,
                url=target,
                headers=plan.headers,
                source=source,
                start=offset,
                stop=stop,
                algorithm=algorithm,
                settings=plan.settings,
                retry=plan.retry,
                on_acknowledged=acknowledged,
            )
        except SourceChangedError:
            # The upload holds bytes of a file that no longer exists as it was: never resume it.
            if key is not None and journal is not None:
                await trio.to_thread.run_sync(journal.forget, key)
            raise
    if final == source.size and key is not None and journal is not None:
        await trio.to_thread.run_sync(journal.record_finished, key)
    return UploadResult(
        url=target, size=source.size, offset=final, resumed_from=offset, checksum=algorithm
    )


upload = blocking(upload_async, "upload")
