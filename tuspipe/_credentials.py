"""Where the caller's credentials may go: one rule, for static and refreshed credentials alike.

Credentials (``Authorization``, ``Cookie``, ``Proxy-Authorization``) belong to the origin of
the endpoint the caller gave them for. An upload URL the server names (``Location``) may lie
on another origin; requests there go without credentials unless the caller allows it
(``allow_cross_origin_credentials=True``). :func:`may_carry_credentials` is that rule.

Two kinds of credentials follow it:

* ``headers=``, fixed for the call: :func:`tuspipe._plan.headers_to` leaves them off a
  request to another origin when the request is built;
* ``auth=`` and the credential headers ``on_request`` sets, made anew for every request in
  the transport, which sees only a request's URL. The upload tells it the endpoint through
  :func:`credential_scope`, a context variable that trio hands to every task the upload
  starts (the pipeline's stages, the parts of a parallel upload), so that the transport can
  ask :func:`scoped_credentials_may_go` per request. Outside an upload (a single HEAD,
  DELETE or OPTIONS the caller asked for by URL) there is no scope: the caller named that
  URL, so its credentials go there.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from ._protocol import origin

__all__ = [
    "CREDENTIAL_HEADERS",
    "credential_scope",
    "may_carry_credentials",
    "scoped_credentials_may_go",
]

# Headers that carry credentials (lower-case names).
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def may_carry_credentials(endpoint: str | None, url: str, allow_cross_origin: bool) -> bool:
    """Whether a request to `url` may carry credentials given for `endpoint`: on the same
    origin, or anywhere when `allow_cross_origin`, or when there is no endpoint (the caller
    named `url` itself)."""
    return allow_cross_origin or endpoint is None or origin(url) == origin(endpoint)


# (the endpoint, allow_cross_origin) of the upload running in this task, if any
_scope: contextvars.ContextVar[tuple[str | None, bool] | None] = contextvars.ContextVar(
    "tuspipe_credential_scope", default=None
)


@contextmanager
def credential_scope(endpoint: str | None, allow_cross_origin: bool) -> Iterator[None]:
    """Within the block (and the tasks started in it), the transport sends refreshed
    credentials only where :func:`may_carry_credentials` allows for `endpoint`."""
    token = _scope.set((endpoint, allow_cross_origin))
    try:
        yield
    finally:
        _scope.reset(token)


def scoped_credentials_may_go(url: str) -> bool:
    """Whether the current :func:`credential_scope` (if any) lets credentials go to `url`."""
    scope = _scope.get()
    return scope is None or may_carry_credentials(scope[0], url, scope[1])
