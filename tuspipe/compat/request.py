"""tuspy's request objects: one chunk of an upload, sent through tuspipe.

A request sends the uploader's bytes from its ``offset`` up to a stop (one chunk for
:meth:`TusRequest.perform`) with a single tuspipe upload call, which asks the server for
its offset first (the server is the authority) and streams the chunk without holding it in
memory. The answers are watched through tuspipe's ``on_response`` hook, so ``status_code``,
``response_headers`` and ``response_content`` are those of the last real PATCH answer (or,
when no PATCH had to be sent, of the last answer received).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

import tuspipe

from ._bridge import blocking_method, coroutine_method, translated
from .exceptions import TusUploadFailed

if TYPE_CHECKING:
    from .uploader.baseuploader import BaseUploader

__all__ = ["AsyncTusRequest", "BaseTusRequest", "TusRequest"]


class BaseTusRequest:
    """The state of one request: the uploader it serves and the answer it got.

    Attributes:
        response_headers: the answer's headers, with lower-case names.
        status_code: the answer's HTTP status (None before :meth:`perform`).
        response_content: the answer's body (None before :meth:`perform`).
    """

    def __init__(self, uploader: BaseUploader) -> None:
        self._uploader = uploader
        self.response_headers: dict[str, str] = {}
        self.status_code: int | None = None
        self.response_content: bytes | None = None
        self._patched = False

    def _record(self, request: tuspipe.Request, response: tuspipe.Response) -> None:
        """tuspipe's on_response hook: keep the last PATCH answer (or, until the first
        PATCH, the last answer of any kind)."""
        if request.method == "PATCH":
            self._patched = True
        elif self._patched:
            return
        self.status_code = response.status_code
        self.response_headers = dict(response.headers)
        self.response_content = response.body

    def _chunk_stop(self) -> int:
        """Where the uploader's next chunk ends."""
        uploader = self._uploader
        return uploader.offset + max(uploader.get_request_length(), 0)

    def _arguments(
        self, stop: int
    ) -> tuple[str | os.PathLike[str] | BinaryIO, str | None, dict[str, Any]]:
        """The arguments of the tuspipe.upload call that sends the bytes up to `stop`.

        With a URL, that upload is continued; without one, it is created in the same call
        (on the same connection) and the uploader learns its URL as soon as it exists.
        """
        uploader = self._uploader
        options = uploader._upload_options()
        options.update(stop_at=stop, on_response=self._record)
        if uploader.url:
            options["upload_url"] = uploader.url
            return uploader._source(), None, options
        endpoint = uploader._creation_endpoint()
        options.update(uploader._creation_options(), on_upload_url=uploader._adopt_created)
        return uploader._source(), endpoint, options

    async def _perform(self) -> int:
        """Send the uploader's next chunk; return the server's offset after it.

        The uploader's ``offset`` is not changed (its ``upload_chunk`` does that). Raises
        TusUploadFailed when the server refuses the chunk, TusCommunicationError for other
        failures; the answer's fields are filled either way.
        """
        return await self._send(self._chunk_stop())

    async def _send(self, stop: int) -> int:
        """Send the uploader's bytes up to `stop` with one tuspipe upload call; return the
        server's offset after it."""
        source, endpoint, options = self._arguments(stop)
        with translated(TusUploadFailed):
            return (await tuspipe.upload_async(source, endpoint, **options)).offset


class TusRequest(BaseTusRequest):
    """A request made with blocking calls: :meth:`perform` is the blocking facade over the
    request's one body."""

    perform = blocking_method(BaseTusRequest._perform, "TusRequest.perform", "AsyncTusRequest")


class AsyncTusRequest(BaseTusRequest):
    """A request made with coroutines, under trio or asyncio.

    `io_loop` is accepted for tuspy's signature and ignored: tuspipe runs the request on the
    caller's event loop.
    """

    def __init__(self, *args: Any, io_loop: object = None, **kwargs: Any) -> None:
        self.io_loop = io_loop
        super().__init__(*args, **kwargs)

    perform = coroutine_method(BaseTusRequest._perform, "AsyncTusRequest.perform")
