"""tuspipe: a streaming, resumable tus upload client built on trio.

Quick use::

    import tuspipe
    result = tuspipe.upload("video.mp4", "https://tus.example/files/")
    print(result.url)

Inside trio, ``await tuspipe.upload_async(...)`` does the same without blocking.
"""

from __future__ import annotations

from ._api import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_AHEAD,
    DEFAULT_READ_SIZE,
    DEFAULT_TIMEOUT,
    UploadResult,
    upload,
    upload_async,
)
from ._errors import (
    ChecksumMismatchError,
    NetworkError,
    NetworkTimeoutError,
    OffsetMismatchError,
    ProtocolError,
    ResponseError,
    SourceChangedError,
    TusError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
    VersionMismatchError,
)
from ._journal import Journal, JournalEntry, default_journal_path
from ._protocol import CHECKSUM_ALGORITHMS, TUS_VERSION

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_READ_SIZE",
    "DEFAULT_TIMEOUT",
    "TUS_VERSION",
    "ChecksumMismatchError",
    "Journal",
    "JournalEntry",
    "NetworkError",
    "NetworkTimeoutError",
    "OffsetMismatchError",
    "ProtocolError",
    "ResponseError",
    "SourceChangedError",
    "TusError",
    "UnsupportedFeatureError",
    "UploadNotFoundError",
    "UploadResult",
    "UploadTooLargeError",
    "UsageError",
    "VersionMismatchError",
    "__version__",
    "default_journal_path",
    "upload",
    "upload_async",
]

__version__ = "0.1.0"
