"""Running tests under both event loops tuspipe supports: trio and asyncio.

Every ``async def`` test here runs under trio (pytest-trio's trio mode). A test marked
:data:`both_loops` runs twice, as ``[trio]`` and ``[asyncio]``: the second time its coroutine is
run by ``asyncio.run`` instead, so every tuspipe coroutine it awaits goes through tuspipe's
asyncio bridge (trio's guest mode on the asyncio loop). Such a test may use sync fixtures only
and await only what works under both (tuspipe's public coroutines, httpx, compat's
AsyncUploader); its assertions are the same under both.

From a sync test, :func:`run_on` runs a coroutine function under the loop named.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

__all__ = ["LOOPS", "both_loops", "loop_name", "pytest_collection_modifyitems", "run_on"]

T = TypeVar("T")

LOOPS = ("trio", "asyncio")

both_loops = pytest.mark.usefixtures("loop_name")
"""Run the marked async test under trio and under asyncio."""


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    """The event loop this run of the test uses: "trio" or "asyncio"."""
    name: str = request.param
    return name


def run_on(loop: str, function: Callable[[], Awaitable[T]]) -> T:
    """Run ``await function()`` under the event loop named `loop` and return its result."""

    async def main() -> T:
        return await function()

    if loop == "trio":
        return trio.run(main)
    assert loop == "asyncio", loop
    return asyncio.run(main())


@pytest.hookimpl(trylast=True)  # after pytest-trio has marked the async tests as trio's
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hand the ``[asyncio]`` runs of :data:`both_loops` tests to ``asyncio.run``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if not isinstance(item, pytest.Function) or callspec is None:
            continue
        if callspec.params.get("loop_name") != "asyncio":
            continue
        item.own_markers = [marker for marker in item.own_markers if marker.name != "trio"]
        item.obj = _under_asyncio(item.obj)


def _under_asyncio(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(**arguments: Any) -> None:
        run_on("asyncio", functools.partial(test, **arguments))

    return run
