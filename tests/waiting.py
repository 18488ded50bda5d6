"""Waiting, in blocking test code, for something outside the test to reach a state.

A real server settling after a killed client, a subprocess draining a pipe: the test cannot
be told when that happens, so it asks again and again until the state holds, and fails at a
deadline instead of hanging. (Code under trio waits on events or
``trio.testing.wait_all_tasks_blocked`` instead.)
"""

from __future__ import annotations

import fcntl
import struct
import termios
import time
from collections.abc import Callable
from typing import IO, TypeVar

import pytest

__all__ = ["settled", "unread_bytes", "wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], bool], what: str, *, timeout: float = 30.0, interval: float = 0.01
) -> None:
    """Return once `condition()` is true; fail the test, saying `what` did not happen, if it
    is still false after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(interval)


def settled(read: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """What `read()` returns once two reads `interval` seconds apart agree: a server's answer
    once what it was still doing (the body of a PATCH whose client was killed, landing) is
    done. Fails the test if the answers still change after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    previous = read()
    while True:
        time.sleep(interval)
        current = read()
        if current == previous:
            return current
        if time.monotonic() >= deadline:
            pytest.fail(f"still changing after {timeout} s: {previous!r}, then {current!r}")
        previous = current


def unread_bytes(pipe: IO[bytes]) -> int:
    """How many bytes written into `pipe` (either end) its reader has not taken yet."""
    answer = fcntl.ioctl(pipe.fileno(), termios.FIONREAD, b"\0" * 4)
    count: int = struct.unpack("i", answer)[0]
    return count
