"""Fingerprints name a file's content, so a stored upload URL can be found again."""

from __future__ import annotations

from . import fingerprint, interface

__all__ = ["fingerprint", "interface"]
