"""Single tus operations beside the upload itself: discovery, status, creation, termination.

Each is a temporary :class:`~tuspipe.Client` around one of its methods, with a blocking twin
(``trio.run`` over it), so a status or a deletion behaves exactly like the requests an upload
makes: the same transport, retry policy and option checks. They take the client's options
(:class:`~tuspipe._options.ClientOptions`); none of them journals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from ._client import Client
from ._loops import any_loop
from ._options import ClientOptions
from ._protocol import ServerCapabilities, UploadStatus
from ._schemas import documented
from ._sync import blocking

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


def _client(options: ClientOptions) -> Client:
    without_journal: ClientOptions = {**options, "journal": None}
    return Client(**without_journal)


@any_loop
@documented(ClientOptions)
async def server_info_async(url: str, **options: Unpack[ClientOptions]) -> ServerCapabilities:
    """Ask a tus server what it supports: see :meth:`Client.server_info`."""
    async with _client(options) as client:
        return await client.server_info(url)


@any_loop
@documented(ClientOptions)
async def upload_status_async(upload_url: str, **options: Unpack[ClientOptions]) -> UploadStatus:
    """Ask the server about an upload: see :meth:`Client.upload_status`."""
    async with _client(options) as client:
        return await client.upload_status(upload_url)


@any_loop
@documented(ClientOptions)
async def create_upload_async(
    url: str,
    length: int,
    *,
    metadata: Mapping[str, str | bytes] | None = None,
    **options: Unpack[ClientOptions],
) -> str:
    """Create an upload of `length` bytes: see :meth:`Client.create_upload`."""
    async with _client(options) as client:
        return await client.create_upload(url, length, metadata=metadata)


@any_loop
@documented(ClientOptions)
async def terminate_async(upload_url: str, **options: Unpack[ClientOptions]) -> bool:
    """Delete an upload: see :meth:`Client.terminate` (True: deleted now; False: the server
    had no such upload)."""
    async with _client(options) as client:
        return await client.terminate(upload_url)


server_info = blocking(server_info_async, "server_info")
upload_status = blocking(upload_status_async, "upload_status")
create_upload = blocking(create_upload_async, "create_upload")
terminate = blocking(terminate_async, "terminate")
