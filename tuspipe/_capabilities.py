"""What each tus endpoint supports: asked once per client (OPTIONS), or learned (413).

:class:`CapabilityCache` is the one cache of a :class:`~tuspipe.Client`; the client hands it
to the code of an upload that needs to know (a checksum, creation-with-upload, deferred
length, concatenation, the maximum size), so no module reads the client's private state.
Its :class:`~tuspipe._bodylimits.BodyLimits` remember the request bodies a server (or a
proxy in front of it) refused as too large, so later requests and later uploads fit.
"""

from __future__ import annotations

import logging

from ._bodylimits import BodyLimits
from ._protocol import (
    Request,
    Response,
    ServerCapabilities,
    options_request,
    parse_capabilities,
    shows_tus,
)
from ._retry import RetryPolicy, retrying
from ._transport import Transport

__all__ = ["CapabilityCache"]

logger = logging.getLogger("tuspipe")

# OPTIONS answers that say nothing of the endpoint but that it failed for now.
_TRANSIENT = frozenset({408, 423, 429, 500, 502, 503, 504})


class CapabilityCache:
    """OPTIONS answers by endpoint URL, asked through `transport` with `headers`."""

    def __init__(
        self, transport: Transport, headers: tuple[tuple[str, str], ...], retry: RetryPolicy
    ) -> None:
        self._transport = transport
        self._headers = headers
        self._retry = retry
        self._known: dict[str, ServerCapabilities | None] = {}
        self.body_limits = BodyLimits()

    async def ask(self, url: str) -> ServerCapabilities:
        """Ask `url` what it supports, now; the answer is kept. A server that does not offer
        tus 1.0.0, or shows no tus header at all (even when asked with Tus-Resumable), is a
        VersionMismatchError; one that refuses OPTIONS a ResponseError."""

        async def attempt() -> ServerCapabilities:
            request, response = await self._options(url)
            return parse_capabilities(request, response)

        capabilities = await retrying(attempt, self._retry, what=f"OPTIONS {url}")
        self._known[url] = capabilities
        return capabilities

    async def known(self, url: str) -> ServerCapabilities | None:
        """What `url` supports, asked once; None (unknown) when it does not answer OPTIONS
        (404, 405) or shows no tus header in its answer: then the documented fallbacks apply."""
        if url not in self._known:

            async def attempt() -> ServerCapabilities | None:
                request, response = await self._options(url)
                if response.status_code in (404, 405) or (
                    # (A 5xx is not this: retrying() tries again.)
                    not shows_tus(response.headers) and response.status_code not in _TRANSIENT
                ):
                    logger.info(
                        "%s does not say what it supports (OPTIONS answered %d%s)",
                        url,
                        response.status_code,
                        "" if shows_tus(response.headers) else " without tus headers",
                    )
                    return None
                return parse_capabilities(request, response)

            self._known[url] = await retrying(attempt, self._retry, what=f"OPTIONS {url}")
        return self._known[url]

    async def _options(self, url: str) -> tuple[Request, Response]:
        """OPTIONS `url`; asked again with Tus-Resumable when the first answer shows no tus
        header (some servers announce themselves only then, or refuse the first)."""
        request = options_request(url, self._headers)
        response = await self._transport.send(request)
        if not shows_tus(response.headers) and response.status_code not in _TRANSIENT:
            request = options_request(url, self._headers, insist=True)
            response = await self._transport.send(request)
        return request, response

    def cached(self, url: str | None) -> ServerCapabilities | None:
        """What is known of `url` already, without asking."""
        return None if url is None else self._known.get(url)
