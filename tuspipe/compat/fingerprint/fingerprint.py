"""The default fingerprint: the size plus a digest of samples spread over the whole content.

tuspy digests only the first 64 KiB (and the size), so two files of equal size that share
their first 64 KiB get the same fingerprint and resume each other's upload. Like tuspipe's own
journal fingerprint, this one samples the whole span: a source up to ``SAMPLES`` blocks long
is digested entirely, a longer one at its first and last block and at evenly spaced blocks
between them. It depends on the bytes only, so a path and a stream of the same bytes agree.
"""

from __future__ import annotations

import hashlib
import os
from typing import IO, Any

from . import interface

__all__ = ["Fingerprint"]

_DOMAIN = b"tuspipe.compat fingerprint v1\0"


class Fingerprint(interface.Fingerprint):
    """Fingerprints of the form ``size:<bytes>--sha256:<hex digest of the samples>``."""

    #: Bytes per sample.
    BLOCK_SIZE = 65536
    #: Samples taken from a source longer than ``SAMPLES * BLOCK_SIZE`` bytes.
    SAMPLES = 8

    def get_fingerprint(self, fs: IO[Any]) -> str:
        """Fingerprint the whole content of `fs` (from its start, whatever its position).

        Reads at most ``SAMPLES * BLOCK_SIZE`` bytes; the stream's position is restored and
        the stream is left open.
        """
        position = fs.tell()
        try:
            size = fs.seek(0, os.SEEK_END)
            digest = hashlib.sha256(_DOMAIN + size.to_bytes(8, "big"))
            for offset, length in self._spans(size):
                fs.seek(offset)
                data = fs.read(length)
                digest.update(data.encode("utf-8") if isinstance(data, str) else data)
        finally:
            fs.seek(position)
        return f"size:{size}--sha256:{digest.hexdigest()}"

    def _spans(self, size: int) -> list[tuple[int, int]]:
        """The ``(offset, length)`` samples digested for a source of `size` bytes."""
        if size <= self.BLOCK_SIZE * self.SAMPLES:
            return [(0, size)] if size else []
        last = size - self.BLOCK_SIZE
        step = self.SAMPLES - 1
        return [(round(last * index / step), self.BLOCK_SIZE) for index in range(self.SAMPLES)]
