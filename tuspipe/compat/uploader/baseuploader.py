"""tuspy's BaseUploader: the state, the helpers and the one body of both uploaders.

An uploader holds one file (a path or a stream) and one upload on the server (``url``,
``offset``). It does no transfer itself: every request is one of tuspipe's public calls
(``upload_async`` for bytes, ``create_upload_async`` for creation, ``upload_status_async`` for
HEAD), made here and by :mod:`~tuspipe.compat.request`. This module turns the uploader's
tuspy-style attributes into those calls' arguments, and holds what the uploaders do as
coroutines (``_upload``, ``_upload_chunk``, ``_create_url``, ``_get_offset``): the blocking
:class:`~tuspipe.compat.uploader.Uploader` is the blocking facade over them, the
``AsyncUploader`` awaits them under trio or asyncio (:mod:`~tuspipe.compat._bridge`), so each
behaviour is written once.

Differences from tuspy, all deliberate (each was a defect there):

* ``stop_at=0`` means zero, not "the whole file"; bytes metadata values are sent as they are.
* With ``store_url``, a stored URL the server no longer has (404/410), or whose length does
  not match the file, is forgotten and a new upload is made; ``None`` is never stored; the
  fingerprinter never closes the caller's ``file_stream``.
* Files are opened only for the duration of a call (tuspy leaked one handle per chunk).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from base64 import b64encode
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import trio

import tuspipe

from .._bridge import blocking_method, operation_options, translated
from ..fingerprint import fingerprint, interface
from ..storage.interface import Storage

if TYPE_CHECKING:
    from ..client import TusClient
    from ..request import BaseTusRequest

__all__ = ["BaseUploader", "ClientCert", "is_http_url"]

logger = logging.getLogger("tuspipe.compat")

ClientCert = str | tuple[str, str]
"""A PEM file holding certificate and key, or a ``(certificate file, key file)`` pair."""


def is_http_url(text: object) -> bool:
    """Whether a stored value can be an upload URL at all (storage may hold anything)."""
    if not isinstance(text, str):
        return False
    try:
        tuspipe.validate_url(text)
    except tuspipe.UsageError:
        return False
    return True


# Keys tuspy refuses in Upload-Metadata: empty, or holding whitespace or a comma.
_BAD_METADATA_KEY = re.compile(r"^$|[\s,]")


class BaseUploader:
    """One file's upload: its source, its URL on the server and how to talk to the server.

    Args (with tuspy's names and defaults):
        file_path: the file to upload. Either this or `file_stream` is required.
        file_stream: a seekable binary stream to upload instead, from its start; it is read,
            never closed.
        url: the upload's URL when it exists already (to resume it).
        client: the :class:`~tuspipe.compat.client.TusClient` (creation endpoint, headers,
            client certificate). Required unless `url` is given.
        chunk_size: bytes per PATCH. The default sends the file in one PATCH, streamed:
            memory does not grow with the chunk size.
        metadata: ``Upload-Metadata`` pairs; str values are encoded with
            `metadata_encoding`, bytes values are sent as they are.
        metadata_encoding: the encoding of str metadata values.
        retries: how many times a failed request is tried again (tuspipe's ``retries=``:
            network errors, timeouts, 408, 409, 423, 429 and 5xx are retried; other refusals
            are final).
        retry_delay: seconds to wait before each retry (a server's Retry-After wins).
        verify_tls_cert: verify the server's TLS certificate (or a CA bundle path).
        store_url: remember the upload's URL in `url_storage`, keyed by the file's
            fingerprint, so that a later uploader of the same file resumes it.
        url_storage: a :class:`~tuspipe.compat.storage.interface.Storage`; required with
            `store_url`.
        fingerprinter: makes the storage key; default
            :class:`~tuspipe.compat.fingerprint.fingerprint.Fingerprint`.
        upload_checksum: send an ``Upload-Checksum`` with every PATCH (the algorithm of
            ``CHECKSUM_ALGORITHM_PAIR``, sha1); the server must offer it.

    Raises:
        ValueError: neither `file_path` nor `file_stream`; neither `url` nor `client`;
            `store_url` without `url_storage`; `file_path` is not a file.
    """

    # The request each twin makes: TusRequest (blocking) or AsyncTusRequest.
    _request_class: ClassVar[type[BaseTusRequest]]

    DEFAULT_HEADERS: ClassVar[dict[str, str]] = {"Tus-Resumable": "1.0.0"}
    DEFAULT_CHUNK_SIZE: ClassVar[int] = sys.maxsize
    CHECKSUM_ALGORITHM_PAIR: ClassVar[tuple[str, Callable[..., Any]]] = ("sha1", hashlib.sha1)

    def __init__(
        self,
        file_path: str | os.PathLike[str] | None = None,
        file_stream: BinaryIO | None = None,
        url: str | None = None,
        client: TusClient | None = None,
        chunk_size: int = sys.maxsize,
        metadata: Mapping[Any, str | bytes] | None = None,
        metadata_encoding: str | None = "utf-8",
        retries: int = 0,
        retry_delay: float = 30,
        verify_tls_cert: bool | str = True,
        store_url: bool = False,
        url_storage: Storage | None = None,
        fingerprinter: interface.Fingerprint | None = None,
        upload_checksum: bool = False,
    ) -> None:
        if file_path is None and file_stream is None:
            raise ValueError("Either 'file_path' or 'file_stream' cannot be None.")
        if url is None and client is None:
            raise ValueError("Either 'url' or 'client' cannot be None.")
        if store_url and url_storage is None:
            raise ValueError("Please specify a storage instance to enable resumablility.")
        self.verify_tls_cert = verify_tls_cert
        self.file_path = file_path
        self.file_stream = file_stream
        self.stop_at = self.get_file_size()
        self.client = client
        self.metadata: Mapping[Any, str | bytes] = metadata or {}
        self.metadata_encoding = metadata_encoding
        self.store_url = store_url
        self.url_storage = url_storage
        self.fingerprinter: interface.Fingerprint = fingerprinter or fingerprint.Fingerprint()
        self.offset = 0
        self.url: str | None = None
        self.chunk_size = chunk_size
        self.retries = retries
        self.retry_delay = retry_delay
        self.upload_checksum = upload_checksum
        self.request: BaseTusRequest | None = None
        self._checksum_algorithm_name, self._checksum_algorithm = self.CHECKSUM_ALGORITHM_PAIR
        self._locate(url)

    # ---- headers, metadata and TLS, as tuspy reports them ---------------------------------

    def get_headers(self) -> dict[str, str]:
        """The headers every request carries: tus's own and the client's."""
        client_headers: Mapping[str, str] = getattr(self.client, "headers", None) or {}
        return dict(self.DEFAULT_HEADERS, **client_headers)

    def get_url_creation_headers(self) -> dict[str, str]:
        """The headers of the creation request (for inspection: tuspipe builds the request)."""
        headers = self.get_headers()
        headers["upload-length"] = str(self.get_file_size())
        headers["upload-metadata"] = ",".join(self.encode_metadata())
        return headers

    @property
    def checksum_algorithm(self) -> Callable[..., Any]:
        """The hashlib constructor of the ``Upload-Checksum`` algorithm."""
        return self._checksum_algorithm

    @property
    def checksum_algorithm_name(self) -> str:
        """The name of the ``Upload-Checksum`` algorithm, as sent in the header."""
        return self._checksum_algorithm_name

    @property
    def client_cert(self) -> ClientCert | None:
        """The client's TLS certificate, or None."""
        return self.client.client_cert if self.client is not None else None

    def encode_metadata(self) -> list[str]:
        """The ``Upload-Metadata`` pairs, each ``"key base64(value)"``.

        Raises ValueError for a key that is empty or holds whitespace or a comma.
        """
        encoded = []
        for key, value in self._metadata_values().items():
            if _BAD_METADATA_KEY.search(key):
                raise ValueError(
                    f'Upload-metadata key "{key}" cannot be empty nor contain spaces or commas.'
                )
            encoded.append(f"{key} {b64encode(value).decode('ascii')}")
        return encoded

    # ---- the source -----------------------------------------------------------------------

    def get_file_stream(self) -> BinaryIO:
        """The upload's bytes as a stream at its start: `file_stream` itself, or `file_path`
        opened for reading (close it when done)."""
        if self.file_stream is not None:
            self.file_stream.seek(0)
            return self.file_stream
        if self.file_path is not None and os.path.isfile(self.file_path):
            return open(self.file_path, "rb")  # the caller closes it
        raise ValueError(f"invalid file {self.file_path}")

    def get_file_size(self) -> int:
        """The upload's size in bytes (without reading it)."""
        if self.file_stream is not None:
            position = self.file_stream.tell()
            size = self.file_stream.seek(0, os.SEEK_END)
            self.file_stream.seek(position)
            return size
        if self.file_path is not None and os.path.isfile(self.file_path):
            return os.stat(self.file_path).st_size
        raise ValueError(f"invalid file {self.file_path}")

    def get_request_length(self) -> int:
        """The length of the next chunk: `chunk_size`, or less before `stop_at`."""
        remainder = self.stop_at - self.offset
        return self.chunk_size if remainder > self.chunk_size else remainder

    def _get_fingerprint(self) -> str:
        if self.file_stream is not None:
            # The caller's stream: fingerprinted in place, never closed.
            return self.fingerprinter.get_fingerprint(self.get_file_stream())
        with self.get_file_stream() as stream:
            return self.fingerprinter.get_fingerprint(stream)

    def _source(self) -> str | os.PathLike[str] | BinaryIO:
        """What tuspipe uploads: the path, or the stream rewound to its start."""
        if self.file_stream is not None:
            self.file_stream.seek(0)
            return self.file_stream
        assert self.file_path is not None  # the constructor demands one of the two
        return self.file_path

    def _metadata_values(self) -> dict[str, bytes]:
        values: dict[str, bytes] = {}
        for key, value in self.metadata.items():
            if isinstance(value, str):
                values[str(key)] = value.encode(self.metadata_encoding or "utf-8")
            elif isinstance(value, (bytes, bytearray, memoryview)):
                values[str(key)] = bytes(value)
            else:
                raise ValueError(
                    f"the metadata value of {key!r} must be str or bytes, not "
                    f"{type(value).__name__}"
                )
        return values

    # ---- the upload's URL -----------------------------------------------------------------

    def set_url(self, url: str) -> None:
        """Use `url` as the upload's URL (and store it, with `store_url`)."""
        self.url = url
        if url and self.store_url and self.url_storage is not None:
            self.url_storage.set_item(self._get_fingerprint(), url)

    def _adopt_created(self, url: str) -> None:
        """The upload was just created at `url`: it holds nothing yet."""
        self.set_url(url)
        self.offset = 0

    def _locate(self, url: str | None) -> None:
        """Find the upload's URL and the server's offset, as tuspy's constructor does
        (blocking; AsyncUploader leaves it to its first coroutine).

        A given `url` is used (and its offset asked for); otherwise, with `store_url`, a URL
        stored for this file's fingerprint is checked with the server and resumed, or
        forgotten when the server no longer has a matching upload.
        """
        self.url = url or None
        self._located = False
        if self.url or (self.store_url and self.url_storage is not None):
            self._locate_now()
        self._located = True

    async def _ensure_located(self) -> bool:
        """Do what :meth:`_locate` does, once; True if it asked the server for the offset
        just now. Storage and fingerprint work runs in worker threads, off the event loop."""
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
                status = await self._stored_status(stored)
                await trio.to_thread.run_sync(self._resume_stored, key, stored, status)
                asked = self.url is not None  # the stored upload was resumed
        self._located = True
        return asked

    _locate_now = blocking_method(
        _ensure_located, "Uploader", instead="AsyncUploader (its constructor does no I/O)"
    )

    async def _stored_status(self, stored: str) -> tuspipe.UploadStatus | None:
        """The server's status of a stored upload, or None when it no longer has it."""
        if not is_http_url(stored):
            return None
        with translated():
            try:
                return await tuspipe.upload_status_async(stored, **self._call_options())
            except tuspipe.UploadNotFoundError:
                return None

    def _resume_stored(self, key: str, stored: str, status: tuspipe.UploadStatus | None) -> None:
        """Continue the stored upload if the server holds one of this file's length; else
        forget the stored URL, so that a new upload is made."""
        size = self.get_file_size()
        if status is not None and status.length == size:
            self.url = stored
            self.offset = status.offset
            return
        if status is None:
            logger.info("the stored upload %s is gone; a new upload will be made", stored)
        else:
            logger.warning(
                "the stored upload %s is %s bytes long, but the file has %d; a new upload "
                "will be made",
                stored,
                status.length,
                size,
            )
        assert self.url_storage is not None
        self.url_storage.remove_item(key)

    def _require_url(self) -> str:
        if not self.url:
            raise ValueError("the upload has no URL yet; create it first (create_url, upload)")
        return self.url

    def _creation_endpoint(self) -> str:
        if self.client is None:
            raise ValueError("creating an upload needs a client (its URL is the endpoint)")
        return self.client.url

    # ---- what tuspipe is called with ------------------------------------------------------

    async def _ask_offset(self) -> int:
        with translated():
            status = await tuspipe.upload_status_async(self._require_url(), **self._call_options())
        return status.offset

    async def _get_offset(self) -> int:
        """Ask the server (HEAD) how many bytes of the upload it holds.

        Raises TusCommunicationError when the server refuses or cannot be reached.
        """
        if await self._ensure_located():
            return self.offset
        return await self._ask_offset()

    get_offset = blocking_method(_get_offset, "BaseUploader.get_offset", "AsyncUploader")

    def _client_options(self) -> Mapping[str, Any]:
        options: Mapping[str, Any] = getattr(self.client, "tuspipe_options", None) or {}
        return options

    def _call_options(self) -> dict[str, Any]:
        """Keyword arguments for tuspipe's single operations (create_upload, upload_status)."""
        cert = self.client_cert
        return {
            # tuspipe sends Tus-Resumable itself and refuses it among the extra headers.
            "headers": {
                name: value
                for name, value in self.get_headers().items()
                if name.lower() != "tus-resumable"
            },
            "retries": self.retries,
            "retry_delays": [self.retry_delay],
            "verify": self.verify_tls_cert,
            "cert": tuple(cert) if isinstance(cert, list) else cert,
            **operation_options(self._client_options()),
        }

    def _upload_options(self) -> dict[str, Any]:
        """Keyword arguments for tuspipe.upload: the operations' ones and the transfer's."""
        return {
            **self._call_options(),
            **self._client_options(),
            "chunk_size": self.chunk_size,
            "checksum": self.checksum_algorithm_name if self.upload_checksum else None,
            # URLs live in url_storage, as in tuspy; tuspipe's own journal stays out of it.
            "journal": None,
        }

    def _creation_options(self) -> dict[str, Any]:
        """What tuspipe needs beyond the call options to create this upload."""
        return {"metadata": self._metadata_values()}

    # ---- the one body of both uploaders (their twins are declared in uploader.py) ---------

    async def _prepare(self) -> None:
        """Locate the upload; without a URL, start from 0 and, with `store_url`, create the
        upload and store its URL (off the event loop) before any byte is sent, so that a crash
        mid-upload finds it stored."""
        await self._ensure_located()
        if not self.url:
            self.offset = 0
            if self.store_url:
                url = await self._create_url()
                await trio.to_thread.run_sync(self._adopt_created, url)

    async def _upload(self, stop_at: int | None = None) -> None:
        """Upload chunk after chunk until the server holds `stop_at` bytes (default: all).

        Creates the upload first when it has no URL (an empty file needs nothing more).
        Raises TusUploadFailed when the server refuses the bytes, TusCommunicationError for
        other failures, ValueError for a `stop_at` beyond the file.
        """
        await self._prepare()
        self.stop_at = self.get_file_size() if stop_at is None else stop_at
        if self.url and self.offset >= self.stop_at:
            return
        self.request = request = self._request_class(self)
        # A negative stop_at (tuspy's idiom for "only create the upload") sends no bytes.
        self.offset = await request._send(max(self.stop_at, 0))

    async def _upload_chunk(self) -> None:
        """Upload one chunk (`chunk_size` bytes, fewer before `stop_at`) and take the
        server's new offset; creates the upload first when it has no URL."""
        await self._prepare()
        self.request = request = self._request_class(self)
        self.offset = await request._perform()

    async def _create_url(self) -> str:
        """Create the upload on the server (POST to the client's URL); return its URL.

        A relative ``Location`` is resolved against the client's URL. Raises
        TusCommunicationError when the server refuses or answers without a ``Location``.
        """
        with translated():
            return await tuspipe.create_upload_async(
                self._creation_endpoint(),
                self.get_file_size(),
                **self._creation_options(),
                **self._call_options(),
            )
