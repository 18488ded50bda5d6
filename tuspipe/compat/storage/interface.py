"""The URL storage interface: three methods, keyed by a file's fingerprint."""

from __future__ import annotations

import abc

__all__ = ["Storage"]


class Storage(abc.ABC):
    """Remembers upload URLs under keys (an uploader uses its file's fingerprint as the key).

    Implement it to keep URLs anywhere (a database, a shared cache); an uploader with
    ``store_url=True`` calls it to find the URL of an earlier upload of the same file.
    """

    @abc.abstractmethod
    def get_item(self, key: str) -> str | None:
        """The URL stored under `key`, or None when there is none."""

    @abc.abstractmethod
    def set_item(self, key: str, value: str) -> None:
        """Store the URL `value` under `key`, replacing any earlier one."""

    @abc.abstractmethod
    def remove_item(self, key: str) -> None:
        """Forget the URL stored under `key` (nothing happens when there is none)."""
