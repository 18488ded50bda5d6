"""Values shared by the api and the client: defaults, callback types and the result."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

from ._body import READ_PIECE
from ._channels import ChannelStats
from ._journal import Journal

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_READ_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_SPAN_SIZE",
    "DEFAULT_STALL_TIMEOUT",
    "DEFAULT_STREAM_CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "JOURNAL_WRITE_INTERVAL",
    "JournalOption",
    "ProgressCallback",
    "UploadOutcome",
    "UploadResult",
]

#: Bytes per PATCH for files and other re-readable sources. Memory does not depend on it
#: (chunks are re-read, never buffered). Each PATCH costs a round trip in which the connection
#: idles, so larger chunks are faster: against the benchmark sink, 8 MiB chunks reached about
#: two thirds of the speed of one PATCH for the whole file, 64 MiB about 95 %
#: (benchmarks/RESULTS.md).
#: 64 MiB stays under the request-size limits of common proxies (100 MB at Cloudflare), and
#: bounds what a checksum failure sends again.
DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
#: Bytes per PATCH for one-pass sources (pipes, standard input, iterators), whose unacknowledged
#: chunk is held in memory so it can be sent again: smaller, to keep that memory small.
DEFAULT_STREAM_CHUNK_SIZE = 8 * 1024 * 1024
#: Bytes per block read into memory: a stream's blocks, checksum reads, a file's bytes where
#: sendfile() cannot send them (TLS, a proxy), and the read that ends each file. A stream's
#: memory grows by read_ahead blocks of this size.
DEFAULT_READ_SIZE = READ_PIECE
#: Bytes per span of a file sent with sendfile(): the kernel copies a span from the page cache
#: to the socket, so its size costs no memory, and fewer spans mean fewer trips through the
#: stages (and, under asyncio, fewer turns of the host loop). Against the sink, 1 GiB went
#: about 10 % faster in 8 MiB spans than in 2 MiB ones (benchmarks/RESULTS.md).
DEFAULT_SPAN_SIZE = 8 * 1024 * 1024
#: Blocks the reader may read ahead of the sender.
DEFAULT_READ_AHEAD = 4
#: Seconds allowed to connect, or to wait for a pooled connection.
DEFAULT_TIMEOUT = 30.0
#: Seconds a request may go without moving a byte before it is aborted and retried.
DEFAULT_STALL_TIMEOUT = 60.0
#: Retries of a failing request, counted afresh whenever the upload makes progress.
DEFAULT_RETRIES = 5

#: Seconds between journal records of the acknowledged offset during one upload.
JOURNAL_WRITE_INTERVAL = 0.5

ProgressCallback = Callable[[int, "int | None"], object]
"""Called as ``on_progress(acknowledged, total)`` after each offset the server confirms."""


@dataclass(frozen=True)
class UploadResult:
    """What an upload achieved.

    Attributes:
        url: the upload's URL on the server (keep it to resume or delete the upload).
        size: the source's size in bytes.
        offset: the server's offset when the call ended (``size`` unless ``stop_at`` was used).
        resumed_from: bytes that were already on the server when the call began.
        checksum: the checksum algorithm used, or None.
        channel_stats: how the pipeline's channels were used during this call (who waited
            on whom; see :class:`ChannelStats`), for tuning and benchmarks. Empty when no
            PATCH was needed; summed over the parts of a parallel upload.
    """

    url: str
    size: int
    offset: int
    resumed_from: int
    checksum: str | None = None
    channel_stats: tuple[ChannelStats, ...] = field(default=(), compare=False, repr=False)

    @property
    def complete(self) -> bool:
        """True when the server holds every byte of the source."""
        return self.offset == self.size


JournalOption = Union[bool, str, "os.PathLike[str]", Journal, None]
"""True (the default file), a path, a :class:`Journal`, or None / False (no journal)."""


@dataclass(frozen=True)
class UploadOutcome:
    """How one source of :func:`tuspipe.upload_many` fared: a result, or the error.

    Attributes:
        index: the source's position in the list given.
        source: the source as given.
        result: what the upload achieved, when it succeeded.
        error: why it failed (a TusError or an OSError), when it did.
    """

    index: int
    source: object
    result: UploadResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
