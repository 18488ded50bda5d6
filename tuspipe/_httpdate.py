"""HTTP dates (``Upload-Expires``, ``Retry-After``), parsed in one place.

Pure and standard-library only, so the protocol, the journal and the retry policy can all
use it. Servers' dates are untrusted input: anything unparsable is "no date", never an error.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["has_passed", "parse_http_date", "seconds_until"]

# Longer is no date; such a value is ignored rather than parsed.
_MAX_DATE_LENGTH = 64


def parse_http_date(value: str | None) -> datetime | None:
    """The moment an HTTP date names (an aware datetime, UTC when the date names no zone),
    or None when `value` is absent or not a date."""
    if not value or len(value) > _MAX_DATE_LENGTH:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def seconds_until(value: str | None, now: float | None = None) -> float | None:
    """Seconds from `now` (default: the current time) until the date `value` (negative once
    it has passed), or None when `value` is not a date."""
    moment = parse_http_date(value)
    if moment is None:
        return None
    return moment.timestamp() - (time.time() if now is None else now)


def has_passed(value: str | None, now: float | None = None) -> bool:
    """True once the date `value` has passed; False for no date or garbage."""
    remaining = seconds_until(value, now)
    return remaining is not None and remaining <= 0
