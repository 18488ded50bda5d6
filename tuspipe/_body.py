"""What a request body is made of: bytes, or spans of an open file.

A :class:`FileSpan` names bytes of a regular file without holding them. The transport sends a
span with ``sendfile()`` when its connection allows (plain TCP: the kernel moves the bytes from
the page cache to the socket, and they never enter Python), and otherwise reads it into memory.
Either way the span checks that the file did not change under it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["READ_PIECE", "BodyPart", "FileSpan"]

#: The most bytes of a span read into memory at once, where the span cannot be sent with
#: ``sendfile()`` (a TLS connection, a proxy): a file's spans may be large, as they cost no
#: memory when sent from the page cache, so memory must not follow their size.
READ_PIECE = 2 * 1024 * 1024

# preadv2's flag for "only what is cached" (Linux 4.14 and later).
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


@dataclass(frozen=True)
class FileSpan:
    """`length` bytes of the open file `fd`, starting at the file position `file_offset`.

    `read_piece(skip, length)` returns `length` of those bytes from the span's `skip`-th on
    (checked, as the source's own reads are); `check_unchanged` raises
    :class:`~tuspipe.SourceChangedError` when the file changed since the upload began;
    `short_read` builds the error for a file that ended early. They come from the source the
    span belongs to, which also owns `fd` and keeps it open while the upload runs.
    """

    fd: int
    file_offset: int
    length: int
    read_piece: Callable[[int, int], bytes]
    check_unchanged: Callable[[], None]
    short_read: Callable[[int], Exception]

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        """All the span's bytes."""
        return self.read_piece(0, self.length)

    def pieces(self) -> Iterator[tuple[int, int]]:
        """``(skip, length)`` of the span's pieces of at most :data:`READ_PIECE` bytes, for
        reading it into memory a piece at a time."""
        for skip in range(0, self.length, READ_PIECE):
            yield skip, min(READ_PIECE, self.length - skip)

    def prefetch(self) -> None:
        """Ask the kernel to bring the span into the page cache (it returns at once), so a
        later ``sendfile()`` on the event loop seldom waits for the disk.

        Only when the span's last byte is not cached already: the hint walks every page of
        the span, which costs more than the sendfile() of a cached span (measured: about
        150 us per MiB), while one non-blocking read of a byte says whether it is needed.
        """
        if not hasattr(os, "posix_fadvise") or self._cached():
            return
        # Only a hint, which some file systems do not take.
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, self.file_offset, self.length, os.POSIX_FADV_WILLNEED)

    def _cached(self) -> bool:
        """Whether the span's last byte is in the page cache (False when unknown)."""
        if _RWF_NOWAIT is None:
            return False
        try:
            return os.preadv(self.fd, [bytearray(1)], self.end - 1, _RWF_NOWAIT) == 1
        except OSError:  # EAGAIN: not cached
            return False

    @property
    def end(self) -> int:
        """The file position just past the span."""
        return self.file_offset + self.length


BodyPart = bytes | FileSpan
"""One piece of a request body, as the sender hands it to the transport."""
