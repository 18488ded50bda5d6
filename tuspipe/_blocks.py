"""What flows between the stages, and how a chunk's bytes are cut, read and taken again.

* :class:`Chunk` - a span of the source that one PATCH carries, with its ``Upload-Checksum``
  once the checksummer has hashed it. A chunk holds no bytes, so a 1 GiB chunk costs nothing.
* :class:`Block` - bytes of one chunk, read ahead by the reader. Blocks never straddle chunks.
  A block of a plain file holds no bytes either, only a :class:`~tuspipe._body.FileSpan`,
  which the transport sends with ``sendfile()`` where it can.
* :func:`block_spans` cuts a chunk into blocks (a file's spans may be larger than what is
  read into memory, since they cost none), :func:`read_block` makes one, and
  :class:`BlockCursor` is the sender's view of the reader's blocks, which takes again from the
  source what a PATCH sent but the server did not store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import trio

from ._body import BodyPart, FileSpan
from ._channels import ReceiveEnd
from ._source import Source, read_bytes, spans

__all__ = ["Block", "BlockCursor", "Chunk", "block_spans", "piece_of", "read_block"]


@dataclass(frozen=True)
class Chunk:
    """The span ``[offset, offset + length)`` of the source, sent as one PATCH."""

    offset: int
    length: int
    checksum: str | None = None  # a ready Upload-Checksum value, set by the checksummer
    # The upload's length, on the last chunk of an upload created with a deferred length.
    declare_length: int | None = None

    def __post_init__(self) -> None:
        if self.offset < 0 or self.length <= 0:
            raise ValueError(f"a chunk needs offset >= 0 and length > 0, not {self}")

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Block:
    """Bytes of the source at `offset`, lying inside `chunk`."""

    chunk: Chunk
    offset: int
    data: BodyPart

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


def block_spans(
    source: Source, start: int, end: int, read_size: int, span_size: int | None
) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of the blocks that carry ``[start, end)`` of `source`.

    Bytes that are read into memory go in blocks of `read_size`. A plain file's bytes go as
    spans of `span_size` instead (``sendfile()`` sends them from the page cache, so their size
    costs no memory, and fewer of them mean fewer trips through the stages), except its last
    `read_size` bytes, which are read (see :func:`read_block`).
    """
    if (
        span_size is None
        or span_size <= read_size
        or end - start <= read_size
        or source.span_at(start, 0) is None
    ):
        yield from spans(start, end, read_size)
        return
    read_from = max(start, end - read_size) if end == source.size else end
    yield from spans(start, read_from, span_size)
    yield from spans(read_from, end, read_size)


async def read_block(source: Source, offset: int, length: int) -> BodyPart:
    """The block ``[offset, offset + length)``: a prefetched span of a plain file, or bytes
    (those of other sources, and the block that ends a file: see :func:`block_spans`)."""
    span = source.span_at(offset, length) if offset + length != source.size else None
    if span is None:
        return await read_bytes(source, offset, length)
    # Only a hint that starts the disk reading and returns: no worker thread needed.
    span.prefetch()
    return span  # (the send to the channel that follows is the checkpoint)


def piece_of(data: BodyPart, skip: int, take: int, source: Source, offset: int) -> BodyPart:
    """The `take` bytes of `data` (found at `offset`) that follow its first `skip`."""
    if skip == 0 and take == len(data):
        return data
    if isinstance(data, FileSpan):
        piece = source.span_at(offset + skip, take)
        assert piece is not None  # a source that gave one span gives others
        return piece
    return data[skip : skip + take]


class BlockCursor:
    """The sender's view of the reader's block stream, plus re-reads of what it already took.

    The stream position is the offset of the next byte the stream will yield. Bytes the sender
    needs below it were consumed by a PATCH the server did not fully store, so they are taken
    again from the source (as spans of a file, like the reader's); stream bytes the server
    already holds are skipped.
    """

    def __init__(
        self,
        blocks: ReceiveEnd[Block],
        source: Source,
        read_size: int,
        span_size: int | None = None,
    ) -> None:
        self._blocks = blocks
        self._source = source
        self._read_size = read_size
        self._span_size = span_size
        self._pending: Block | None = None  # received from the stream, not yet consumed
        self._consumed_to = 0  # end of the last consumed block
        self._chunk: Chunk | None = None  # the chunk of the newest block received

    async def _peek(self) -> Block:
        block = await self._peek_or_end()
        if block is None:
            raise RuntimeError("the reader ended before the sender reached the end")
        return block

    async def _peek_or_end(self) -> Block | None:
        if self._pending is None:
            try:
                self._pending = await self._blocks.receive()
            except trio.EndOfChannel:
                return None
            self._chunk = self._pending.chunk
        return self._pending

    @property
    def position(self) -> int:
        """The offset just past the last byte handed to a request (the furthest sent)."""
        return self._consumed_to if self._pending is None else self._pending.offset

    def _consume(self) -> Block:
        block = self._pending
        assert block is not None
        self._pending = None
        self._consumed_to = block.end
        return block

    async def chunk_at(self, offset: int) -> Chunk | None:
        """The chunk containing `offset`, dropping stream blocks of earlier chunks; None
        when the stream ends first (a source of unknown size ended at `offset`)."""
        while self._chunk is None or not self._chunk.offset <= offset < self._chunk.end:
            if self._pending is not None:
                self._consume()
            if await self._peek_or_end() is None:
                return None
        return self._chunk

    async def iter_bytes(self, start: int, end: int) -> AsyncIterator[BodyPart]:
        """Yield the source's bytes ``[start, end)``, which lie in one chunk."""
        position = self.position
        for reread, length in block_spans(
            self._source, start, min(end, position), self._read_size, self._span_size
        ):
            # Sent before, in a PATCH the server did not fully store (or refused): a file's
            # bytes go again as spans, without being read, as they went the first time.
            yield await read_block(self._source, reread, length)
        offset = max(start, position)
        while offset < end:
            block = await self._peek()
            if block.end <= offset:  # the server already holds all of it
                self._consume()
                continue
            if block.end > end:
                # A request shorter than the chunk (a body limit) ends inside this block: the
                # rest of it stays pending for the next request.
                self._pending = Block(
                    block.chunk,
                    end,
                    piece_of(
                        block.data, end - block.offset, block.end - end, self._source, block.offset
                    ),
                )
                self._consumed_to = end
            else:
                self._consume()
            first = max(offset, block.offset)
            last = min(end, block.end)
            offset = last
            yield piece_of(
                block.data, first - block.offset, last - first, self._source, block.offset
            )
