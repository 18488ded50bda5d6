"""Run a trio server (one of the test proxies) in a thread of its own, for blocking code, or
in a nursery of its own, for async tests.

:class:`ThreadedServer` owns the thread, the trio run and the stopping; a subclass adds the
server's controls, each run in the server's trio thread through :meth:`ThreadedServer._call`.
:class:`NurseryServer` is a base for a server used as ``async with server:``.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from types import TracebackType
from typing import ParamSpec, Protocol, Self, TypeVar

import trio

__all__ = ["NurseryServer", "Serving", "ThreadedServer", "listen"]

P = ParamSpec("P")
T = TypeVar("T")


class Serving(Protocol):
    """A server that listens once and reports its port when it is ready."""

    async def run(self, *, task_status: trio.TaskStatus[int] = ...) -> None: ...


async def listen(host: str, port: int) -> trio.SocketListener:
    """A listener on `host` (an IP literal) and `port` (0: a free one, see its socket)."""
    sock = trio.socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


class NurseryServer:
    """A server that runs, as ``async with server:``, in a nursery of its own for the block.

    A subclass provides :meth:`run`. An error raised in the block comes out as itself, not
    wrapped in an exception group.
    """

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        raise NotImplementedError

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[Self]:
        error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run)
            try:
                yield self
            except BaseException as exc:
                error = exc  # raised again outside the nursery
            finally:
                nursery.cancel_scope.cancel()
        if error is not None:
            raise error

    async def __aenter__(self) -> Self:
        self._block: AbstractAsyncContextManager[Self] = self._running()
        return await self._block.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._block.__aexit__(exc_type, exc, traceback)


class ThreadedServer:
    """Start with :meth:`start` (or ``with``), stop with :meth:`close` (every connection is
    closed with the server)."""

    def __init__(self, server: Serving, thread_name: str) -> None:
        self._server = server
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._main, name=self._thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"{self._thread_name} did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"{self._thread_name} failed to start") from self._error
        return self

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(self._server.run)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        stop = self._stop
        if stop is not None:
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(stop.set, trio_token=self._token)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"{self._thread_name} did not stop within {timeout} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `function` in the server's trio thread and return what it returns."""
        if self._token is None:
            raise RuntimeError(f"{self._thread_name} is not running; call start() first")
        return trio.from_thread.run_sync(
            functools.partial(function, *args, **kwargs), trio_token=self._token
        )
