"""Memory channels that keep count of who waited: the pipeline's bottleneck, measured.

Each channel between two stages records how long its producer sat blocked on a full buffer
(``send_wait``: the consumer is the slower one) and how long its consumer sat waiting on an
empty one (``receive_wait``: the producer is the slower one). A stage whose outbound channel
shows a large ``send_wait`` is ahead of the next stage; one whose inbound channel shows a large
``receive_wait`` is starved. The figures reach callers as ``UploadResult.channel_stats`` and
feed the benchmark harness. Timing an await costs two clock reads, so they are always on; the
clock is trio's, so a test's virtual clock times the waits exactly.

The ends behave as trio's memory channel ends do for the pipeline's stages (``send``,
``receive``, ``receive_nowait``, ``async for``, ``with``); the stages are typed against the
:class:`SendEnd` and :class:`ReceiveEnd` protocols, which trio's own ends satisfy as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, TypeVar

import trio

__all__ = [
    "ChannelStats",
    "MeteredReceiveChannel",
    "MeteredSendChannel",
    "ReceiveEnd",
    "SendEnd",
    "open_metered_channel",
]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
T_co = TypeVar("T_co", covariant=True)


@dataclass
class ChannelStats:
    """How one channel of the pipeline was used.

    Attributes:
        name: the channel ("chunks", "hashed", "blocks" or "acks").
        capacity: its buffer size (0: every item is a rendezvous).
        items: items that went through.
        send_wait: seconds the producer spent blocked because the buffer was full.
        receive_wait: seconds the consumer spent waiting because the buffer was empty.
    """

    name: str
    capacity: int
    items: int = 0
    send_wait: float = 0.0
    receive_wait: float = 0.0

    def merged(self, other: ChannelStats) -> ChannelStats:
        """The sum of two channels' figures (the same channel in two pipelines)."""
        return ChannelStats(
            self.name,
            max(self.capacity, other.capacity),
            self.items + other.items,
            self.send_wait + other.send_wait,
            self.receive_wait + other.receive_wait,
        )


class SendEnd(Protocol[T_contra]):
    """What a stage does with its outbound channel."""

    async def send(self, value: T_contra, /) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class ReceiveEnd(Protocol[T_co]):
    """What a stage does with its inbound channel."""

    async def receive(self) -> T_co: ...

    def receive_nowait(self) -> T_co: ...

    def close(self) -> None: ...

    def __aiter__(self) -> ReceiveEnd[T_co]: ...

    async def __anext__(self) -> T_co: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class MeteredSendChannel(Generic[T]):
    """The send end of a trio memory channel, timing the waits for room."""

    def __init__(self, channel: trio.MemorySendChannel[T], stats: ChannelStats) -> None:
        self._channel = channel
        self.stats = stats

    async def send(self, value: T, /) -> None:
        # The checkpoints of trio's own send: cancellation first, then a chance for others.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._channel.send_nowait(value)
        except trio.WouldBlock:
            started = trio.current_time()
            try:
                await self._channel.send(value)
            finally:
                self.stats.send_wait += trio.current_time() - started
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        self.stats.items += 1

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> MeteredSendChannel[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class MeteredReceiveChannel(Generic[T]):
    """The receive end of a trio memory channel, timing the waits for items."""

    def __init__(self, channel: trio.MemoryReceiveChannel[T], stats: ChannelStats) -> None:
        self._channel = channel
        self.stats = stats

    async def receive(self) -> T:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            value = self._channel.receive_nowait()
        except trio.WouldBlock:
            started = trio.current_time()
            try:
                return await self._channel.receive()
            finally:
                self.stats.receive_wait += trio.current_time() - started
        await trio.lowlevel.cancel_shielded_checkpoint()
        return value

    def receive_nowait(self) -> T:
        return self._channel.receive_nowait()

    def close(self) -> None:
        self._channel.close()

    def __aiter__(self) -> MeteredReceiveChannel[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __enter__(self) -> MeteredReceiveChannel[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_metered_channel(
    item_type: type[T], name: str, capacity: int
) -> tuple[MeteredSendChannel[T], MeteredReceiveChannel[T], ChannelStats]:
    """A bounded memory channel for items of `item_type`, whose two ends share one
    :class:`ChannelStats`."""
    send, receive = trio.open_memory_channel[T](capacity)
    stats = ChannelStats(name, capacity)
    return MeteredSendChannel(send, stats), MeteredReceiveChannel(receive, stats), stats
