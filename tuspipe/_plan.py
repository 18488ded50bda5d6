"""One upload call's validated request (:class:`UploadPlan`), and the rules every request of
it follows: which headers go to which URL, and how far the upload goes.

Shared by the single upload (:mod:`tuspipe._upload`) and the parallel one
(:mod:`tuspipe._parallel`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ._bodylimits import BodyLimits
from ._credentials import CREDENTIAL_HEADERS, may_carry_credentials
from ._errors import UsageError
from ._journal import Journal
from ._pipeline import PipelineSettings
from ._retry import RetryPolicy
from ._types import ProgressCallback

__all__ = ["UploadPlan", "headers_to", "stop_offset"]

logger = logging.getLogger("tuspipe")


@dataclass(frozen=True)
class UploadPlan:
    """The validated request of one upload call."""

    url: str | None
    upload_url: str | None
    metadata: str | None
    headers: tuple[tuple[str, str], ...]
    checksum: str | None
    journal: Journal | None
    resume: bool
    resume_key: str | None
    settings: PipelineSettings
    retry: RetryPolicy
    body_limits: BodyLimits
    on_progress: ProgressCallback | None
    on_upload_url: Callable[[str], object] | None
    parallel: int = 1
    allow_insecure_location: bool = False
    allow_cross_origin_credentials: bool = False
    terminate_on_cancel: bool = False


def headers_to(plan: UploadPlan, url: str) -> tuple[tuple[str, str], ...]:
    """The headers for a request to `url`: without credentials when `url` lies on another
    origin than the endpoint the caller gave them for (unless the caller allows it; the rule
    is :func:`~tuspipe._credentials.may_carry_credentials`)."""
    if may_carry_credentials(plan.url, url, plan.allow_cross_origin_credentials):
        return plan.headers
    kept = tuple(pair for pair in plan.headers if pair[0].lower() not in CREDENTIAL_HEADERS)
    if len(kept) != len(plan.headers):
        logger.warning(
            "%s is on another origin than %s: credentials in headers= are not sent there "
            "(allow_cross_origin_credentials=True sends them)",
            url,
            plan.url,
        )
    return kept


def stop_offset(stop_at: int | None, size: int) -> int:
    """Where an upload of a source of `size` bytes stops: `stop_at`, checked, or the end."""
    if stop_at is None:
        return size
    if isinstance(stop_at, bool) or not isinstance(stop_at, int):
        raise UsageError(f"stop_at must be an int or None, not {stop_at!r}")
    if not 0 <= stop_at <= size:
        raise UsageError(f"stop_at={stop_at} lies outside the source's {size} bytes")
    return stop_at
