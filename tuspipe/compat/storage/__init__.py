"""Where uploaders keep upload URLs between runs: :class:`interface.Storage` and a file."""

from __future__ import annotations

from . import filestorage, interface

__all__ = ["filestorage", "interface"]
