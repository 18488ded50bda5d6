"""URL storage in a file, written in tuspipe's journal format.

Each stored URL is a journal record (:class:`tuspipe.JournalEntry`) whose key is the
fingerprint, so the file is an ordinary tuspipe journal: append-only msgpack frames that
survive a process killed mid-write, locked against concurrent writers, created with mode
0600. ``tuspipe.Journal(path).unfinished()`` lists what it holds.

It is not tuspy's TinyDB JSON file; pointing it at one is refused rather than overwritten.
"""

from __future__ import annotations

import os

import tuspipe

from . import interface

__all__ = ["FileStorage"]

# What the `source` field of this storage's journal records says, to tell them apart from
# the records tuspipe.upload writes when both share a file.
RECORD_SOURCE = "tuspipe.compat.storage.filestorage"


class FileStorage(interface.Storage):
    """Upload URLs kept in the journal file at `fp` (created on the first write).

    Raises ValueError when `fp` holds a tuspy (TinyDB JSON) store: its fingerprints differ
    from tuspipe.compat's, so none of its URLs could be found again anyway.
    """

    def __init__(self, fp: str | os.PathLike[str]) -> None:
        self._journal = tuspipe.Journal(fp)
        self._closed = False
        try:
            with open(self._journal.path, "rb") as existing:
                start = existing.read(64).lstrip()
        except FileNotFoundError:
            start = b""
        if start.startswith(b"{"):
            raise ValueError(
                f"{os.fspath(fp)!r} looks like tuspy's TinyDB JSON store; tuspipe.compat keeps "
                "URLs in tuspipe's journal format, so give FileStorage a new file"
            )

    @property
    def journal(self) -> tuspipe.Journal:
        """The journal the URLs are kept in."""
        return self._journal

    def _open_journal(self) -> tuspipe.Journal:
        if self._closed:
            raise ValueError("the FileStorage is closed")
        return self._journal

    def get_item(self, key: str) -> str | None:
        entry = self._open_journal().get(key)
        return entry.url if entry is not None else None

    def set_item(self, key: str, url: str) -> None:
        self._open_journal().record_created(
            tuspipe.JournalEntry(key=key, url=url, endpoint="", source=RECORD_SOURCE, size=0)
        )

    def remove_item(self, key: str) -> None:
        self._open_journal().forget(key)

    def close(self) -> None:
        """Stop using the file (it holds no open handle between calls); later calls raise
        ValueError."""
        self._closed = True
