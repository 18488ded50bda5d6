"""tuspy's two uploaders: :class:`Uploader` (blocking) and :class:`AsyncUploader` (trio or
asyncio), declared from one body.

What an uploader does is written once, as coroutines of
:class:`~tuspipe.compat.uploader.baseuploader.BaseUploader`; each class here only says how its
methods are called (:mod:`~tuspipe.compat._bridge`): the blocking uploader through tuspipe's
blocking facade, the async one awaited under trio or asyncio. Both send through tuspipe:
``upload()`` makes ONE tuspipe upload call for all its chunks (one connection, the file
streamed: memory does not grow with ``chunk_size``, not even with the default
``sys.maxsize``), ``upload_chunk()`` one call per chunk. Neither touches HTTP itself.
"""

from __future__ import annotations

from .._bridge import blocking_method, coroutine_method
from ..request import AsyncTusRequest, TusRequest
from .baseuploader import BaseUploader

__all__ = ["AsyncUploader", "Uploader"]


class Uploader(BaseUploader):
    """Uploads one file with blocking calls (see :class:`BaseUploader` for the arguments).

    Like tuspy's, the constructor asks the server for the offset (HEAD) when the upload's
    URL is known, given or stored. Inside a running asyncio loop (a notebook cell) the calls
    still work: tuspipe runs them in a worker thread and waits.
    """

    _request_class = TusRequest

    upload = blocking_method(BaseUploader._upload, "Uploader.upload")
    upload_chunk = blocking_method(BaseUploader._upload_chunk, "Uploader.upload_chunk")
    create_url = blocking_method(BaseUploader._create_url, "Uploader.create_url")


class AsyncUploader(BaseUploader):
    """Uploads one file with coroutines, awaited under asyncio or trio (see
    :class:`BaseUploader` for the arguments).

    The constructor does no network or storage I/O: the stored URL is looked up, and the
    offset of a known upload asked for, by the first coroutine called. Storage and
    fingerprint work runs in worker threads, never on the event loop. Under asyncio, tuspipe
    runs on the loop's own thread (trio's guest mode), so hooks run there too.
    """

    _request_class = AsyncTusRequest

    def _locate(self, url: str | None) -> None:
        self.url = url or None
        self._located = False

    upload = coroutine_method(BaseUploader._upload, "AsyncUploader.upload")
    upload_chunk = coroutine_method(BaseUploader._upload_chunk, "AsyncUploader.upload_chunk")
    create_url = coroutine_method(BaseUploader._create_url, "AsyncUploader.create_url")
    # A coroutine here, unlike tuspy's (a blocking HEAD inside an async uploader).
    get_offset = coroutine_method(BaseUploader._get_offset, "AsyncUploader.get_offset")  # type: ignore[assignment]
