"""The pipeline's stages: chunker, checksummer, reader and sender.

Each stage is one ``async def`` that owns the channel ends it is given (``with outbound:``
closes them on every exit, which tells the next stage the stream has ended), loops over its
inbound channel, and knows nothing about the other stages. Blocking work (file reads, hashing)
runs in worker threads via ``trio.to_thread`` so the event loop keeps the socket busy.

What flows between them, chunks and blocks, is :mod:`tuspipe._blocks`'s. The reader's bounded
channel of blocks is the read-ahead window; for a plain file the reader only asks the kernel to
bring each span into the page cache ahead of the sender.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import replace
from typing import Protocol

import trio

from ._blocks import Block, BlockCursor, Chunk, block_spans, read_block
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
from ._source import Source, spans

__all__ = [
    "UploadLink",
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
                await outbound.send(Block(chunk, offset, await read_block(source, offset, length)))


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
        cursor = BlockCursor(inbound, source, read_size, span_size)
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
