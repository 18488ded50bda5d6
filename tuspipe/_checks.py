"""The checks of tuspipe's options, and what each option's declaration holds (:class:`Option`).

Each check raises :class:`~tuspipe.UsageError` naming the option when a value is not
acceptable; :func:`tuspipe._schemas.resolve` runs them, before any traffic. Several reuse the
validators of the values they configure (headers, metadata, the retry policy, checksums), so a
rule is written once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from ._errors import UsageError
from ._journal import Journal
from ._protocol import choose_checksum, encode_metadata, validate_headers, validate_url
from ._retry import RetryPolicy
from ._transport import HTTPClient, check_auth
from ._types import JournalOption

__all__ = [
    "Check",
    "Option",
    "auth_check",
    "callable_check",
    "checksum_check",
    "headers_check",
    "http_client_check",
    "journal_check",
    "journal_from",
    "key_or_none_check",
    "metadata_check",
    "metadata_or_function_check",
    "offset_or_none_check",
    "positive_int_check",
    "positive_int_or_none_check",
    "retries_check",
    "retry_delays_check",
    "seconds_check",
    "url_or_none_check",
]


Check = Callable[[str, Any], None]
"""Raises UsageError when the value given for the named option is not acceptable."""


@dataclass(frozen=True)
class Option:
    """What a TypedDict key of this module means: its default, its meaning, its check."""

    default: object
    doc: str
    check: Check | None = None


def callable_check(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise UsageError(f"{name} must be callable")


def auth_check(name: str, value: object) -> None:
    check_auth(value)


def positive_int_check(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name} must be a positive int, not {value!r}")


def positive_int_or_none_check(name: str, value: object) -> None:
    if value is not None:
        positive_int_check(name, value)


def seconds_check(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise UsageError(f"{name} must be a positive number of seconds, not {value!r}")


def headers_check(name: str, value: object) -> None:
    validate_headers(cast("Mapping[str, str] | None", value))


def journal_check(name: str, value: object) -> None:
    journal_from(cast(JournalOption, value))


def retries_check(name: str, value: object) -> None:
    RetryPolicy(retries=cast(int, value))


def retry_delays_check(name: str, value: object) -> None:
    RetryPolicy(delays=cast("Sequence[float] | None", value))


def http_client_check(name: str, value: object) -> None:
    if value is not None and not isinstance(value, HTTPClient):
        raise UsageError(f"http_client must be an httpx.AsyncClient, not {value!r}")


def checksum_check(name: str, value: object) -> None:
    choose_checksum(cast("str | None", value), None)  # an unknown algorithm fails here


def metadata_check(name: str, value: object) -> None:
    encode_metadata(cast("Mapping[str, str | bytes] | None", value))


def metadata_or_function_check(name: str, value: object) -> None:
    if not callable(value):
        metadata_check(name, value)


def url_or_none_check(name: str, value: object) -> None:
    if value is not None:
        validate_url(cast(str, value))


def offset_or_none_check(name: str, value: object) -> None:
    # Checked against the source's size once the source is open.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{name} must be an int or None, not {value!r}")


def key_or_none_check(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise UsageError(f"{name} must be a non-empty str")


def journal_from(option: JournalOption) -> Journal | None:
    """The journal an option names: True the default file, a path, a :class:`Journal`, or
    None / False for none."""
    if option is None or option is False:
        return None
    if option is True:
        return Journal()
    if isinstance(option, Journal):
        journal = option
    elif isinstance(option, (str, os.PathLike)):
        journal = Journal(option)
    else:
        raise UsageError(f"journal must be True, False, None, a path or a Journal, not {option!r}")
    if journal.path.is_dir():
        raise UsageError(f"journal={str(journal.path)!r} is a directory; name a file in it")
    return journal
