"""The public upload calls: :func:`upload_async` (trio, or asyncio) and :func:`upload` (blocking).

Each is a temporary :class:`~tuspipe.Client` around one :meth:`~tuspipe.Client.upload`, and
``upload`` is ``trio.run`` over ``upload_async`` and nothing more, so there is one
implementation; under asyncio the same trio code runs in trio's guest mode on the caller's
loop (:mod:`tuspipe._loops`). Everything the caller passes is checked before the first request
is sent; the options are declared once, in :mod:`tuspipe._options`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from ._client import Client
from ._loops import any_loop
from ._options import (
    ClientOptions,
    ConnectionOptions,
    ManyCallOptions,
    ManyOptions,
    UploadCallOptions,
    UploadOptions,
)
from ._schemas import documented, split_options
from ._source import SourceLike
from ._sync import blocking
from ._types import UploadOutcome, UploadResult

__all__ = ["upload", "upload_async", "upload_many", "upload_many_async"]


@any_loop
@documented(UploadOptions, ClientOptions)
async def upload_async(
    source: SourceLike, url: str | None = None, **options: Unpack[UploadCallOptions]
) -> UploadResult:
    """Upload `source` with the tus protocol and return what the server holds.

    Args:
        source: a path, bytes, a seekable binary file object (read from its position), or a
            one-pass stream: a pipe, or an iterable or async iterable of bytes (uploaded with
            a deferred length as it is read).
        url: the creation endpoint (``https://host/files/``). An unfinished upload of the same
            source to it that the journal remembers is continued; otherwise a new upload is
            made there. May be None with ``upload_url=``.

    Raises:
        UsageError: bad arguments (before any request).
        OSError: the file cannot be opened or read.
        ResponseError and its subclasses: the server refused (status and body attached).
        NetworkError, NetworkTimeoutError: the server could not be reached or stopped
            answering, and the retries ran out.
        SourceChangedError: the file changed during the upload.

    Await it under trio or asyncio. Cancelling the call (a trio cancel scope, an asyncio task's
    cancel or timeout, Ctrl-C) stops it at once; the bytes the server acknowledged stay there,
    and the next call for the same source and endpoint continues.
    """
    client_options, upload_options = split_options(options, ClientOptions, UploadOptions)
    async with Client(**client_options) as client:
        return await client.upload(source, url, **upload_options)


upload = blocking(upload_async, "upload")


@any_loop
@documented(ManyOptions, ConnectionOptions)
async def upload_many_async(
    sources: Iterable[SourceLike], url: str, **options: Unpack[ManyCallOptions]
) -> list[UploadOutcome]:
    """Upload many sources to the creation endpoint `url`, `concurrency` at a time.

    All uploads share one connection pool, and the server is asked what it supports once, so
    a small file takes a single request when the server supports creation-with-upload. Each
    source gets its own :class:`UploadOutcome` (a result or the error), in the order given;
    one failure does not stop the others unless `fail_fast`, which raises the first error.
    The per-source hooks (``on_start``, ``on_progress``, ``on_upload_url``, ``on_retry``,
    ``on_outcome``) are told the source's index.
    """
    connection_options, many_options = split_options(options, ConnectionOptions, ManyOptions)
    async with Client(**connection_options) as client:
        return await client.upload_many(sources, url, **many_options)


upload_many = blocking(upload_many_async, "upload_many")
