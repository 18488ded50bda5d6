"""A fast local tus 1.0.0 "discard sink": it speaks the protocol and throws the bytes away.

It exists to measure tus *clients*: real servers on a small machine are slower than the clients
they serve (they write to disk, parse in JavaScript, buffer in Python), so a client benchmark
against them measures the server. The sink reads PATCH bodies with ``recv_into`` into one
reusable buffer per connection and only counts them, so on loopback it drains several GB/s.

What it speaks (tus 1.0.0 core plus creation, creation-with-upload, creation-defer-length,
termination, checksum and concatenation):

* ``OPTIONS /files/``: 204 with ``Tus-Version``, ``Tus-Extension`` and
  ``Tus-Checksum-Algorithm`` (sha1, sha256, sha512, md5, crc32).
* ``POST /files/`` with ``Upload-Length``, or with ``Upload-Defer-Length: 1`` for an upload of
  unknown length: 201 and an absolute ``Location: .../files/<id>``; 400 when neither is valid,
  when both are sent, or when ``Upload-Defer-Length`` is not ``1``. With a body of type
  ``application/offset+octet-stream`` (creation-with-upload, also with a deferred length), the
  body is taken as a PATCH at offset 0 and the 201 carries the new ``Upload-Offset``.
* ``HEAD /files/<id>``: 200 with ``Upload-Offset``, ``Upload-Length`` (``Upload-Defer-Length: 1``
  instead while the length is not known), ``Cache-Control: no-store`` (and ``Upload-Concat`` for
  a partial or final upload, as it was sent at creation).
* ``PATCH /files/<id>`` (``Content-Length`` or chunked body): 204 with the new ``Upload-Offset``;
  409 when ``Upload-Offset`` is not the upload's offset, 413 past ``Upload-Length``, 415 for a
  wrong ``Content-Type``, 423 while another PATCH of the same upload runs. With
  ``verify_checksums`` an ``Upload-Checksum`` is checked (460 on mismatch, 400 for an unknown
  algorithm); without it (the default) the header is accepted unchecked, so a benchmark
  measures the client's hashing and not the sink's.
* ``PATCH`` of an upload of deferred length: takes any number of bytes until one PATCH carries
  ``Upload-Length``; that length is set when the PATCH is accepted (or when its client goes
  away mid-body, leaving bytes that fit) and never changes again, and a refused PATCH changes
  nothing. 400 when the ``Upload-Length`` is malformed, below the upload's offset, or differs
  from a length already known (repeating the known one is fine); 413 when the PATCH's bytes
  go past it. Such an upload cannot be joined while its length is unknown (see below).
* ``DELETE /files/<id>``: 204 (404 when unknown).
* A missing or wrong ``Tus-Resumable`` on a non-OPTIONS request: 412.

Concatenation (parallel uploads; ``concatenation-unfinished`` is not offered):

* ``POST /files/`` with ``Upload-Concat: partial`` and ``Upload-Length`` (or
  ``Upload-Defer-Length: 1``): 201, a partial upload, PATCHed like any other. Its HEAD answer
  carries ``Upload-Concat: partial``.
* ``POST /files/`` with ``Upload-Concat: final;<url> <url> ...`` (absolute URLs of this sink or
  ``/files/<id>`` paths; a part may be listed more than once): 201, a final upload whose length
  is the sum of the parts' lengths and whose offset equals its length at once (nothing is
  stored, so there is nothing to join). Its HEAD answer carries the ``Upload-Concat`` value it
  was created with. Refused with

  - 400 when the header is malformed (neither ``partial`` nor ``final;`` and at least one URL),
    when the final request also sends ``Upload-Length`` or ``Upload-Defer-Length`` (the spec
    forbids it), when a URL does not name an upload of this sink (another host, or a path
    outside ``/files/<id>``), when a listed upload is not a partial upload (a plain or final
    one), or when a partial upload is not finished (its length still deferred, or its offset
    below its length; as tusd does);
  - 404 when a URL names ``/files/<id>`` but no such upload exists (never made, or deleted).

* ``PATCH`` of a final upload: 403, whatever else the request says.
* The parts stay after the join (the spec allows a part to be used again) until DELETEd.

HTTP/1.1 keep-alive with one thread per connection; a client that vanishes mid-request costs
the sink nothing but that thread (bytes it did receive still advance the offset, as on real
servers, unless checksums are being verified or the bytes pass the upload's length). It only
ever binds to 127.0.0.1.

Use it in-process::

    with TusSink() as sink:
        tuspipe.upload("big.bin", sink.url)

or as a process: ``python -m benchmarks.sink --port 0`` prints
``READY http://127.0.0.1:<port>/files/`` once it serves (and :class:`SinkProcess` wraps that).
On SIGINT or SIGTERM it stops and prints a one-line summary to stderr (``sink stopped after
...``), unless ``--quiet`` (``SinkProcess(quiet=True)``) is given.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Protocol
from urllib.parse import urlsplit

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "HOST",
    "SinkProcess",
    "SinkStats",
    "TusSink",
    "UploadInfo",
    "main",
]

logger = logging.getLogger("benchmarks.sink")

#: The only address the sink ever binds to.
HOST = "127.0.0.1"
TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,checksum,concatenation"
)
#: Algorithms the sink can verify (and advertises in ``Tus-Checksum-Algorithm``).
CHECKSUM_ALGORITHMS: tuple[str, ...] = ("sha1", "sha256", "sha512", "md5", "crc32")
#: Bytes per ``recv_into`` while draining a body; one such buffer exists per connection.
DEFAULT_RECV_SIZE = 1024 * 1024
# fcntl commands for a pipe's capacity (Linux; not named in the fcntl module before 3.10).
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
#: Seconds a connection may sit silent (between or inside requests) before it is dropped.
IDLE_TIMEOUT = 300.0
#: Seconds a PATCH waits for another PATCH of the same upload to finish before 423.
LOCK_WAIT = 10.0
MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024
_HEADER_READ = 64 * 1024

_REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    423: "Locked",
    460: "Checksum Mismatch",
    500: "Internal Server Error",
}


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


class _Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    """crc32 with hashlib's interface; the digest is the 4-byte big-endian value."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return (self._value & 0xFFFFFFFF).to_bytes(4, "big")


def _new_hasher(algorithm: str) -> _Hasher:
    """A fresh hasher for one of :data:`CHECKSUM_ALGORITHMS` (KeyError for any other)."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in CHECKSUM_ALGORITHMS:
        return hashlib.new(algorithm)
    raise KeyError(algorithm)


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The peer closed the connection (or went silent) before a request was complete."""

    def __init__(self, received: int = 0) -> None:
        super().__init__(f"client went away after {received} body bytes")
        self.received = received


class _BadRequest(Exception):
    """A request the sink cannot parse; it is answered with 400 and the connection closed."""


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for t in (self.header("connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


class _SpliceDiscard:
    """Drops socket bytes with ``splice()`` (Linux): socket to a pipe to /dev/null, never
    copied into the process."""

    def __init__(self, read_end: int, write_end: int, sink: int, size: int) -> None:
        self._read_end, self._write_end, self._null, self._size = read_end, write_end, sink, size

    @classmethod
    def open(cls, size: int) -> _SpliceDiscard | None:
        """A discarder with a pipe of about `size` bytes; None where splice() is missing."""
        if not hasattr(os, "splice"):
            return None
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError):  # a bigger pipe means fewer splice() calls
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, size)
        size = fcntl.fcntl(write_end, _F_GETPIPE_SZ)
        return cls(read_end, write_end, os.open(os.devnull, os.O_WRONLY), size)

    def drain(self, sock: socket.socket, length: int, before: int) -> int:
        """Discard exactly `length` bytes from `sock`; _ClientGone (counting `before` bytes
        already received) if the peer stops short or goes silent."""
        received = 0
        fd = sock.fileno()
        timeout = sock.gettimeout()
        while received < length:
            try:
                moved = os.splice(fd, self._write_end, min(self._size, length - received))
            except BlockingIOError:  # the socket has a timeout, so it is non-blocking
                ready, _, _ = select.select([fd], [], [], timeout)
                if not ready:
                    raise _ClientGone(before + received) from None
                continue
            except OSError as exc:
                raise _ClientGone(before + received) from exc
            if moved == 0:
                raise _ClientGone(before + received)
            received += moved
            while moved:  # empty the pipe before filling it again
                moved -= os.splice(self._read_end, self._null, moved)
        return received

    def close(self) -> None:
        for fd in (self._read_end, self._write_end, self._null):
            os.close(fd)


class _Connection:
    """One client socket: buffered head parsing and zero-copy body draining."""

    def __init__(self, sock: socket.socket, recv_size: int) -> None:
        self.sock = sock
        self._pending = bytearray()  # received, not yet parsed
        self._buffer = bytearray(recv_size)
        self._view = memoryview(self._buffer)
        self._discard = _SpliceDiscard.open(recv_size)

    def close(self) -> None:
        if self._discard is not None:
            self._discard.close()

    def _fill(self) -> None:
        try:
            data = self.sock.recv(_HEADER_READ)
        except (TimeoutError, OSError) as exc:
            raise _ClientGone() from exc
        if not data:
            raise _ClientGone()
        self._pending += data

    def read_head(self) -> _Request | None:
        """The next request's line and headers; None when the client closed between requests."""
        while True:
            end = self._pending.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._pending) > MAX_HEAD_BYTES:
                raise _BadRequest("request head too large")
            if not self._pending.strip():
                self._pending.clear()  # tolerate stray CRLFs between requests
            try:
                self._fill()
            except _ClientGone:
                if not self._pending:
                    return None
                raise
        head = bytes(self._pending[:end]).decode("latin-1")
        del self._pending[: end + 4]
        lines = head.split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)
        if not lines:
            raise _BadRequest("empty request")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"bad request line {lines[0][:80]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or line[0] in " \t":
                raise _BadRequest(f"bad header line {line[:80]!r}")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if target.startswith(("http://", "https://")):
            target = urlsplit(target).path or "/"
        path = target.split("?", 1)[0]
        return _Request(method.upper(), path, version, headers)

    def _read_line(self) -> bytes:
        while True:
            end = self._pending.find(b"\r\n")
            if end >= 0:
                line = bytes(self._pending[:end])
                del self._pending[: end + 2]
                return line
            if len(self._pending) > MAX_LINE_BYTES:
                raise _BadRequest("chunk line too long")
            self._fill()

    def drain(self, length: int, hasher: _Hasher | None) -> int:
        """Read and discard exactly `length` body bytes, feeding them to `hasher` if given.

        Raises _ClientGone (with the bytes received so far) if the peer stops short.
        """
        received = 0
        if self._pending:
            take = min(length, len(self._pending))
            if hasher is not None:
                hasher.update(self._pending[:take])
            del self._pending[:take]
            received = take
        if hasher is None and self._discard is not None:
            # Nothing to look at: move the bytes socket -> pipe -> /dev/null in the kernel,
            # so the sink spends next to no CPU on them and leaves the cores to the client.
            return received + self._discard.drain(self.sock, length - received, received)
        view = self._view
        size = len(view)
        recv_into = self.sock.recv_into
        while received < length:
            try:
                n = recv_into(view, min(size, length - received))
            except (TimeoutError, OSError) as exc:
                raise _ClientGone(received) from exc
            if n == 0:
                raise _ClientGone(received)
            if hasher is not None:
                hasher.update(view[:n])
            received += n
        return received

    def drain_chunked(self, hasher: _Hasher | None) -> int:
        """Read and discard a ``Transfer-Encoding: chunked`` body; return its decoded size."""
        total = 0
        while True:
            line = self._read_line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(f"bad chunk size {line[:40]!r}") from None
            if size < 0:
                raise _BadRequest("negative chunk size")
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return total
            try:
                total += self.drain(size, hasher)
            except _ClientGone as gone:
                raise _ClientGone(total + gone.received) from None
            if self._read_line():
                raise _BadRequest("chunk not followed by CRLF")

    def send(
        self,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        """Send one complete response."""
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if status not in (100, 204) and not head_only:
            lines.append(f"Content-Length: {len(body)}")
        if close:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head_only and status != 204:
            data += body
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _ClientGone() from exc


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class _Upload:
    #: None while the length is deferred (``Upload-Defer-Length: 1``); set at most once, by a
    #: PATCH that carries ``Upload-Length``, while holding :attr:`lock`.
    length: int | None
    offset: int = 0
    #: ``Upload-Concat`` as received at creation: None (a plain upload), ``partial``, or
    #: ``final;<urls>`` (then offset == length from the start, and PATCH gets 403).
    concat: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def is_partial(self) -> bool:
        return self.concat == "partial"

    @property
    def is_final(self) -> bool:
        return self.concat is not None and self.concat != "partial"


@dataclass(frozen=True)
class UploadInfo:
    """A snapshot of one upload the sink holds (see :meth:`TusSink.uploads`)."""

    id: str
    url: str
    #: None while the length is deferred (created with ``Upload-Defer-Length: 1``).
    length: int | None
    offset: int
    #: ``Upload-Concat`` as received at creation: None, ``partial`` or ``final;<urls>``.
    concat: str | None


@dataclass
class SinkStats:
    """Running totals of what the sink saw (read them after the clients are done)."""

    connections: int = 0
    requests: int = 0
    uploads_created: int = 0  # every upload made: plain, partial and final ones
    concatenations: int = 0  # final uploads made (Upload-Concat: final)
    patches: int = 0
    bytes_received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        """Add to counters atomically, e.g. ``stats.add(patches=1, bytes_received=n)``."""
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


_TUS = ("Tus-Resumable", TUS_VERSION)


class TusSink:
    """The discard sink, serving from a background thread; a context manager.

    Args:
        port: TCP port on 127.0.0.1 (0 picks a free one; see :attr:`url`).
        verify_checksums: check each PATCH's ``Upload-Checksum`` (off by default).
        recv_size: bytes per ``recv_into`` when draining bodies.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        verify_checksums: bool = False,
        recv_size: int = DEFAULT_RECV_SIZE,
    ) -> None:
        if recv_size <= 0:
            raise ValueError("recv_size must be positive")
        self.verify_checksums = verify_checksums
        self.recv_size = recv_size
        self.stats = SinkStats()
        self._uploads: dict[str, _Upload] = {}
        self._uploads_lock = threading.Lock()
        self._listener = socket.create_server((HOST, port), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The creation endpoint, ``http://127.0.0.1:<port>/files/``."""
        return f"http://{HOST}:{self.port}/files/"

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> TusSink:
        """Start accepting connections in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="tus-sink-accept", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`; each gets its own daemon thread."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        sock, _address = self._listener.accept()
                    except OSError:
                        continue
                    threading.Thread(
                        target=self._serve_connection,
                        args=(sock,),
                        name="tus-sink-conn",
                        daemon=True,
                    ).start()

    def stop(self) -> None:
        """Stop accepting, close every open connection, and release the port."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._clients_lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for closable in (self._listener, self._wake_r, self._wake_w):
            closable.close()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` was called (True) or `timeout` seconds passed (False)."""
        return self._stopping.wait(timeout)

    def __enter__(self) -> TusSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- per connection -------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.add(sock)
        self.stats.add(connections=1)
        conn: _Connection | None = None
        try:
            sock.settimeout(IDLE_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, self.recv_size)
            while not self._stopping.is_set():
                try:
                    request = conn.read_head()
                except _BadRequest as exc:
                    conn.send(400, [_TUS], f"{exc}\n".encode(), close=True)
                    return
                if request is None:
                    return
                self.stats.add(requests=1)
                try:
                    keep_alive = self._handle(conn, request)
                except _BadRequest as exc:
                    conn.send(400, [_TUS], f"{exc}\n".encode(), close=True)
                    return
                if not keep_alive:
                    return
        except _ClientGone as exc:
            logger.debug("connection dropped: %s", exc)
        except Exception:
            logger.exception("sink connection failed")
        finally:
            with self._clients_lock:
                self._clients.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()
            if conn is not None:
                conn.close()

    def _body_length(self, request: _Request) -> int | None:
        """The body's Content-Length; None for a chunked body; 0 when there is none."""
        encoding = request.header("transfer-encoding")
        length = request.header("content-length")
        if encoding is not None:
            if length is not None or encoding.strip().lower() != "chunked":
                raise _BadRequest("unsupported Transfer-Encoding / Content-Length combination")
            return None
        if length is None:
            return 0
        value = _count(length)
        if value is None:
            raise _BadRequest(f"bad Content-Length {length[:40]!r}")
        return value

    def _skip_body(self, conn: _Connection, request: _Request) -> None:
        """Read and drop a request body the sink does not want."""
        length = self._body_length(request)
        if length is None:
            conn.drain_chunked(None)
        elif length:
            conn.drain(length, None)

    def _continue(self, conn: _Connection, request: _Request) -> None:
        if (request.header("expect") or "").lower() == "100-continue":
            conn.send(100)

    def _reply(
        self,
        conn: _Connection,
        request: _Request,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        message: str = "",
        *,
        skip_body: bool = True,
    ) -> bool:
        """Drop the body if asked, answer, and say whether the connection stays open."""
        if skip_body:
            self._continue(conn, request)
            self._skip_body(conn, request)
        close = request.wants_close or self._stopping.is_set()
        body = f"{message}\n".encode() if message else b""
        extra = [("Content-Type", "text/plain; charset=utf-8")] if body else []
        conn.send(
            status,
            [_TUS, *headers, *extra],
            body,
            close=close,
            head_only=request.method == "HEAD",
        )
        return not close

    def _handle(self, conn: _Connection, request: _Request) -> bool:
        """Answer one request; True when the connection may carry another."""
        path = request.path.rstrip("/")
        if path != "/files" and not path.startswith("/files/"):
            return self._reply(conn, request, 404, message="not a tus endpoint")
        if request.method == "OPTIONS":
            return self._reply(
                conn,
                request,
                204,
                [
                    ("Tus-Version", TUS_VERSION),
                    ("Tus-Extension", EXTENSIONS),
                    ("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS)),
                ],
            )
        if (request.header("tus-resumable") or "").strip() != TUS_VERSION:
            return self._reply(
                conn, request, 412, [("Tus-Version", TUS_VERSION)], "Tus-Resumable 1.0.0 needed"
            )
        if path == "/files":
            if request.method != "POST":
                return self._reply(
                    conn, request, 405, [("Allow", "OPTIONS, POST")], "use POST here"
                )
            return self._create(conn, request)
        upload_id = path[len("/files/") :]
        if request.method == "HEAD":
            return self._head(conn, request, upload_id)
        if request.method == "PATCH":
            return self._patch(conn, request, upload_id)
        if request.method == "DELETE":
            return self._delete(conn, request, upload_id)
        return self._reply(
            conn, request, 405, [("Allow", "OPTIONS, HEAD, PATCH, DELETE")], "method not allowed"
        )

    def uploads(self) -> dict[str, UploadInfo]:
        """A snapshot of every upload the sink holds, by id, in creation order."""
        with self._uploads_lock:
            held = list(self._uploads.items())
        return {
            upload_id: UploadInfo(
                upload_id, f"{self.url}{upload_id}", upload.length, upload.offset, upload.concat
            )
            for upload_id, upload in held
        }

    def _create(self, conn: _Connection, request: _Request) -> bool:
        concat = request.header("upload-concat")
        if concat is not None:
            concat = concat.strip()
            kind, semicolon, _ = concat.partition(";")
            if semicolon and kind.strip().lower() == "final":
                return self._create_final(conn, request, concat)
            if concat.lower() != "partial":
                return self._reply(
                    conn, request, 400, message="Upload-Concat must be partial or final;<urls>"
                )
            concat = "partial"
        raw = request.header("upload-length")
        defer = request.header("upload-defer-length")
        length: int | None = None
        if defer is not None:
            if raw is not None:
                return self._reply(
                    conn,
                    request,
                    400,
                    message="send Upload-Length or Upload-Defer-Length, not both",
                )
            if defer.strip() != "1":
                return self._reply(conn, request, 400, message="Upload-Defer-Length must be 1")
        else:
            length = _count(raw) if raw is not None else None
            if length is None:
                return self._reply(
                    conn,
                    request,
                    400,
                    message="a valid Upload-Length (or Upload-Defer-Length: 1) is required",
                )
        upload_id = uuid.uuid4().hex
        upload = _Upload(length, concat=concat)
        with self._uploads_lock:
            self._uploads[upload_id] = upload
        self.stats.add(uploads_created=1)
        location = ("Location", f"{self.url}{upload_id}")
        body_length = self._body_length(request)
        content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if body_length == 0 or content_type != "application/offset+octet-stream":
            return self._reply(conn, request, 201, [location])
        # creation-with-upload: the body is the upload's first bytes, taken as a PATCH at 0.
        with upload.lock:
            answer = self._apply_patch(conn, request, upload, 0, body_length, None, None, None)
        if answer.status != 204:
            return self._answer(conn, request, answer)
        return self._reply(
            conn, request, 201, [location, ("Upload-Offset", str(upload.offset))], skip_body=False
        )

    def _create_final(self, conn: _Connection, request: _Request, concat: str) -> bool:
        """``Upload-Concat: final;<urls>``: a finished upload as long as its parts together."""
        if request.header("upload-length") is not None:
            return self._reply(conn, request, 400, message="a final upload takes no Upload-Length")
        if request.header("upload-defer-length") is not None:
            return self._reply(
                conn, request, 400, message="a final upload takes no Upload-Defer-Length"
            )
        references = concat.partition(";")[2].split()
        if not references:
            return self._reply(conn, request, 400, message="Upload-Concat: final lists no uploads")
        part_ids: list[str] = []
        for reference in references:
            part_id = self._part_id(reference, request)
            if part_id is None:
                return self._reply(
                    conn, request, 400, message=f"{reference[:200]!r} is not an upload of this sink"
                )
            part_ids.append(part_id)
        final_id = uuid.uuid4().hex
        # Checked and created under one lock, so a part cannot be deleted in between.
        with self._uploads_lock:
            joined = _concat_length(part_ids, [self._uploads.get(i) for i in part_ids])
            if not isinstance(joined, _Refusal):
                self._uploads[final_id] = _Upload(joined, joined, concat=concat)
        if isinstance(joined, _Refusal):
            return self._reply(conn, request, joined.status, message=joined.message)
        self.stats.add(uploads_created=1, concatenations=1)
        return self._reply(conn, request, 201, [("Location", f"{self.url}{final_id}")])

    def _part_id(self, reference: str, request: _Request) -> str | None:
        """The upload id a URL of ``Upload-Concat: final`` names; None when it cannot be one of
        this sink's (another host, another scheme, or a path outside ``/files/<id>``)."""
        try:
            parts = urlsplit(reference)
        except ValueError:
            return None
        if parts.scheme or parts.netloc:
            own = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
            host = request.header("host")
            if host is not None:
                own.add(host.strip().lower())
            if parts.scheme.lower() != "http" or parts.netloc.lower() not in own:
                return None
        path = parts.path.rstrip("/")
        if not path.startswith("/files/"):
            return None
        upload_id = path[len("/files/") :]
        return upload_id if upload_id and "/" not in upload_id else None

    def _lookup(self, upload_id: str) -> _Upload | None:
        with self._uploads_lock:
            return self._uploads.get(upload_id)

    def _head(self, conn: _Connection, request: _Request, upload_id: str) -> bool:
        upload = self._lookup(upload_id)
        if upload is None:
            return self._reply(conn, request, 404, [("Cache-Control", "no-store")])
        length = upload.length  # read once: a PATCH may declare it meanwhile
        headers = [
            ("Upload-Offset", str(upload.offset)),
            ("Upload-Length", str(length)) if length is not None else ("Upload-Defer-Length", "1"),
            ("Cache-Control", "no-store"),
        ]
        if upload.concat is not None:
            headers.append(("Upload-Concat", upload.concat))
        return self._reply(conn, request, 200, headers)

    def _delete(self, conn: _Connection, request: _Request, upload_id: str) -> bool:
        with self._uploads_lock:
            upload = self._uploads.pop(upload_id, None)
        return self._reply(conn, request, 404 if upload is None else 204)

    def _patch(self, conn: _Connection, request: _Request, upload_id: str) -> bool:
        upload = self._lookup(upload_id)
        if upload is not None and upload.is_final:
            return self._reply(conn, request, 403, message="a final upload cannot be PATCHed")
        content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/offset+octet-stream":
            return self._reply(conn, request, 415, message="Content-Type must be offset+octet")
        raw_offset = request.header("upload-offset")
        offset = _count(raw_offset) if raw_offset is not None else None
        if offset is None:
            return self._reply(conn, request, 400, message="a valid Upload-Offset is required")
        raw_length = request.header("upload-length")
        declared = _count(raw_length) if raw_length is not None else None
        if raw_length is not None and declared is None:
            return self._reply(conn, request, 400, message="a valid Upload-Length is required")
        length = self._body_length(request)
        if upload is None:
            return self._reply(conn, request, 404, message="no such upload")
        hasher: _Hasher | None = None
        expected: bytes | None = None
        if self.verify_checksums and request.header("upload-checksum") is not None:
            parsed = _parse_checksum(request.header("upload-checksum") or "")
            if parsed is None:
                return self._reply(conn, request, 400, message="unsupported Upload-Checksum")
            hasher, expected = parsed
        # A PATCH of the same upload may still be finishing on another connection (a client
        # that dropped one and resumed at once): wait for it, and answer 423 only if it hangs.
        if not upload.lock.acquire(timeout=LOCK_WAIT):
            return self._reply(conn, request, 423, message="another PATCH is in progress")
        try:
            answer = self._apply_patch(
                conn, request, upload, offset, length, declared, hasher, expected
            )
        finally:
            # Released before answering: once the client holds the answer, its next PATCH
            # (on any connection) must find the upload free.
            upload.lock.release()
        return self._answer(conn, request, answer)

    def _answer(self, conn: _Connection, request: _Request, answer: _Answer) -> bool:
        """Send an answer decided under an upload's lock (the body left unread is dropped)."""
        return self._reply(
            conn,
            request,
            answer.status,
            answer.headers,
            answer.message,
            skip_body=not answer.body_read,
        )

    def _apply_patch(
        self,
        conn: _Connection,
        request: _Request,
        upload: _Upload,
        offset: int,
        length: int | None,
        declared: int | None,
        hasher: _Hasher | None,
        expected: bytes | None,
    ) -> _Answer:
        """Check a PATCH against the upload and drain its body; the caller holds the lock.

        `length` is the body's (None: chunked), `declared` the PATCH's ``Upload-Length``.
        """
        if offset != upload.offset:
            return _Answer(
                409,
                [("Upload-Offset", str(upload.offset))],
                f"Upload-Offset {offset} but the upload is at {upload.offset}",
            )
        if declared is not None:
            if upload.length is not None and declared != upload.length:
                return _Answer(
                    400, [], f"Upload-Length {declared} but the upload is {upload.length} bytes"
                )
            if declared < offset:
                return _Answer(400, [], f"Upload-Length {declared} is below offset {offset}")
        limit = upload.length if upload.length is not None else declared
        if length is not None and limit is not None and offset + length > limit:
            return _Answer(413, [], "PATCH goes past Upload-Length")
        self._continue(conn, request)
        try:
            received = conn.drain_chunked(hasher) if length is None else conn.drain(length, hasher)
        except _ClientGone as gone:
            # Keep what arrived (and the length it declared), as a real server would; not
            # when it cannot be checked, nor past the length.
            if hasher is None and (limit is None or offset + gone.received <= limit):
                upload.length = limit
                upload.offset = offset + gone.received
            self.stats.add(patches=1, bytes_received=gone.received)
            raise
        self.stats.add(patches=1, bytes_received=received)
        if limit is not None and offset + received > limit:
            return _Answer(413, [], "PATCH went past Upload-Length", body_read=True)
        if hasher is not None and hasher.digest() != expected:
            return _Answer(460, [], "checksum mismatch", body_read=True)
        # The length first: a HEAD reading without the lock never sees offset > length.
        upload.length = limit  # a declared length is set once; after that it can only repeat
        upload.offset = offset + received
        return _Answer(204, [("Upload-Offset", str(upload.offset))], body_read=True)


@dataclass(frozen=True)
class _Answer:
    """A response decided while holding an upload's lock, sent after releasing it."""

    status: int
    headers: list[tuple[str, str]]
    message: str = ""
    body_read: bool = False


@dataclass(frozen=True)
class _Refusal:
    status: int
    message: str


def _concat_length(part_ids: Sequence[str], parts: Sequence[_Upload | None]) -> int | _Refusal:
    """The length of these uploads joined, or why they cannot be joined."""
    total = 0
    for part_id, part in zip(part_ids, parts, strict=True):
        if part is None:
            return _Refusal(404, f"no upload {part_id}")
        if not part.is_partial:
            return _Refusal(400, f"upload {part_id} is not a partial upload")
        # Each read once: a PATCH of the part may be running (offset only grows up to length).
        length, offset = part.length, part.offset
        if length is None:
            return _Refusal(400, f"partial upload {part_id} has no length yet (deferred)")
        if offset != length:
            return _Refusal(400, f"partial upload {part_id} is at {offset} of {length} bytes")
        total += length
    return total


def _count(text: str) -> int | None:
    """A non-negative decimal header value, or None when malformed."""
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    return int(text)


def _parse_checksum(value: str) -> tuple[_Hasher, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64>`` as a fresh hasher and the expected digest."""
    name, _, encoded = value.strip().partition(" ")
    try:
        return _new_hasher(name.lower()), base64.b64decode(encoded.strip(), validate=True)
    except (KeyError, binascii.Error):
        return None


# --------------------------------------------------------------------------------------------
# The sink as a separate process
# --------------------------------------------------------------------------------------------


class SinkProcess:
    """``python -m benchmarks.sink`` in a subprocess (so it shares no GIL with the caller).

    A context manager; :attr:`url` is valid inside it. Stopped by its own process id.
    `quiet` passes ``--quiet``: no summary line on stderr when it stops (warnings still go
    there), for callers whose own output it would interrupt.
    """

    def __init__(
        self, *, verify_checksums: bool = False, quiet: bool = False, ready_timeout: float = 20.0
    ) -> None:
        self.verify_checksums = verify_checksums
        self.quiet = quiet
        self.ready_timeout = ready_timeout
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SinkProcess:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "benchmarks.sink", "--port", "0"]
        if self.verify_checksums:
            command.append("--verify-checksums")
        if self.quiet:
            command.append("--quiet")
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self._process.stdout is not None
        line = _readline_with_timeout(self._process.stdout, self.ready_timeout)
        if not line.startswith("READY "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the sink did not start (said {line!r})")
        self.url = line.split()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _readline_with_timeout(stream: IO[str], timeout: float) -> str:
    """One line from `stream`, or '' when none arrives within `timeout` seconds."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sink",
        description="A tus 1.0.0 server on 127.0.0.1 that discards uploaded bytes, fast.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument(
        "--verify-checksums",
        action="store_true",
        help="check Upload-Checksum on each PATCH (off by default: the client's hashing is "
        "what a benchmark should measure)",
    )
    parser.add_argument(
        "--recv-size", type=int, default=DEFAULT_RECV_SIZE, help="bytes per recv_into"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log dropped connections")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print no summary line to stderr when stopped (warnings are still logged)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGINT or SIGTERM; print READY <url> once it serves."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s sink %(levelname)s %(message)s",
    )
    sink = TusSink(args.port, verify_checksums=args.verify_checksums, recv_size=args.recv_size)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sink.stop()

    started = time.monotonic()
    # Started before the handlers are installed and READY is printed: a signal sent right
    # after READY must not find start() half done (stop() cannot join an unstarted thread).
    sink.start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"READY {sink.url}", flush=True)
    while not sink.wait_stopped(0.5):
        pass
    if args.quiet:
        return 0
    elapsed = time.monotonic() - started
    stats = sink.stats
    print(
        f"sink stopped after {elapsed:.1f} s: {stats.connections} connections, "
        f"{stats.requests} requests, {stats.uploads_created} uploads "
        f"({stats.concatenations} concatenated), {stats.patches} PATCHes, "
        f"{stats.bytes_received} bytes",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
