"""The one wiring function: stages, channels and a nursery.

Theory of operation
-------------------
::

    chunker --Chunk--> [checksummer] --Chunk--> reader --Block--> sender --offset--> reporter
                                                (read-ahead)      (PATCH)            (progress)

The chunker cuts the span to upload into chunks (one PATCH each). The checksummer, present
only when a checksum is used, hashes chunk k+1 while the sender streams chunk k. The reader
reads each chunk's bytes in blocks, ahead of the sender by at most ``read_ahead`` blocks. The
sender streams the blocks as PATCH bodies, checks every offset the server returns, and passes
each acknowledged offset to the reporter.

Every channel is bounded, so memory is bounded: at most ``read_ahead + 2`` blocks are alive at
once, whatever the chunk or file size; a chunk itself holds no bytes. Backpressure flows from
the socket up the chain.

Every channel is metered (:mod:`tuspipe._channels`): the time its producer sat blocked and its
consumer sat waiting end up in ``UploadResult.channel_stats``, which shows the bottleneck.

The stages run in one nursery, so none outlives :func:`run_pipeline`. When a stage fails, the
nursery cancels the others; the failure is raised again as one exception of the same type,
chained ``from`` the exception group, so callers can catch ``tuspipe.ChecksumMismatchError``
and still see every original traceback. Cancellation and KeyboardInterrupt pass through
untouched.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import NoReturn, TypeVar

import trio

from ._blocks import Block, Chunk
from ._bodylimits import BodyLimits
from ._channels import (
    ChannelStats,
    MeteredReceiveChannel,
    MeteredSendChannel,
    open_metered_channel,
)
from ._errors import TusError
from ._retry import DEFAULT_RETRY_POLICY, RetryingLink, RetryPolicy
from ._source import Source
from ._stages import checksummer, chunker, reader, reporter, sender
from ._transport import Transport

__all__ = ["PipelineSettings", "gather", "raise_from_group", "run_pipeline"]

logger = logging.getLogger("tuspipe")

T = TypeVar("T")

# Chunks the chunker may cut ahead of the next stage (they are spans, not bytes).
CHUNKS_WAITING = 8


@dataclass(frozen=True)
class PipelineSettings:
    """Sizes that shape the pipeline (validated by the api layer).

    chunk_size: bytes per PATCH. read_size: bytes per block read from the source into
    memory. read_ahead: blocks the reader may hold ahead of the sender. span_size: bytes per
    block of a plain file, sent with sendfile() (None: read_size).
    """

    chunk_size: int
    read_size: int
    read_ahead: int
    span_size: int | None = None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for member in group.exceptions:
        if isinstance(member, BaseExceptionGroup):
            leaves.extend(_leaves(member))
        else:
            leaves.append(member)
    return leaves


def raise_from_group(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise one exception standing for a failed pipeline, chained from the group.

    tuspipe's own errors and local file errors explain a failure; anything else in the group
    (a stage noticing that its neighbour vanished, say) is a consequence, so it is chosen
    only when nothing better is there.
    """
    leaves = _leaves(group)
    cause = next((leaf for leaf in leaves if isinstance(leaf, (TusError, OSError))), None)
    if cause is not None:
        # A copy of the same type and message, so `except tuspipe.X` works; the original,
        # with its traceback, stays in the group the copy is chained from.
        raise copy.copy(cause) from group
    raise TusError(f"the upload pipeline failed: {leaves[0]!r}") from group


async def gather(calls: list[Callable[[], Awaitable[None]]]) -> None:
    """Run `calls` at once in one nursery; the first failure cancels the rest and is raised
    as itself (see :func:`raise_from_group`)."""
    try:
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(call)
    except BaseExceptionGroup as group:
        if group.split(Exception)[1] is not None:
            raise
        raise_from_group(group)


async def run_pipeline(
    *,
    transport: Transport,
    url: str,
    headers: tuple[tuple[str, str], ...],
    source: Source,
    start: int,
    stop: int | None,
    algorithm: str | None,
    settings: PipelineSettings,
    retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    body_limits: BodyLimits | None = None,
    on_acknowledged: Callable[[int], Awaitable[None]],
    declare_length: bool = False,
    channel_stats: list[ChannelStats] | None = None,
) -> int:
    """Upload the source's bytes ``[start, stop)`` to `url`; return the server's final offset.

    `stop` None means the source's end, which a one-pass source only finds by reading; with
    `declare_length` the PATCH carrying the last bytes declares the upload's length.

    `start` must be the server's current offset. `on_acknowledged` is called with each offset
    the server confirms, in increasing order (a newer one may supersede a few older ones).
    `body_limits` are the request sizes refused so far by servers (413), shared by a client's
    uploads; PATCHes are cut to fit them. When `channel_stats` is given, the figures of each
    channel are appended to it, also when the pipeline fails.
    """
    acknowledged = start

    async def record(offset: int) -> None:
        nonlocal acknowledged
        acknowledged = offset
        await on_acknowledged(offset)

    opened: list[ChannelStats] = []

    def channel(
        item_type: type[T], name: str, capacity: int
    ) -> tuple[MeteredSendChannel[T], MeteredReceiveChannel[T]]:
        send, receive, stats = open_metered_channel(item_type, name, capacity)
        opened.append(stats)
        return send, receive

    try:
        async with trio.open_nursery() as nursery:
            # Chunks hold no bytes, so a few may wait: the checksummer hashes small ones in batches.
            chunks_out, chunks_in = channel(Chunk, "chunks", CHUNKS_WAITING)
            nursery.start_soon(
                partial(
                    chunker,
                    chunks_out,
                    source=source,
                    start=start,
                    stop=stop,
                    chunk_size=settings.chunk_size,
                    declare_length=declare_length,
                )
            )
            if algorithm is not None:
                hashed_out, hashed_in = channel(Chunk, "hashed", 0)
                nursery.start_soon(
                    partial(
                        checksummer,
                        chunks_in,
                        hashed_out,
                        source=source,
                        algorithm=algorithm,
                        read_size=settings.read_size,
                    )
                )
                chunks_in = hashed_in
            blocks_out, blocks_in = channel(Block, "blocks", settings.read_ahead)
            nursery.start_soon(
                partial(
                    reader,
                    chunks_in,
                    blocks_out,
                    source=source,
                    read_size=settings.read_size,
                    span_size=settings.span_size,
                )
            )
            # Roomy, so the sender hardly ever waits for the reporter, which coalesces anyway.
            acks_out, acks_in = channel(int, "acks", 64)
            nursery.start_soon(
                partial(
                    sender,
                    blocks_in,
                    acks_out,
                    link=RetryingLink(transport, url, headers, retry, body_limits),
                    url=url,
                    headers=headers,
                    source=source,
                    start=start,
                    stop=stop,
                    algorithm=algorithm,
                    read_size=settings.read_size,
                    span_size=settings.span_size,
                )
            )
            nursery.start_soon(partial(reporter, acks_in, on_acknowledged=record))
    except BaseExceptionGroup as group:
        if group.split(Exception)[1] is not None:
            raise  # Cancelled or KeyboardInterrupt: trio and the caller deal with those
        logger.debug("pipeline failed at offset %d", acknowledged, exc_info=group)
        raise_from_group(group)
    finally:
        if channel_stats is not None:
            channel_stats.extend(opened)
        for stats in opened:
            logger.debug(
                "channel %s: %d items, producer blocked %.3f s, consumer waited %.3f s",
                stats.name,
                stats.items,
                stats.send_wait,
                stats.receive_wait,
            )
    return acknowledged
