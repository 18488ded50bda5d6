"""tuspipe._retry: the policy's waits, which failures are transient, Retry-After, and
:func:`retrying` in trio's virtual time (the ``autojump_clock`` fixture of pytest-trio)."""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tuspipe._errors import (
    ChecksumMismatchError,
    NetworkError,
    NetworkTimeoutError,
    ProtocolError,
    ResponseError,
    SourceChangedError,
    TusError,
    UploadNotFoundError,
    UsageError,
)
from tuspipe._protocol import Request, Response, error_for
from tuspipe._retry import (
    MAX_RETRY_AFTER,
    RetryPolicy,
    is_transient,
    retry_after_seconds,
    retrying,
)

UPLOAD = "https://tus.example/files/abc"


def refusal(status: int, method: str = "PATCH", **headers: str) -> ResponseError:
    """The error tuspipe makes of an answer with `status` (header names: '_' for '-')."""
    names = {name.replace("_", "-"): value for name, value in headers.items()}
    return error_for(Request(method, UPLOAD), Response(status, names, b"no"))


# --------------------------------------------------------------------------------------------
# RetryPolicy: validation
# --------------------------------------------------------------------------------------------


def test_default_policy() -> None:
    policy = RetryPolicy()
    assert (policy.retries, policy.base, policy.cap, policy.delays) == (5, 0.5, 30.0, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retries": 0},
        {"retries": 100},
        {"base": 0},
        {"cap": 0},
        {"base": 2, "cap": 1},
        {"delays": (0,)},
        {"delays": [1.5, 2]},
    ],
)
def test_policy_accepts(kwargs: dict[str, Any]) -> None:
    RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retries": -1},
        {"retries": True},
        {"retries": False},
        {"retries": 1.5},
        {"retries": "3"},
        {"retries": None},
        {"base": -0.1},
        {"cap": -1},
        {"base": math.nan},
        {"cap": math.nan},
        {"delays": ()},
        {"delays": []},
        {"delays": (-1,)},
        {"delays": (1, -0.5)},
        {"delays": (1, math.nan)},
    ],
    ids=lambda kwargs: ",".join(f"{k}={v!r}" for k, v in kwargs.items()),
)
def test_policy_refuses(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as info:
        RetryPolicy(**kwargs)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------
# RetryPolicy.delay
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delays", "expected"),
    [
        ((1, 2, 5), [1.0, 2.0, 5.0, 5.0, 5.0, 5.0, 5.0]),
        ((0,), [0.0] * 7),
        ([0.25, 3], [0.25, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]),
    ],
)
def test_delays_are_taken_in_turn_and_the_last_repeats(
    delays: Sequence[float], expected: list[float]
) -> None:
    policy = RetryPolicy(delays=delays, base=100, cap=100)  # base and cap do not apply
    waits = [policy.delay(attempt) for attempt in range(len(expected))]
    assert waits == expected
    assert all(type(wait) is float for wait in waits)


@pytest.mark.parametrize(("base", "cap"), [(0.5, 30.0), (2.0, 5.0), (1.0, 1000.0), (0.0, 30.0)])
def test_exponential_backoff_with_jitter(base: float, cap: float) -> None:
    policy = RetryPolicy(base=base, cap=cap)
    for attempt in range(16):
        ceiling = min(cap, base * 2**attempt)
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(0.5 * ceiling <= wait <= ceiling for wait in waits), (attempt, waits)
        if ceiling:
            # Jittered: 200 draws from [0.5, 1] x ceiling do not bunch up.
            assert max(waits) - min(waits) > 0.25 * ceiling


def test_jitter_factor_is_drawn_from_half_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    def highest(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    policy = RetryPolicy()
    monkeypatch.setattr(random, "uniform", lowest)
    assert [policy.delay(n) for n in range(8)] == [0.25, 0.5, 1, 2, 4, 8, 15, 15]
    monkeypatch.setattr(random, "uniform", highest)
    assert [policy.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert set(draws) == {(0.5, 1.0)}


@given(
    attempt=st.integers(min_value=0, max_value=200),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=1000),
)
def test_delay_stays_within_half_and_all_of_the_ceiling(
    attempt: int, base: float, cap: float
) -> None:
    ceiling = min(cap, base * 2.0**attempt)
    wait = RetryPolicy(base=base, cap=cap).delay(attempt)
    assert 0.5 * ceiling <= wait <= ceiling


def test_delay_of_a_late_attempt_is_capped() -> None:
    assert 15.0 <= RetryPolicy(retries=2000).delay(1024) <= 30.0


@pytest.mark.parametrize("delays", [None, (1, 2)])
def test_retry_after_takes_precedence(delays: Sequence[float] | None) -> None:
    policy = RetryPolicy(delays=delays)
    assert policy.delay(0, retry_after=7) == 7
    assert policy.delay(3, retry_after=0) == 0
    assert policy.delay(0, retry_after=MAX_RETRY_AFTER) == MAX_RETRY_AFTER
    assert policy.delay(0, retry_after=MAX_RETRY_AFTER + 1) == MAX_RETRY_AFTER
    assert policy.delay(0, retry_after=10**9) == MAX_RETRY_AFTER


def test_max_retry_after_is_five_minutes() -> None:
    assert MAX_RETRY_AFTER == 300


# --------------------------------------------------------------------------------------------
# retry_after_seconds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("007", 7.0),
        ("100000", 100000.0),  # the cap applies where the wait is chosen, not here
        ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),  # a moment past: no wait
        ("", None),
        ("   ", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("+5", None),
        ("1e3", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits are digits to str.isdigit
        ("9" * 65, None),  # longer than any sane value
        ("Mon, 99 Foo 2001 00:00:00 GMT", None),
    ],
)
def test_retry_after_seconds(value: str, expected: float | None) -> None:
    assert retry_after_seconds(refusal(503, retry_after=value)) == expected


@pytest.mark.parametrize("seconds", [90, 3600])
def test_retry_after_http_date_is_seconds_from_now(seconds: int) -> None:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    value = email.utils.format_datetime(moment, usegmt=True)
    wait = retry_after_seconds(refusal(429, retry_after=value))
    assert wait is not None
    assert seconds - 3 <= wait <= seconds  # whole seconds, and a little time has passed


@pytest.mark.parametrize(
    "error",
    [
        refusal(503),
        ResponseError("no answer details"),
        NetworkError("refused"),
        NetworkTimeoutError("slow"),
        cast(Any, ValueError("not tuspipe's")),
    ],
    ids=["no-header", "no-headers", "network", "timeout", "other"],
)
def test_retry_after_seconds_without_a_usable_header(error: BaseException) -> None:
    assert retry_after_seconds(error) is None


# --------------------------------------------------------------------------------------------
# is_transient
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (NetworkError("connection refused"), True),
        (NetworkTimeoutError("read timed out"), True),
        (refusal(500), True),
        (refusal(502), True),
        (refusal(503), True),
        (refusal(504), True),
        (refusal(599), True),
        (refusal(408), True),
        (refusal(423), True),
        (refusal(429), True),
        (refusal(409), True),  # offsets disagree: ask for the server's and go on
        (refusal(503, "HEAD"), True),
        (refusal(423, "HEAD"), True),
        (refusal(503, "POST"), True),
        (refusal(400), False),
        (refusal(401), False),
        (refusal(403), False),
        (refusal(404), False),
        (refusal(410), False),
        (refusal(412), False),
        (refusal(413), False),
        (refusal(415), False),
        (refusal(460), False),
        (refusal(404, "HEAD"), False),
        (refusal(403, "HEAD"), False),
        (refusal(410, "HEAD"), False),
        (refusal(400, "POST"), False),
        (ResponseError("no status"), False),
        (ProtocolError("bad Upload-Offset", status_code=204, method="PATCH"), False),
        (ProtocolError("broken answer", status_code=503, method="PATCH"), False),
        (UsageError("bad argument"), False),
        (SourceChangedError("the file shrank"), False),
        (TusError("something"), False),
        (ValueError("not tuspipe's"), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda value: (
        f"{value.method or '-'}-{value.status_code}"
        if isinstance(value, ResponseError)
        else type(value).__name__
        if isinstance(value, BaseException)
        else str(value)
    ),
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_refusals_have_their_typed_errors() -> None:
    # The table above runs on the errors tuspipe really raises.
    assert type(refusal(404)) is UploadNotFoundError
    assert type(refusal(460)) is ChecksumMismatchError
    assert type(refusal(503)) is ResponseError


# --------------------------------------------------------------------------------------------
# retrying, in virtual time
# --------------------------------------------------------------------------------------------


class Flaky:
    """An async call that raises each of `failures` in turn, then returns "done"."""

    def __init__(self, failures: Sequence[BaseException]) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.called_at: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.called_at.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if self.calls <= len(self.failures):
            raise self.failures[self.calls - 1]
        return "done"


def busy(count: int) -> list[BaseException]:
    return [refusal(503) for _ in range(count)]


async def test_retrying_returns_at_once_on_success(autojump_clock: trio.testing.MockClock) -> None:
    call = Flaky([])
    start = trio.current_time()
    assert await retrying(call, RetryPolicy(), what="HEAD x") == "done"
    assert call.calls == 1
    assert trio.current_time() == start


@pytest.mark.parametrize("failures", [1, 2, 3, 5])
async def test_retrying_waits_the_policys_delays(
    failures: int, autojump_clock: trio.testing.MockClock
) -> None:
    call = Flaky(busy(failures))
    start = trio.current_time()
    result = await retrying(call, RetryPolicy(retries=5, delays=(1, 2, 4)), what="HEAD x")
    assert result == "done"
    assert call.calls == failures + 1
    waits = [b - a for a, b in zip(call.called_at, call.called_at[1:], strict=False)]
    assert waits == pytest.approx([1, 2, 4, 4, 4][:failures])
    assert trio.current_time() - start == pytest.approx(sum([1, 2, 4, 4, 4][:failures]))


@pytest.mark.parametrize("retries", [0, 1, 3, 5])
async def test_retrying_gives_up_after_retries_and_raises_the_last_error(
    retries: int, autojump_clock: trio.testing.MockClock
) -> None:
    errors = busy(retries + 5)
    call = Flaky(errors)
    start = trio.current_time()
    with pytest.raises(ResponseError) as info:
        await retrying(call, RetryPolicy(retries=retries, delays=(1.5,)), what="HEAD x")
    assert call.calls == retries + 1
    assert info.value is errors[retries]  # the last one, not the first
    assert trio.current_time() - start == pytest.approx(1.5 * retries)


async def test_retrying_with_the_default_policy(autojump_clock: trio.testing.MockClock) -> None:
    call = Flaky(busy(10))
    start = trio.current_time()
    with pytest.raises(ResponseError):
        await retrying(call, RetryPolicy(), what="HEAD x")
    elapsed = trio.current_time() - start
    assert call.calls == 6
    # Five waits of [0.5, 1] x 0.5 * 2**n seconds.
    assert sum(0.25 * 2**n for n in range(5)) <= elapsed <= sum(0.5 * 2**n for n in range(5))


@pytest.mark.parametrize(
    "error",
    [
        refusal(400),
        refusal(404),
        refusal(460),
        refusal(410),
        refusal(404, "HEAD"),
        refusal(413, "POST"),
        ProtocolError("bad Upload-Offset", status_code=204, method="PATCH"),
        UsageError("bad argument"),
        SourceChangedError("the file shrank"),
    ],
    ids=lambda error: (
        f"{error.method}-{error.status_code}"
        if isinstance(error, ResponseError) and error.status_code
        else type(error).__name__
    ),
)
async def test_retrying_never_retries_a_final_failure(
    error: TusError, autojump_clock: trio.testing.MockClock
) -> None:
    call = Flaky([error])
    start = trio.current_time()
    with pytest.raises(TusError) as info:
        await retrying(call, RetryPolicy(retries=5, delays=(1,)), what="PATCH x")
    assert info.value is error
    assert call.calls == 1
    assert trio.current_time() == start


async def test_retrying_stops_at_the_first_final_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gone = refusal(404, "HEAD")
    call = Flaky([refusal(503), NetworkError("reset"), gone, refusal(503)])
    start = trio.current_time()
    with pytest.raises(UploadNotFoundError) as info:
        await retrying(call, RetryPolicy(delays=(1,)), what="HEAD x")
    assert info.value is gone
    assert call.calls == 3
    assert trio.current_time() - start == pytest.approx(2)


@pytest.mark.parametrize(
    "make",
    [lambda: KeyError("bug"), lambda: ValueError("bug"), lambda: OSError(5, "I/O error")],
    ids=["KeyError", "ValueError", "OSError"],
)
async def test_retrying_passes_foreign_exceptions_through(
    make: Callable[[], Exception], autojump_clock: trio.testing.MockClock
) -> None:
    error = make()
    call = Flaky([error])
    with pytest.raises(type(error)) as info:
        await retrying(call, RetryPolicy(), what="HEAD x")
    assert info.value is error
    assert call.calls == 1


async def test_retrying_network_errors(autojump_clock: trio.testing.MockClock) -> None:
    call = Flaky([NetworkError("refused"), NetworkTimeoutError("slow"), NetworkError("reset")])
    start = trio.current_time()
    assert await retrying(call, RetryPolicy(delays=(2,)), what="HEAD x") == "done"
    assert call.calls == 4
    assert trio.current_time() - start == pytest.approx(6)


@pytest.mark.parametrize(("value", "wait"), [("7", 7.0), ("0", 0.0), ("100000", MAX_RETRY_AFTER)])
async def test_retrying_honours_retry_after(
    value: str, wait: float, autojump_clock: trio.testing.MockClock
) -> None:
    call = Flaky([refusal(429, retry_after=value)])
    start = trio.current_time()
    assert await retrying(call, RetryPolicy(delays=(1,)), what="PATCH x") == "done"
    assert trio.current_time() - start == pytest.approx(wait)


async def test_retrying_sleep_can_be_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    call = Flaky(busy(10))
    start = trio.current_time()
    with trio.move_on_after(5) as scope:
        await retrying(call, RetryPolicy(delays=(10,)), what="HEAD x")
    assert scope.cancelled_caught
    assert call.calls == 1
    assert trio.current_time() - start == pytest.approx(5)


async def test_retrying_logs_a_warning_per_retry(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    call = Flaky(busy(2))
    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        await retrying(call, RetryPolicy(delays=(1,)), what="HEAD https://tus.example/u/1")
    warnings = [r for r in caplog.records if r.name == "tuspipe" and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("HEAD https://tus.example/u/1" in r.getMessage() for r in warnings)
    assert all("503" in r.getMessage() for r in warnings)
