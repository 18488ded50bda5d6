"""One-pass sources: a pipe, standard input, an iterator or an async iterator of bytes.

They cannot be read twice, and their size is unknown until they end. :class:`OnePassSource`
keeps the bytes from the last acknowledged offset on (``release`` drops what the server holds)
and reads more only when ``ensure`` asks and the retention limit allows: at most one chunk plus
one read, so memory stays bounded by the chunk size. What it reads comes from a *pull*: one of
:func:`pull_from_stream`, :func:`pull_from_iterator` and :func:`pull_from_async_iterator`.
:func:`tuspipe._source.open_source` picks one.
"""

from __future__ import annotations

import bisect
import collections
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import BinaryIO

import trio

from ._errors import UsageError

__all__ = [
    "OnePassSource",
    "Pull",
    "pull_from_async_iterator",
    "pull_from_iterator",
    "pull_from_stream",
]

Pull = Callable[[int], Awaitable[bytes]]
"""Reads up to n more bytes of a one-pass source (maybe more, for iterators); b"" at its end."""


class OnePassSource:
    """A source that can be read once, front to back: it keeps what is not yet acknowledged.

    `retention` bounds the bytes held beyond the acknowledged offset; ``ensure`` waits for
    ``release`` when reading on would exceed it.
    """

    in_memory = True  # what it holds, it holds in memory

    def __init__(self, pull: Pull, name: str, *, read_size: int, retention: int) -> None:
        self._pull = pull
        self._read_size = read_size
        self._retention = retention
        self._blocks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._starts: collections.deque[int] = collections.deque()  # each block's offset
        self._lock = threading.Lock()  # read_at may run in worker threads (checksums)
        self._floor = 0  # bytes below were released
        self._filled = 0  # bytes read from the stream so far
        self._released = trio.Event()
        self.size: int | None = None
        self.name = name
        self.identity: str | None = None

    async def ensure(self, end: int) -> int:
        while self._filled < end and self.size is None:
            while self._filled - self._floor >= self._retention:
                await self._released.wait()
            held = self._filled - self._floor
            # (An iterator's items are gathered up to this size: see pull_from_iterator.)
            data = await self._pull(
                min(self._read_size, end - self._filled, self._retention - held)
            )
            if not data:
                self.size = self._filled
                break
            with self._lock:
                self._blocks.append((self._filled, data))
                self._starts.append(self._filled)
                self._filled += len(data)
        return min(end, self._filled)

    def read_at(self, offset: int, length: int) -> bytes:
        with self._lock:
            if offset < self._floor or offset + length > self._filled:
                raise RuntimeError(
                    f"{self.name}: bytes {offset}..{offset + length} are not held "
                    f"(held: {self._floor}..{self._filled})"
                )
            parts = []
            # Blocks are in offset order: start at the last one beginning at or before offset.
            index = max(0, bisect.bisect_right(self._starts, offset) - 1)
            for position in range(index, len(self._blocks)):
                start, data = self._blocks[position]
                if start >= offset + length:
                    break
                if start + len(data) > offset:
                    parts.append(data[max(0, offset - start) : offset + length - start])
            return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self, offset: int) -> None:
        with self._lock:
            while self._blocks and self._blocks[0][0] + len(self._blocks[0][1]) <= offset:
                self._blocks.popleft()
                self._starts.popleft()
            self._floor = max(self._floor, offset)
        self._released.set()
        self._released = trio.Event()

    def span_at(self, offset: int, length: int) -> None:
        """Bytes of a stream live in memory, not in a file."""
        return None

    def read_now(self, offset: int, length: int) -> bytes:
        """What a one-pass source holds is in memory: reading it never waits."""
        return self.read_at(offset, length)

    def close(self) -> None:
        """The caller owns the stream or iterator; it is left as it is."""
        with self._lock:
            self._blocks.clear()
            self._starts.clear()


def _bytes_item(item: object, name: str) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise UsageError(f"{name} yielded a {type(item).__name__}; it must yield bytes")


def pull_from_stream(stream: BinaryIO, name: str) -> Pull:
    async def pull(size: int) -> bytes:
        # A read of a pipe or terminal may block indefinitely; a cancelled upload abandons it.
        data = await trio.to_thread.run_sync(stream.read, size, abandon_on_cancel=True)
        if isinstance(data, str):
            raise UsageError("the stream is open in text mode; open it in binary mode")
        if data is None:
            # A non-blocking stream with no bytes ready: not its end, which b"" would say.
            raise UsageError(
                f"{name} is in non-blocking mode and had no bytes ready; "
                "pass a blocking stream (os.set_blocking(fd, True))"
            )
        return bytes(data)

    return pull


def pull_from_iterator(iterator: Iterator[object], name: str) -> Pull:
    def next_batch(size: int) -> bytes:
        # Items are gathered into one block per worker-thread trip: a stream of small items
        # (lines of a log, rows of a CSV) would otherwise pay a trip, a block and a channel
        # hand-over per item.
        # This loop runs once per item: it is kept to the bare steps (bytes are taken as they
        # are, without a call; anything else goes through _bytes_item).
        batch: list[bytes] = []
        append = batch.append
        gathered = 0
        for item in iterator:
            data = item if item.__class__ is bytes else _bytes_item(item, name)
            append(data)
            gathered += len(data)
            if gathered >= size:
                break
        return b"".join(batch)

    async def pull(size: int) -> bytes:
        return await trio.to_thread.run_sync(next_batch, size, abandon_on_cancel=True)

    return pull


def pull_from_async_iterator(iterator: AsyncIterator[object], name: str) -> Pull:
    async def pull(size: int) -> bytes:
        # Gathered on the loop, as the items come (see pull_from_iterator).
        batch: list[bytes] = []
        gathered = 0
        async for item in iterator:
            data = _bytes_item(item, name)
            batch.append(data)
            gathered += len(data)
            if gathered >= size:
                break
        return b"".join(batch)

    return pull
