"""Request bodies too large for a server: learned from its 413s, remembered per origin.

A server, or more often a proxy in front of it (nginx's ``client_max_body_size`` and
aiohttp's ``client_max_size`` default to 1 MiB; PaaS front doors cap bodies too), may refuse
a PATCH whose body is larger than it accepts. :class:`BodyLimits` halves the body for that
origin until a request goes through, and the client keeps what it learned for its later
requests and uploads.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from ._errors import TusError, UploadTooLargeError
from ._protocol import origin

__all__ = ["MIN_BODY_LIMIT", "BodyLimits"]

logger = logging.getLogger("tuspipe")


# Requests are never made smaller than this to fit a body limit: below it the round trip of
# each request dominates (at 256 KiB a 100 ms link moves 2.5 MB/s at best), and no common
# proxy limit is smaller (nginx's client_max_body_size and aiohttp's client_max_size default
# to 1 MiB).
MIN_BODY_LIMIT = 256 * 1024


def _readable(size: int) -> str:
    """`size` in binary units, as a person reads it: ``1 MiB``, ``1.4 MiB``, ``256 KiB``."""
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return (
                f"{size // factor} {unit}" if size % factor == 0 else f"{size / factor:.1f} {unit}"
            )
    return f"{size} bytes"


def _option(size: int) -> str:
    """`size` as tuspipe's --chunk-size takes it exactly: ``1MiB``, ``768KiB``, ``750000``."""
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


class BodyLimits:
    """Request body sizes refused with 413, by origin (scheme, host, port).

    Each refusal halves the largest body sent to that origin from then on, down to
    MIN_BODY_LIMIT; a refusal at that size is final. Once a smaller body is accepted, a
    warning says once which ``chunk_size`` avoids the refused tries.
    """

    def __init__(self) -> None:
        self._limits: dict[tuple[str, str, int | None], int] = {}
        self._refused: dict[tuple[str, str, int | None], int] = {}
        self._announced: set[tuple[str, str, int | None]] = set()

    def limit(self, url: str) -> int | None:
        """The most bytes one request to `url`'s origin may carry; None while none was refused."""
        return self._limits.get(origin(url))

    def refused(self, url: str, body: int, error: TusError) -> int:
        """A request of `body` bytes to `url` was refused as too large: return the new limit,
        or raise `error` (an UploadTooLargeError saying what was found) at the floor."""
        where = origin(url)
        self._refused[where] = min(body, self._refused.get(where, body))
        if body <= MIN_BODY_LIMIT:
            message = (
                f"a request body of {body} bytes is larger than the server accepts (413, from "
                f"the server or a proxy in front of it): its limit lies below {body} bytes, and "
                f"tuspipe sends no requests smaller than {_readable(MIN_BODY_LIMIT)}; raise the "
                "limit (nginx: client_max_body_size) or upload elsewhere"
            )
            if isinstance(error, UploadTooLargeError):
                raise error.reworded(message) from error
            raise UploadTooLargeError(message, url=url) from error
        limit = max(MIN_BODY_LIMIT, body // 2)
        self._limits[where] = min(limit, self._limits.get(where, limit))
        logger.info("%s refused a body of %d bytes (413); trying %d", url, body, limit)
        return self._limits[where]

    def accepted(self, url: str, body: int) -> None:
        """A request of `body` bytes to `url` went through: after refusals, say once (a
        warning) what was found and what to pass to avoid it."""
        where = origin(url)
        if where not in self._limits or where in self._announced:
            return
        self._announced.add(where)
        logger.warning(
            "%s://%s refused request bodies of %s as too large (413: a limit of the server or "
            "of a proxy in front of it); uploading in pieces of %s instead. Pass "
            "chunk_size=%d (tuspipe --chunk-size %s) to avoid the refused tries",
            where[0],
            urlsplit(url).netloc,
            _readable(self._refused[where]),
            _readable(self._limits[where]),
            self._limits[where],
            _option(self._limits[where]),
        )
