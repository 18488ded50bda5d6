"""The fingerprint interface: one method that names a stream's content."""

from __future__ import annotations

import abc
from typing import IO, Any

__all__ = ["Fingerprint"]


class Fingerprint(abc.ABC):
    """Makes the key under which an uploader stores its upload URL."""

    @abc.abstractmethod
    def get_fingerprint(self, fs: IO[Any]) -> str:
        """A string naming the content of the stream `fs` (equal content, equal string).

        Implementations must leave `fs` open: it may be the caller's own stream.
        """
