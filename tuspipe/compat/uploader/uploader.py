"""tuspy's two uploaders: :class:`Uploader` (blocking) and :class:`AsyncUploader` (trio).

Both send through tuspipe: ``upload()`` makes ONE ``tuspipe.upload`` call for all its
chunks (one connection, the file streamed: memory does not grow with ``chunk_size``, not even
with the default ``sys.maxsize``), ``upload_chunk()`` one call per chunk. The blocking
uploader uses tuspipe's blocking calls; the async one awaits tuspipe's ``*_async`` calls and
must run under trio. Neither touches HTTP itself.
"""

from __future__ import annotations

import trio

import tuspipe

from .._bridge import translated
from ..request import AsyncTusRequest, TusRequest
from .baseuploader import BaseUploader, is_http_url

__all__ = ["AsyncUploader", "Uploader"]


class Uploader(BaseUploader):
    """Uploads one file with blocking calls (see :class:`BaseUploader` for the arguments).

    Like tuspy's, the constructor asks the server for the offset (HEAD) when the upload's
    URL is known, given or stored.
    """

    def upload(self, stop_at: int | None = None) -> None:
        """Upload chunk after chunk until the server holds `stop_at` bytes (default: all).

        Creates the upload first when it has no URL (an empty file needs nothing more).
        Raises TusUploadFailed when the server refuses the bytes, TusCommunicationError for
        other failures, ValueError for a `stop_at` beyond the file.
        """
        self.stop_at = self.get_file_size() if stop_at is None else stop_at
        if self.url and self.offset >= self.stop_at:
            return
        if not self.url:
            self.offset = 0
        self.request = request = TusRequest(self)
        # A negative stop_at (tuspy's idiom for "only create the upload") sends no bytes.
        self.offset = request._send(max(self.stop_at, 0))

    def upload_chunk(self) -> None:
        """Upload one chunk (`chunk_size` bytes, fewer before `stop_at`) and take the
        server's new offset; creates the upload first when it has no URL."""
        if not self.url:
            self.offset = 0
        self.request = request = TusRequest(self)
        self.offset = request.perform()

    def create_url(self) -> str:
        """Create the upload on the server (POST to the client's URL); return its URL.

        A relative ``Location`` is resolved against the client's URL. Raises
        TusCommunicationError when the server refuses or answers without a ``Location``.
        """
        with translated():
            return tuspipe.create_upload(
                self._creation_endpoint(),
                self.get_file_size(),
                **self._creation_options(),
                **self._call_options(),
            )


class AsyncUploader(BaseUploader):
    """Uploads one file from trio: its methods are coroutines (see :class:`BaseUploader`).

    The constructor does no network or storage I/O: the stored URL is looked up, and the
    offset of a known upload asked for, by the first coroutine called. Storage and
    fingerprint work runs in worker threads, never on the event loop.
    """

    def _locate(self, url: str | None) -> None:
        self.url = url or None
        self._located = False

    async def _ensure_located(self) -> bool:
        """Do what the blocking uploader's constructor does; True if it asked the server
        for the offset just now."""
        if self._located:
            return False
        asked = False
        if self.url:
            if self.store_url:
                await trio.to_thread.run_sync(self.set_url, self.url)
            self.offset = await self._ask_offset()
            asked = True
        elif self.store_url and self.url_storage is not None:
            key = await trio.to_thread.run_sync(self._get_fingerprint)
            stored = await trio.to_thread.run_sync(self.url_storage.get_item, key)
            if stored:
                status = await self._stored_status_async(stored)
                await trio.to_thread.run_sync(self._resume_stored, key, stored, status)
                asked = self.url is not None  # the stored upload was resumed
        self._located = True
        return asked

    async def _stored_status_async(self, stored: str) -> tuspipe.UploadStatus | None:
        if not is_http_url(stored):
            return None
        with translated():
            try:
                return await tuspipe.upload_status_async(stored, **self._call_options())
            except tuspipe.UploadNotFoundError:
                return None

    async def _ask_offset(self) -> int:
        with translated():
            status = await tuspipe.upload_status_async(self._require_url(), **self._call_options())
        return status.offset

    async def _create_and_store(self) -> None:
        """Create the upload and store its URL before any byte is sent, off the event loop
        (a crash mid-upload must find the URL stored)."""
        url = await self.create_url()
        await trio.to_thread.run_sync(self._adopt_created, url)

    async def _prepare(self) -> None:
        await self._ensure_located()
        if not self.url:
            self.offset = 0
            if self.store_url:
                await self._create_and_store()

    async def get_offset(self) -> int:  # type: ignore[override]  # a coroutine here: no blocking HEAD
        """Ask the server (HEAD) how many bytes of the upload it holds."""
        if await self._ensure_located():
            return self.offset
        return await self._ask_offset()

    async def upload(self, stop_at: int | None = None) -> None:
        """Upload chunk after chunk until the server holds `stop_at` bytes (default: all);
        see :meth:`Uploader.upload`."""
        await self._prepare()
        self.stop_at = self.get_file_size() if stop_at is None else stop_at
        if self.url and self.offset >= self.stop_at:
            return
        self.request = request = AsyncTusRequest(self)
        self.offset = await request._send(max(self.stop_at, 0))

    async def upload_chunk(self) -> None:
        """Upload one chunk and take the server's new offset; see
        :meth:`Uploader.upload_chunk`."""
        await self._prepare()
        self.request = request = AsyncTusRequest(self)
        self.offset = await request.perform()

    async def create_url(self) -> str:
        """Create the upload on the server; return its URL (see :meth:`Uploader.create_url`)."""
        with translated():
            return await tuspipe.create_upload_async(
                self._creation_endpoint(),
                self.get_file_size(),
                **self._creation_options(),
                **self._call_options(),
            )
