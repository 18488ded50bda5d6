"""Single tus operations beside the upload itself: discovery, status, creation, termination.

Each is a temporary :class:`~tuspipe.Client` around one of its methods, with a blocking twin
(``trio.run`` over it), so a status or a deletion behaves exactly like the requests an upload
makes: the same transport, retry policy and option checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._client import Client
from ._protocol import ServerCapabilities, UploadStatus
from ._sync import blocking
from ._transport import CertTypes, HTTPClient, ResponseHook, VerifyTypes
from ._types import DEFAULT_RETRIES, DEFAULT_TIMEOUT

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


def _client(
    headers: Mapping[str, str] | None,
    retries: int,
    retry_delays: Sequence[float] | None,
    verify: VerifyTypes,
    cert: CertTypes | None,
    timeout: float,
    http_client: HTTPClient | None,
    on_response: ResponseHook | None,
) -> Client:
    return Client(
        headers=headers,
        journal=None,
        retries=retries,
        retry_delays=retry_delays,
        verify=verify,
        cert=cert,
        timeout=timeout,
        http_client=http_client,
        on_response=on_response,
    )


async def server_info_async(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    http_client: HTTPClient | None = None,
    on_response: ResponseHook | None = None,
) -> ServerCapabilities:
    """Ask a tus server what it supports: see :meth:`Client.server_info`."""
    client = _client(
        headers, retries, retry_delays, verify, cert, timeout, http_client, on_response
    )
    async with client:
        return await client.server_info(url)


async def upload_status_async(
    upload_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    http_client: HTTPClient | None = None,
    on_response: ResponseHook | None = None,
) -> UploadStatus:
    """Ask the server about an upload: see :meth:`Client.upload_status`."""
    client = _client(
        headers, retries, retry_delays, verify, cert, timeout, http_client, on_response
    )
    async with client:
        return await client.upload_status(upload_url)


async def create_upload_async(
    url: str,
    length: int,
    *,
    metadata: Mapping[str, str | bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    http_client: HTTPClient | None = None,
    on_response: ResponseHook | None = None,
) -> str:
    """Create an upload of `length` bytes: see :meth:`Client.create_upload`."""
    client = _client(
        headers, retries, retry_delays, verify, cert, timeout, http_client, on_response
    )
    async with client:
        return await client.create_upload(url, length, metadata=metadata)


async def terminate_async(
    upload_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delays: Sequence[float] | None = None,
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    http_client: HTTPClient | None = None,
    on_response: ResponseHook | None = None,
) -> None:
    """Delete an upload: see :meth:`Client.terminate`."""
    client = _client(
        headers, retries, retry_delays, verify, cert, timeout, http_client, on_response
    )
    async with client:
        await client.terminate(upload_url)


server_info = blocking(server_info_async, "server_info")
upload_status = blocking(upload_status_async, "upload_status")
create_upload = blocking(create_upload_async, "create_upload")
terminate = blocking(terminate_async, "terminate")
