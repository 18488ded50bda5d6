"""Sources: what an upload reads its bytes from.

A :class:`Source` is re-readable at any offset (``read_at``), so the pipeline never has to keep
unacknowledged bytes in memory: the checksummer, the reader and a resend after a short PATCH
each read what they need when they need it. ``read_at`` blocks and is safe to call from
several worker threads at once; the stages call it through ``trio.to_thread``.

Local mistakes surface as the standard exceptions ``open()`` raises (``FileNotFoundError``,
``IsADirectoryError``, ``PermissionError``) or as :class:`~tuspipe.UsageError`.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from typing import BinaryIO, Protocol, Union

from ._errors import SourceChangedError, UsageError

__all__ = ["Source", "SourceLike", "open_source"]

SourceLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]


class Source(Protocol):
    """Random-access bytes of a known size."""

    @property
    def size(self) -> int: ...

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

    def close(self) -> None: ...


def _short_read(name: str, offset: int, wanted: int, got: int) -> SourceChangedError:
    return SourceChangedError(
        f"{name} ended early: wanted {wanted} bytes at offset {offset}, got {got}; "
        "did the file shrink during the upload?"
    )


class _DescriptorSource:
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
        if self._stat() != self._snapshot:
            raise SourceChangedError(
                f"{self.name} changed during the upload (its size or modification time moved); "
                "upload it again once it is stable"
            )
        return data

    def _stat(self) -> tuple[int, int]:
        info = os.fstat(self._fd)
        return info.st_size, info.st_mtime_ns

    def close(self) -> None:
        if self._owns_fd:
            os.close(self._fd)


class _StreamSource:
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


class _BytesSource:
    """Bytes in memory."""

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


def open_source(source: SourceLike) -> Source:
    """Open what the caller passed as a :class:`Source`.

    `source` is a path (str or os.PathLike), bytes-like data, or a seekable binary file object;
    a stream is uploaded from its current position to its end, and is not closed afterwards.
    """
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _BytesSource(source)
    if hasattr(source, "read") and hasattr(source, "seek"):
        return _open_stream(source)
    raise UsageError(
        f"cannot upload a {type(source).__name__}: pass a path, bytes, or a binary file object"
    )
