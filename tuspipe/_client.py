"""The client: one connection pool, shared settings, and server capabilities cached per
endpoint. Every public call (upload, status, creation, termination, discovery) is a method here;
the module-level functions are a temporary :class:`Client` around one call.

What one upload does is :mod:`tuspipe._upload`'s (and :mod:`tuspipe._parallel`'s, for an
upload in parts); the client holds what outlives one upload: the transport, the retry policy,
the journal and the :class:`~tuspipe._capabilities.CapabilityCache`. Options are declared in
:mod:`tuspipe._options`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping
from functools import partial
from types import TracebackType
from typing import Any, Unpack

from ._capabilities import CapabilityCache
from ._checks import journal_from
from ._errors import TusError, UsageError
from ._loops import RunHome, any_loop_methods
from ._options import (
    ClientOptions,
    ManyOptions,
    TransferOptions,
    UploadOptions,
)
from ._pipeline import gather
from ._protocol import (
    ServerCapabilities,
    UploadStatus,
    creation_request,
    delete_request,
    encode_metadata,
    parse_termination,
    validate_headers,
    validate_url,
)
from ._retry import RetryPolicy, create_with_retries, head_upload, retrying
from ._schemas import documented, option_names, resolve, resolve_changes
from ._source import SourceLike
from ._transport import Transport
from ._types import DEFAULT_CHUNK_SIZE, UploadOutcome, UploadResult
from ._upload import plan_upload, upload_source

__all__ = ["Client"]

logger = logging.getLogger("tuspipe")


_HTTP_CLIENT_UNDER_ASYNCIO = (
    "http_client= cannot be used under asyncio: an httpx.AsyncClient's connections and locks "
    "belong to the event loop that opened them, while tuspipe runs its requests on trio (in "
    "guest mode on your asyncio loop). Leave http_client out: tuspipe pools connections itself "
    "(one tuspipe.Client shares its pool between calls; headers=, verify=, cert= and timeout= "
    "configure it)"
)


@documented(ClientOptions)
@any_loop_methods
class Client:
    """A tus client: one connection pool and one set of settings for many calls.

    Use it as an async context manager, under trio or asyncio::

        async with tuspipe.Client(headers={"Authorization": "Bearer ..."}) as client:
            info = await client.server_info("https://tus.example/files/")
            result = await client.upload("video.mp4", "https://tus.example/files/")

    What OPTIONS says about an endpoint is asked once and kept for the client's lifetime.
    Every option is checked here, before any request. The pool belongs to the trio run or
    asyncio loop that first uses the client: using it under another is a UsageError.
    """

    _home: RunHome  # the run the pool lives in (any_loop_methods enters it at every call)

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        settings = resolve(ClientOptions, options)
        self._home = RunHome(
            "tuspipe.Client",
            self.aclose,
            refuse_asyncio=None if settings["http_client"] is None else _HTTP_CLIENT_UNDER_ASYNCIO,
        )
        self._headers = validate_headers(settings["headers"])
        self._allow_insecure_location = bool(settings["allow_insecure_location"])
        self._allow_cross_origin_credentials = bool(settings["allow_cross_origin_credentials"])
        self._journal = journal_from(settings["journal"])
        self._retry = RetryPolicy(
            retries=settings["retries"],
            delays=settings["retry_delays"],
            should_retry=settings["should_retry"],
            on_retry=settings["on_retry"],
        )
        self._transport = Transport(
            timeout=settings["timeout"],
            stall_timeout=settings["stall_timeout"],
            verify=settings["verify"],
            cert=settings["cert"],
            client=settings["http_client"],
            on_response=settings["on_response"],
            method_override=settings["method_override"],
            auth=settings["auth"],
            on_request=settings["on_request"],
            request_id=settings["request_id"],
        )
        self._capabilities = CapabilityCache(self._transport, self._headers, self._retry)

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
        """Close the connection pool (not a caller's ``http_client``); again, nothing."""
        if self._home.closed:
            return
        try:
            await self._transport.aclose()
        finally:
            self._home.leave()

    # ---- single operations --------------------------------------------------------------

    async def server_info(self, url: str) -> ServerCapabilities:
        """Ask a tus server what it supports (OPTIONS): versions, extensions, maximum size
        and checksum algorithms. A server that does not offer tus 1.0.0 is a
        VersionMismatchError; one that does not answer OPTIONS is a ResponseError."""
        validate_url(url)
        return await self._capabilities.ask(url)

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

    async def terminate(self, upload_url: str) -> bool:
        """Delete an upload (tus termination).

        Returns True when the server deleted it now, False when the server has no such upload
        (404 or 410: already deleted, expired, or a wrong URL); either way it is gone.
        """
        validate_url(upload_url)

        async def attempt() -> bool:
            request = delete_request(upload_url, self._headers)
            return parse_termination(request, await self._transport.send(request))

        deleted = await retrying(attempt, self._retry, what=f"DELETE {upload_url}")
        logger.info("%s %s", "terminated" if deleted else "no upload to terminate at", upload_url)
        return deleted

    # ---- uploads ------------------------------------------------------------------------

    @documented(UploadOptions)
    async def upload(
        self, source: SourceLike, url: str | None = None, **options: Unpack[UploadOptions]
    ) -> UploadResult:
        """Upload `source` to the creation endpoint `url` (or continue ``upload_url=``); see
        :func:`tuspipe.upload_async` for what happens and what is raised."""
        return await self._upload(source, url, resolve(UploadOptions, options), self._retry)

    async def _upload(
        self, source: SourceLike, url: str | None, options: UploadOptions, retry: RetryPolicy
    ) -> UploadResult:
        plan = plan_upload(
            url,
            options,
            headers=self._headers,
            journal=self._journal,
            retry=retry,
            body_limits=self._capabilities.body_limits,
            allow_insecure_location=self._allow_insecure_location,
            allow_cross_origin_credentials=self._allow_cross_origin_credentials,
        )
        return await upload_source(
            self._transport, self._capabilities, source, plan, options["stop_at"]
        )

    @documented(ManyOptions)
    async def upload_many(
        self, sources: Iterable[SourceLike], url: str, **options: Unpack[ManyOptions]
    ) -> list[UploadOutcome]:
        """Upload many sources to the endpoint `url`, `concurrency` at a time, on this client's
        one connection pool; see :func:`tuspipe.upload_many_async`."""
        validate_url(url)
        settings = resolve(ManyOptions, options)
        listed = list(sources)
        outcomes = [UploadOutcome(index, item) for index, item in enumerate(listed)]
        progress = _ManyProgress(len(listed), settings)
        shared = _shared_by_many(settings)
        if len(listed) > 1 and any(_travels_whole(item, settings["chunk_size"]) for item in listed):
            # Once, up front: a small source can then travel whole in its POST, one request.
            # (For one source, or only large ones, it would cost the round trip it saves.)
            await self._capabilities.known(url)
        waiting = iter(range(len(listed)))  # shared by the workers: sources start in order

        async def worker() -> None:
            for index in waiting:
                await one(index)

        async def one(index: int) -> None:
            item = listed[index]
            if settings["on_start"] is not None:
                settings["on_start"](index)
            try:
                result = await self._upload(
                    item,
                    url,
                    _one_of_many(shared, settings, index, item, progress),
                    self._retry_for(settings, index),
                )
            except (TusError, OSError) as error:
                if settings["fail_fast"]:
                    raise
                # (Returned in the outcome, not logged as a warning: the caller reports it.)
                logger.info("upload %d of %d failed: %s", index + 1, len(listed), error)
                outcomes[index] = UploadOutcome(index, item, error=error)
            else:
                outcomes[index] = UploadOutcome(index, item, result=result)
            if settings["on_outcome"] is not None:
                settings["on_outcome"](outcomes[index])

        await gather([worker] * min(settings["concurrency"], len(listed)))
        return outcomes

    def _retry_for(self, settings: ManyOptions, index: int) -> RetryPolicy:
        """The client's retry policy, telling `on_retry` (if given) which source retries."""
        on_retry = settings["on_retry"]
        if on_retry is None:
            return self._retry
        client_hook = self._retry.on_retry

        def told(error: TusError, attempt: int, wait: float) -> None:
            if client_hook is not None:
                client_hook(error, attempt, wait)
            on_retry(index, error, attempt, wait)

        return dataclasses.replace(self._retry, on_retry=told)


def _travels_whole(source: SourceLike, chunk_size: int | None) -> bool:
    """Whether `source` is known to fit in one request (creation-with-upload) without
    opening it: bytes, or a file no larger than a chunk."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = memoryview(source).nbytes
    elif isinstance(source, (str, os.PathLike)):
        try:
            size = os.stat(source).st_size
        except OSError:
            return False  # its upload will say why
    else:
        return False
    return size <= (chunk_size or DEFAULT_CHUNK_SIZE)


class _ManyProgress:
    """Per-source and total progress of upload_many."""

    def __init__(self, count: int, settings: ManyOptions) -> None:
        self._acknowledged = [0] * count
        self._totals: list[int | None] = [None] * count
        self._on_progress = settings["on_progress"]
        self._on_total_progress = settings["on_total_progress"]

    def __call__(self, index: int, done: int, total: int | None) -> None:
        self._acknowledged[index], self._totals[index] = done, total
        if self._on_progress is not None:
            self._on_progress(index, done, total)
        if self._on_total_progress is not None:
            known = (
                None
                if any(value is None for value in self._totals)
                else sum(value or 0 for value in self._totals)
            )
            self._on_total_progress(sum(self._acknowledged), known)


def _shared_by_many(settings: ManyOptions) -> UploadOptions:
    """The options every source of an upload_many call shares (checked once)."""
    return resolve(
        UploadOptions, {name: settings.get(name) for name in option_names(TransferOptions)}
    )


def _one_of_many(
    shared: UploadOptions,
    settings: ManyOptions,
    index: int,
    item: SourceLike,
    progress: _ManyProgress,
) -> UploadOptions:
    """The options of source number `index` of an upload_many call: the `shared` ones, then
    its own."""
    metadata = settings["metadata"]
    on_upload_url = settings["on_upload_url"]
    own: dict[str, Any] = {
        "metadata": metadata(item) if callable(metadata) else metadata,
        "on_progress": partial(progress, index),
    }
    if on_upload_url is not None:
        own["on_upload_url"] = partial(on_upload_url, index)
    return resolve_changes(UploadOptions, shared, own)
