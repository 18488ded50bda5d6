"""tuspy's two exceptions, raised by every part of :mod:`tuspipe.compat`.

tuspipe's own errors are translated into these at one boundary
(:func:`tuspipe.compat._bridge.translated`), each chained ``from`` the tuspipe error it stands
for, so ``exc.__cause__`` still says exactly what happened::

    TusCommunicationError      the server refused, broke the protocol, or could not be reached
    └── TusUploadFailed        ... while bytes were being sent (PATCH)

Mistakes of the caller (a bad argument, a missing file) stay what they are in tuspy: a
``ValueError`` (tuspipe's ``UsageError`` is one) or an ``OSError``.
"""

from __future__ import annotations

__all__ = ["TusCommunicationError", "TusUploadFailed"]


class TusCommunicationError(Exception):
    """Talking to the tus server went wrong.

    Attributes:
        status_code: the HTTP status of the answer that ended the exchange, or None when no
            answer arrived (a network failure or timeout).
        response_content: the body of that answer (bytes), or None.
    """

    def __init__(
        self,
        message: object,
        status_code: int | None = None,
        response_content: bytes | None = None,
    ) -> None:
        default = f"Communication with tus server failed with status {status_code}"
        super().__init__(message or default)
        self.status_code = status_code
        self.response_content = response_content


class TusUploadFailed(TusCommunicationError):
    """Sending the upload's bytes (PATCH) failed, and the retries, if any, ran out."""
