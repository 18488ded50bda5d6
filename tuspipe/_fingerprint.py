"""Fingerprints: which journal record, if any, belongs to a source.

A fingerprint digests the endpoint, what names the source (a file's absolute path, device,
inode, size and modification time, or the caller's ``resume_key``) and a sample of its bytes:
the whole source when it is small, else the first and last 64 KiB and six evenly spaced
64 KiB pieces between them. Two files that merely share a size and a prefix (tuspy's
md5-of-the-first-64-KiB fingerprint confuses them) get different fingerprints, and so does a
file that changed since its upload began.
"""

from __future__ import annotations

import hashlib

from ._source import Source

__all__ = ["SAMPLES", "SAMPLE_BYTES", "fingerprint", "sample_spans"]

SAMPLE_BYTES = 64 * 1024
SAMPLES = 8
_DOMAIN = b"tuspipe fingerprint v1\0"


def sample_spans(size: int) -> list[tuple[int, int]]:
    """The ``(offset, length)`` pieces of a source of `size` bytes that are digested."""
    if size <= SAMPLE_BYTES * SAMPLES:
        return [(0, size)] if size else []
    last = size - SAMPLE_BYTES
    return [(round(last * index / (SAMPLES - 1)), SAMPLE_BYTES) for index in range(SAMPLES)]


def fingerprint(source: Source, *, endpoint: str, identity: str) -> str:
    """A hex digest naming this source's upload to this endpoint (blocking: reads samples)."""
    if source.size is None:
        raise ValueError("a source of unknown size has no fingerprint")
    digest = hashlib.sha256(_DOMAIN)
    for field in (endpoint, identity, str(source.size)):
        encoded = field.encode("utf-8", "surrogateescape")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    for offset, length in sample_spans(source.size):
        digest.update(source.read_at(offset, length))
    return digest.hexdigest()
