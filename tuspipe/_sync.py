"""The blocking facade: each blocking call is ``trio.run`` over its async twin, nothing more."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import trio

from ._errors import UsageError

__all__ = ["blocking"]

P = ParamSpec("P")
T = TypeVar("T")


def blocking(async_fn: Callable[P, Awaitable[T]], name: str) -> Callable[P, T]:
    """A blocking twin of `async_fn`, named `name`: ``trio.run`` over it.

    Called from inside trio it raises UsageError instead of blocking the event loop (which
    trio would refuse anyway, less clearly). Ctrl-C surfaces as KeyboardInterrupt once the
    async call has cleaned up.
    """

    @functools.wraps(async_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            raise UsageError(
                f"tuspipe.{name}() blocks and cannot run inside trio; "
                f"use `await tuspipe.{async_fn.__name__}(...)` there"
            )
        return trio.run(functools.partial(async_fn, *args, **kwargs))

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"Blocking form of :func:`{async_fn.__name__}` (``trio.run`` over it).\n\n" + (
        async_fn.__doc__ or ""
    )
    return run
