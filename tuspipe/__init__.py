"""tuspipe: a streaming, resumable tus upload client built on trio.

Quick use::

    import tuspipe
    result = tuspipe.upload("video.mp4", "https://tus.example/files/")
    print(result.url)

Inside trio or asyncio, ``await tuspipe.upload_async(...)`` does the same without blocking
(under asyncio, tuspipe's trio code runs in trio's guest mode on the running loop).
"""

from __future__ import annotations

from ._api import upload, upload_async, upload_many, upload_many_async
from ._channels import ChannelStats
from ._client import Client
from ._errors import (
    ChecksumMismatchError,
    NetworkError,
    NetworkTimeoutError,
    OffsetMismatchError,
    ProtocolError,
    ResponseError,
    SchemeMismatchError,
    SourceChangedError,
    TLSVerificationError,
    TusError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
    VersionMismatchError,
)
from ._hooks import OutgoingRequest
from ._journal import Journal, JournalEntry, default_journal_path
from ._operations import (
    create_upload,
    create_upload_async,
    server_info,
    server_info_async,
    terminate,
    terminate_async,
    upload_status,
    upload_status_async,
)
from ._protocol import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    Request,
    Response,
    ServerCapabilities,
    UploadStatus,
    decode_metadata,
    encode_metadata,
    validate_url,
)
from ._retry import RetryPolicy
from ._types import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_AHEAD,
    DEFAULT_READ_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_SPAN_SIZE,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STREAM_CHUNK_SIZE,
    DEFAULT_TIMEOUT,
    UploadOutcome,
    UploadResult,
)
from ._version import __version__

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_READ_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_SPAN_SIZE",
    "DEFAULT_STALL_TIMEOUT",
    "DEFAULT_STREAM_CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "TUS_VERSION",
    "ChannelStats",
    "ChecksumMismatchError",
    "Client",
    "Journal",
    "JournalEntry",
    "NetworkError",
    "NetworkTimeoutError",
    "OffsetMismatchError",
    "OutgoingRequest",
    "ProtocolError",
    "Request",
    "Response",
    "ResponseError",
    "RetryPolicy",
    "SchemeMismatchError",
    "ServerCapabilities",
    "SourceChangedError",
    "TLSVerificationError",
    "TusError",
    "UnsupportedFeatureError",
    "UploadNotFoundError",
    "UploadOutcome",
    "UploadResult",
    "UploadStatus",
    "UploadTooLargeError",
    "UsageError",
    "VersionMismatchError",
    "__version__",
    "create_upload",
    "create_upload_async",
    "decode_metadata",
    "default_journal_path",
    "encode_metadata",
    "server_info",
    "server_info_async",
    "terminate",
    "terminate_async",
    "upload",
    "upload_async",
    "upload_many",
    "upload_many_async",
    "upload_status",
    "upload_status_async",
    "validate_url",
]
