"""The uploaders: :class:`Uploader` (blocking) and :class:`AsyncUploader` (asyncio or trio)."""

from __future__ import annotations

from .uploader import AsyncUploader, Uploader

__all__ = ["AsyncUploader", "Uploader"]
