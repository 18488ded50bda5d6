"""When and how long to wait before trying a failed request again.

The policy is a value (:class:`RetryPolicy`); :func:`retrying` runs an async call under it,
sleeping with ``trio.sleep`` so that tests run backoff in virtual time. Which failures are
worth another try follows PROTOCOL.md's handling policy: network errors and timeouts, and the
statuses the status table (:mod:`tuspipe._status`) marks RETRY (408, 423, 429, 5xx but 501).
Everything else is final at once.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from ._auth import CredentialsRefreshed
from ._body import BodyPart
from ._bodylimits import BodyLimits
from ._errors import (
    NetworkError,
    OffsetMismatchError,
    ProtocolError,
    ResponseError,
    SchemeMismatchError,
    TusError,
    UsageError,
)
from ._httpdate import seconds_until
from ._protocol import (
    Action,
    Request,
    Response,
    UploadStatus,
    answer_error,
    head_request,
    parse_creation,
    parse_head,
)
from ._status import meaning, shows_tus
from ._transport import Transport

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "RetryPolicy",
    "RetryingLink",
    "create_with_retries",
    "head_upload",
    "is_transient",
    "retry_after_seconds",
    "retrying",
]

logger = logging.getLogger("tuspipe")

T = TypeVar("T")

# A server may ask for any Retry-After; waiting longer than this is never what a user wants.
MAX_RETRY_AFTER = 300.0

# Times in a row a request with a body is sent again with fresh credentials (auth=,
# on_request) after a 401, before the refusal is final: a token that is refused even when
# fresh will be refused again.
MAX_CREDENTIAL_REFRESHES = 3


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
    should_retry: Callable[[TusError, int], bool] | None = None
    on_retry: Callable[[TusError, int, float], object] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise UsageError(f"retries must be an int, not {self.retries!r}")
        if self.retries < 0:
            raise UsageError(f"retries must be >= 0, not {self.retries}")
        for name, seconds in (("retry base", self.base), ("retry cap", self.cap)):
            if not _is_seconds(seconds):
                raise UsageError(f"{name} must be a finite number of seconds >= 0, not {seconds!r}")
        if self.delays is not None and (
            isinstance(self.delays, (str, bytes))
            or not isinstance(self.delays, Sequence)
            or not self.delays
            or not all(_is_seconds(delay) for delay in self.delays)
        ):
            raise UsageError(
                "retry_delays must be a non-empty sequence of finite seconds >= 0, "
                f"not {self.delays!r}"
            )
        for name in ("should_retry", "on_retry"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise UsageError(f"{name} must be callable")
        if self.delays is not None:
            object.__setattr__(self, "delays", tuple(self.delays))

    def allows(self, error: TusError, attempt: int) -> bool:
        """Whether failure number `attempt` (0-based, since the last progress) is retried.

        Never beyond `retries`; within them, the caller's `should_retry(error, attempt)` hook
        decides when given, else :func:`is_transient`.
        """
        if attempt >= self.retries:
            return False
        if self.should_retry is not None:
            return bool(self.should_retry(error, attempt))
        return is_transient(error)

    async def wait_before_retry(
        self, error: TusError, attempt: int, what: str, *, wait: float | None = None
    ) -> None:
        """Announce retry number `attempt` (1-based) of `what`, then sleep before it.

        `wait` overrides the policy's delay (0 for a failure that needs no pause).
        """
        if wait is None:
            wait = self.delay(attempt - 1, retry_after_seconds(error))
        logger.warning(
            "%s failed (%s); try %d of %d in %.1f s", what, error, attempt, self.retries, wait
        )
        if self.on_retry is not None:
            self.on_retry(error, attempt, wait)
        await trio.sleep(wait)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        if self.delays is not None:
            return float(self.delays[min(attempt, len(self.delays) - 1)])
        # The exponent is bounded: 2.0**1024 overflows, and the cap is reached long before.
        ceiling = min(self.cap, self.base * (2.0 ** min(attempt, 1023)))
        return ceiling * random.uniform(0.5, 1.0)


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


DEFAULT_RETRY_POLICY = RetryPolicy()


def is_transient(error: BaseException) -> bool:
    """True for failures that another try may cure: network errors and timeouts, and the
    statuses classified RETRY (408, 423, 429, 5xx) or RESYNC (409: ask for the offset)."""
    if isinstance(error, NetworkError):
        return not isinstance(error, SchemeMismatchError)  # the same port says the same
    if isinstance(error, ProtocolError):
        return False  # a server that breaks the protocol will break it again
    if isinstance(error, ResponseError) and error.status_code:
        action = meaning(error.method, error.status_code, shows_tus(error.headers)).action
        return action is Action.RETRY or action is Action.RESYNC
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
    remaining = seconds_until(value)
    return None if remaining is None else max(0.0, remaining)


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
) -> T:
    """Await `call()`, trying again after failures as `policy` allows."""
    attempt = 0
    while True:
        try:
            return await call()
        except TusError as error:
            if not policy.allows(error, attempt):
                raise
            attempt += 1
            await policy.wait_before_retry(error, attempt, what)


async def head_upload(
    transport: Transport,
    url: str,
    headers: tuple[tuple[str, str], ...],
    policy: RetryPolicy,
) -> tuple[Request, Response, UploadStatus]:
    """HEAD an upload, retrying transient failures: an unanswered HEAD is no reason to give
    up an upload. Returns the request, the answer and what it says."""

    async def attempt() -> tuple[Request, Response, UploadStatus]:
        request = head_request(url, headers)
        response = await transport.send(request)
        return request, response, parse_head(request, response)

    return await retrying(attempt, policy, what=f"HEAD {url}")


async def create_with_retries(
    transport: Transport,
    request: Request,
    policy: RetryPolicy,
    *,
    allow_insecure_location: bool = False,
    body: Callable[[], AsyncIterable[bytes]] | None = None,
) -> tuple[str, Response]:
    """POST a creation request; return the new upload's URL and the answer.

    Retried on network errors, 429 and 5xx only (unless the policy's own hook decides): a POST
    whose answer was lost may already have created an upload, and trying again then leaves an
    orphan for the server to expire, which beats giving up the whole upload.
    """

    refreshes = 0

    async def attempt() -> tuple[str, Response]:
        nonlocal refreshes
        while True:
            try:
                # A fresh body for every try: a stream consumed by a failed try cannot be sent
                # again.
                response = await transport.send(request, body() if body is not None else None)
            except CredentialsRefreshed as refreshed:
                # Nothing was created: the POST goes again, with the new credentials.
                refreshes += 1
                if refreshes > MAX_CREDENTIAL_REFRESHES:
                    raise refreshed.final() from refreshed
                continue
            upload_url = parse_creation(
                request, response, allow_insecure_location=allow_insecure_location
            )
            return upload_url, response

    return await retrying(attempt, policy, what=f"POST {request.url}")


class RetryingLink:
    """The sender's link to one upload URL (:class:`tuspipe._stages.UploadLink`): PATCHes go
    through `transport`, and a failed one is recovered from under `policy` (a wait, then a
    HEAD for the server's offset), with the tries counted since the offset last advanced.

    A PATCH refused for its credentials (:exc:`~tuspipe._auth.CredentialsRefreshed`: fresh
    ones are ready) is recovered from the same way, without a wait and without counting
    against `policy`: the next PATCH, from the server's offset, carries the new credentials.
    """

    def __init__(
        self,
        transport: Transport,
        url: str,
        headers: tuple[tuple[str, str], ...],
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        body_limits: BodyLimits | None = None,
    ) -> None:
        self._transport = transport
        self._body_limits = BodyLimits() if body_limits is None else body_limits
        self._url = url
        self._headers = headers
        self._policy = policy
        self._failures = 0  # consecutive failed tries since the offset last advanced
        self._refreshes = 0  # PATCHes refused for their credentials since then

    async def send(self, request: Request, body: AsyncIterable[BodyPart]) -> Response:
        return await self._transport.send(request, body)

    def progressed(self, body: int) -> None:
        self._failures = self._refreshes = 0
        self._body_limits.accepted(self._url, body)

    def max_body(self) -> int | None:
        return self._body_limits.limit(self._url)

    async def body_refused(
        self, error: TusError, body: int, acknowledged: int, sent_up_to: int
    ) -> tuple[int, bool]:
        """A PATCH of `body` bytes was refused as too large (413): lower the body limit of
        this server (or raise `error`, at the floor), then ask for the server's offset."""
        self._body_limits.refused(self._url, body, error)
        return await self._offset_after_failure(acknowledged, sent_up_to)

    async def recover(
        self, error: TusError, acknowledged: int, sent_up_to: int
    ) -> tuple[int, bool]:
        """After a failed PATCH: wait as the policy says, then ask the server for its offset
        (and whether it knows the upload's length).

        Re-raises `error` when the policy does not allow another try. The offset the server
        reports must lie between what it acknowledged and what was sent to it.
        """
        if isinstance(error, CredentialsRefreshed):
            self._refreshes += 1
            if self._refreshes > MAX_CREDENTIAL_REFRESHES:
                raise error.final() from error
            logger.info(
                "PATCH at offset %d was refused (%d); sending it again with fresh credentials",
                acknowledged,
                error.status_code,
            )
            return await self._offset_after_failure(acknowledged, sent_up_to)
        if not self._policy.allows(error, self._failures):
            raise error
        self._failures += 1
        await self._policy.wait_before_retry(
            error,
            self._failures,
            f"PATCH at offset {acknowledged}",
            # a 409 only says the offsets disagree: ask for the server's at once
            wait=0.0 if isinstance(error, OffsetMismatchError) else None,
        )
        return await self._offset_after_failure(acknowledged, sent_up_to)

    async def _offset_after_failure(self, acknowledged: int, sent_up_to: int) -> tuple[int, bool]:
        request, response, status = await head_upload(
            self._transport, self._url, self._headers, self._policy
        )
        if not acknowledged <= status.offset <= sent_up_to:
            raise answer_error(
                ProtocolError,
                request,
                response,
                f"after a failed PATCH the server reports offset {status.offset}; it had "
                f"acknowledged {acknowledged} and was sent at most {sent_up_to}",
            )
        if status.offset > acknowledged:
            logger.info("the server holds %d bytes; continuing from there", status.offset)
        return status.offset, status.length is not None
