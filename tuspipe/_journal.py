"""The journal: a crash-safe msgpack file of upload records, for resuming interrupted uploads.

Rules of this module: pure encode/decode functions, plus :class:`Journal`, a thin writer that
does the file I/O (blocking; the api layer calls it from worker threads). No trio, no httpx.

Theory of operation
-------------------
The file is append-only. Each record is one *frame*::

    MAGIC (2 bytes) | length (4 bytes, big-endian) | crc32 of payload (4 bytes) | payload

where the payload is a msgpack map. A record says one thing about one upload, named by its
``key`` (the source's fingerprint): ``put`` (an upload exists: URL, size, offset, ...),
``ack`` (the server acknowledged a new offset), ``done`` (the upload finished: never resume
it) or ``forget`` (drop it). Replaying the frames in order gives the live uploads.

Damage is expected and survivable:

* a process killed mid-write leaves a torn last frame: it fails its length or crc check and
  is ignored;
* corrupt bytes in the middle break one frame: the reader scans forward to the next MAGIC
  whose frame checks out, so only the damaged record is lost;
* nothing that decodes wrongly ever raises out of :func:`decode_records`.

When the file grows past a threshold, :meth:`Journal.compact` rewrites the live records to a
temporary file, fsyncs it and renames it over the journal, so the file stays small. Writers
serialise on an advisory lock (``fcntl.flock``) held on a sidecar ``.lock`` file, which stays
valid across the rename; two processes sharing a journal cannot interleave or lose frames.

Appends are single ``write(2)`` calls without fsync: they survive a killed process (the
kernel has them), and a power cut can lose the newest records but never corrupt older ones.
Per-record fsyncs cost tens of milliseconds on ordinary disks, which would dominate uploads of
many small files. Compaction does fsync, because it replaces the file.

The file is created with mode 0600 in a directory created 0700. It holds no request headers
(they may carry tokens); the endpoint it keeps is stripped of credentials and query string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgpack

from ._httpdate import has_passed, parse_http_date

__all__ = [
    "Journal",
    "JournalEntry",
    "decode_records",
    "default_journal_path",
    "encode_record",
    "has_expired",
    "public_endpoint",
    "replay",
]

logger = logging.getLogger("tuspipe")

MAGIC = b"\xc1\x7e"  # 0xc1 is the one byte msgpack never uses as a type marker
_HEADER = struct.Struct(">2sII")
MAX_RECORD_BYTES = 1 << 20  # a longer "length" is damage, not a record
FORMAT_VERSION = 1
# Compact when the file is larger than this and at least 4x what the live records need.
COMPACT_THRESHOLD_BYTES = 256 * 1024

_OPS = frozenset({"put", "ack", "done", "forget"})


@dataclass(frozen=True)
class JournalEntry:
    """One unfinished upload as the journal knows it.

    ``offset`` is the last offset the server acknowledged; the server stays the authority and
    is asked again (HEAD) before resuming.
    """

    key: str
    url: str
    endpoint: str
    source: str
    size: int
    offset: int = 0
    created: float = field(default_factory=time.time)
    expires: str | None = None
    parts: tuple[str, ...] = ()

    @property
    def expires_at(self) -> datetime | None:
        """`expires` as a moment; None when the server named no date it can be read as."""
        return parse_http_date(self.expires)

    def to_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["parts"] = list(self.parts)
        record["op"] = "put"
        record["v"] = FORMAT_VERSION
        return record


def public_endpoint(url: str) -> str:
    """`url` without user info, query string or fragment: what is safe to keep on disk."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One framed record, ready to append."""
    payload: bytes = msgpack.packb(dict(record), use_bin_type=True)
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """All intact records in `data`, and how many damaged stretches were skipped.

    Never raises: a torn tail or corrupt bytes cost only the records they touch.
    """
    records, damaged, _ = _decode(data)
    return records, damaged


def _decode(data: bytes) -> tuple[list[dict[str, Any]], int, int]:
    """:func:`decode_records`, plus where the last intact frame ends."""
    records: list[dict[str, Any]] = []
    damaged = 0
    position = 0
    intact_end = 0
    while position < len(data):
        frame = _frame_at(data, position)
        if frame is not None:
            record, position = frame
            records.append(record)
            intact_end = position
            continue
        # Damage, or a torn tail: skip to the next frame that checks out.
        damaged += 1
        position = data.find(MAGIC, position + 1)
        while position >= 0 and _frame_at(data, position) is None:
            position = data.find(MAGIC, position + 1)
        if position < 0:
            break
    return records, damaged, intact_end


def _frame_at(data: bytes, position: int) -> tuple[dict[str, Any], int] | None:
    """The record framed at `position` and the position after it, or None if it is damaged."""
    if position + _HEADER.size > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, position)
    start = position + _HEADER.size
    if magic != MAGIC or length > MAX_RECORD_BYTES or start + length > len(data):
        return None
    payload = data[start : start + length]
    if zlib.crc32(payload) != crc:
        return None
    record = _load_payload(payload)
    return None if record is None else (record, start + length)


def _load_payload(payload: bytes) -> dict[str, Any] | None:
    try:
        record = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception:  # untrusted bytes: any failure to decode is damage, never a crash
        return None
    if not isinstance(record, dict) or record.get("op") not in _OPS:
        return None
    if not isinstance(record.get("key"), str):
        return None
    return record


def _entry_from(record: Mapping[str, Any]) -> JournalEntry | None:
    try:
        entry = JournalEntry(
            key=record["key"],
            url=record["url"],
            endpoint=record.get("endpoint", ""),
            source=record.get("source", ""),
            size=record["size"],
            offset=record.get("offset", 0),
            created=record.get("created", 0.0),
            expires=record.get("expires"),
            parts=tuple(record.get("parts") or ()),
        )
    except (KeyError, TypeError):
        return None
    types_ok = (
        isinstance(entry.url, str)
        and isinstance(entry.endpoint, str)
        and isinstance(entry.source, str)
        and isinstance(entry.size, int)
        and isinstance(entry.offset, int)
        and isinstance(entry.created, (int, float))
        and (entry.expires is None or isinstance(entry.expires, str))
        and all(isinstance(part, str) for part in entry.parts)
        and 0 <= entry.offset <= entry.size
    )
    return entry if types_ok else None


def replay(
    records: Iterable[Mapping[str, Any]], live: Mapping[str, JournalEntry] | None = None
) -> dict[str, JournalEntry]:
    """The live (unfinished, unforgotten) uploads after applying `records` in order to
    `live` (the uploads known before them; none by default)."""
    live = dict(live or {})
    for record in records:
        key = record["key"]
        op = record["op"]
        if op == "put":
            entry = _entry_from(record)
            if entry is not None:
                live[key] = entry
        elif op == "ack":
            offset = record.get("offset")
            current = live.get(key)
            if current is not None and isinstance(offset, int) and 0 <= offset <= current.size:
                live[key] = dataclasses.replace(current, offset=offset)
        else:  # done, forget
            live.pop(key, None)
    return live


def default_journal_path() -> Path:
    """``$TUSPIPE_JOURNAL``, else ``$XDG_CACHE_HOME/tuspipe/journal``, else ``~/.cache/...``."""
    override = os.environ.get("TUSPIPE_JOURNAL")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "tuspipe" / "journal"


class Journal:
    """The journal file at `path` (created on first write).

    Every method blocks on file I/O and the lock; call them from a worker thread in async code.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        # What this object has read: (device, inode, bytes read, live uploads). The file only
        # grows until compaction replaces it (a new inode), so reading on from where the last
        # read stopped is enough; uploads of many small files would otherwise re-read it all.
        self._cache: tuple[int, int, int, dict[str, JournalEntry]] | None = None
        self._cache_lock = threading.Lock()
        self._next_compaction_check = COMPACT_THRESHOLD_BYTES

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    # ---- locking and raw I/O -----------------------------------------------------------

    def _ensure_directory(self) -> None:
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self._ensure_directory()
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _append(self, frames: bytes) -> None:
        with self._locked(exclusive=True):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, frames)
            finally:
                os.close(fd)
            self._compact_if_large()

    # ---- reading -----------------------------------------------------------------------

    def load(self) -> dict[str, JournalEntry]:
        """The live uploads, by key."""
        with self._locked(exclusive=False):
            return dict(self._load_unlocked())

    def _load_unlocked(self) -> dict[str, JournalEntry]:
        """The live uploads; the caller holds the file lock."""
        with self._cache_lock:
            try:
                stream = self.path.open("rb")
            except FileNotFoundError:
                self._cache = None
                return {}
            with stream:
                info = os.fstat(stream.fileno())
                cached = self._cache
                start, known = 0, {}
                same_file = cached is not None and cached[:2] == (info.st_dev, info.st_ino)
                if cached is not None and same_file and cached[2] <= info.st_size:
                    start, known = cached[2], cached[3]
                stream.seek(start)
                data = stream.read()
            records, damaged, intact_end = _decode(data)
            if damaged:
                logger.warning("journal %s: skipped %d damaged stretch(es)", self.path, damaged)
            live = replay(records, known)
            self._cache = (info.st_dev, info.st_ino, start + intact_end, live)
            return live

    def get(self, key: str) -> JournalEntry | None:
        return self.load().get(key)

    def unfinished(self) -> list[JournalEntry]:
        """Every unfinished upload, oldest first."""
        return sorted(self.load().values(), key=lambda entry: entry.created)

    # ---- writing -----------------------------------------------------------------------

    def record_created(self, entry: JournalEntry) -> None:
        """Remember a new upload."""
        self._append(encode_record(entry.to_record()))

    def record_offset(self, key: str, offset: int) -> None:
        """Remember an offset the server acknowledged."""
        self._append(encode_record({"op": "ack", "key": key, "offset": offset}))

    def record_finished(self, key: str) -> None:
        """The upload is complete: it must never be resumed."""
        self._append(encode_record({"op": "done", "key": key}))

    def forget(self, key: str) -> bool:
        """Drop one upload; True if the journal knew it."""
        known = key in self.load()
        if known:
            self._append(encode_record({"op": "forget", "key": key}))
        return known

    def clear(self, *, expired_only: bool = False) -> int:
        """Drop every unfinished upload (or only those whose server expiry has passed).

        Finished and forgotten records are dropped too (the file is compacted). Returns how
        many unfinished uploads were dropped.
        """
        with self._locked(exclusive=True):
            live = self._load_unlocked()
            keep = {
                key: entry for key, entry in live.items() if expired_only and not has_expired(entry)
            }
            self._rewrite(keep.values())
        return len(live) - len(keep)

    def compact(self) -> None:
        """Rewrite the file with only the live records."""
        with self._locked(exclusive=True):
            self._rewrite(self._load_unlocked().values())

    def _compact_if_large(self) -> None:
        """Called with the exclusive lock held. The check itself is rare: only when the file
        has grown by half since the last check."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._next_compaction_check:
            return
        live = self._load_unlocked()
        needed = sum(len(encode_record(entry.to_record())) for entry in live.values())
        if size >= 4 * needed:
            self._rewrite(live.values())
            self._next_compaction_check = COMPACT_THRESHOLD_BYTES
        else:
            self._next_compaction_check = size + size // 2

    def _rewrite(self, entries: Iterable[JournalEntry]) -> None:
        """Atomically replace the file with `entries` (exclusive lock held by the caller)."""
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"".join(encode_record(entry.to_record()) for entry in entries))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def has_expired(entry: JournalEntry, now: float | None = None) -> bool:
    """True once the server's ``Upload-Expires`` for the upload has passed."""
    return has_passed(entry.expires, now)
