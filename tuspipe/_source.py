"""Sources: what an upload reads its bytes from.

A :class:`Source` is readable at any offset it still holds (``read_at``). Files, bytes and
seekable streams hold everything, so the pipeline never keeps unacknowledged bytes in memory:
the checksummer, the reader and a resend after a short PATCH each read what they need when they
need it. ``read_at`` blocks and is safe to call from several worker threads at once; the stages
call it through ``trio.to_thread``, except for bytes in memory (``Source.in_memory``), which
:func:`read_bytes` copies on the loop.

One-pass sources (a pipe, standard input, an iterator or async iterator of bytes) cannot be read
twice, and their size is unknown until they end: they are :mod:`tuspipe._onepass`'s, which
keeps the unacknowledged bytes, so memory stays bounded by the chunk size.

Local mistakes surface as the standard exceptions ``open()`` raises (``FileNotFoundError``,
``IsADirectoryError``, ``PermissionError``) or as :class:`~tuspipe.UsageError`.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import BinaryIO, Protocol, Union

import trio

from ._body import FileSpan
from ._errors import SourceChangedError, UsageError
from ._onepass import OnePassSource, pull_from_async_iterator, pull_from_iterator, pull_from_stream

__all__ = [
    "INLINE_READ_LIMIT",
    "Source",
    "SourceLike",
    "open_source",
    "read_bytes",
    "read_range",
    "slice_source",
    "spans",
]

SourceLike = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    BinaryIO,
    Iterable[bytes],
    AsyncIterable[bytes],
]


class Source(Protocol):
    """Bytes to upload, readable at any offset the source still holds."""

    @property
    def size(self) -> int | None:
        """The size in bytes; None while a one-pass source has not reached its end."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def identity(self) -> str | None:
        """What names this source across processes (a file's path, inode and mtime), or None
        when nothing does (bytes, streams): then only a caller's ``resume_key`` can."""
        ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes from `offset`; SourceChangedError if fewer exist."""
        ...

    def span_at(self, offset: int, length: int) -> FileSpan | None:
        """The bytes ``[offset, offset + length)`` as a span of an open file, which the
        transport may send without reading; None when the source is not a plain file."""
        ...

    def read_now(self, offset: int, length: int) -> bytes | None:
        """``read_at``, when it cannot block: the bytes are in memory or in the page cache.
        None when reading them might wait (then ``read_at`` belongs in a worker thread)."""
        ...

    @property
    def in_memory(self) -> bool:
        """Whether every byte the source holds is in memory (bytes, what a one-pass source
        keeps). Reading those is a copy that holds the GIL, which a worker thread would only
        make slower: :func:`read_bytes` makes it on the loop, whatever its size."""
        ...

    async def ensure(self, end: int) -> int:
        """Make the bytes up to `end` readable; return how many of them exist (``min(end,
        size)``). A one-pass source reads on, waiting while it holds as much as it may."""
        ...

    def release(self, offset: int) -> None:
        """Bytes below `offset` will never be read again (the server acknowledged them)."""
        ...

    def close(self) -> None: ...


class _RandomAccess:
    """What every source that holds all its bytes does for ``ensure`` and ``release``."""

    size: int
    in_memory = False

    async def ensure(self, end: int) -> int:
        return min(end, self.size)

    def release(self, offset: int) -> None:
        """Nothing to drop: the bytes stay readable in the file or buffer."""

    def span_at(self, offset: int, length: int) -> FileSpan | None:
        return None

    def read_now(self, offset: int, length: int) -> bytes | None:
        return None


def _short_read(name: str, offset: int, wanted: int, got: int) -> SourceChangedError:
    return SourceChangedError(
        f"{name} ended early: wanted {wanted} bytes at offset {offset}, got {got}; "
        "did the file shrink during the upload?"
    )


# preadv2's flag for "only what is cached" (Linux 4.14 and later).
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


class _DescriptorSource(_RandomAccess):
    """A regular file read with ``os.pread``: positional, so concurrent reads do not interfere."""

    def __init__(
        self,
        fd: int,
        name: str,
        base: int,
        size: int,
        owns_fd: bool,
        identity: str | None = None,
    ) -> None:
        self._fd = fd
        self._base = base
        self._owns_fd = owns_fd
        self.name = name
        self.size = size
        self.identity = identity
        self._snapshot = self._stat()

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, self._base + offset)
        if len(data) < length:
            # pread may return less than asked near EOF or on some filesystems; finish the job.
            parts = [data]
            got = len(data)
            while got < length:
                more = os.pread(self._fd, length - got, self._base + offset + got)
                if not more:
                    raise _short_read(self.name, offset, length, got)
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        # Checked after reading, so the bytes just read belong to the file as it was when the
        # upload began; a changed file fails the upload rather than mixing two versions.
        self.check_unchanged()
        return data

    def span_at(self, offset: int, length: int) -> FileSpan:
        return FileSpan(
            fd=self._fd,
            file_offset=self._base + offset,
            length=length,
            read_piece=lambda skip, piece: self.read_at(offset + skip, piece),
            check_unchanged=self.check_unchanged,
            short_read=functools.partial(self._short_read_at, offset, length),
        )

    def read_now(self, offset: int, length: int) -> bytes | None:
        if _RWF_NOWAIT is None:
            return None
        buffer = bytearray(length)
        try:
            # RWF_NOWAIT: only what the page cache holds; EAGAIN rather than wait for a disk.
            got = os.preadv(self._fd, [buffer], self._base + offset, _RWF_NOWAIT)
        except OSError:  # EAGAIN (not cached), or a kernel or file system without the flag
            return None
        if got != length:
            return None  # partly cached, or the file ended early: read_at knows what to do
        self.check_unchanged()
        return bytes(buffer)

    def _short_read_at(self, offset: int, length: int, got: int) -> SourceChangedError:
        return _short_read(self.name, offset, length, got)

    def check_unchanged(self) -> None:
        """Raise SourceChangedError when the file's size or modification time moved."""
        if self._stat() != self._snapshot:
            raise SourceChangedError(
                f"{self.name} changed during the upload (its size or modification time moved); "
                "upload it again once it is stable"
            )

    def _stat(self) -> tuple[int, int]:
        info = os.fstat(self._fd)
        return info.st_size, info.st_mtime_ns

    def close(self) -> None:
        if self._owns_fd:
            os.close(self._fd)


class _StreamSource(_RandomAccess):
    """A seekable binary stream without a usable descriptor (BytesIO, a wrapped object)."""

    def __init__(self, stream: BinaryIO, name: str, base: int, size: int) -> None:
        self._stream = stream
        self._base = base
        self._lock = threading.Lock()
        self.name = name
        self.size = size
        self.identity: str | None = None

    def read_at(self, offset: int, length: int) -> bytes:
        with self._lock:
            self._stream.seek(self._base + offset)
            data = self._stream.read(length)
        if not isinstance(data, bytes):
            data = bytes(data)
        if len(data) < length:
            raise _short_read(self.name, offset, length, len(data))
        return data

    def close(self) -> None:
        """The caller owns the stream; it is left open."""


class _BytesSource(_RandomAccess):
    """Bytes in memory."""

    in_memory = True

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if not view.c_contiguous:  # a strided view cannot be cast to bytes; copy it
            view = memoryview(view.tobytes())
        self._view = view.cast("B")
        self.name = "<bytes>"
        self.size = len(self._view)
        self.identity: str | None = None

    def read_at(self, offset: int, length: int) -> bytes:
        data = self._view[offset : offset + length].tobytes()
        if len(data) < length:
            raise _short_read(self.name, offset, length, len(data))
        return data

    def read_now(self, offset: int, length: int) -> bytes:
        return self.read_at(offset, length)

    def close(self) -> None:
        self._view.release()


def _open_path(path: str | os.PathLike[str]) -> Source:
    name = os.fspath(path)
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is refused below.
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | nonblock)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory; tuspipe uploads files", name)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(
                f"{name!r} is not a regular file; pass its bytes or an open stream instead"
            )
        if nonblock:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    where = f"{os.path.abspath(name)}:{info.st_dev}:{info.st_ino}"
    identity = f"file:{where}:{info.st_size}:{info.st_mtime_ns}"
    return _DescriptorSource(fd, name, base=0, size=info.st_size, owns_fd=True, identity=identity)


def _open_stream(stream: BinaryIO) -> Source:
    name = str(getattr(stream, "name", None) or f"<{type(stream).__name__}>")
    if isinstance(stream, io.TextIOBase):
        raise UsageError(f"{name} is open in text mode; open it in binary mode ('rb')")
    seekable = getattr(stream, "seekable", None)
    if not callable(seekable) or not seekable():
        raise UsageError(f"{name} is not seekable; tuspipe needs to re-read unacknowledged bytes")
    readable = getattr(stream, "readable", None)
    if callable(readable) and not readable():
        raise UsageError(f"{name} is not open for reading; open it with 'rb'")
    # The upload covers the stream from where it stands now to its end.
    base = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(base)
    if base > end:
        raise UsageError(
            f"{name} is positioned at {base}, beyond its end at {end}: nothing to upload; "
            "seek it to where the upload should start"
        )
    size = end - base
    try:
        fd = stream.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, io.UnsupportedOperation):
        regular = False
    if regular:
        return _DescriptorSource(fd, name, base=base, size=size, owns_fd=False)
    return _StreamSource(stream, name, base=base, size=size)


class _SliceSource(_RandomAccess):
    """The bytes ``[start, start + size)`` of another source, as a source of its own (one
    part of a parallel upload). It does not own the source it views."""

    def __init__(self, source: Source, start: int, size: int) -> None:
        self._source = source
        self._start = start
        self.size = size
        self.name = f"{source.name}[{start}:{start + size}]"
        self.identity: str | None = None

    def read_at(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        return self._source.read_at(self._start + offset, length)

    def read_now(self, offset: int, length: int) -> bytes | None:
        self._check(offset, length)
        return self._source.read_now(self._start + offset, length)

    def span_at(self, offset: int, length: int) -> FileSpan | None:
        self._check(offset, length)
        return self._source.span_at(self._start + offset, length)

    @property
    def in_memory(self) -> bool:  # type: ignore[override]  # (a class attribute above)
        return self._source.in_memory

    def _check(self, offset: int, length: int) -> None:
        if offset + length > self.size:
            raise ValueError(f"{self.name}: read beyond the slice")

    def close(self) -> None:
        """The viewed source is closed by its owner."""


def slice_source(source: Source, start: int, size: int) -> Source:
    """A view of `size` bytes of a random-access `source` from `start` on."""
    if source.size is None or not 0 <= start <= start + size <= source.size:
        raise ValueError(f"cannot slice {size} bytes at {start} from {source.name}")
    return _SliceSource(source, start, size)


def open_source(
    source: SourceLike, *, read_size: int = 1 << 20, retention: int = 8 << 20
) -> Source:
    """Open what the caller passed as a :class:`Source`.

    `source` is a path (str or os.PathLike), bytes-like data, or a binary file object; a
    seekable stream is uploaded from its current position to its end, and is not closed
    afterwards. A non-seekable stream (a pipe, standard input), an iterable or an async
    iterable of bytes is read once, holding at most `retention` unacknowledged bytes.
    """
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _BytesSource(source)
    name = str(getattr(source, "name", None) or f"<{type(source).__name__}>")
    if hasattr(source, "read"):
        seekable = getattr(source, "seekable", None)
        if callable(seekable) and seekable() and hasattr(source, "seek"):
            return _open_stream(source)  # type: ignore[arg-type]
        if isinstance(source, io.TextIOBase):
            raise UsageError(f"{name} is open in text mode; open it in binary mode ('rb')")
        readable = getattr(source, "readable", None)
        if callable(readable) and not readable():
            raise UsageError(f"{name} is not open for reading; open it with 'rb'")
        pull = pull_from_stream(source, name)  # type: ignore[arg-type]
    elif isinstance(source, (str, dict)):
        raise UsageError(f"cannot upload a {type(source).__name__}")
    elif isinstance(source, AsyncIterable):
        pull = pull_from_async_iterator(aiter(source), name)
    elif isinstance(source, Iterable):
        pull = pull_from_iterator(iter(source), name)
    else:
        raise UsageError(
            f"cannot upload a {type(source).__name__}: pass a path, bytes, a binary file "
            "object, or an iterable of bytes"
        )
    return OnePassSource(pull, name, read_size=read_size, retention=retention)


def spans(start: int, stop: int, size: int) -> Iterable[tuple[int, int]]:
    """``(offset, length)`` pairs cutting ``[start, stop)`` into pieces of at most `size`."""
    for offset in range(start, stop, size):
        yield offset, min(size, stop - offset)


# Reads up to this size are done on the event loop when the source says they cannot block:
# a worker thread's round trip costs more than such a read (the cost of many small files).
INLINE_READ_LIMIT = 64 * 1024


async def read_bytes(source: Source, offset: int, length: int) -> bytes:
    """``source.read_at(offset, length)``: on the loop when the source's bytes are in memory
    (a copy: see ``Source.in_memory``) or when they are few and cannot block (in the page
    cache); in a worker thread otherwise."""
    if length <= INLINE_READ_LIMIT or source.in_memory:
        data = source.read_now(offset, length)
        if data is not None:
            await trio.lowlevel.checkpoint()
            return data
    return await trio.to_thread.run_sync(source.read_at, offset, length)


async def read_range(source: Source, start: int, end: int, read_size: int) -> AsyncIterator[bytes]:
    """The source's bytes ``[start, end)``, `read_size` at a time (see :func:`read_bytes`)."""
    for offset, length in spans(start, end, read_size):
        yield await read_bytes(source, offset, length)
