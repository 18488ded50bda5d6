"""One upload's whole life: plan it, find or create it on the server, run the pipeline.

Theory of operation
-------------------
1. :func:`plan_upload` checks the call's options and builds the :class:`UploadPlan`;
   :func:`upload_source` opens the source (local mistakes fail here, before any traffic).
2. Ask the server what it offers (OPTIONS, once per endpoint per client, through the client's
   :class:`~tuspipe._capabilities.CapabilityCache`) when a feature depends on it.
3. Find the upload: ``upload_url=`` (HEAD), else the journal's unfinished upload of this
   source to this endpoint (HEAD; dropped if gone or not this source's), else create one.
   An upload in parts is :mod:`tuspipe._parallel`'s.
4. Run the pipeline from the server's offset; journal acknowledged offsets as they come.
5. Mark the journal record finished once the server holds every byte.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

import trio

from ._bodylimits import BodyLimits
from ._capabilities import CapabilityCache
from ._channels import ChannelStats
from ._credentials import credential_scope
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
from ._options import UploadOptions
from ._parallel import parallel_parts, run_parallel
from ._pipeline import PipelineSettings, run_pipeline
from ._plan import UploadPlan, headers_to, stop_offset
from ._protocol import (
    Request,
    Response,
    ServerCapabilities,
    choose_checksum,
    creation_request,
    delete_request,
    encode_metadata,
    parse_creation_offset,
    parse_termination,
    upload_expires,
    validate_url,
)
from ._retry import RetryPolicy, create_with_retries, head_upload
from ._source import Source, SourceLike, open_source, read_range
from ._transport import Transport
from ._types import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_SIZE,
    DEFAULT_SPAN_SIZE,
    DEFAULT_STREAM_CHUNK_SIZE,
    JOURNAL_WRITE_INTERVAL,
    UploadResult,
)

__all__ = ["plan_upload", "run_upload", "upload_source"]

logger = logging.getLogger("tuspipe")


def plan_upload(
    url: str | None,
    options: UploadOptions,
    *,
    headers: tuple[tuple[str, str], ...],
    journal: Journal | None,
    retry: RetryPolicy,
    body_limits: BodyLimits,
    allow_insecure_location: bool,
    allow_cross_origin_credentials: bool,
) -> UploadPlan:
    """The plan of one upload call, from its resolved `options` and the client's settings.

    The chunk size stays 0 when `options` leave it to the source (files and streams differ;
    :func:`upload_source` settles it once the source is open).
    """
    upload_url = options["upload_url"]
    if url is None and upload_url is None:
        raise UsageError("give the creation endpoint `url`, or `upload_url` to resume")
    if url is not None:
        validate_url(url)
    chunk_size = options["chunk_size"]
    read_size = options["read_size"]
    return UploadPlan(
        url=url,
        upload_url=upload_url,
        metadata=encode_metadata(options["metadata"]),
        headers=headers,
        checksum=options["checksum"],
        journal=journal,
        resume=bool(options["resume"]),
        resume_key=options["resume_key"],
        settings=PipelineSettings(
            chunk_size=0 if chunk_size is None else chunk_size,
            read_size=DEFAULT_READ_SIZE if read_size is None else read_size,
            read_ahead=options["read_ahead"],
            span_size=DEFAULT_SPAN_SIZE if read_size is None else read_size,
        ),
        retry=retry,
        body_limits=body_limits,
        on_progress=options["on_progress"],
        on_upload_url=options["on_upload_url"],
        parallel=options["parallel"],
        allow_insecure_location=allow_insecure_location,
        allow_cross_origin_credentials=allow_cross_origin_credentials,
        terminate_on_cancel=bool(options["terminate_on_cancel"]),
    )


async def upload_source(
    transport: Transport,
    known: CapabilityCache,
    source: SourceLike,
    plan: UploadPlan,
    stop_at: int | None,
) -> UploadResult:
    """Open `source`, settle the chunk size the plan left open, and upload it."""
    chunk_size = plan.settings.chunk_size or None
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
            stop_offset(stop_at, opened.size)  # fail before any traffic
        # Credentials that the transport makes per request follow headers_to's rule too.
        with credential_scope(plan.url, plan.allow_cross_origin_credentials):
            return await run_upload(transport, known, opened, plan, stop_at)
    finally:
        opened.close()


def _is_cancellation(error: BaseException) -> bool:
    """True for trio's cancellation and Ctrl-C, alone or grouped."""
    if isinstance(error, BaseExceptionGroup):
        return error.split((trio.Cancelled, KeyboardInterrupt))[1] is None
    return isinstance(error, (trio.Cancelled, KeyboardInterrupt))


# Seconds a cancelled upload may spend terminating itself on the server.
TERMINATE_TIMEOUT = 10.0


async def _terminate_cancelled(
    transport: Transport, plan: UploadPlan, target: str, key: str | None
) -> None:
    """DELETE the upload of a cancelled call, shielded and time-bounded; never raises."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + TERMINATE_TIMEOUT):
        try:
            request = delete_request(target, headers_to(plan, target))
            parse_termination(request, await transport.send(request))
            logger.info("terminated the cancelled upload %s", target)
            if key is not None and plan.journal is not None:
                await trio.to_thread.run_sync(plan.journal.forget, key)
        except (TusError, OSError) as error:
            logger.warning("could not terminate the cancelled upload %s: %s", target, error)


async def _journal_key(source: Source, plan: UploadPlan) -> str | None:
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
    transport: Transport, source: Source, plan: UploadPlan, journal: Journal, entry: JournalEntry
) -> tuple[str, int] | None:
    """The (url, offset) of this source's unfinished upload, if the server still has it."""
    if has_expired(entry):
        logger.info("the journaled upload %s has expired; starting a new one", entry.url)
    else:
        try:
            _, _, status = await head_upload(
                transport, entry.url, headers_to(plan, entry.url), plan.retry
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
    source: Source, plan: UploadPlan, capabilities: ServerCapabilities | None, algorithm: str | None
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
    limit = plan.body_limits.limit(plan.url or "")  # a body size the server refused before
    return min(plan.settings.chunk_size, source.size, limit or source.size)


async def _find_or_create(
    transport: Transport,
    source: Source,
    plan: UploadPlan,
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
            transport, plan.upload_url, headers_to(plan, plan.upload_url), plan.retry
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
    plan: UploadPlan,
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
    try:
        request, target, response = await _post(transport, source, plan, first)
    except UploadTooLargeError:
        if not first:
            raise
        # The body was too large for the server or a proxy: create without it, and let the
        # PATCHes find the size that fits.
        logger.info("the creation POST with %d bytes was refused (413); posting none", first)
        first = 0
        request, target, response = await _post(transport, source, plan, first)
    offset = 0
    if first:
        held = parse_creation_offset(request, response)
        if held is None:
            # The answer does not say what was stored: ask.
            held = (await head_upload(transport, target, headers_to(plan, target), plan.retry))[
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


async def _post(
    transport: Transport, source: Source, plan: UploadPlan, first: int
) -> tuple[Request, str, Response]:
    """POST the creation request, with the source's first `first` bytes as its body."""
    assert plan.url is not None
    request = creation_request(
        plan.url, source.size, plan.metadata, plan.headers, body_length=first or None
    )
    target, response = await create_with_retries(
        transport,
        request,
        plan.retry,
        allow_insecure_location=plan.allow_insecure_location,
        body=(lambda: read_range(source, 0, first, plan.settings.read_size)) if first else None,
    )
    return request, target, response


async def run_upload(
    transport: Transport,
    known: CapabilityCache,
    source: Source,
    plan: UploadPlan,
    stop_at: int | None,
) -> UploadResult:
    """Upload the opened `source` as `plan` says (the theory of operation above)."""
    capabilities = None
    if plan.checksum is not None:
        capabilities = await known.known(plan.url or plan.upload_url or "")
    algorithm = choose_checksum(plan.checksum, capabilities)
    if plan.checksum == "auto" and algorithm is None:
        logger.info("the server offers no checksum algorithm; uploading without checksums")
    elif algorithm is not None and capabilities is None:
        # Harmless to try: a server that ignores Upload-Checksum still stores the bytes.
        logger.info(
            "the server does not say whether it checks %s checksums; sending them anyway",
            algorithm,
        )

    if source.size is None:
        # A one-pass source: look one chunk ahead; one that ends there is an ordinary upload.
        await source.ensure(plan.settings.chunk_size + 1)
    deferred = source.size is None
    stop: int | None = None
    if source.size is None:
        await _check_deferred_length(known, source, plan, stop_at)
    else:
        stop = stop_offset(stop_at, source.size)

    journal = plan.journal
    if capabilities is None and plan.url is not None:
        capabilities = known.cached(plan.url)  # only what is known already
    key = None
    if _creation_body_length(source, plan, capabilities, algorithm) != source.size:
        # (An upload that travels whole in its creation request has nothing to resume.)
        key = await _journal_key(source, plan)
    entry = None
    if key is not None and journal is not None and plan.resume:
        entry = await trio.to_thread.run_sync(journal.get, key)
    # An upload already under way continues as it began: in parts, or in one piece.
    if (entry is not None and entry.parts) or (entry is None and plan.parallel > 1):
        parts = await parallel_parts(known, source, plan, stop_at, entry)
        if parts > 1:
            return await run_parallel(transport, source, plan, parts, algorithm, key, entry)
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
                headers=headers_to(plan, target),
                source=source,
                start=offset,
                stop=stop,
                algorithm=algorithm,
                settings=plan.settings,
                retry=plan.retry,
                body_limits=plan.body_limits,
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
    known: CapabilityCache, source: Source, plan: UploadPlan, stop_at: int | None
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
    capabilities = await known.known(plan.url)
    if capabilities is not None and not capabilities.supports("creation-defer-length"):
        raise UnsupportedFeatureError(
            f"{source.name} has no known size, and the server does not support uploads of "
            "deferred length (creation-defer-length); write it to a file first"
        )
