"""The pipeline's stages: chunker, checksummer, reader and sender.

Each stage is one ``async def`` that owns the channel ends it is given (``with outbound:``
closes them on every exit, which tells the next stage the stream has ended), loops over its
inbound channel, and knows nothing about the other stages. Blocking work (file reads, hashing)
runs in worker threads via ``trio.to_thread`` so the event loop keeps the socket busy.

What flows between them:

* :class:`Chunk` - a span of the source that one PATCH carries, with its ``Upload-Checksum``
  once the checksummer has hashed it. A chunk holds no bytes, so a 1 GiB chunk costs nothing.
* :class:`Block` - up to ``read_size`` bytes of one chunk, read ahead by the reader. Blocks
  never straddle chunks; the reader's bounded channel is the read-ahead window. A block of a
  plain file holds no bytes either, only a :class:`~tuspipe._body.FileSpan` (of up to
  ``span_size`` bytes, since it costs no memory), which the transport sends with
  ``sendfile()`` where it can; the reader only asks the kernel to bring it into the page
  cache ahead of the sender.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import trio

from ._body import BodyPart, FileSpan
from ._channels import ReceiveEnd, SendEnd
from ._errors import ChecksumMismatchError, ProtocolError, TusError, UploadTooLargeError
from ._protocol import (
    Hasher,
    Request,
    Response,
    answer_error,
    checksum_header,
    new_hasher,
    parse_patch,
    patch_request,
)
from ._source import Source, read_bytes, spans

__all__ = [
    "Block",
    "Chunk",
    "UploadLink",
    "block_spans",
    "checksummer",
    "chunker",
    "digest_range",
    "reader",
    "reporter",
    "sender",
]

logger = logging.getLogger("tuspipe")

# A server that answers PATCH after PATCH without storing a byte would loop forever.
MAX_PATCHES_WITHOUT_PROGRESS = 3
# A chunk the server reports corrupted (460) is sent again this many times before giving up:
# a flaky link corrupts once in a while, a broken one every time.
MAX_CHECKSUM_RESENDS = 3
# The checksummer hashes waiting chunks together, up to this many bytes per worker-thread trip.
HASH_BATCH_BYTES = 8 * 1024 * 1024
# Batches the checksummer hashes at once (in as many worker threads).
HASH_WORKERS = 2


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


def _downstream_may_leave() -> contextlib.suppress:
    """End a stage quietly when the next stage has closed its end of the channel.

    The next stage only leaves early when it failed (and its error is the one that counts)
    or finished: either way this stage has nothing left to do.
    """
    return contextlib.suppress(trio.BrokenResourceError)


def _hash_range(
    source: Source,
    offset: int,
    length: int,
    algorithm: str,
    read_size: int,
    buffer: bytearray | None = None,
) -> bytes:
    """The digest of the source's bytes ``[offset, offset + length)``; a file is read through
    `buffer` (one of `read_size` bytes is made when none is given)."""
    hasher = new_hasher(algorithm)
    span = source.span_at(offset, length)
    if span is None:
        for piece_offset, piece_length in spans(offset, offset + length, read_size):
            hasher.update(source.read_at(piece_offset, piece_length))
    else:
        _hash_span(span, hasher, buffer or bytearray(min(read_size, length)))
    return hasher.digest()


def _hash_span(span: FileSpan, hasher: Hasher, buffer: bytearray) -> None:
    """Hash a file span through `buffer`, reused read after read (no new bytes objects)."""
    view = memoryview(buffer)
    done = 0
    while done < span.length:
        wanted = min(len(buffer), span.length - done)
        got = os.preadv(span.fd, [view[:wanted]], span.file_offset + done)
        if got == 0:
            raise span.short_read(done)
        hasher.update(view[:got])
        done += got
    span.check_unchanged()


async def digest_range(
    source: Source, offset: int, length: int, algorithm: str, read_size: int
) -> str:
    """The ``Upload-Checksum`` value for a span, hashed in a worker thread."""
    digest = await trio.to_thread.run_sync(
        _hash_range, source, offset, length, algorithm, read_size
    )
    return checksum_header(algorithm, digest)


async def chunker(
    outbound: SendEnd[Chunk],
    *,
    source: Source,
    start: int,
    stop: int | None,
    chunk_size: int,
    declare_length: bool = False,
) -> None:
    """Cut ``[start, stop)`` (to the source's end when `stop` is None) into chunks of
    `chunk_size` bytes; the last may be shorter.

    With `declare_length` (an upload created with a deferred length), the chunk that ends
    the source carries the upload's length. A chunk is only cut once the source has shown
    whether a byte follows it, so a source that ends exactly on a chunk boundary is declared
    on its last chunk too.
    """
    with outbound, _downstream_may_leave():
        offset = start
        while stop is None or offset < stop:
            end = offset + chunk_size if stop is None else min(offset + chunk_size, stop)
            available = await source.ensure(end + 1)
            last = available <= end
            end = min(end, available)
            if end <= offset:
                break
            declared = end if last and declare_length else None
            await outbound.send(Chunk(offset, end - offset, declare_length=declared))
            if last:
                break
            offset = end


async def checksummer(
    inbound: ReceiveEnd[Chunk],
    outbound: SendEnd[Chunk],
    *,
    source: Source,
    algorithm: str,
    read_size: int,
) -> None:
    """Attach an ``Upload-Checksum`` to each chunk.

    It reads the chunk's span itself rather than the reader's blocks: the header must be known
    before the PATCH body starts, and holding a chunk's blocks until then would make memory
    grow with the chunk size. While the sender streams chunk k, this hashes the chunks after
    it: chunks already waiting go to a worker thread together (up to HASH_BATCH_BYTES), up to
    HASH_WORKERS batches at once, and leave in order.
    """
    with inbound, outbound, _downstream_may_leave():
        # Up to HASH_WORKERS batches are hashed at once, in worker threads, and handed on in
        # order. Chunks already waiting join a batch: small chunks would otherwise each pay
        # a round trip to a thread (and its GIL hand-overs).
        pending_out, pending_in = trio.open_memory_channel[_PendingDigests](HASH_WORKERS - 1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_hand_on_in_order, pending_in, outbound)
            with pending_out:
                async for chunk in inbound:
                    batch = [chunk]
                    batch_bytes = chunk.length
                    while batch_bytes < HASH_BATCH_BYTES:
                        try:
                            waiting = inbound.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        batch.append(waiting)
                        batch_bytes += waiting.length
                    pending = _PendingDigests(batch)
                    nursery.start_soon(pending.compute, source, algorithm, read_size)
                    await pending_out.send(pending)


class _PendingDigests:
    """Chunks whose digests a worker thread is computing."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self.checksums: list[str] = []
        self.done = trio.Event()

    async def compute(self, source: Source, algorithm: str, read_size: int) -> None:
        self.checksums = await trio.to_thread.run_sync(
            _checksum_chunks, source, self.chunks, algorithm, read_size
        )
        self.done.set()


async def _hand_on_in_order(
    pending_in: trio.MemoryReceiveChannel[_PendingDigests], outbound: SendEnd[Chunk]
) -> None:
    with pending_in:
        async for pending in pending_in:
            await pending.done.wait()
            for chunk, checksum in zip(pending.chunks, pending.checksums, strict=True):
                await outbound.send(replace(chunk, checksum=checksum))


def _checksum_chunks(
    source: Source, chunks: list[Chunk], algorithm: str, read_size: int
) -> list[str]:
    """The ``Upload-Checksum`` values of `chunks`, read through one buffer for them all."""
    buffer = bytearray(min(read_size, max(chunk.length for chunk in chunks)))
    return [
        checksum_header(
            algorithm,
            _hash_range(source, chunk.offset, chunk.length, algorithm, read_size, buffer),
        )
        for chunk in chunks
    ]


async def reader(
    inbound: ReceiveEnd[Chunk],
    outbound: SendEnd[Block],
    *,
    source: Source,
    read_size: int,
    span_size: int | None = None,
) -> None:
    """Read each chunk's bytes ahead of the sender, in blocks of at most `read_size` (a plain
    file's in spans of at most `span_size`, by default `read_size`: see :func:`block_spans`).

    A plain file's blocks are spans, prefetched into the page cache rather than read; only
    the block that ends the file is read, so the upload's last bytes pass the same change
    check as a read before the server can complete the upload with them.
    """
    with inbound, outbound, _downstream_may_leave():
        async for chunk in inbound:
            for offset, length in block_spans(
                source, chunk.offset, chunk.end, read_size, span_size
            ):
                await outbound.send(Block(chunk, offset, await _read_block(source, offset, length)))


def block_spans(
    source: Source, start: int, end: int, read_size: int, span_size: int | None
) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of the blocks that carry ``[start, end)`` of `source`.

    Bytes that are read into memory go in blocks of `read_size`. A plain file's bytes go as
    spans of `span_size` instead (``sendfile()`` sends them from the page cache, so their size
    costs no memory, and fewer of them mean fewer trips through the stages), except its last
    `read_size` bytes, which are read (see :func:`_read_block`).
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


async def _read_block(source: Source, offset: int, length: int) -> BodyPart:
    span = source.span_at(offset, length) if offset + length != source.size else None
    if span is None:
        return await read_bytes(source, offset, length)
    # Only a hint that starts the disk reading and returns: no worker thread needed.
    span.prefetch()
    return span  # (the send to the channel that follows is the checkpoint)


def _piece(data: BodyPart, skip: int, take: int, source: Source, offset: int) -> BodyPart:
    """The `take` bytes of `data` (found at `offset`) that follow its first `skip`."""
    if skip == 0 and take == len(data):
        return data
    if isinstance(data, FileSpan):
        piece = source.span_at(offset + skip, take)
        assert piece is not None  # a source that gave one span gives others
        return piece
    return data[skip : skip + take]


class _BlockCursor:
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
            yield await _read_block(self._source, reread, length)
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
                    _piece(
                        block.data, end - block.offset, block.end - end, self._source, block.offset
                    ),
                )
                self._consumed_to = end
            else:
                self._consume()
            first = max(offset, block.offset)
            last = min(end, block.end)
            offset = last
            yield _piece(block.data, first - block.offset, last - first, self._source, block.offset)


class UploadLink(Protocol):
    """What the sender needs of the world beyond its channels; the pipeline passes one in
    (:class:`tuspipe._retry.RetryingLink`: the transport, under the upload's retry policy)."""

    async def send(self, request: Request, body: AsyncIterable[BodyPart]) -> Response:
        """Send a PATCH with `body`; its answer, or a TusError."""
        ...

    async def recover(
        self, error: TusError, acknowledged: int, sent_up_to: int
    ) -> tuple[int, bool]:
        """After a failed PATCH: wait as the retry policy says, then return the server's
        offset (between `acknowledged` and `sent_up_to`) and whether it knows the upload's
        length. Raises `error` again when the policy allows no further try."""
        ...

    def progressed(self, body: int) -> None:
        """A PATCH of `body` bytes advanced the server's offset: the count of failed tries
        starts afresh."""
        ...

    def max_body(self) -> int | None:
        """The most bytes one PATCH may carry to this server, once it refused more (413)."""
        ...

    async def body_refused(
        self, error: TusError, body: int, acknowledged: int, sent_up_to: int
    ) -> tuple[int, bool]:
        """A PATCH of `body` bytes was refused as too large (413): lower :meth:`max_body`
        (raising `error`, with the limit found, where it goes no lower), then return the
        server's offset and whether it knows the length, as :meth:`recover` does."""
        ...


class _Stalemate:
    """Counts what must not go on forever: 460s, PATCHes that store nothing."""

    def __init__(self) -> None:
        self.checksum_resends = 0
        self.patches_without_progress = 0

    def progressed(self) -> None:
        self.checksum_resends = self.patches_without_progress = 0


async def sender(
    inbound: ReceiveEnd[Block],
    acknowledged: SendEnd[int],
    *,
    link: UploadLink,
    url: str,
    headers: tuple[tuple[str, str], ...],
    source: Source,
    start: int,
    stop: int | None,
    algorithm: str | None,
    read_size: int,
    span_size: int | None = None,
) -> None:
    """PATCH the blocks to `url`, one request per chunk, and report each acknowledged offset.

    The server is the authority: after every PATCH the sender continues from the offset the
    server returned, which may be short of what was sent (the rest is sent again). A failed
    PATCH goes to `link` to recover (a wait and a HEAD, as the retry policy allows), and the
    upload goes on from the offset the server reports; a 460 sends the same bytes again.
    """
    with inbound, acknowledged:
        cursor = _BlockCursor(inbound, source, read_size, span_size)
        limits = _Stalemate()
        offset = start
        length_known = False  # whether the server already holds a deferred upload's length
        while stop is None or offset < stop:
            chunk = await cursor.chunk_at(offset)
            if chunk is None:  # a source of unknown size has ended
                break
            # A server that refused large bodies (413) gets the chunk in pieces it accepts.
            max_body = link.max_body()
            end = chunk.end if max_body is None else min(chunk.end, offset + max_body)
            checksum = chunk.checksum
            if algorithm is not None and (offset, end) != (chunk.offset, chunk.end):
                # A partial send needs a digest of exactly the bytes it carries.
                checksum = await digest_range(source, offset, end - offset, algorithm, read_size)
            # A length is declared once: some servers (@tus/server) record it before reading
            # the body, and refuse a resend that declares it again.
            declared = None if length_known or end != chunk.end else chunk.declare_length
            request = patch_request(url, offset, end - offset, checksum, headers, declared)
            try:
                response = await link.send(request, cursor.iter_bytes(offset, end))
                new_offset = parse_patch(request, response)
            except ChecksumMismatchError:
                # The server stored nothing and its offset is unchanged: send the same bytes.
                limits.checksum_resends += 1
                if limits.checksum_resends > MAX_CHECKSUM_RESENDS:
                    raise
                logger.warning(
                    "the server found the chunk at offset %d corrupted; sending it again (%d/%d)",
                    offset,
                    limits.checksum_resends,
                    MAX_CHECKSUM_RESENDS,
                )
                continue
            except UploadTooLargeError as error:
                new_offset, length_known = await link.body_refused(
                    error, end - offset, offset, cursor.position
                )
            except TusError as error:
                new_offset, length_known = await link.recover(error, offset, cursor.position)
            else:
                _check_progress(request, response, offset, new_offset, limits)
                if new_offset < end:
                    logger.info(
                        "server stored %d of %d bytes at offset %d; continuing from %d",
                        new_offset - offset,
                        end - offset,
                        offset,
                        new_offset,
                    )
            if new_offset > offset:
                limits.progressed()
                link.progressed(end - offset)
                offset = new_offset
                source.release(offset)
                await acknowledged.send(offset)


def _check_progress(
    request: Request, response: Response, offset: int, new_offset: int, limits: _Stalemate
) -> None:
    """Fail when PATCH after PATCH is answered with success but stores nothing."""
    if new_offset > offset:
        return
    limits.patches_without_progress += 1
    if limits.patches_without_progress >= MAX_PATCHES_WITHOUT_PROGRESS:
        raise answer_error(
            ProtocolError,
            request,
            response,
            f"the server accepted {limits.patches_without_progress} PATCHes at offset "
            f"{offset} without storing a byte",
        )


async def reporter(
    inbound: ReceiveEnd[int],
    *,
    on_acknowledged: Callable[[int], Awaitable[None]],
) -> None:
    """Hand acknowledged offsets to `on_acknowledged` (progress, the journal).

    A newer offset supersedes older ones, so when offsets queue up while the callback is busy
    (writing the journal, say) only the newest is handed on: the sender never waits for it.
    """
    with inbound:
        async for offset in inbound:
            newest = offset
            while True:
                try:
                    newest = inbound.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await on_acknowledged(newest)
