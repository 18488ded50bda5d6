"""Where tuspipe.compat meets tuspipe: error translation and the extra call options.

Every network operation of the compatibility layer is one of tuspipe's public calls; this
module holds the two things those calls share. :func:`translated` is the single place where
tuspipe's exception tree becomes tuspy's two exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import tuspipe

from .exceptions import TusCommunicationError

__all__ = ["operation_options", "translated"]

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
