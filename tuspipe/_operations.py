"""Single tus operations beside the upload itself: discovery, status, creation, termination.

Each is an async function with a blocking twin (``trio.run`` over it). They share the upload's
transport, retry policy and option checks, so a status or a deletion behaves exactly like the
requests an upload makes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import httpx

from ._errors import UsageError
from ._protocol import (
    Request,
    ServerCapabilities,
    UploadStatus,
    creation_request,
    delete_request,
    encode_metadata,
    options_request,
    parse_capabilities,
    parse_termination,
    validate_headers,
    validate_url,
)
from ._retry import RetryPolicy, create_with_retries, head_upload, retrying
from ._sync import blocking
from ._transport import CertTypes, ResponseHook, Transport, VerifyTypes

__all__ = [
    "create_upload",
    "create_upload_async",
    "server_info",
    "server_info_async",
    "terminate",
    "terminate_async",
    "upload_status",
    "upload_status_async",
]

logger = logging.getLogger("tuspipe")

T = TypeVar("T")


async def _with_transport(
    call: Callable[[Transport, tuple[tuple[str, str], ...], RetryPolicy], Awaitable[T]],
    *,
    headers: Mapping[str, str] | None,
    retries: int,
    retry_delays: Sequence[float] | None,
    verify: VerifyTypes,
    cert: CertTypes | None,
    timeout: float,
    http_client: httpx.AsyncClient | None,
    on_response: ResponseHook | None,
) -> T:
    extra_headers = validate_headers(headers)
    retry = RetryPolicy(retries=retries, delays=retry_delays)
    async with Transport(
        timeout=timeout, verify=verify, cert=cert, client=http_client, on_response=on_response
    ) as transport:
        return await call(transport, extra_headers, retry)


async def server_info_async(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = 5,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = 30.0,
    http_client: httpx.AsyncClient | None = None,
    on_response: ResponseHook | None = None,
) -> ServerCapabilities:
    """Ask a tus server what it supports (OPTIONS): versions, extensions, maximum size and
    checksum algorithms. A server that does not offer tus 1.0.0 is a VersionMismatchError."""
    validate_url(url)

    async def call(
        transport: Transport, extra: tuple[tuple[str, str], ...], retry: RetryPolicy
    ) -> ServerCapabilities:
        async def attempt() -> ServerCapabilities:
            request = options_request(url, extra)
            return parse_capabilities(request, await transport.send(request))

        return await retrying(attempt, retry, what=f"OPTIONS {url}")

    return await _with_transport(
        call,
        headers=headers,
        retries=retries,
        retry_delays=retry_delays,
        verify=verify,
        cert=cert,
        timeout=timeout,
        http_client=http_client,
        on_response=on_response,
    )


async def upload_status_async(
    upload_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = 5,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = 30.0,
    http_client: httpx.AsyncClient | None = None,
    on_response: ResponseHook | None = None,
) -> UploadStatus:
    """Ask the server about an upload (HEAD): offset, length, expiry and metadata.

    An upload the server does not have is an UploadNotFoundError.
    """
    validate_url(upload_url)

    async def call(
        transport: Transport, extra: tuple[tuple[str, str], ...], retry: RetryPolicy
    ) -> UploadStatus:
        return (await head_upload(transport, upload_url, extra, retry))[2]

    return await _with_transport(
        call,
        headers=headers,
        retries=retries,
        retry_delays=retry_delays,
        verify=verify,
        cert=cert,
        timeout=timeout,
        http_client=http_client,
        on_response=on_response,
    )


async def create_upload_async(
    url: str,
    length: int,
    *,
    metadata: Mapping[str, str | bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    retries: int = 5,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = 30.0,
    http_client: httpx.AsyncClient | None = None,
    on_response: ResponseHook | None = None,
) -> str:
    """Create an upload of `length` bytes at the creation endpoint `url`; return its URL.

    Retried on network errors, 429 and 5xx (as the upload's own creation is).
    """
    validate_url(url)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise UsageError(f"length must be an int >= 0, not {length!r}")
    metadata_value = encode_metadata(metadata)

    async def call(
        transport: Transport, extra: tuple[tuple[str, str], ...], retry: RetryPolicy
    ) -> str:
        request: Request = creation_request(url, length, metadata_value, extra)
        return (await create_with_retries(transport, request, retry))[0]

    return await _with_transport(
        call,
        headers=headers,
        retries=retries,
        retry_delays=retry_delays,
        verify=verify,
        cert=cert,
        timeout=timeout,
        http_client=http_client,
        on_response=on_response,
    )


async def terminate_async(
    upload_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = 5,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = 30.0,
    http_client: httpx.AsyncClient | None = None,
    on_response: ResponseHook | None = None,
) -> None:
    """Delete an upload (tus termination). An upload that is already gone counts as deleted."""
    validate_url(upload_url)

    async def call(
        transport: Transport, extra: tuple[tuple[str, str], ...], retry: RetryPolicy
    ) -> None:
        async def attempt() -> None:
            request = delete_request(upload_url, extra)
            parse_termination(request, await transport.send(request))

        await retrying(attempt, retry, what=f"DELETE {upload_url}")
        logger.info("terminated %s", upload_url)

    await _with_transport(
        call,
        headers=headers,
        retries=retries,
        retry_delays=retry_delays,
        verify=verify,
        cert=cert,
        timeout=timeout,
        http_client=http_client,
        on_response=on_response,
    )


server_info = blocking(server_info_async, "server_info")
upload_status = blocking(upload_status_async, "upload_status")
create_upload = blocking(create_upload_async, "create_upload")
terminate = blocking(terminate_async, "terminate")
