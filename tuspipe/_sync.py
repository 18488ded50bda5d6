"""The blocking facade: each blocking call is ``trio.run`` over its async twin, nothing more.

Where trio cannot run in the calling thread, because an asyncio loop runs there (a notebook
cell, a coroutine that calls ``tuspipe.upload`` without ``await``) and its Ctrl-C handling (or
tuspipe's own guest run on it, see :mod:`tuspipe._loops`) would get in the way, the same
``trio.run`` runs in a worker thread while the caller waits; Ctrl-C in the waiting thread then
cancels it and surfaces as KeyboardInterrupt once the upload has cleaned up. The same holds in
a thread where a guest run is parked on a loop that is not running (a thread hosts one trio
run at a time).
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar

import trio

from ._errors import UsageError
from ._loops import asyncio_running_here

__all__ = ["blocking"]

P = ParamSpec("P")
T = TypeVar("T")


def blocking(
    async_fn: Callable[P, Awaitable[T]],
    name: str,
    *,
    qualname: str | None = None,
    instead: str | None = None,
) -> Callable[P, T]:
    """A blocking twin of `async_fn`, named `name`: ``trio.run`` over it.

    `qualname` names it in messages (default ``tuspipe.<name>``); `instead` says what to use
    inside trio (default: awaiting ``tuspipe.<async_fn's name>``).

    Called from inside trio it raises UsageError instead of blocking the event loop (which
    trio would refuse anyway, less clearly). Called where an asyncio loop runs in the thread,
    it runs trio in a worker thread (its callbacks run there) and waits. Ctrl-C surfaces as
    KeyboardInterrupt once the async call has cleaned up.
    """
    label = qualname or f"tuspipe.{name}"
    suggestion = instead or f"`await tuspipe.{async_fn.__name__}(...)`"

    @functools.wraps(async_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            raise UsageError(f"{label}() blocks and cannot run inside trio; use {suggestion} there")
        call = functools.partial(async_fn, *args, **kwargs)
        if asyncio_running_here() or _trio_run_parked_here():
            return _Worker(call).run()
        return trio.run(call)

    run.__name__ = name
    run.__qualname__ = label.removeprefix("tuspipe.")
    if qualname is None:
        run.__doc__ = (
            f"Blocking form of :func:`{async_fn.__name__}` (``trio.run`` over it).\n\n"
            + (async_fn.__doc__ or "")
        )
    return run


def _trio_run_parked_here() -> bool:
    """Whether a trio run is live in this thread outside any of its tasks: a guest run on an
    asyncio loop that is not running now (a tuspipe.Client left open on it). trio.run would
    refuse to start here then, as a thread hosts one trio run at a time."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


class _Worker(Generic[T]):
    """``trio.run(call)`` in a worker thread, with Ctrl-C in the waiting thread cancelling it."""

    def __init__(self, call: Callable[[], Awaitable[T]]) -> None:
        self._call = call
        self._interrupted = False
        self._scope: trio.CancelScope | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> T:
        """Run the call in a new thread and wait for it; raise what it raised, or
        KeyboardInterrupt after a Ctrl-C (once the call has cleaned up)."""
        thread = threading.Thread(target=self._thread, name="tuspipe-trio", daemon=True)
        previous: Any = None
        if threading.current_thread() is threading.main_thread():
            # Only the main thread gets signals. Replacing the handler (asyncio.run's only
            # cancels a task, and the loop cannot run while this thread waits) for the wait.
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:
                signal.signal(signal.SIGINT, self._interrupt)
        try:
            thread.start()
            while thread.is_alive():
                thread.join(0.25)  # a timed wait, so a signal's handler runs promptly anywhere
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if self._interrupted:
            raise KeyboardInterrupt
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when _error is None

    def _thread(self) -> None:
        try:
            self._value = trio.run(self._cancellable)
        except BaseException as error:
            self._error = error

    async def _cancellable(self) -> T | None:
        with trio.CancelScope() as scope:
            self._scope = scope
            self._token = trio.lowlevel.current_trio_token()
            # Set before reading the flag, as _interrupt sets the flag before reading these:
            # one of the two sees the other, so an early Ctrl-C is never lost.
            if self._interrupted:
                scope.cancel()
            return await self._call()
        return None  # cancelled by Ctrl-C; run() raises KeyboardInterrupt

    def _interrupt(self, signum: int, frame: types.FrameType | None) -> None:
        self._interrupted = True
        token, scope = self._token, self._scope
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
