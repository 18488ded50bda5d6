"""Where tuspipe.compat meets tuspipe: error translation, the extra call options, and the
two ways a method is called (blocking, or awaited under trio or asyncio).

Every network operation of the compatibility layer is one of tuspipe's public calls; this
module holds what those calls share. :func:`translated` is the single place where tuspipe's
exception tree becomes tuspy's two exceptions.

tuspy's blocking and async classes (``Uploader``/``AsyncUploader``,
``TusRequest``/``AsyncTusRequest``) differ only by ``await``, so each behaviour is written
once, as a coroutine, and each twin is declared from it: :func:`blocking_method` is tuspipe's
own blocking facade (``trio.run`` over the coroutine, as ``tuspipe.upload`` is over
``upload_async``), :func:`coroutine_method` tuspipe's own any-loop wrapper (trio as it is,
asyncio through trio's guest mode, as every ``*_async`` call). These two come from tuspipe's
api layer itself (DESIGN.md: compat builds on the api), the one place where compat reaches
past tuspipe's public names: a second copy of them here would be the hand-written twin the
design forbids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import tuspipe

from .._loops import any_loop
from .._sync import blocking
from .exceptions import TusCommunicationError

__all__ = ["blocking_method", "coroutine_method", "operation_options", "translated"]

P = ParamSpec("P")
T = TypeVar("T")


def blocking_method(
    body: Callable[P, Awaitable[T]], qualname: str, instead: str | None = None
) -> Callable[P, T]:
    """The blocking method `qualname` (``Class.name``) over the coroutine `body`.

    Inside trio it raises UsageError, suggesting `instead` (default: the async twin class of
    the same name with ``Async`` in front).
    """
    owner, _, name = qualname.rpartition(".")
    suggestion = instead or f"Async{owner}"
    return blocking(body, name, qualname=qualname, instead=f"tuspipe.compat's {suggestion}")


def coroutine_method(
    body: Callable[P, Awaitable[T]], qualname: str
) -> Callable[P, Coroutine[Any, Any, T]]:
    """The coroutine method `qualname` (``Class.name``) over `body`: awaitable under trio, and
    under asyncio (on the same trio code, in guest mode)."""
    method = any_loop(body)
    method.__name__ = qualname.rpartition(".")[2]
    method.__qualname__ = qualname
    return method


# The options of tuspipe.upload that its single operations (create_upload, upload_status)
# take as well; the rest (stall_timeout, read_size, read_ahead) only mean something there.
_SHARED_OPTIONS = frozenset({"timeout", "http_client"})


def operation_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a client's extra tuspipe options that a single operation accepts."""
    return {name: value for name, value in options.items() if name in _SHARED_OPTIONS}


@contextmanager
def translated(failure: type[TusCommunicationError] = TusCommunicationError) -> Iterator[None]:
    """Raise tuspipe's errors as tuspy's, chained from the original.

    `failure` is the class for failures while bytes are sent: TusUploadFailed around uploads.
    A refused PATCH becomes `failure`; a refused POST or HEAD, an answer that breaks the
    protocol, or a checksum the server does not offer becomes TusCommunicationError, with
    the status code and body of the answer. Network errors and a source that changed become
    `failure` without a status. Mistakes of the caller (UsageError, a ValueError) and local
    file errors (OSError) pass through unchanged, as tuspy's ValueErrors and OSErrors do.
    """
    try:
        yield
    except tuspipe.UnsupportedFeatureError as error:
        raise TusCommunicationError(str(error)) from error
    except tuspipe.UsageError:
        raise
    except tuspipe.ResponseError as error:
        refused_patch = error.method == "PATCH" and not isinstance(error, tuspipe.ProtocolError)
        kind = failure if refused_patch else TusCommunicationError
        raise kind(str(error), error.status_code or None, error.body) from error
    except tuspipe.TusError as error:
        raise failure(str(error)) from error
