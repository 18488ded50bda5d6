"""When and how long to wait before trying a failed request again.

The policy is a value (:class:`RetryPolicy`); :func:`retrying` runs an async call under it,
sleeping with ``trio.sleep`` so that tests run backoff in virtual time. Which failures are
worth another try follows PROTOCOL.md's handling policy: network errors and timeouts, and the
statuses :func:`~tuspipe._protocol.classify_status` marks RETRY (408, 423, 429, 5xx).
Everything else is final at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import trio

from ._errors import NetworkError, ResponseError, TusError, UsageError
from ._protocol import Action, classify_status

__all__ = ["RetryPolicy", "is_transient", "retry_after_seconds", "retrying"]

logger = logging.getLogger("tuspipe")

T = TypeVar("T")

# A server may ask for any Retry-After; waiting longer than this is never what a user wants.
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try again, and how long to wait before each try.

    `delays`, when given, are the waits before the 1st, 2nd, ... retry (the last repeats);
    otherwise the wait is ``min(cap, base * 2**attempt)`` scaled by a random jitter factor in
    [0.5, 1], so that many clients do not retry in lockstep. A server's ``Retry-After`` takes
    precedence, capped at MAX_RETRY_AFTER.
    """

    retries: int = 5
    base: float = 0.5
    cap: float = 30.0
    delays: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise UsageError(f"retries must be an int, not {self.retries!r}")
        if self.retries < 0:
            raise UsageError(f"retries must be >= 0, not {self.retries}")
        if not (self.base >= 0 and self.cap >= 0):
            raise UsageError("retry base and cap must be >= 0 seconds")
        if self.delays is not None and (
            not self.delays or any(not delay >= 0 for delay in self.delays)
        ):
            raise UsageError("retry_delays must be a non-empty sequence of seconds >= 0")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        if self.delays is not None:
            return float(self.delays[min(attempt, len(self.delays) - 1)])
        ceiling = min(self.cap, self.base * (2.0**attempt))
        return ceiling * random.uniform(0.5, 1.0)


def is_transient(error: BaseException) -> bool:
    """True for failures that another try may cure."""
    if isinstance(error, NetworkError):
        return True
    if isinstance(error, ResponseError) and error.status_code:
        return classify_status(error.method, error.status_code) is Action.RETRY
    return False


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's ``Retry-After`` on a failed answer, in seconds, if it sent a usable one."""
    if not isinstance(error, ResponseError):
        return None
    value = error.headers.get("retry-after", "").strip()
    if not value or len(value) > 64:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import time

    return max(0.0, moment.timestamp() - time.time())


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
    should_retry: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Await `call()`, trying again after transient failures as `policy` allows."""
    attempt = 0
    while True:
        try:
            return await call()
        except TusError as error:
            if attempt >= policy.retries or not should_retry(error):
                raise
            wait = policy.delay(attempt, retry_after_seconds(error))
            attempt += 1
            logger.warning(
                "%s failed (%s); retry %d of %d in %.1f s",
                what,
                error,
                attempt,
                policy.retries,
                wait,
            )
            await trio.sleep(wait)
