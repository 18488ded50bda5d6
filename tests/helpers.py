"""What the tests against :class:`~tests.fakes.FakeTusServer` share: seeded data, where a
PATCH ends, and HEADs that fail for a while.

Used by ``test_stages`` (each stage alone), ``test_pipeline``, ``test_api`` and
``test_journal_api``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx

from tests.fakes import FakeTusServer, SeenRequest

__all__ = ["DATA", "head_is_transient", "patch_end", "random_bytes"]


def random_bytes(size: int, seed: int = 0) -> bytes:
    """`size` pseudo-random bytes, the same ones for the same `seed`."""
    return random.Random(seed).randbytes(size)


DATA = random_bytes(1000, seed=8)
"""The 1000-byte source of the api tests."""


def patch_end(request: SeenRequest) -> int:
    """The offset just past the bytes a PATCH carried."""
    return request.offset + len(request.body)


def head_is_transient(status: int | None) -> Callable[[FakeTusServer], None]:
    """Make the server's next two HEADs fail: with `status`, or as network errors (None)."""

    def arrange(server: FakeTusServer) -> None:
        if status is not None:
            server.script(status, {"Tus-Resumable": "1.0.0"}, b"busy", method="HEAD", times=2)
            return
        failures = 0

        async def refuse_two_heads(request: httpx.Request) -> None:
            nonlocal failures
            if request.method == "HEAD" and failures < 2:
                failures += 1
                raise httpx.ConnectError("connection refused", request=request)

        server.before_request = refuse_two_heads

    return arrange
