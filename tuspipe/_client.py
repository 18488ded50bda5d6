"""The client: one connection pool, shared settings, and server capabilities cached per
endpoint. Every public call (upload, status, creation, termination, discovery) is a method here;
the module-level functions are a temporary :class:`Client` around one call.

Theory of operation of an upload
--------------------------------
1. Check every argument; open the source (local mistakes fail here, before any traffic).
2. Ask the server what it offers (OPTIONS, once per endpoint per client) when a feature
   depends on it (a checksum).
3. Find the upload: ``upload_url=`` (HEAD), else the journal's unfinished upload of this
   source to this endpoint (HEAD; dropped if gone or not this source's), else create one.
4. Run the pipeline from the server's offset; journal acknowledged offsets as they come.
5. Mark the journal record finished once the server holds every byte.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from urllib.parse import urlsplit

import trio

from ._channels import ChannelStats
from ._errors import (
    SourceChangedError,
    TusError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
)
from ._fingerprint import fingerprint
from ._journal import Journal, JournalEntry, has_expired, public_endpoint
from ._pipeline import PipelineSettings, raise_from_group, run_pipeline
from ._protocol import (
    Response,
    ServerCapabilities,
    UploadStatus,
    choose_checksum,
    concatenation_request,
    creation_request,
    delete_request,
    encode_metadata,
    options_request,
    parse_capabilities,
    parse_creation_offset,
    parse_termination,
    upload_expires,
    validate_headers,
    validate_url,
)
from ._retry import RetryPolicy, create_with_retries, head_upload, retrying
from ._source import Source, SourceLike, open_source, slice_source
from ._stages import read_range
from ._transport import CertTypes, HTTPClient, ResponseHook, Transport, VerifyTypes
from ._types import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_AHEAD,
    DEFAULT_READ_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STREAM_CHUNK_SIZE,
    DEFAULT_TIMEOUT,
    JOURNAL_WRITE_INTERVAL,
    JournalOption,
    ProgressCallback,
    UploadOutcome,
    UploadResult,
)

__all__ = ["Client"]

logger = logging.getLogger("tuspipe")


class Client:
    """A tus client: one connection pool and one set of settings for many calls.

    Use it as an async context manager::

        async with tuspipe.Client(headers={"Authorization": "Bearer ..."}) as client:
            info = await client.server_info("https://tus.example/files/")
            result = await client.upload("video.mp4", "https://tus.example/files/")

    What OPTIONS says about an endpoint is asked once and kept for the client's lifetime.

    Args:
        headers: extra headers for every request (authentication, say). Never journaled.
        journal: where unfinished uploads are remembered so a later call resumes them: True
            for the default file (``$TUSPIPE_JOURNAL``, else the user's cache directory), a
            path, a :class:`Journal`, or None / False to remember nothing.
        retries: how many times a failed request is tried again before the call fails; for
            uploads the count starts afresh whenever the server's offset advances. Retried:
            network errors, timeouts, 5xx, 409 (the offset is asked for again), 423, 429
            (honouring ``Retry-After``); a 460 resends the same bytes up to 3 times. The
            creation POST is retried on network errors, 429 and 5xx only.
        retry_delays: seconds to wait before the 1st, 2nd, ... retry (the last repeats);
            default: exponential backoff from 0.5 s up to 30 s, with jitter.
        should_retry: ``should_retry(error, attempt) -> bool`` decides instead of the
            default rule which failures are retried (within `retries`).
        on_retry: called as ``on_retry(error, attempt, wait_seconds)`` before each retry.
        on_response: called as ``on_response(request, response)`` after every answer from
            the server (:class:`tuspipe.Request` and :class:`tuspipe.Response` values).
        verify, cert: TLS verification and client certificate, as in httpx.
        timeout: seconds allowed to connect (and to wait for a pooled connection).
        stall_timeout: seconds a request may go without moving a byte before it is aborted
            and retried.
        http_client: an ``httpx.AsyncClient`` to share; it is not closed.
        allow_insecure_location: follow an https endpoint's ``Location`` to plain http
            (refused by default: the bytes would travel unencrypted).
        allow_cross_origin_credentials: send ``Authorization``, ``Cookie`` and
            ``Proxy-Authorization`` from `headers` to upload URLs on another origin than the
            endpoint (by default they stay with the endpoint's origin).
        method_override: send PATCH and DELETE as POST with ``X-HTTP-Method-Override``, for
            proxies that block those methods (the server must honour the header).
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        journal: JournalOption = True,
        retries: int = DEFAULT_RETRIES,
        retry_delays: Sequence[float] | None = None,
        should_retry: Callable[[TusError, int], bool] | None = None,
        on_retry: Callable[[TusError, int, float], object] | None = None,
        on_response: ResponseHook | None = None,
        verify: VerifyTypes = True,
        cert: CertTypes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        http_client: HTTPClient | None = None,
        allow_insecure_location: bool = False,
        allow_cross_origin_credentials: bool = False,
        method_override: bool = False,
    ) -> None:
        self._headers = validate_headers(headers)
        self._allow_insecure_location = bool(allow_insecure_location)
        self._allow_cross_origin_credentials = bool(allow_cross_origin_credentials)
        self._journal = _journal_from(journal)
        self._retry = RetryPolicy(
            retries=retries, delays=retry_delays, should_retry=should_retry, on_retry=on_retry
        )
        self._transport = Transport(
            timeout=timeout,
            stall_timeout=stall_timeout,
            verify=verify,
            cert=cert,
            client=http_client,
            on_response=on_response,
            method_override=method_override,
        )
        self._capabilities: dict[str, ServerCapabilities | None] = {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (not a caller's ``http_client``)."""
        await self._transport.aclose()

    # ---- single operations --------------------------------------------------------------

    async def server_info(self, url: str) -> ServerCapabilities:
        """Ask a tus server what it supports (OPTIONS): versions, extensions, maximum size
        and checksum algorithms. A server that does not offer tus 1.0.0 is a
        VersionMismatchError; one that does not answer OPTIONS is a ResponseError."""
        validate_url(url)

        async def attempt() -> ServerCapabilities:
            request = options_request(url, self._headers)
            return parse_capabilities(request, await self._transport.send(request))

        capabilities = await retrying(attempt, self._retry, what=f"OPTIONS {url}")
        self._capabilities[url] = capabilities
        return capabilities

    async def _known_capabilities(self, url: str) -> ServerCapabilities | None:
        """What `url` supports, asked once per client; None if it does not answer OPTIONS."""
        if url not in self._capabilities:

            async def attempt() -> ServerCapabilities | None:
                request = options_request(url, self._headers)
                response = await self._transport.send(request)
                if response.status_code in (404, 405):
                    logger.info("%s does not answer OPTIONS (%d)", url, response.status_code)
                    return None
                return parse_capabilities(request, response)

            self._capabilities[url] = await retrying(attempt, self._retry, what=f"OPTIONS {url}")
        return self._capabilities[url]

    async def upload_status(self, upload_url: str) -> UploadStatus:
        """Ask the server about an upload (HEAD): offset, length, expiry and metadata.

        An upload the server does not have is an UploadNotFoundError.
        """
        validate_url(upload_url)
        return (await head_upload(self._transport, upload_url, self._headers, self._retry))[2]

    async def create_upload(
        self, url: str, length: int, *, metadata: Mapping[str, str | bytes] | None = None
    ) -> str:
        """Create an upload of `length` bytes at the creation endpoint `url`; return its URL.

        Retried on network errors, 429 and 5xx (as an upload's own creation is).
        """
        validate_url(url)
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise UsageError(f"length must be an int >= 0, not {length!r}")
        request = creation_request(url, length, encode_metadata(metadata), self._headers)
        created = await create_with_retries(
            self._transport,
            request,
            self._retry,
            allow_insecure_location=self._allow_insecure_location,
        )
        return created[0]

    async def terminate(self, upload_url: str) -> None:
        """Delete an upload (tus termination). One that is already gone counts as deleted."""
        validate_url(upload_url)

        async def attempt() -> None:
            request = delete_request(upload_url, self._headers)
            parse_termination(request, await self._transport.send(request))

        await retrying(attempt, self._retry, what=f"DELETE {upload_url}")
        logger.info("terminated %s", upload_url)

    # ---- uploads ------------------------------------------------------------------------

    async def upload(
        self,
        source: SourceLike,
        url: str | None = None,
        *,
        upload_url: str | None = None,
        chunk_size: int | None = None,
        metadata: Mapping[str, str | bytes] | None = None,
        checksum: str | None = None,
        stop_at: int | None = None,
        resume: bool = True,
        resume_key: str | None = None,
        on_progress: ProgressCallback | None = None,
        on_upload_url: Callable[[str], object] | None = None,
        read_size: int = DEFAULT_READ_SIZE,
        read_ahead: int = DEFAULT_READ_AHEAD,
        parallel: int = 1,
        terminate_on_cancel: bool = False,
    ) -> UploadResult:
        """Upload `source`; see :func:`tuspipe.upload_async` for every argument."""
        if url is None and upload_url is None:
            raise UsageError("give the creation endpoint `url`, or `upload_url` to resume")
        if url is not None:
            validate_url(url)
        if upload_url is not None:
            validate_url(upload_url)
        if resume_key is not None and (not isinstance(resume_key, str) or not resume_key):
            raise UsageError("resume_key must be a non-empty str")
        plan = _Plan(
            url=url,
            upload_url=upload_url,
            metadata=encode_metadata(metadata),
            headers=self._headers,
            checksum=checksum,
            journal=self._journal,
            resume=bool(resume),
            resume_key=resume_key,
            settings=PipelineSettings(
                # None is settled once the source is open (files and streams differ).
                chunk_size=0 if chunk_size is None else _positive_int("chunk_size", chunk_size),
                read_size=_positive_int("read_size", read_size),
                read_ahead=_positive_int("read_ahead", read_ahead),
            ),
            retry=self._retry,
            on_progress=on_progress,
            on_upload_url=on_upload_url,
            parallel=_positive_int("parallel", parallel),
            allow_insecure_location=self._allow_insecure_location,
            allow_cross_origin_credentials=self._allow_cross_origin_credentials,
            terminate_on_cancel=bool(terminate_on_cancel),
        )
        choose_checksum(checksum, None)  # an unknown algorithm fails here, before any traffic
        for name, callback in (("on_progress", on_progress), ("on_upload_url", on_upload_url)):
            if callback is not None and not callable(callback):
                raise UsageError(f"{name} must be callable")
        opened: Source = open_source(
            source,
            read_size=plan.settings.read_size,
            # a one-pass source holds the unacknowledged chunk and one read more
            retention=(chunk_size or DEFAULT_STREAM_CHUNK_SIZE) + plan.settings.read_size,
        )
        if chunk_size is None:
            default = DEFAULT_STREAM_CHUNK_SIZE if opened.size is None else DEFAULT_CHUNK_SIZE
            plan = replace(plan, settings=replace(plan.settings, chunk_size=default))
        try:
            if opened.size is not None:
                _stop_offset(stop_at, opened.size)  # fail before any traffic
            return await _run_upload(self, self._transport, opened, plan, stop_at)
        finally:
            opened.close()

    async def upload_many(
        self,
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
        read_size: int = DEFAULT_READ_SIZE,
        read_ahead: int = DEFAULT_READ_AHEAD,
    ) -> list[UploadOutcome]:
        """Upload many sources to the endpoint `url`, `concurrency` at a time, on this client's
        one connection pool; see :func:`tuspipe.upload_many_async`."""
        validate_url(url)
        concurrency = _positive_int("concurrency", concurrency)
        for name, callback in (
            ("on_progress", on_progress),
            ("on_total_progress", on_total_progress),
        ):
            if callback is not None and not callable(callback):
                raise UsageError(f"{name} must be callable")
        listed = list(sources)
        outcomes: list[UploadOutcome] = [
            UploadOutcome(index, item) for index, item in enumerate(listed)
        ]
        acknowledged = [0] * len(listed)
        totals: list[int | None] = [None] * len(listed)
        # Once, up front: later uploads can then send their first chunk with the POST.
        await self._known_capabilities(url)
        limiter = trio.CapacityLimiter(concurrency)

        def progress(index: int, done: int, total: int | None) -> None:
            acknowledged[index], totals[index] = done, total
            if on_progress is not None:
                on_progress(index, done, total)
            if on_total_progress is not None:
                known = (
                    None
                    if any(value is None for value in totals)
                    else sum(value or 0 for value in totals)
                )
                on_total_progress(sum(acknowledged), known)

        async def one(index: int) -> None:
            item = listed[index]
            item_metadata = metadata(item) if callable(metadata) else metadata
            async with limiter:
                try:
                    result = await self.upload(
                        item,
                        url,
                        chunk_size=chunk_size,
                        metadata=item_metadata,
                        checksum=checksum,
                        resume=resume,
                        read_size=read_size,
                        read_ahead=read_ahead,
                        on_progress=partial(progress, index),
                    )
                except (TusError, OSError) as error:
                    if fail_fast:
                        raise
                    logger.warning("upload %d of %d failed: %s", index + 1, len(listed), error)
                    outcomes[index] = UploadOutcome(index, item, error=error)
                else:
                    outcomes[index] = UploadOutcome(index, item, result=result)

        await _gather([partial(one, index) for index in range(len(listed))])
        return outcomes


def _is_cancellation(error: BaseException) -> bool:
    """True for trio's cancellation and Ctrl-C, alone or grouped."""
    if isinstance(error, BaseExceptionGroup):
        return error.split((trio.Cancelled, KeyboardInterrupt))[1] is None
    return isinstance(error, (trio.Cancelled, KeyboardInterrupt))


# Seconds a cancelled upload may spend terminating itself on the server.
TERMINATE_TIMEOUT = 10.0


async def _terminate_cancelled(
    transport: Transport, plan: _Plan, target: str, key: str | None
) -> None:
    """DELETE the upload of a cancelled call, shielded and time-bounded; never raises."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + TERMINATE_TIMEOUT):
        try:
            request = delete_request(target, _headers_to(plan, target))
            parse_termination(request, await transport.send(request))
            logger.info("terminated the cancelled upload %s", target)
            if key is not None and plan.journal is not None:
                await trio.to_thread.run_sync(plan.journal.forget, key)
        except (TusError, OSError) as error:
            logger.warning("could not terminate the cancelled upload %s: %s", target, error)


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
    parallel: int = 1
    allow_insecure_location: bool = False
    allow_cross_origin_credentials: bool = False
    terminate_on_cancel: bool = False


# Headers that carry credentials: sent only to the origin of the endpoint they were given for.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _headers_to(plan: _Plan, url: str) -> tuple[tuple[str, str], ...]:
    """The headers for a request to `url`: without credentials when `url` lies on another
    origin than the endpoint the caller gave them for (unless the caller allows it)."""
    if plan.allow_cross_origin_credentials or plan.url is None:
        return plan.headers
    if _origin(url) == _origin(plan.url):
        return plan.headers
    kept = tuple(pair for pair in plan.headers if pair[0].lower() not in _CREDENTIAL_HEADERS)
    if len(kept) != len(plan.headers):
        logger.warning(
            "%s is on another origin than %s: credentials in headers= are not sent there "
            "(allow_cross_origin_credentials=True sends them)",
            url,
            plan.url,
        )
    return kept


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
    transport: Transport, source: Source, plan: _Plan, journal: Journal, entry: JournalEntry
) -> tuple[str, int] | None:
    """The (url, offset) of this source's unfinished upload, if the server still has it."""
    if has_expired(entry):
        logger.info("the journaled upload %s has expired; starting a new one", entry.url)
    else:
        try:
            _, _, status = await head_upload(
                transport, entry.url, _headers_to(plan, entry.url), plan.retry
            )
        except UploadNotFoundError:
            logger.info("the journaled upload %s is gone; starting a new one", entry.url)
        else:
            if status.length is not None and status.length == source.size:
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
    await trio.to_thread.run_sync(journal.forget, entry.key)
    return None


def _creation_body_length(
    source: Source, plan: _Plan, capabilities: ServerCapabilities | None, algorithm: str | None
) -> int:
    """How many bytes travel in the creation request itself (creation-with-upload): the first
    chunk, when the server is known to accept it."""
    if (
        capabilities is None
        or not capabilities.supports("creation-with-upload")
        or not source.size
        or plan.upload_url is not None
        or plan.parallel > 1
        # With a checksum, every chunk goes by PATCH: a corrupted PATCH is refused (460) and
        # sent again, while what a server does with a corrupted creation request is unclear.
        or algorithm is not None
    ):
        return 0
    return min(plan.settings.chunk_size, source.size)


async def _find_or_create(
    transport: Transport,
    source: Source,
    plan: _Plan,
    key: str | None,
    entry: JournalEntry | None,
    capabilities: ServerCapabilities | None,
    algorithm: str | None,
) -> tuple[str, int, bool]:
    """The upload to continue or a new one: (its URL, the server's offset, whether it was
    created now)."""
    journal = plan.journal
    if plan.upload_url is not None:
        _, _, status = await head_upload(
            transport, plan.upload_url, _headers_to(plan, plan.upload_url), plan.retry
        )
        if status.length != source.size:
            raise UsageError(
                f"the upload at {plan.upload_url} is {status.length} bytes long but "
                f"{source.name} has {source.size}; it is not an upload of this source"
            )
        logger.info("resuming %s at offset %d of %s", plan.upload_url, status.offset, source.size)
        return plan.upload_url, status.offset, False
    if entry is not None and journal is not None:
        found = await _resume_from_journal(transport, source, plan, journal, entry)
        if found is not None:
            logger.info("resuming %s at offset %d of %s (journal)", *found, source.size)
            return (*found, False)
    target, offset, response = await _create(transport, source, plan, capabilities, algorithm)
    if key is not None and journal is not None and source.size is not None:
        entry = JournalEntry(
            key=key,
            url=target,
            endpoint=public_endpoint(plan.url or ""),
            source=source.name,
            size=source.size,
            offset=offset,
            expires=upload_expires(response),
        )
        await trio.to_thread.run_sync(journal.record_created, entry)
    return target, offset, True


async def _create(
    transport: Transport,
    source: Source,
    plan: _Plan,
    capabilities: ServerCapabilities | None,
    algorithm: str | None,
) -> tuple[str, int, Response]:
    """Create the upload: (its URL, the bytes the server already holds, the answer).

    When the server is known to support creation-with-upload, the first chunk travels in the
    POST itself, saving a round trip (what matters for small files). The offset the server
    returns is checked: a server that silently dropped the body just holds fewer bytes.
    """
    assert plan.url is not None
    first = _creation_body_length(source, plan, capabilities, algorithm)
    request = creation_request(
        plan.url,
        source.size,
        plan.metadata,
        plan.headers,
        body_length=first or None,
    )
    target, response = await create_with_retries(
        transport,
        request,
        plan.retry,
        allow_insecure_location=plan.allow_insecure_location,
        body=(lambda: read_range(source, 0, first, plan.settings.read_size)) if first else None,
    )
    offset = 0
    if first:
        held = parse_creation_offset(request, response)
        if held is None:
            # The answer does not say what was stored: ask.
            held = (await head_upload(transport, target, _headers_to(plan, target), plan.retry))[
                2
            ].offset
        offset = held
    logger.info(
        "created %s for %s bytes of %s (%d sent with the POST)",
        target,
        source.size,
        source.name,
        offset,
    )
    return target, offset, response


async def _run_upload(
    client: Client, transport: Transport, source: Source, plan: _Plan, stop_at: int | None
) -> UploadResult:
    capabilities = None
    if plan.checksum is not None:
        capabilities = await client._known_capabilities(plan.url or plan.upload_url or "")
    algorithm = choose_checksum(plan.checksum, capabilities)
    if plan.checksum == "auto" and algorithm is None:
        logger.info("the server offers no checksum algorithm; uploading without checksums")

    if source.size is None:
        # A one-pass source: look one chunk ahead; one that ends there is an ordinary upload.
        await source.ensure(plan.settings.chunk_size + 1)
    deferred = source.size is None
    stop: int | None = None
    if source.size is None:
        await _check_deferred_length(client, source, plan, stop_at)
    else:
        stop = _stop_offset(stop_at, source.size)

    journal = plan.journal
    if capabilities is None and plan.url is not None:
        capabilities = client._capabilities.get(plan.url)  # only what is known already
    key = None
    if _creation_body_length(source, plan, capabilities, algorithm) != source.size:
        # (An upload that travels whole in its creation request has nothing to resume.)
        key = await _journal_key(source, plan)
    entry = None
    if key is not None and journal is not None and plan.resume:
        entry = await trio.to_thread.run_sync(journal.get, key)
    # An upload already under way continues as it began: in parts, or in one piece.
    if (entry is not None and entry.parts) or (entry is None and plan.parallel > 1):
        parts = await _parallel_parts(client, source, plan, stop_at, entry)
        if parts > 1:
            return await _run_parallel(transport, source, plan, parts, algorithm, key, entry)
    if (
        capabilities is not None
        and capabilities.max_size is not None
        and source.size is not None
        and source.size > capabilities.max_size
        and plan.upload_url is None
    ):
        raise UploadTooLargeError(
            f"{source.name} has {source.size} bytes; the server accepts at most "
            f"{capabilities.max_size} (Tus-Max-Size)",
            url=plan.url or "",
        )
    target, offset, created = await _find_or_create(
        transport, source, plan, key, entry, capabilities, algorithm
    )
    if plan.on_upload_url is not None:
        plan.on_upload_url(target)
    if plan.on_progress is not None:
        # Progress starts where the call found the upload; bytes sent with the creation
        # request count as acknowledged by it.
        plan.on_progress(0 if created else offset, source.size)
        if created and offset:
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
    channel_stats: list[ChannelStats] = []
    if stop is None or offset < stop:
        try:
            final = await run_pipeline(
                transport=transport,
                url=target,
                headers=_headers_to(plan, target),
                source=source,
                start=offset,
                stop=stop,
                algorithm=algorithm,
                settings=plan.settings,
                retry=plan.retry,
                on_acknowledged=acknowledged,
                declare_length=deferred,
                channel_stats=channel_stats,
            )
        except SourceChangedError:
            # The upload holds bytes of a file that no longer exists as it was: never resume it.
            if key is not None and journal is not None:
                await trio.to_thread.run_sync(journal.forget, key)
            raise
        except BaseException as error:
            if plan.terminate_on_cancel and _is_cancellation(error):
                await _terminate_cancelled(transport, plan, target, key)
            raise
    size = source.size
    assert size is not None  # a one-pass source has been read to its end by now
    if final == size and key is not None and journal is not None:
        await trio.to_thread.run_sync(journal.record_finished, key)
    return UploadResult(
        url=target,
        size=size,
        offset=final,
        resumed_from=0 if created else offset,
        checksum=algorithm,
        channel_stats=tuple(channel_stats),
    )


async def _check_deferred_length(
    client: Client, source: Source, plan: _Plan, stop_at: int | None
) -> None:
    """A source of unknown size needs a new upload created with a deferred length."""
    if plan.upload_url is not None or plan.resume_key is not None:
        raise UsageError(
            f"{source.name} can be read only once, so it cannot continue an earlier upload "
            "(upload_url= and resume_key= need a file, bytes or a seekable stream)"
        )
    if stop_at is not None:
        raise UsageError(f"stop_at= needs a source that can be read again; {source.name} cannot")
    assert plan.url is not None
    capabilities = await client._known_capabilities(plan.url)
    if capabilities is not None and not capabilities.supports("creation-defer-length"):
        raise UnsupportedFeatureError(
            f"{source.name} has no known size, and the server does not support uploads of "
            "deferred length (creation-defer-length); write it to a file first"
        )


async def _parallel_parts(
    client: Client, source: Source, plan: _Plan, stop_at: int | None, entry: JournalEntry | None
) -> int:
    """How many parts to upload at once: a journaled parallel upload keeps its count; else
    `parallel`, when the server supports concatenation (otherwise one, with a warning)."""
    if entry is not None and entry.parts:
        return len(entry.parts)
    if stop_at is not None or plan.upload_url is not None or source.size is None:
        raise UsageError(
            "parallel= uploads a whole source that can be read again, as a new upload: it "
            "does not combine with stop_at=, upload_url= or a one-pass source"
        )
    assert plan.url is not None
    capabilities = await client._known_capabilities(plan.url)
    if capabilities is not None and not capabilities.supports("concatenation"):
        logger.warning(
            "%s does not support concatenation; uploading %s in one piece",
            plan.url,
            source.name,
        )
        return 1
    return max(1, min(plan.parallel, source.size))


def _part_spans(size: int, parts: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each part: as equal as whole bytes allow."""
    bounds = [size * index // parts for index in range(parts + 1)]
    return [(bounds[index], bounds[index + 1] - bounds[index]) for index in range(parts)]


async def _resume_parts(
    transport: Transport,
    plan: _Plan,
    entry: JournalEntry,
    spans: list[tuple[int, int]],
) -> tuple[str | None, list[int]] | None:
    """Where a journaled parallel upload stands: (the final upload if it exists, each part's
    offset), or None when the server no longer has it and it must start over."""
    try:
        if entry.url:
            _, _, final = await head_upload(
                transport, entry.url, _headers_to(plan, entry.url), plan.retry
            )
            if final.complete and final.length == entry.size:
                return entry.url, [length for _, length in spans]
            logger.warning(
                "the journaled final upload %s is not complete; starting over", entry.url
            )
            return None
        offsets = []
        for part_url, (_, length) in zip(entry.parts, spans, strict=True):
            _, _, status = await head_upload(
                transport, part_url, _headers_to(plan, part_url), plan.retry
            )
            if status.length != length:
                logger.warning(
                    "the journaled part %s is not this source's; starting over", part_url
                )
                return None
            offsets.append(status.offset)
        return None, offsets
    except UploadNotFoundError:
        logger.info("a journaled part of %s is gone; starting over", entry.source)
        return None


async def _run_parallel(
    transport: Transport,
    source: Source,
    plan: _Plan,
    parts: int,
    algorithm: str | None,
    key: str | None,
    entry: JournalEntry | None,
) -> UploadResult:
    """Upload `source` as `parts` partial uploads at once, then join them (concatenation).

    Each part is an ordinary pipeline over its slice of the source, on the shared connection
    pool. The journal records the part URLs as soon as they exist and the final URL once it
    does, so a killed parallel upload resumes every part; a server that deletes the parts
    once the final upload exists (tuspyserver does) is fine, because a journaled final
    upload is never asked about its parts again.
    """
    assert source.size is not None
    assert plan.url is not None
    size, journal = source.size, plan.journal
    spans = _part_spans(size, parts)
    state = None
    if entry is not None and entry.parts and journal is not None:
        state = await _resume_parts(transport, plan, entry, spans)
        if state is None:
            await trio.to_thread.run_sync(journal.forget, entry.key)
    if state is not None and entry is not None:
        final_url, offsets = state
        part_urls = list(entry.parts)
    else:
        final_url, offsets = None, [0] * parts
        part_urls = await _create_parts(transport, plan, spans)
        if key is not None and journal is not None:
            await trio.to_thread.run_sync(
                journal.record_created,
                JournalEntry(
                    key=key,
                    url="",
                    endpoint=public_endpoint(plan.url),
                    source=source.name,
                    size=size,
                    parts=tuple(part_urls),
                ),
            )
    resumed_from = sum(offsets)
    if plan.on_progress is not None:
        plan.on_progress(resumed_from, size)

    channel_stats: list[ChannelStats] = []
    if final_url is None:
        await _upload_parts(
            transport, source, plan, spans, part_urls, offsets, algorithm, channel_stats
        )
        final_url, response = await create_with_retries(
            transport,
            concatenation_request(plan.url, part_urls, plan.metadata, plan.headers),
            plan.retry,
            allow_insecure_location=plan.allow_insecure_location,
        )
        logger.info("joined %d parts of %s as %s", parts, source.name, final_url)
        if key is not None and journal is not None:
            finished = JournalEntry(
                key=key,
                url=final_url,
                endpoint=public_endpoint(plan.url),
                source=source.name,
                size=size,
                offset=size,
                expires=upload_expires(response),
                parts=tuple(part_urls),
            )
            await trio.to_thread.run_sync(journal.record_created, finished)
    if key is not None and journal is not None:
        await trio.to_thread.run_sync(journal.record_finished, key)
    if plan.on_upload_url is not None:
        plan.on_upload_url(final_url)
    return UploadResult(
        url=final_url,
        size=size,
        offset=size,
        resumed_from=resumed_from,
        checksum=algorithm,
        channel_stats=_merged_by_name(channel_stats),
    )


def _merged_by_name(channel_stats: list[ChannelStats]) -> tuple[ChannelStats, ...]:
    """One figure per channel name: the parts' pipelines summed."""
    merged: dict[str, ChannelStats] = {}
    for stats in channel_stats:
        known = merged.get(stats.name)
        merged[stats.name] = stats if known is None else known.merged(stats)
    return tuple(merged.values())


async def _create_parts(
    transport: Transport, plan: _Plan, spans: list[tuple[int, int]]
) -> list[str]:
    """Create one partial upload per span, all at once; their URLs in order."""
    assert plan.url is not None
    url = plan.url
    part_urls = [""] * len(spans)

    async def create(index: int, length: int) -> None:
        # The metadata goes on the parts too: some servers (tuspyserver) refuse a HEAD of an
        # upload without it, and a resumed part must be asked for its offset.
        request = creation_request(url, length, plan.metadata, plan.headers, partial=True)
        created = await create_with_retries(
            transport, request, plan.retry, allow_insecure_location=plan.allow_insecure_location
        )
        part_urls[index] = created[0]

    await _gather([partial(create, index, length) for index, (_, length) in enumerate(spans)])
    return part_urls


async def _upload_parts(
    transport: Transport,
    source: Source,
    plan: _Plan,
    spans: list[tuple[int, int]],
    part_urls: list[str],
    offsets: list[int],
    algorithm: str | None,
    channel_stats: list[ChannelStats],
) -> None:
    """Run one pipeline per unfinished part, all at once; progress is their sum (and the
    parts' channel figures are collected in `channel_stats`)."""
    size = source.size

    async def acknowledged(index: int, new_offset: int) -> None:
        offsets[index] = new_offset
        if plan.on_progress is not None:
            plan.on_progress(sum(offsets), size)

    async def upload_part(index: int) -> None:
        start, length = spans[index]
        await run_pipeline(
            transport=transport,
            url=part_urls[index],
            headers=_headers_to(plan, part_urls[index]),
            source=slice_source(source, start, length),
            start=offsets[index],
            stop=length,
            algorithm=algorithm,
            settings=plan.settings,
            retry=plan.retry,
            on_acknowledged=partial(acknowledged, index),
            channel_stats=channel_stats,
        )

    await _gather(
        [
            partial(upload_part, index)
            for index in range(len(spans))
            if offsets[index] < spans[index][1]
        ]
    )


async def _gather(calls: list[Callable[[], Awaitable[None]]]) -> None:
    """Run `calls` at once; the first failure cancels the rest and is raised as itself."""
    try:
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(call)
    except BaseExceptionGroup as group:
        if group.split(Exception)[1] is not None:
            raise
        raise_from_group(group)
