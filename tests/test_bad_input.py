"""Bad input, as one table: every way a caller or a server can hand tuspipe something wrong.

Each :class:`Case` names the call (source and options), the exception it must raise (exactly
that class, or one of a few named classes), a regex its message must match (the message must
tell the user what to fix), and how many requests of each method may reach the server (none,
when the mistake can be known before any traffic). For every case, :func:`test_bad_input`
also checks that

* no bare ``KeyError``/``TypeError``/``AttributeError``/``IndexError`` is raised or wrapped
  (as ``__cause__``, unsuppressed ``__context__`` or exception-group member);
* the journal holds no record that points at wrong bytes: none at all when no upload was
  created or when the source changed, else only records whose URL holds a prefix of the source;
* the server holds only prefixes of the source, and (on the fake server) every PATCH body
  equals the source's bytes at its ``Upload-Offset``.

Most cases run against :class:`~tests.fakes.FakeTusServer` (its request log counts the traffic,
``script`` forges the protocol-breaking answers) under trio's autojumping ``MockClock``, so a
retry that should not happen costs no real time; while they run, httpx's real transport is
patched to hand any request to the fake too, so even a client tuspipe builds itself cannot
reach the network unnoticed. The cases that need a real server (an upload of another length, a
server without checksums, a file changing during the upload) use the Node server through a
client whose event hooks count requests.

The unreadable file: the tests run as root, whose ``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH``
make ``chmod 000`` meaningless, and uid 65534 cannot run the venv's interpreter (it lives under
``/root``, mode 0700). So that one case drops those two capabilities from the *effective* set of
the calling thread only (``capset(2)`` on the thread, via ctypes) for the duration of the call,
and restores them afterwards; ``open()`` of the ``chmod 000`` file then really fails with
EACCES, as it would for an ordinary user. (tuspipe opens the file in the trio thread, before
any worker thread is involved.)
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urljoin

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tuspipe import (
    ProtocolError,
    ResponseError,
    SourceChangedError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
    VersionMismatchError,
)

from .conftest import MakeFile, TusServer
from .fakes import FakeTusServer

CHUNK = 1024
SIZE = 2 * CHUNK + 123  # three PATCHes on the fake server
# The changing-file cases: big enough that most of the file is read after the first
# acknowledgement, whatever the read-ahead did before it.
BIG = 1024 * 1024
BIG_CHUNK = 64 * 1024
BIG_READ = 16 * 1024

TUS = {"Tus-Resumable": "1.0.0"}
BODY = b"scripted answer body"
QUOTED = "scripted answer body"  # what a ResponseError's message must quote

BARE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)

Counts = Mapping[str, "int | range"]


# ------------------------------------------------------------------------------------------------
# The table's vocabulary
# ------------------------------------------------------------------------------------------------


@dataclass
class Call:
    """What one case passes to ``upload_async``.

    ``original`` is what the source holds (for the prefix checks; None when there are no bytes).
    ``around`` wraps the call (the unreadable file drops capabilities there).
    """

    source: Any
    options: dict[str, Any]
    original: bytes | None = None
    around: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext


@dataclass
class Env:
    """What a case's builder may use: a scratch directory, the servers, a cleanup stack."""

    tmp_path: Path
    make_file: MakeFile
    fake: FakeTusServer
    node: TusServer | None
    stack: contextlib.ExitStack

    @property
    def url(self) -> str:
        return self.node.url if self.node is not None else self.fake.endpoint

    def call(self, source: Any, original: bytes | None = None, **options: Any) -> Call:
        """`source` to this case's server in CHUNK-sized PATCHes, with `options` on top."""
        return Call(source, {"url": self.url, "chunk_size": CHUNK, **options}, original)

    def file_call(self, **options: Any) -> Call:
        """A fresh SIZE-byte file to this case's server, with `options` on top."""
        path = self.make_file(SIZE)
        return self.call(path, path.read_bytes(), **options)


Build = Callable[[Env], Call]


@dataclass(frozen=True)
class Case:
    """One row: the call, what it must raise, and how much traffic it may cause.

    ``error`` is the exact class raised (or a tuple of acceptable exact classes), ``message`` a
    regex searched in its message, where the test's scratch directory reads ``<tmp>``.
    ``requests`` maps a method to the exact number (or range) of such requests the server may
    see; a method not named must not be seen at all. ``status`` is the HTTP status the raised
    ResponseError must carry. ``client`` False: the test passes no ``http_client`` of its own
    (the case tests ``verify``, ``cert`` or ``http_client`` itself).
    """

    id: str
    build: Build
    error: type[BaseException] | tuple[type[BaseException], ...]
    message: str
    requests: Counts = field(default_factory=dict)
    server: Literal["fake", "node"] = "fake"
    client: bool = True
    status: int | None = None


def options(**given: Any) -> Build:
    """A SIZE-byte file to the fake server with `given` options."""
    return lambda env: env.file_call(**given)


def _arm(
    server: FakeTusServer,
    method: str,
    after: int,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    """Answer the first `method` request after `after` such requests literally."""
    armed = False

    async def hook(request: httpx.Request) -> None:
        nonlocal armed
        if not armed and request.method == method and len(server.seen(method)) == after:
            armed = True
            server.script(status, headers, body, method=method)

    server.before_request = hook


def answer(
    method: str,
    status: int,
    headers: Mapping[str, str],
    *,
    after: int = 0,
    body: bytes = BODY,
    existing: bool = False,
    **given: Any,
) -> Build:
    """A SIZE-byte file to the fake server, whose `after`+1-th `method` request is answered
    with `status`, `headers` and `body`. `existing`: resume an upload made beforehand
    (``upload_url=``) instead of creating one."""

    def build(env: Env) -> Call:
        _arm(env.fake, method, after, status, headers, body)
        if existing:
            return env.file_call(**{"url": None, "upload_url": env.fake.create(SIZE), **given})
        return env.file_call(**given)

    return build


# ------------------------------------------------------------------------------------------------
# Builders for the cases that need more than options
# ------------------------------------------------------------------------------------------------


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _capabilities(libc: ctypes.CDLL, data: ctypes.Array[_CapData], *, write: bool) -> None:
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)  # pid 0: the calling thread only
    call = libc.capset if write else libc.capget
    if call(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{'capset' if write else 'capget'}: {os.strerror(errno)}")


@contextlib.contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """Make `path` (mode 000) unreadable to this thread, even as root, while in the block."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    data = (_CapData * 2)()
    _capabilities(libc, data, write=False)
    saved = data[0].effective
    data[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    _capabilities(libc, data, write=True)
    try:
        try:
            os.close(os.open(path, os.O_RDONLY))
        except PermissionError:
            pass
        else:
            pytest.fail(f"the test cannot make {path} unreadable here", pytrace=False)
        yield
    finally:
        data[0].effective = saved
        _capabilities(libc, data, write=True)


def _unreadable_file(env: Env) -> Call:
    path = env.make_file(SIZE)
    original = path.read_bytes()
    path.chmod(0)
    env.stack.callback(path.chmod, 0o600)
    call = env.call(path, original)
    call.around = lambda: _unreadable(path)
    return call


def _fifo(env: Env) -> Call:
    path = env.tmp_path / "fifo"
    os.mkfifo(path)
    return env.call(path)


def _through_a_file(env: Env) -> Call:
    return env.call(env.make_file(SIZE) / "child")


def _dangling_symlink(env: Env) -> Call:
    link = env.tmp_path / "link.bin"
    link.symlink_to(env.tmp_path / "gone.bin")
    return env.call(link)


def _pipe_of(env: Env, data: bytes, *, writer_stays: bool = False) -> BinaryIO:
    """A pipe holding `data`, to read from. Its writer is gone (the reader will see the end)
    unless `writer_stays`: then a read past `data` waits until the case's cleanup."""
    assert len(data) < 65536  # the pipe's buffer takes it all: no writer thread needed
    read_end, write_end = os.pipe()
    stream = open(read_end, "rb")  # noqa: SIM115 - closed by the stack
    # (the stack closes in reverse: the writer first, so a waiting read ends before the close)
    env.stack.callback(stream.close)
    os.write(write_end, data)
    if writer_stays:
        env.stack.callback(os.close, write_end)
    else:
        os.close(write_end)
    return stream


def _one_pass(what: Literal["generator", "pipe"], **given: Any) -> Build:
    """SIZE bytes (more than a chunk: the length is deferred) from a generator or a pipe, to
    the fake server, with `given` options; an upload_url given is made on the fake first."""

    def build(env: Env) -> Call:
        data = os.urandom(SIZE)
        source: Any
        if what == "generator":
            source = (data[offset : offset + 100] for offset in range(0, SIZE, 100))
        else:
            source = _pipe_of(env, data)
        if given.get("upload_url") == "made":
            return env.call(
                source, data, **{**given, "url": None, "upload_url": env.fake.create(None)}
            )
        return env.call(source, data, **given)

    return build


def _yielding(*items: Any) -> Build:
    """A generator source yielding `items` (bytes, and something that is not)."""

    def build(env: Env) -> Call:
        data = b"".join(item for item in items if isinstance(item, bytes))
        return env.call((item for item in items), data)

    return build


def _without_deferred_length(env: Env) -> Call:
    env.fake.extensions = ("creation", "termination", "checksum")
    data = os.urandom(SIZE)
    return env.call((data[offset : offset + 100] for offset in range(0, SIZE, 100)), data)


def _text_mode(env: Env) -> Call:
    path = env.make_file(SIZE)
    stream = path.open("r", encoding="latin-1")
    env.stack.callback(stream.close)
    return env.call(stream, path.read_bytes())


def _closed_file(env: Env) -> Call:
    path = env.make_file(SIZE)
    stream = path.open("rb")
    stream.close()
    return env.call(stream, path.read_bytes())


def _write_only(env: Env) -> Call:
    path = env.make_file(SIZE)
    # open() on a descriptor does not truncate: the file keeps its bytes, but cannot be read.
    stream = open(os.open(path, os.O_WRONLY), "wb")  # noqa: SIM115 - closed by the stack
    env.stack.callback(stream.close)
    return env.call(stream, path.read_bytes())


def _past_its_end(env: Env) -> Call:
    stream = io.BytesIO(b"0123456789")
    stream.seek(100)
    return env.call(stream, b"")


class _RepeatingMapping(Mapping[str, str]):
    """A mapping whose iteration names one key twice, as a careless multidict view might."""

    def __getitem__(self, key: str) -> str:
        return "value"

    def __iter__(self) -> Iterator[str]:
        return iter(["name", "name"])

    def __len__(self) -> int:
        return 2


def _sync_client(env: Env) -> Call:
    client = httpx.Client()
    env.stack.callback(client.close)
    return env.file_call(http_client=client)


def _missing_ca(env: Env) -> Call:
    return env.file_call(verify=str(env.tmp_path / "no-such-ca.pem"))


def _missing_cert(env: Env) -> Call:
    return env.file_call(cert=str(env.tmp_path / "no-such-client.pem"))


def _garbage_cert(env: Env) -> Call:
    path = env.tmp_path / "client.pem"
    path.write_text("this is no certificate\n")
    return env.file_call(cert=str(path))


def _journal_directory(env: Env) -> Call:
    directory = env.tmp_path / "cache-dir"
    directory.mkdir()
    return env.file_call(journal=directory)


def _missing_upload(env: Env) -> Call:
    return env.file_call(url=None, upload_url=env.fake.endpoint + "no-such-upload")


def _small_max_size(env: Env) -> Call:
    env.fake.max_size = SIZE - 1
    return env.file_call()


def _md5_only(env: Env) -> Call:
    env.fake.checksum_algorithms = ("md5",)
    return env.file_call(checksum="sha1")


def _node_upload_of_other_length(env: Env) -> Call:
    assert env.node is not None
    made = httpx.post(env.node.url, headers={**TUS, "Upload-Length": "100"}, timeout=10)
    assert made.status_code == 201, made
    upload_url = urljoin(env.node.url, made.headers["location"])
    path = env.make_file(200)
    return env.call(path, path.read_bytes(), url=None, upload_url=upload_url)


def _changing_file(mutate: Callable[[Path], None]) -> Build:
    """A BIG file to the Node server that `mutate` changes after the first acknowledgement."""

    def build(env: Env) -> Call:
        path = env.make_file(BIG)
        changed = False

        def on_progress(acknowledged: int, total: int) -> None:
            nonlocal changed
            if acknowledged > 0 and not changed:
                changed = True
                mutate(path)

        return env.call(
            path,
            path.read_bytes(),
            chunk_size=BIG_CHUNK,
            read_size=BIG_READ,
            read_ahead=1,
            on_progress=on_progress,
        )

    return build


def _shrink(path: Path) -> None:
    os.truncate(path, BIG // 2)


def _grow(path: Path) -> None:
    with path.open("ab") as stream:
        stream.write(b"more bytes")


def _rewrite(path: Path) -> None:
    """Same size, other bytes (only the modification time can tell)."""
    with path.open("r+b") as stream:
        stream.write(bytes(BIG))


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------

_NOT_POSITIVE = "must be a positive int, not"
_CREATED_THEN_PATCH: Counts = {"POST": 1, "PATCH": 1}

CASES: list[Case] = [
    # ---- local files ------------------------------------------------------------------------
    Case(
        "missing-file",
        lambda env: env.call(env.tmp_path / "missing.bin"),
        FileNotFoundError,
        r"No such file or directory: '<tmp>/missing\.bin'",
    ),
    Case(
        "directory",
        lambda env: env.call(env.tmp_path),
        IsADirectoryError,
        r"Is a directory; tuspipe uploads files: '<tmp>'",
    ),
    Case(
        "unreadable-file",
        _unreadable_file,
        PermissionError,
        r"Permission denied: '<tmp>/source-1-\d+\.bin'",
    ),
    Case(
        "path-through-a-regular-file",
        _through_a_file,
        NotADirectoryError,
        r"Not a directory: '<tmp>/source-1-\d+\.bin/child'",
    ),
    Case(
        "dangling-symlink",
        _dangling_symlink,
        FileNotFoundError,
        r"No such file or directory: '<tmp>/link\.bin'",
    ),
    Case("fifo", _fifo, UsageError, r"'<tmp>/fifo' is not a regular file; pass its bytes"),
    Case(
        "character-device",
        lambda env: env.call("/dev/zero"),
        UsageError,
        r"'/dev/zero' is not a regular file",
    ),
    # ---- sizes ------------------------------------------------------------------------------
    *(
        Case(
            f"chunk_size={value!r}",
            options(chunk_size=value),
            UsageError,
            f"chunk_size {_NOT_POSITIVE} {re.escape(repr(value))}",
        )
        for value in (0, -1, 1.5, "8", True)
    ),
    Case("read_size=0", options(read_size=0), UsageError, f"read_size {_NOT_POSITIVE} 0"),
    Case("read_ahead=0", options(read_ahead=0), UsageError, f"read_ahead {_NOT_POSITIVE} 0"),
    Case(
        "stop_at=-1",
        options(stop_at=-1),
        UsageError,
        rf"stop_at=-1 lies outside the source's {SIZE} bytes",
    ),
    Case(
        "stop_at=size+1",
        options(stop_at=SIZE + 1),
        UsageError,
        rf"stop_at={SIZE + 1} lies outside the source's {SIZE} bytes",
    ),
    *(
        Case(
            f"stop_at={value!r}",
            options(stop_at=value),
            UsageError,
            f"stop_at must be an int or None, not {re.escape(repr(value))}",
        )
        for value in ("3", 1.5, True)
    ),
    # ---- metadata ---------------------------------------------------------------------------
    Case(
        "metadata-key-empty",
        options(metadata={"": "x"}),
        UsageError,
        r"metadata keys must not be empty",
    ),
    *(
        Case(
            f"metadata-key-with-{what}",
            options(metadata={key: "x"}),
            UsageError,
            rf"metadata key {re.escape(repr(key))} must "
            r"(not contain spaces or commas|be printable ASCII)",
        )
        for what, key in (("space", "a b"), ("comma", "a,b"), ("tab", "a\tb"))
    ),
    Case(
        "metadata-key-non-ascii",
        options(metadata={"ключ": "x"}),
        UsageError,
        r"metadata key 'ключ' must be printable ASCII",
    ),
    Case(
        "metadata-key-not-str",
        options(metadata={1: "x"}),
        UsageError,
        r"metadata key 1 must be a str",
    ),
    Case(
        "metadata-as-list-of-pairs",  # the only way to repeat a key: not accepted
        options(metadata=[("name", "a"), ("name", "b")]),
        UsageError,
        r"metadata must be a mapping, not list",
    ),
    Case(
        "metadata-mapping-repeating-a-key",
        options(metadata=_RepeatingMapping()),
        UsageError,
        r"metadata key 'name' appears twice",
    ),
    *(
        Case(
            f"metadata-value-{type(value).__name__}",
            options(metadata={"k": value}),
            UsageError,
            rf"metadata value for 'k' must be str or bytes, not {type(value).__name__}",
        )
        for value in (5, None, ["a"])
    ),
    Case(
        "metadata-a-str",
        options(metadata="filename=a.bin"),
        UsageError,
        r"metadata must be a mapping, not str",
    ),
    # ---- headers ----------------------------------------------------------------------------
    *(
        Case(
            f"headers-a-{type(value).__name__}",
            options(headers=value),
            UsageError,
            rf"headers must be a mapping of str to str, not {type(value).__name__}",
        )
        for value in ("Authorization: x", [("Authorization", "x")])
    ),
    *(
        Case(
            f"header-reserved-{name}",
            options(headers={name: "1"}),
            UsageError,
            rf"header '{name}' is set by tuspipe itself and cannot be overridden",
        )
        for name in ("Upload-Offset", "Content-Length", "Tus-Resumable", "upload-length")
    ),
    *(
        Case(
            f"header-value-with-{what}",
            options(headers={"X-Token": value}),
            UsageError,
            r"the value of header 'X-Token' contains a line break or NUL",
        )
        for what, value in (("crlf", "a\r\nX-Evil: 1"), ("lf", "a\nb"), ("cr", "a\rb"))
    ),
    Case(
        "header-value-not-str",
        options(headers={"X-Token": 5}),
        UsageError,
        r"header 'X-Token': names and values must be str",
    ),
    Case(
        "header-name-not-str",
        options(headers={5: "x"}),
        UsageError,
        r"header 5: names and values must be str",
    ),
    Case(
        "header-name-with-space",
        options(headers={"X Token": "x"}),
        UsageError,
        r"'X Token' is not a valid header name",
    ),
    Case(
        "header-value-non-ascii",
        options(headers={"X-Name": "ключ"}),
        UsageError,
        r"X-Name",
    ),
    Case(
        "header-name-non-ascii",
        options(headers={"Ключ": "x"}),
        UsageError,
        r"Ключ",
    ),
    # ---- URLs -------------------------------------------------------------------------------
    Case(
        "url-ftp",
        options(url="ftp://host/files/"),
        UsageError,
        r"'ftp://host/files/' is not an http:// or https:// URL",
    ),
    Case("url-without-host", options(url="http://"), UsageError, r"'http://' has no host"),
    Case(
        "url-relative",
        options(url="files/"),
        UsageError,
        r"'files/' is not an http:// or https:// URL",
    ),
    Case(
        "url-bad-port",
        options(url="http://host:notaport/"),
        UsageError,
        r"'http://host:notaport/' is not a valid URL: .*port",
    ),
    Case(
        "url-bad-ipv6",
        options(url="http://[::1/files/"),
        UsageError,
        r"'http://\[::1/files/' is not a valid URL",
    ),
    Case("url-not-str", options(url=5), UsageError, r"a URL must be a str, not int"),
    Case(
        "upload_url-relative",
        options(url=None, upload_url="files/u1"),
        UsageError,
        r"'files/u1' is not an http:// or https:// URL",
    ),
    Case(
        "neither-url-nor-upload_url",
        options(url=None),
        UsageError,
        r"give the creation endpoint `url`, or `upload_url` to resume",
    ),
    Case(
        "upload_url-of-another-length",
        _node_upload_of_other_length,
        UsageError,
        r"the upload at http://\S+ is 100 bytes long but \S+ has 200; "
        r"it is not an upload of this source",
        requests={"HEAD": 1},
        server="node",
    ),
    Case(
        "upload_url-that-does-not-exist",
        _missing_upload,
        UploadNotFoundError,
        r"the upload does not exist on the server \(HEAD \S+no-such-upload answered 404\)",
        requests={"HEAD": 1},
        status=404,
    ),
    Case(
        "url-without-creation-endpoint",  # POST 404: the url is wrong, no upload is "gone"
        answer("POST", 404, TUS, body=b"Not Found"),
        (ResponseError, UploadNotFoundError),
        r"^[^(]*(creation endpoint|url)[^(]*\(POST \S+ answered 404\)",
        requests={"POST": 1},
        status=404,
    ),
    # ---- checksums --------------------------------------------------------------------------
    Case(
        "checksum-unknown",
        options(checksum="nope"),
        UsageError,
        r"unknown checksum algorithm 'nope'; choose one of sha256, .*'auto' or None",
    ),
    Case(
        "checksum-not-str",
        options(checksum=5),
        UsageError,
        r"checksum must be a str or None, not int",
    ),
    Case(
        "checksum-sha1-on-node",
        lambda env: env.file_call(checksum="sha1"),
        UnsupportedFeatureError,
        r"checksum='sha1' was asked for, but the server does not support the tus checksum "
        r"extension",
        requests={"OPTIONS": 1},
        server="node",
    ),
    Case(
        "checksum-sha1-where-only-md5-is-offered",
        _md5_only,
        UnsupportedFeatureError,
        r"the server does not offer the 'sha1' checksum; it offers md5",
        requests={"OPTIONS": 1},
    ),
    # ---- servers that do not speak tus 1.0.0 ------------------------------------------------
    Case(
        "POST-412-tus-0.2.2",
        answer("POST", 412, {"Tus-Version": "0.2.2"}),
        VersionMismatchError,
        rf"does not speak tus 1\.0\.0 \(it offers: 0\.2\.2\).*answered 412.*{QUOTED}",
        requests={"POST": 1},
        status=412,
    ),
    Case(
        "OPTIONS-412-tus-0.2.2",
        answer("OPTIONS", 412, {"Tus-Version": "0.2.2"}, checksum="auto"),
        VersionMismatchError,
        rf"does not speak tus 1\.0\.0 \(it offers: 0\.2\.2\).*answered 412.*{QUOTED}",
        requests={"OPTIONS": 1},
        status=412,
    ),
    # (An OPTIONS answer with no tus header at all is "unknown", not an error: issue 14,
    # tests/test_field_interop.py.)
    Case(
        "OPTIONS-200-listing-only-tus-0.2.2",
        answer("OPTIONS", 200, {"Tus-Version": "0.2.2"}, checksum="auto"),
        VersionMismatchError,
        r"does not speak tus 1\.0\.0 \(it offers: 0\.2\.2\).*answered 200",
        requests={"OPTIONS": 1},
        status=200,
    ),
    Case(
        "POST-201-with-Tus-Resumable-0.2.2",
        answer("POST", 201, {"Tus-Resumable": "0.2.2", "Location": "http://tus.test/files/x"}),
        VersionMismatchError,
        r"answered with Tus-Resumable '0\.2\.2', not 1\.0\.0",
        requests={"POST": 1},
        status=201,
    ),
    Case(
        "POST-200-html-without-Tus-Resumable",
        answer("POST", 200, {"Content-Type": "text/html"}, body=b"<html>hello</html>"),
        (VersionMismatchError, ProtocolError),
        r"(does not speak|not a) tus|Tus-Resumable",
        requests={"POST": 1},
        status=200,
    ),
    # ---- numbers, callbacks and other options -----------------------------------------------
    *(
        Case(
            f"timeout={value!r}",
            options(timeout=value),
            UsageError,
            rf"timeout must be a positive number of seconds, not {re.escape(repr(value))}",
        )
        for value in (0, -1, "x")
    ),
    Case(
        "stall_timeout=0",
        options(stall_timeout=0),
        UsageError,
        r"stall_timeout must be a positive number of seconds, not 0",
    ),
    Case("retries=-1", options(retries=-1), UsageError, r"retries must be >= 0, not -1"),
    Case("retries='3'", options(retries="3"), UsageError, r"retries must be an int, not '3'"),
    *(
        Case(
            f"retry_delays={value!r}",
            options(retry_delays=value),
            UsageError,
            r"retry_delays must be a non-empty sequence of (finite )?seconds >= 0",
        )
        for value in ([], [-1], [float("nan")], 5, ["1"])
    ),
    Case("on_progress=5", options(on_progress=5), UsageError, r"on_progress must be callable"),
    Case(
        "on_upload_url=5",
        options(on_upload_url=5),
        UsageError,
        r"on_upload_url must be callable",
    ),
    Case(
        "should_retry='x'",
        options(should_retry="x"),
        UsageError,
        r"should_retry must be callable",
    ),
    Case(
        "journal=5",
        options(journal=5),
        UsageError,
        r"journal must be True, False, None, a path or a Journal, not 5",
    ),
    Case(
        "journal-a-directory",
        _journal_directory,
        (UsageError, IsADirectoryError),
        r"journal.*<tmp>/cache-dir",
    ),
    *(
        Case(
            f"resume_key={value!r}",
            options(resume_key=value),
            UsageError,
            r"resume_key must be a non-empty str",
        )
        for value in ("", 5)
    ),
    Case(
        "http_client='x'",
        options(http_client="x"),
        UsageError,
        r"http_client must be an httpx\.AsyncClient, not 'x'",
        client=False,
    ),
    Case(
        "http_client-a-sync-client",
        _sync_client,
        UsageError,
        r"http_client must be an httpx\.AsyncClient, not <httpx\.Client",
        client=False,
    ),
    Case(
        "verify=5",
        options(verify=5),
        UsageError,
        r"verify must be a bool, a path or an ssl\.SSLContext, not 5",
        client=False,
    ),
    Case(
        "verify-missing-ca-path",
        _missing_ca,
        UsageError,
        r"verify='<tmp>/no-such-ca\.pem': no CA bundle file or directory there",
        client=False,
    ),
    Case(
        "verify=5-beside-http_client",  # "everything the caller passes is checked"
        options(verify=5),
        UsageError,
        r"verify",
    ),
    Case(
        "cert=5",
        options(cert=5),
        UsageError,
        r"cert must be a path or a \(cert, key\[, password\]\) tuple",
        client=False,
    ),
    Case(
        "cert-missing-file",
        _missing_cert,
        (FileNotFoundError, UsageError),
        r"<tmp>/no-such-client\.pem",
        client=False,
    ),
    Case(
        "cert-not-a-certificate",
        _garbage_cert,
        (ssl.SSLError, UsageError),
        r"<tmp>/client\.pem",
        client=False,
    ),
    # ---- sources that are not sources -------------------------------------------------------
    Case(
        "source-an-int",
        lambda env: env.call(5),
        UsageError,
        r"^cannot upload a int: pass a path, bytes, a binary file object, or an iterable of "
        r"bytes$",
    ),
    Case("source-a-dict", lambda env: env.call({b"a": b"b"}), UsageError, r"cannot upload a dict"),
    Case(
        "source-text-mode-file",
        _text_mode,
        UsageError,
        r"is open in text mode; open it in binary mode \('rb'\)",
    ),
    # ---- one-pass sources (read once; a length deferred past the first chunk) ---------------
    Case(
        "source-not-seekable-with-stop_at",
        _one_pass("pipe", stop_at=100),
        UsageError,
        r"stop_at= needs a source that can be read again",
    ),
    Case(
        "generator-with-stop_at",
        _one_pass("generator", stop_at=100),
        UsageError,
        r"stop_at= needs a source that can be read again; <generator> cannot",
    ),
    Case(
        "generator-with-upload_url",
        _one_pass("generator", upload_url="made"),
        UsageError,
        r"can be read only once, so it cannot continue an earlier upload",
    ),
    Case(
        "pipe-with-resume_key",
        _one_pass("pipe", resume_key="stdin-1"),
        UsageError,
        r"can be read only once, so it cannot continue an earlier upload \(upload_url= and "
        r"resume_key=",
    ),
    Case(
        "generator-yielding-str",
        _yielding(b"bytes first, ", "then text"),
        UsageError,
        r"<generator> yielded a str; it must yield bytes",
    ),
    Case(
        "generator-yielding-str-after-the-first-chunk",
        _yielding(b"x" * SIZE, "then text"),
        UsageError,
        r"<generator> yielded a str; it must yield bytes",
        requests={"OPTIONS": 1, "POST": 1, "PATCH": range(3)},
    ),
    Case(
        "generator-yielding-int",
        _yielding(b"x", 5),
        UsageError,
        r"<generator> yielded a int; it must yield bytes",
    ),
    Case(
        "generator-to-a-server-without-deferred-length",
        _without_deferred_length,
        UnsupportedFeatureError,
        r"<generator> has no known size, and the server does not support uploads of deferred "
        r"length \(creation-defer-length\)",
        requests={"OPTIONS": 1},
    ),
    Case("source-a-closed-file", _closed_file, (UsageError, ValueError), r"closed"),
    Case(
        "source-a-write-only-file",
        _write_only,
        UsageError,
        r"(not readable|open it for reading|'rb')",
    ),
    Case(
        "source-stream-positioned-past-its-end",
        _past_its_end,
        UsageError,
        r"(position|past its end|beyond its end)",
    ),
    # ---- a source that changes while it is uploaded (real Node server) ----------------------
    *(
        Case(
            f"file-{what}-during-upload",
            _changing_file(mutate),
            SourceChangedError,
            r"(changed during the upload|ended early)",
            requests={"POST": 1, "PATCH": range(1, BIG // BIG_CHUNK + 1)},
            server="node",
        )
        for what, mutate in (("shrinks", _shrink), ("grows", _grow), ("rewritten", _rewrite))
    ),
    # ---- answers that break the protocol ----------------------------------------------------
    Case(
        "PATCH-204-without-Upload-Offset",
        answer("PATCH", 204, TUS),
        ProtocolError,
        rf"PATCH answer has no Upload-Offset \(PATCH \S+ answered 204\): '{QUOTED}'",
        requests=_CREATED_THEN_PATCH,
        status=204,
    ),
    *(
        Case(
            f"PATCH-204-Upload-Offset-{value}",
            answer("PATCH", 204, {**TUS, "Upload-Offset": value}),
            ProtocolError,
            rf"malformed upload-offset: '{re.escape(value)}'.*answered 204.*{QUOTED}",
            requests=_CREATED_THEN_PATCH,
            status=204,
        )
        for value in ("abc", "-1", "1e3")
    ),
    Case(
        "PATCH-204-offset-beyond-what-was-sent",
        answer("PATCH", 204, {**TUS, "Upload-Offset": str(CHUNK + 1)}),
        ProtocolError,
        rf"reports offset {CHUNK + 1} after a PATCH of bytes 0\.\.{CHUNK}; "
        r"it must lie in that range.*answered 204",
        requests=_CREATED_THEN_PATCH,
        status=204,
    ),
    Case(
        "PATCH-204-offset-below-the-request's",
        answer("PATCH", 204, {**TUS, "Upload-Offset": "10"}, after=1),
        ProtocolError,
        rf"reports offset 10 after a PATCH of bytes {CHUNK}\.\.{2 * CHUNK}; "
        r"it must lie in that range.*answered 204",
        requests={"POST": 1, "PATCH": 2},
        status=204,
    ),
    Case(
        "POST-201-without-Location",
        answer("POST", 201, TUS),
        ProtocolError,
        rf"created an upload but sent no Location \(POST \S+ answered 201\): '{QUOTED}'",
        requests={"POST": 1},
        status=201,
    ),
    Case(
        "POST-201-Location-ftp",
        answer("POST", 201, {**TUS, "Location": "ftp://x/y"}),
        ProtocolError,
        r"Location 'ftp://x/y' does not lead to an http\(s\) URL.*answered 201",
        requests={"POST": 1},
        status=201,
    ),
    Case(
        "HEAD-without-Upload-Offset",
        answer("HEAD", 200, {**TUS, "Upload-Length": str(SIZE)}, existing=True),
        ProtocolError,
        rf"HEAD answer has no Upload-Offset \(HEAD \S+ answered 200\): '{QUOTED}'",
        requests={"HEAD": 1},
        status=200,
    ),
    Case(
        "HEAD-offset-beyond-length",
        answer("HEAD", 200, {**TUS, "Upload-Offset": "999", "Upload-Length": "10"}, existing=True),
        ProtocolError,
        r"reports offset 999 beyond the length 10.*answered 200",
        requests={"HEAD": 1},
        status=200,
    ),
    Case(
        "OPTIONS-malformed-Tus-Max-Size",
        answer(
            "OPTIONS",
            200,
            {"Tus-Version": "1.0.0", "Tus-Extension": "creation,checksum", "Tus-Max-Size": "lots"},
            checksum="auto",
        ),
        ProtocolError,
        rf"malformed tus-max-size: 'lots' \(OPTIONS \S+ answered 200\): '{QUOTED}'",
        requests={"OPTIONS": 1},
        status=200,
    ),
    # ---- fatal statuses: answered once, never retried ---------------------------------------
    *(
        Case(
            f"PATCH-{status}",
            answer("PATCH", status, TUS),
            error,
            rf"{text}.*\(PATCH \S+ answered {status}\): '{QUOTED}'",
            requests=_CREATED_THEN_PATCH,
            status=status,
        )
        for status, error, text in (
            (400, ResponseError, "rejected the request as malformed"),
            (401, ResponseError, "asks for authentication, or refused the credentials sent"),
            (403, ResponseError, "the server refused the request \\(forbidden\\)"),
            (413, UploadTooLargeError, "larger than the server accepts"),
            (415, ResponseError, "rejected the content type"),
        )
    ),
    Case(
        "PATCH-401-mid-upload",
        answer("PATCH", 401, TUS, after=1),
        ResponseError,
        rf"asks for authentication.*\(PATCH \S+ answered 401\): '{QUOTED}'",
        requests={"POST": 1, "PATCH": 2},
        status=401,
    ),
    *(
        Case(
            f"POST-{status}",
            answer("POST", status, TUS),
            ResponseError,
            rf"{text}.*\(POST \S+ answered {status}\): '{QUOTED}'",
            requests={"POST": 1},
            status=status,
        )
        for status, text in ((400, "malformed"), (401, "asks for authentication"))
    ),
    Case(
        "POST-413-over-Tus-Max-Size",
        _small_max_size,
        UploadTooLargeError,
        r"larger than the server accepts.*\(POST \S+ answered 413\): 'upload too large'",
        requests={"POST": 1},
        status=413,
    ),
]


assert len({case.id for case in CASES}) == len(CASES), "case names must be unique"

# ------------------------------------------------------------------------------------------------
# The test
# ------------------------------------------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and everything it wraps: causes, unsuppressed contexts, group members."""
    pending = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        if current.__context__ is not None and not current.__suppress_context__:
            pending.append(current.__context__)


def _into_fake(server: FakeTusServer) -> Callable[..., Any]:
    async def handle_async_request(
        self: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        return await server.handle(request)

    return handle_async_request


@contextlib.asynccontextmanager
async def _client(
    env: Env, methods: list[str], created: list[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client to this case's server; on the Node server it logs methods and new uploads."""
    if env.node is None:
        async with env.fake.client() as client:
            yield client
        return

    async def on_request(request: httpx.Request) -> None:
        methods.append(request.method)

    async def on_response(response: httpx.Response) -> None:
        location = response.headers.get("location")
        if response.request.method == "POST" and response.status_code == 201 and location:
            created.append(urljoin(str(response.request.url), location))

    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [on_request],
        "response": [on_response],
    }
    async with httpx.AsyncClient(event_hooks=hooks) as client:
        yield client


def _run(case: Case, env: Env, call: Call, methods: list[str], created: list[str]) -> Any:
    async def main() -> Exception | None:
        async with _client(env, methods, created) as client:
            given = dict(call.options)
            if case.client:
                given.setdefault("http_client", client)
            try:
                with call.around():
                    await tuspipe.upload_async(call.source, **given)
            except Exception as error:
                return error
        return None

    if env.node is None:
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trio.run(main)  # real sockets: the clock must be the real one


def _held(env: Env, url: str) -> bytes:
    """What the server holds for the upload at `url`."""
    if env.node is not None:
        return env.node.stored_path(url).read_bytes()
    return env.fake.data_of(url)


def _is_prefix(held: bytes, original: bytes) -> bool:
    return len(held) <= len(original) and original.startswith(held)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_bad_input(
    case: Case,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_file: MakeFile,
    private_journal: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTusServer()
    node: TusServer | None = None
    if case.server == "node":
        node = request.getfixturevalue("node_server")
    else:
        # Whatever client tuspipe uses, a request can only reach the fake, which logs it.
        monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", _into_fake(fake))
    methods: list[str] = []  # Node server: the methods sent, in order
    created: list[str] = []  # Node server: the uploads made
    with contextlib.ExitStack() as stack:
        env = Env(tmp_path, make_file, fake, node, stack)
        call = case.build(env)
        error = _run(case, env, call, methods, created)

    # (1) the right exception, with a message that says what to fix
    expected = case.error if isinstance(case.error, tuple) else (case.error,)
    names = " or ".join(error_type.__name__ for error_type in expected)
    assert error is not None, f"no error was raised (expected {names})"
    assert type(error) in expected, f"expected {names}, got {type(error).__name__}: {error}"
    message = str(error).replace(str(tmp_path), "<tmp>")
    assert re.search(case.message, message, re.DOTALL), (
        f"the message {message!r} does not match {case.message!r}"
    )
    if case.status is not None:
        assert isinstance(error, ResponseError)
        assert error.status_code == case.status

    # (2) never a bare KeyError/TypeError/AttributeError/IndexError, nor one wrapped
    bare = [
        f"{type(inner).__name__}: {inner}"
        for inner in _chain(error)
        if isinstance(inner, BARE_ERRORS)
    ]
    assert not bare, f"{type(error).__name__} wraps {bare}"

    # (3) the traffic: exactly what the case allows, and nothing when it is known in advance
    if node is None:
        methods = [seen.method for seen in fake.requests]
    counted = Counter(methods)
    for method in sorted(set(counted) | set(case.requests)):
        allowed = case.requests.get(method, 0)
        allowed_range = allowed if isinstance(allowed, range) else range(allowed, allowed + 1)
        assert counted[method] in allowed_range, (
            f"{counted[method]} {method} request(s) reached the server (allowed: {allowed}); "
            f"all requests: {methods}"
        )

    # (4) no journal record of wrong bytes
    original = call.original if call.original is not None else b""
    entries = tuspipe.Journal(private_journal).unfinished()
    if "POST" not in counted or isinstance(error, SourceChangedError):
        assert entries == [], f"the journal remembers {entries}"
    for entry in entries:
        assert entry.size == len(original), entry
        assert _is_prefix(_held(env, entry.url), original), (
            f"the journal's {entry.url} holds bytes that are not a prefix of the source"
        )

    # (5) no wrong bytes sent: the server holds prefixes of the source, and every PATCH body
    # (fake server) is the source's bytes at its offset
    if node is None:
        uploads = [fake.endpoint + upload_id for upload_id in fake.uploads]
        for seen in fake.seen("PATCH"):
            offset = seen.offset
            assert seen.body == original[offset : offset + len(seen.body)], (
                f"PATCH at {offset} sent {len(seen.body)} bytes that differ from the source"
            )
    else:
        upload_url = call.options.get("upload_url")
        uploads = [*created, *([upload_url] if isinstance(upload_url, str) else [])]
    for url in uploads:
        assert _is_prefix(_held(env, url), original), (
            f"{url} holds bytes that are not a prefix of the source"
        )
