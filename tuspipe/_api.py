"""The public upload calls: :func:`upload_async` (trio-native) and :func:`upload` (blocking).

``upload`` is ``trio.run`` over ``upload_async`` and nothing more, so there is one
implementation. Everything the caller passes is checked before the first request is sent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import httpx
import trio

from ._errors import ResponseError, UsageError
from ._pipeline import PipelineSettings, run_pipeline
from ._protocol import (
    Request,
    Response,
    ServerCapabilities,
    choose_checksum,
    creation_request,
    encode_metadata,
    head_request,
    options_request,
    parse_capabilities,
    parse_creation,
    parse_head,
    validate_headers,
    validate_url,
)
from ._source import Source, SourceLike, open_source
from ._transport import CertTypes, Transport, VerifyTypes

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_READ_SIZE",
    "DEFAULT_TIMEOUT",
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
#: Seconds allowed for each connect, read, write and pool wait.
DEFAULT_TIMEOUT = 60.0

ProgressCallback = Callable[[int, int], object]
"""Called as ``on_progress(acknowledged, total)`` after each offset the server confirms."""

P = ParamSpec("P")
T = TypeVar("T")


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
    transport: Transport, url: str, headers: tuple[tuple[str, str], ...]
) -> ServerCapabilities | None:
    """OPTIONS `url`; None when the server does not answer OPTIONS (it is optional to ask)."""
    request, response = await _exchange(transport, options_request(url, headers))
    if response.status_code == 405 or response.status_code == 404:
        logger.info("%s does not answer OPTIONS (%d)", url, response.status_code)
        return None
    return parse_capabilities(request, response)


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
    on_progress: ProgressCallback | None = None,
    on_upload_url: Callable[[str], object] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    read_size: int = DEFAULT_READ_SIZE,
    read_ahead: int = DEFAULT_READ_AHEAD,
    http_client: httpx.AsyncClient | None = None,
) -> UploadResult:
    """Upload `source` with the tus protocol and return what the server holds.

    Args:
        source: a path, bytes, or a seekable binary file object (read from its position).
        url: the creation endpoint (``https://host/files/``); a new upload is made there.
        upload_url: an existing upload to continue instead: its offset is asked for (HEAD)
            and the upload goes on from there.
        chunk_size: bytes per PATCH request. Memory use does not grow with it.
        metadata: ``Upload-Metadata`` pairs; str values are sent as UTF-8, bytes as they are.
        headers: extra headers for every request (authentication, say).
        checksum: None, an algorithm ("sha1", "sha256", "sha512", "md5", "crc32") or "auto"
            (the strongest the server lists; none if it lists none). An explicit algorithm
            the server does not offer is an UnsupportedFeatureError, before any byte is sent.
        stop_at: upload only up to this offset (the upload stays open for a later call).
        on_progress: called as ``on_progress(acknowledged, total)`` after each PATCH.
        on_upload_url: called with the upload's URL as soon as it is known, so that an
            interrupted upload can be resumed with ``upload_url=``.
        verify, cert: TLS verification and client certificate, as in httpx.
        timeout: seconds allowed for each connect, read, write and pool wait.
        read_size, read_ahead: bytes per read and reads held ahead of the sender.
        http_client: an ``httpx.AsyncClient`` to share; it is not closed.

    Raises:
        UsageError: bad arguments (before any request).
        OSError: the file cannot be opened or read.
        ResponseError and its subclasses: the server refused (status and body attached).
        NetworkError, NetworkTimeoutError: the server could not be reached or stopped answering.

    Cancelling the call (a trio cancel scope, Ctrl-C) stops it at once; the bytes the server
    acknowledged stay there, and ``upload_url=`` continues the upload later.
    """
    if url is None and upload_url is None:
        raise UsageError("give the creation endpoint `url`, or `upload_url` to resume")
    if url is not None:
        validate_url(url)
    if upload_url is not None:
        validate_url(upload_url)
    settings = PipelineSettings(
        chunk_size=_positive_int("chunk_size", chunk_size),
        read_size=_positive_int("read_size", read_size),
        read_ahead=_positive_int("read_ahead", read_ahead),
    )
    extra_headers = validate_headers(headers)
    metadata_value = encode_metadata(metadata)
    choose_checksum(checksum, None)  # an unknown algorithm fails here, before any traffic
    if on_progress is not None and not callable(on_progress):
        raise UsageError("on_progress must be callable")
    opened: Source = open_source(source)
    try:
        stop = _stop_offset(stop_at, opened.size)
        async with Transport(
            timeout=timeout, verify=verify, cert=cert, client=http_client
        ) as transport:
            return await _upload(
                transport,
                opened,
                url=url,
                upload_url=upload_url,
                metadata=metadata_value,
                headers=extra_headers,
                checksum=checksum,
                stop=stop,
                settings=settings,
                on_progress=on_progress,
                on_upload_url=on_upload_url,
            )
    finally:
        opened.close()


async def _upload(
    transport: Transport,
    source: Source,
    *,
    url: str | None,
    upload_url: str | None,
    metadata: str | None,
    headers: tuple[tuple[str, str], ...],
    checksum: str | None,
    stop: int,
    settings: PipelineSettings,
    on_progress: ProgressCallback | None,
    on_upload_url: Callable[[str], object] | None,
) -> UploadResult:
    capabilities = None
    if checksum is not None:
        capabilities = await _discover(transport, url or upload_url or "", headers)
    algorithm = choose_checksum(checksum, capabilities)
    if checksum == "auto" and algorithm is None:
        logger.info("the server offers no checksum algorithm; uploading without checksums")

    if upload_url is not None:
        request, response = await _exchange(transport, head_request(upload_url, headers))
        status = parse_head(request, response)
        if status.length != source.size:
            raise ResponseError(
                f"the upload at {upload_url} is {status.length} bytes long but {source.name} "
                f"has {source.size}; it is not an upload of this source",
                status_code=response.status_code,
                headers=response.headers,
                method=request.method,
                url=request.url,
            )
        target, offset = upload_url, status.offset
        logger.info("resuming %s at offset %d of %d", target, offset, source.size)
    else:
        assert url is not None
        request, response = await _exchange(
            transport, creation_request(url, source.size, metadata, headers)
        )
        target, offset = parse_creation(request, response), 0
        logger.info("created %s for %d bytes of %s", target, source.size, source.name)
    if on_upload_url is not None:
        on_upload_url(target)

    def acknowledged(new_offset: int) -> None:
        if on_progress is not None:
            on_progress(new_offset, source.size)

    final = offset
    if offset < stop:
        final = await run_pipeline(
            transport=transport,
            url=target,
            headers=headers,
            source=source,
            start=offset,
            stop=stop,
            algorithm=algorithm,
            settings=settings,
            on_acknowledged=acknowledged,
        )
    return UploadResult(
        url=target, size=source.size, offset=final, resumed_from=offset, checksum=algorithm
    )


def _blocking(async_fn: Callable[P, Awaitable[T]], name: str) -> Callable[P, T]:
    """A blocking twin of `async_fn`: ``trio.run`` over it, and nothing more."""

    @functools.wraps(async_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            raise UsageError(
                f"tuspipe.{name}() blocks and cannot run inside trio; "
                f"use `await tuspipe.{async_fn.__name__}(...)` there"
            )
        return trio.run(functools.partial(async_fn, *args, **kwargs))

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"Blocking form of :func:`{async_fn.__name__}` (``trio.run`` over it).\n\n" + (
        async_fn.__doc__ or ""
    )
    return run


upload = _blocking(upload_async, "upload")
