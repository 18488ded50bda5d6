"""HTTP dates, parsed in one place (tuspipe._httpdate): Upload-Expires and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tuspipe import UploadStatus
from tuspipe._httpdate import has_passed, parse_http_date, seconds_until

MOMENT = datetime(2026, 12, 5, 16, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "Sat, 05 Dec 2026 16:00:00 GMT",
        "Sat, 05 Dec 2026 17:00:00 +0100",
        " Sat, 05 Dec 2026 16:00:00 -0000 ",
    ],
)
def test_dates_in_every_zone_name_the_same_moment(text: str) -> None:
    assert parse_http_date(text) == MOMENT


@pytest.mark.parametrize("text", [None, "", "tomorrow", "Sat, 99 Dec 2026", "x" * 65, "12"])
def test_garbage_is_no_date(text: str | None) -> None:
    assert parse_http_date(text) is None
    assert seconds_until(text) is None
    assert not has_passed(text)


def test_seconds_until_and_has_passed_against_a_given_now() -> None:
    text = "Sat, 05 Dec 2026 16:00:00 GMT"
    assert seconds_until(text, now=MOMENT.timestamp() - 30) == 30
    assert not has_passed(text, now=MOMENT.timestamp() - 1)
    assert has_passed(text, now=MOMENT.timestamp())


def test_upload_status_reads_its_expiry() -> None:
    assert UploadStatus(0, 10, expires="Sat, 05 Dec 2026 16:00:00 GMT").expires_at == MOMENT
    assert UploadStatus(0, 10, expires="soon").expires_at is None
    assert UploadStatus(0, 10).expires_at is None
