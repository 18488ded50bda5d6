"""What a caller's hook may do to a request before it is sent: :class:`OutgoingRequest`.

``on_request(request)`` is handed an :class:`OutgoingRequest`: the method and URL to read, and
:class:`RequestHeaders` to change. The headers are a case-insensitive mapping that refuses,
at the moment of the attempt, to set or delete one of tus's own headers
(:data:`~tuspipe._protocol.RESERVED_HEADERS`: ``Upload-Offset``, ``Content-Length``, ...), or
to set a header HTTP cannot carry; either is a :class:`~tuspipe.UsageError`. So a hook can add
or replace ``Authorization``, a tracing header or ``X-Request-ID``, and cannot corrupt an
upload.

Hooks may be plain functions or ``async def`` (awaited in tuspipe's trio context):
:func:`call_hook` calls either.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import TypeVar

from ._errors import UsageError
from ._protocol import RESERVED_HEADERS, check_header

__all__ = ["OutgoingRequest", "RequestHeaders", "call_hook"]

T = TypeVar("T")


class RequestHeaders(MutableMapping[str, str]):
    """A request's headers, by case-insensitive name (one value each), in their order.

    Setting or deleting one of tus's own headers, or setting an invalid name or a value that
    is not one line of ASCII, raises UsageError.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs = {name.lower(): (name, value) for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._pairs[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        if isinstance(name, str) and name.lower() in RESERVED_HEADERS:
            raise UsageError(_reserved(name))
        check_header(name, value)
        self._pairs[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        if name.lower() in RESERVED_HEADERS:
            raise UsageError(_reserved(name))
        del self._pairs[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs.values())

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._pairs

    def __repr__(self) -> str:
        # Names only: values may be credentials, and reprs end up in logs and tracebacks.
        return f"RequestHeaders({list(self)!r})"

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The headers as (name, value) pairs, in order."""
        return tuple(self._pairs.values())


def _reserved(name: str) -> str:
    return (
        f"header {name!r} is tus's own: tuspipe sets it, and a hook may not change or remove "
        "it (Authorization and other headers are free to set)"
    )


class OutgoingRequest:
    """A request about to be sent, as ``on_request(request)`` sees it.

    Attributes:
        method: "POST", "PATCH", "HEAD", "OPTIONS" or "DELETE" (the tus method, also when
            ``method_override=True`` sends it as POST).
        url: the absolute URL it goes to.
        headers: its headers (:class:`RequestHeaders`), tus's own included; change or add
            any but tus's own (``Upload-Offset``, ``Tus-Resumable``, ``Content-Length``,
            ``Content-Type``, ``Upload-Length``, ``Upload-Checksum``, ``Upload-Concat``,
            ``Upload-Metadata``, ``Upload-Defer-Length``, ``X-HTTP-Method-Override``,
            ``Host``, ``Transfer-Encoding``): trying is a UsageError.

    The body is not shown: for an upload it is a span of the file, sent without being read
    into memory.
    """

    __slots__ = ("headers", "method", "url")

    def __init__(self, method: str, url: str, headers: Iterable[tuple[str, str]]) -> None:
        self.method = method
        self.url = url
        self.headers = RequestHeaders(headers)

    def __repr__(self) -> str:
        return f"<OutgoingRequest {self.method} {self.url}>"


async def call_hook(hook: Callable[..., T | Awaitable[T]], *args: object) -> T:
    """``hook(*args)``, awaited when it is a coroutine function or returns an awaitable."""
    result = hook(*args)
    if inspect.isawaitable(result):
        return await result
    return result
